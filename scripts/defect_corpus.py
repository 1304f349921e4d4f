#!/usr/bin/env python
"""The defect corpus of issue #13: a few hundred broken inputs and faults, each run through
the real command line (`python -m darknet_py ...`) as a subprocess, each run classified.

    python scripts/defect_corpus.py --out /tmp/corpus            # the whole corpus
    python scripts/defect_corpus.py --out /tmp/corpus --quick    # a ~40-case subset
    python scripts/defect_corpus.py --out /tmp/corpus --only weights,images --jobs 2

Cases are generated from a seed (--seed, default 13), so a corpus is reproducible: mutated
cfgs (the shipped cfg/*.cfg, made small, and two tiny networks written here), weights
files, images, label files, list files and .data files, tool arguments, write faults (a
full disk, a read-only folder, no permission, a missing folder, a folder where a file
should be, a file where a folder should be) through every writer, and signals during
`detector train` (SIGINT, SIGTERM, kill -9 of the trainer and of a loader worker).

Each run is classified:
  traceback       stderr holds a Python traceback
  hang            it ran past the case's timeout (the process group is killed)
  crash           killed by a signal it did not ask for, or an unexpected exit status
  unclear         a failure without darknet_py's one-line message
  bad-output      exit 0 with non-finite or unreadable output (weights, .npy, ONNX, lines)
  false-message   exit 0 saying something that did not happen (a file it did not write),
                  or exit 0 where the case cannot have succeeded (a write fault, NaN silently)
  orphan          processes of the run still alive after it ended
  leaked-warning  a numpy/Python warning reached the user
  broken-file     a fault case that changed or removed the previous file
  error           a clean one-line error (fine)
  ok              success whose outputs check out (fine)
  skipped         the fault cannot be simulated here (e.g. read-only without root)
It prints a table of outcomes per category and writes <out>/report.json. The exit status
is 1 when any run is in a bad class.

Faults: a full disk is a small tmpfs (mounted when running as root), else RLIMIT_FSIZE
(writes fail with EFBIG); a read-only folder is a tmpfs remounted read-only (root), else
chmod 555; no permission is chmod 555 with the run's DAC-override capabilities dropped
through setpriv (root), else plain chmod 555. The report says which was used.
"""
import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

BAD = ("traceback", "hang", "crash", "unclear", "bad-output", "false-message", "orphan",
       "leaked-warning", "broken-file")
FINE = ("error", "ok", "skipped")
PREVIOUS = b"previous contents\n"

DET_CFG = """[net]
batch=2
subdivisions=1
width=32
height=32
channels=3
momentum=0.9
decay=0.0005
learning_rate=0.001
burn_in=2
policy=steps
steps=3
scales=.1
max_batches=3
[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[convolutional]
filters=14
size=1
stride=1
pad=1
activation=linear
[region]
anchors=1,1,2.5,3
bias_match=1
classes=2
coords=4
num=2
softmax=1
jitter=.2
rescore=1
object_scale=5
noobject_scale=1
class_scale=1
coord_scale=1
absolute=1
thresh=.6
random=0
"""

CLS_CFG = """[net]
batch=2
subdivisions=1
width=16
height=16
channels=3
momentum=0.9
decay=0.0005
learning_rate=0.1
policy=poly
power=4
max_batches=3
[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[convolutional]
filters=3
size=1
stride=1
pad=1
activation=linear
[avgpool]
[softmax]
groups=1
[cost]
type=sse
"""

CLASS_WORDS = ("cat", "dog", "owl")
VALUES = ["nan", "inf", "-inf", "-1", "0", "1e9", "99999999", "abc", "", "1,2", "0.5x", "-0",
          "1e-45", "3.5", "1e39", "-99999", "0x10", "2147483648", "1/2", "NaN", "10000"]


# ----------------------------------------------------------------------- cases

@dataclass
class Case:
    id: str
    category: str
    name: str
    argv: list
    folder: str
    expect: list = field(default_factory=list)   # (kind, path) checked after exit 0
    must: str = None          # "fail": exit 0 is wrong; "warn:<regex>": exit 0 must say it
    intact: dict = field(default_factory=dict)   # path -> bytes that must survive
    fault: str = None         # full | readonly | perm (set up around the run)
    fault_dir: str = None
    signal: list = None       # [signal name, iterations to wait, target: main|worker]
    timeout: float = 60.0
    after: list = None        # argv of a follow-up run (resume after a kill)


class Corpus:
    def __init__(self, out, seed):
        self.out = os.path.abspath(out)
        self.rng = random.Random(seed)
        self.cases = []
        self.fx = os.path.join(self.out, "fixtures")

    def folder(self):
        path = os.path.join(self.out, "cases", f"c{len(self.cases):04d}")
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.makedirs(path)
        return path

    def add(self, category, name, argv, folder, **kwargs):
        case = Case(f"c{len(self.cases):04d}", category, name, [str(a) for a in argv],
                    folder, **kwargs)
        self.cases.append(case)
        return case

    def f(self, *parts):
        return os.path.join(self.fx, *parts)


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as handle:
        handle.write(data)
    return path


def _image(rng, width, height, mode="RGB"):
    from PIL import Image
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = np.stack([(xx * 255 // max(width - 1, 1)), (yy * 255 // max(height - 1, 1)),
                       np.full_like(xx, rng.randrange(256))], -1).astype(np.uint8)
    return Image.fromarray(pixels).convert(mode)


def _jpeg_bytes(image, **kwargs):
    import io
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **kwargs)
    return buffer.getvalue()


def _image_bytes(image, fmt, **kwargs):
    import io
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def make_fixtures(corpus):
    """Two tiny networks with good weights, a detection and a classification dataset, and
    a VOC root, under <out>/fixtures."""
    import darknet_py
    rng = random.Random(0)
    fx = corpus.fx
    if os.path.isdir(fx):
        shutil.rmtree(fx)
    _write(corpus.f("det.cfg"), DET_CFG)
    _write(corpus.f("cls.cfg"), CLS_CFG)
    for name in ("det", "cls"):
        net = darknet_py.parse_network_cfg(corpus.f(f"{name}.cfg"), batch=1, device="cpu")
        net.ensure_initialized()
        # darknet's initial weights as a saved, never-trained file (rolling variance 0)
        net.save_weights(corpus.f(f"{name}.init.weights"))
        # trained-like weights: rolling variance 1 (0 divides by sqrt(.00001) and the
        # region's exp overflows: the init file above keeps that case)
        for layer in net.layers:
            if getattr(layer, "rolling_variance", None) is not None:
                layer.rolling_variance[...] = 1
        net.save_weights(corpus.f(f"{name}.weights"))
    paths = []
    for i in range(4):
        path = corpus.f("images", f"{i}.jpg")
        _write(path, _jpeg_bytes(_image(rng, 40, 30)))
        _write(corpus.f("labels", f"{i}.txt"), f"{i % 2} 0.5 0.5 0.4 0.5\n1 0.3 0.3 0.2 0.2\n"
               f"0 0.7 0.6 {0.1 + 0.05 * i:g} 0.3\n")
        paths.append(path)
    _write(corpus.f("train.txt"), "\n".join(paths) + "\n")
    _write(corpus.f("names.txt"), "a\nb\n")
    _write(corpus.f("det.data"), DET_DATA.format(fx=fx))
    cls_paths = []
    for i, word in enumerate(CLASS_WORDS * 2):
        path = corpus.f("cimages", f"{word}_{i}.png")
        _write(path, _image_bytes(_image(rng, 20, 20), "PNG"))
        cls_paths.append(path)
    _write(corpus.f("ctrain.txt"), "\n".join(cls_paths) + "\n")
    _write(corpus.f("clabels.txt"), "\n".join(CLASS_WORDS) + "\n")
    _write(corpus.f("cls.data"), CLS_DATA.format(fx=fx))
    make_voc(corpus.f("voc"), rng)
    small = make_small_shipped_cfgs(corpus)
    # the mapped-world copy for the permission runs: everything readable
    for folder, _dirs, files in os.walk(fx):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    os.chmod(corpus.out, 0o755)
    return small


DET_DATA = ("classes=2\ntrain={fx}/train.txt\nvalid={fx}/train.txt\nnames={fx}/names.txt\n"
            "backup={fx}/backup\nresults={fx}/results\neval=voc\n")
CLS_DATA = ("classes=3\ntrain={fx}/ctrain.txt\nvalid={fx}/ctrain.txt\nlabels={fx}/clabels.txt\n"
            "names={fx}/clabels.txt\nbackup={fx}/cbackup\ntop=2\n")

VOC_XML = """<annotation>
  <filename>{name}.jpg</filename>
  <size><width>{w}</width><height>{h}</height><depth>3</depth></size>
  <object><name>{cls}</name><difficult>0</difficult>
    <bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>
  </object>
</annotation>
"""


def make_voc(root, rng, xml_override=None, image_override=None):
    ids = ["img0", "img1", "img2"]
    for i, name in enumerate(ids):
        image = image_override.get(name) if image_override else None
        _write(os.path.join(root, "JPEGImages", name + ".jpg"),
               image if image is not None else _jpeg_bytes(_image(rng, 40, 30)))
        text = (xml_override or {}).get(name)
        if text is None:
            text = VOC_XML.format(name=name, w=40, h=30, cls=("cat", "dog")[i % 2],
                                  x0=5, y0=4, x1=30, y1=25)
        _write(os.path.join(root, "Annotations", name + ".xml"), text)
    _write(os.path.join(root, "ImageSets", "Main", "train.txt"), "img0\nimg1\n")
    _write(os.path.join(root, "ImageSets", "Main", "val.txt"), "img2\n")
    return root


def slim_cfg(text, width=64):
    """A shipped cfg made cheap to run: input `width` square, batch 1, every convolution's
    filters / 8 (at least 4) except the last one (it feeds the region or the softmax)."""
    lines = text.splitlines()
    conv_starts = [i for i, line in enumerate(lines) if line.strip().startswith("[conv")]
    last_conv = conv_starts[-1] if conv_starts else -1
    section, start, out = None, -1, []
    for i, line in enumerate(lines):
        stripped = line.replace(" ", "").replace("\t", "")
        if stripped.startswith("["):
            section, start = stripped, i
        key = stripped.split("=", 1)[0]
        if section == "[net]" and key in ("width", "height"):
            line = f"{key}={width}"
        elif section == "[net]" and key in ("batch", "subdivisions"):
            line = f"{key}=1"
        elif section and section.startswith("[conv") and key == "filters" \
                and start != last_conv:
            line = f"filters={max(4, int(stripped.split('=', 1)[1]) // 8)}"
        out.append(line)
    return "\n".join(out) + "\n"


# darknet's cfgs shipped in cfg/ (a fixed list, so that the corpus of one seed is the same
# whatever other cfgs a checkout holds)
SHIPPED_CFGS = ("darknet.cfg", "darknet19.cfg", "darknet19_448.cfg", "darknet9000.cfg",
                "extraction.cfg", "tiny-train-test.cfg", "tiny.cfg", "yolo9000.cfg",
                "yolov1-tiny.cfg", "yolov1.cfg", "yolov2-tiny-voc.cfg", "yolov2-tiny.cfg",
                "yolov2-voc.cfg", "yolov2.cfg")


def make_small_shipped_cfgs(corpus):
    folder = corpus.f("shipped")
    os.makedirs(folder, exist_ok=True)
    found = []
    for path in [os.path.join(ROOT, "cfg", name) for name in SHIPPED_CFGS]:
        if not os.path.isfile(path):
            continue
        with open(path) as handle:
            text = handle.read()
        name = os.path.basename(path)
        target = os.path.join(folder, name)
        _write(target, slim_cfg(text))
        found.append(target)
    return found


# ----------------------------------------------------------------------- mutators

def mutate_cfg(text, rng):
    """One random defect of a cfg text: (description, new text or bytes)."""
    lines = text.splitlines()
    option_lines = [i for i, line in enumerate(lines) if "=" in line and
                    not line.lstrip().startswith("#")]
    section_lines = [i for i, line in enumerate(lines) if line.strip().startswith("[")]
    kind = rng.choice(["value", "value", "value", "value", "delete", "duplicate", "swap",
                       "unknown-section", "unknown-option", "truncate", "junk", "rename",
                       "no-equals", "empty", "binary", "delete-section", "crlf"])
    if kind == "value" and option_lines:
        i = rng.choice(option_lines)
        key = lines[i].split("=", 1)[0]
        value = rng.choice(VALUES)
        lines[i] = f"{key}={value}"
        return f"value {key.strip()}={value!r} (line {i + 1})", "\n".join(lines) + "\n"
    if kind == "delete" and lines:
        i = rng.randrange(len(lines))
        return f"delete line {i + 1} {lines[i]!r}", "\n".join(lines[:i] + lines[i + 1:]) + "\n"
    if kind == "duplicate" and lines:
        i = rng.randrange(len(lines))
        return f"duplicate line {i + 1}", "\n".join(lines[:i + 1] + lines[i:]) + "\n"
    if kind == "swap" and len(lines) > 2:
        i, j = rng.sample(range(len(lines)), 2)
        lines[i], lines[j] = lines[j], lines[i]
        return f"swap lines {i + 1} and {j + 1}", "\n".join(lines) + "\n"
    if kind == "unknown-section":
        i = rng.randrange(1, len(lines) + 1)
        return f"[bogus] at line {i + 1}", "\n".join(lines[:i] + ["[bogus]", "x=1"] +
                                                      lines[i:]) + "\n"
    if kind == "unknown-option":
        i = rng.randrange(1, len(lines) + 1)
        return f"unknown option at line {i + 1}", "\n".join(lines[:i] + ["bogus_key=3"] +
                                                            lines[i:]) + "\n"
    if kind == "truncate":
        cut = rng.randrange(len(text))
        return f"truncated at byte {cut}", text[:cut]
    if kind == "junk":
        data = bytearray(text.encode())
        at = rng.randrange(len(data))
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        return f"{len(junk)} junk bytes at {at}", bytes(data[:at] + junk + data[at:])
    if kind == "rename" and section_lines:
        i = rng.choice(section_lines)
        new = rng.choice(["[convolutional]", "[maxpool]", "[region]", "[softmax]", "[route]",
                          "[reorg]", "[avgpool]", "[connected]", "[dropout]", "[net]",
                          "[cost]", "[batchnorm]", "[shortcut]", "[yolo]", "[", "[]"])
        lines[i] = new
        return f"section at line {i + 1} renamed {new}", "\n".join(lines) + "\n"
    if kind == "no-equals" and option_lines:
        i = rng.choice(option_lines)
        lines[i] = lines[i].replace("=", " ")
        return f"line {i + 1} without '='", "\n".join(lines) + "\n"
    if kind == "empty":
        return "empty file", ""
    if kind == "binary":
        return "random bytes", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600)))
    if kind == "delete-section" and len(section_lines) > 1:
        k = rng.randrange(1, len(section_lines))
        start = section_lines[k]
        end = section_lines[k + 1] if k + 1 < len(section_lines) else len(lines)
        return (f"delete section {lines[start]} at line {start + 1}",
                "\n".join(lines[:start] + lines[end:]) + "\n")
    if kind == "crlf":
        return "CRLF line endings", text.replace("\n", "\r\n")
    return "unchanged", text


def mutate_weights(data, rng, layer_ends):
    """One random defect of a .weights file: (description, bytes)."""
    kind = rng.choice(["truncate", "truncate", "header-bytes", "version", "seen", "extra",
                       "nan-all", "nan-some", "inf-some", "huge", "zero", "empty", "boundary",
                       "flip"])
    body = np.frombuffer(data[20:], dtype="<f4").copy()
    if kind == "truncate":
        cut = rng.choice([0, 3, 11, 12, 15, 19, rng.randrange(20, len(data)), len(data) - 1,
                          len(data) - 4])
        return f"truncated at byte {cut}", data[:cut]
    if kind == "boundary":
        cut = rng.choice(layer_ends)
        return f"cut at the layer boundary {cut}", data[:cut]
    if kind == "header-bytes":
        head = bytearray(data[:20])
        for _ in range(rng.randrange(1, 6)):
            head[rng.randrange(20)] = rng.randrange(256)
        return "random bytes in the header", bytes(head) + data[20:]
    if kind == "version":
        major, minor, revision = rng.choice([(0, 1, 0), (1000, 0, 0), (0, 2000, 0), (-1, 0, 0),
                                             (2 ** 31 - 1, 5, 0), (0, 0, -7), (999, 999, 0),
                                             (0, 1001, 0)])
        return (f"version {major}.{minor}.{revision}",
                struct.pack("<3i", major, minor, revision) + data[12:])
    if kind == "seen":
        return "seen = 2^64-1", data[:12] + struct.pack("<Q", 2 ** 64 - 1) + data[20:]
    if kind == "extra":
        extra = rng.choice([1, 3, 4, 100])
        return f"{extra} extra bytes", data + bytes(extra)
    if kind == "nan-all":
        body[:] = np.nan
        return "every value NaN", data[:20] + body.tobytes()
    if kind == "nan-some":
        body[rng.randrange(len(body))] = np.nan
        return "one value NaN", data[:20] + body.tobytes()
    if kind == "inf-some":
        body[rng.sample(range(len(body)), 3)] = np.inf
        return "three values inf", data[:20] + body.tobytes()
    if kind == "huge":
        body[:] = 3e38
        return "every value 3e38 (finite, overflowing)", data[:20] + body.tobytes()
    if kind == "zero":
        return "every value 0", data[:20] + bytes(len(data) - 20)
    if kind == "empty":
        return "empty file", b""
    flipped = bytearray(data)
    for _ in range(8):
        flipped[rng.randrange(20, len(data))] ^= 1 << rng.randrange(8)
    return "8 random bit flips in the values", bytes(flipped)


def image_defects(rng):
    """(description, file name, bytes) of broken and unusual images."""
    from PIL import Image
    base = _image(rng, 40, 30)
    jpeg = _jpeg_bytes(base)
    found = []
    for _ in range(6):
        cut = rng.randrange(2, len(jpeg))
        found.append((f"JPEG truncated at {cut} of {len(jpeg)}", "t.jpg", jpeg[:cut]))
    for _ in range(4):
        damaged = bytearray(jpeg)
        for _ in range(rng.randrange(1, 30)):
            damaged[rng.randrange(2, len(damaged))] = rng.randrange(256)
        found.append(("JPEG with random bytes changed", "d.jpg", bytes(damaged)))
    found += [
        ("random bytes named .jpg", "r.jpg", bytes(rng.randrange(256) for _ in range(500))),
        ("zero-size .jpg", "z.jpg", b""),
        ("text named .jpg", "x.jpg", b"this is not an image\n"),
        ("PNG named .jpg", "p.jpg", _image_bytes(base, "PNG")),
        ("PNG", "p.png", _image_bytes(base, "PNG")),
        ("GIF", "g.gif", _image_bytes(base.convert("P"), "GIF")),
        ("BMP", "b.bmp", _image_bytes(base, "BMP")),
        ("TIFF", "t.tif", _image_bytes(base, "TIFF")),
        ("WEBP", "w.webp", _image_bytes(base, "WEBP")),
        ("greyscale JPEG", "l.jpg", _jpeg_bytes(base.convert("L"))),
        ("CMYK JPEG", "k.jpg", _jpeg_bytes(base.convert("CMYK"))),
        ("progressive JPEG", "pr.jpg", _jpeg_bytes(base, progressive=True)),
        ("RGBA PNG", "a.png", _image_bytes(base.convert("RGBA"), "PNG")),
        ("palette PNG", "pp.png", _image_bytes(base.convert("P"), "PNG")),
        ("1-bit PNG", "one.png", _image_bytes(base.convert("1"), "PNG")),
        ("16-bit greyscale PNG", "i16.png",
         _image_bytes(Image.fromarray((np.arange(1200).reshape(30, 40) * 50).astype(np.uint16)),
                      "PNG")),
        ("1x1 JPEG", "tiny.jpg", _jpeg_bytes(_image(rng, 1, 1))),
        ("1000x1 JPEG", "wide.jpg", _jpeg_bytes(_image(rng, 1000, 1))),
        ("PNG truncated", "tp.png", _image_bytes(base, "PNG")[:100]),
        ("GIF truncated", "tg.gif", _image_bytes(base.convert("P"), "GIF")[:60]),
        ("PNG named .gif", "pg.gif", _image_bytes(base, "PNG")),
    ]
    sof = jpeg.index(b"\xff\xc0")
    for w, h in ((65500, 65500), (0, 30), (40, 0), (60000, 2)):
        data = bytearray(jpeg)
        data[sof + 5:sof + 9] = struct.pack(">HH", h, w)
        found.append((f"JPEG header claiming {w}x{h}", "big.jpg", bytes(data)))
    png = bytearray(_image_bytes(base, "PNG"))
    png[16:24] = struct.pack(">II", 100000, 100000)   # IHDR width, height (bad CRC too)
    found.append(("PNG header claiming 100000x100000", "big.png", bytes(png)))
    return found


LABEL_DEFECTS = [
    ("class id 2 (classes=2)", "2 0.5 0.5 0.2 0.2\n"),
    ("class id 99", "99 0.5 0.5 0.2 0.2\n"),
    ("class id -1", "-1 0.5 0.5 0.2 0.2\n"),
    ("class id 1.5", "1.5 0.5 0.5 0.2 0.2\n"),
    ("class id text", "cat 0.5 0.5 0.2 0.2\n"),
    ("x nan", "0 nan 0.5 0.2 0.2\n"),
    ("y inf", "0 0.5 inf 0.2 0.2\n"),
    ("w inf", "0 0.5 0.5 inf 0.2\n"),
    ("h -inf", "0 0.5 0.5 0.2 -inf\n"),
    ("w negative", "0 0.5 0.5 -0.2 0.2\n"),
    ("w zero", "0 0.5 0.5 0 0.2\n"),
    ("huge numbers", "0 1e30 1e30 1e30 1e30\n"),
    ("x outside", "0 1.7 0.5 0.2 0.2\n"),
    ("negative x", "0 -0.7 0.5 0.2 0.2\n"),
    ("too few fields", "0 0.5 0.5 0.2\n"),
    ("one field", "0\n"),
    ("too many fields", "0 0.5 0.5 0.2 0.2 0.9\n"),
    ("text line", "hello world\n"),
    ("empty file", ""),
    ("blank lines", "\n\n0 0.5 0.5 0.2 0.2\n\n"),
    ("whitespace only", "   \n\t\n"),
    ("CRLF", "0 0.5 0.5 0.2 0.2\r\n1 0.4 0.4 0.1 0.1\r\n"),
    ("byte-order mark", "\ufeff0 0.5 0.5 0.2 0.2\n"),
    ("binary junk", None),
    ("many boxes (200)", "".join(f"{i % 2} 0.5 0.5 0.1 0.1\n" for i in range(200))),
    ("tab separated", "0\t0.5\t0.5\t0.2\t0.2\n"),
    ("commas", "0,0.5,0.5,0.2,0.2\n"),
    ("box wider than the image", "0 0.5 0.5 3 3\n"),
    ("tiny box", "0 0.5 0.5 1e-9 1e-9\n"),
    ("nan class", "nan 0.5 0.5 0.2 0.2\n"),
]

LIST_DEFECTS = [
    ("empty list", lambda fx, d: ""),
    ("blank lines only", lambda fx, d: "\n\n\n"),
    ("whitespace lines", lambda fx, d: "  \n\t\n" + fx("images", "0.jpg") + "\n   \n"),
    ("a missing path", lambda fx, d: fx("images", "0.jpg") + "\n" + d + "/missing.jpg\n"),
    ("only missing paths", lambda fx, d: d + "/missing1.jpg\n" + d + "/missing2.jpg\n"),
    ("a directory", lambda fx, d: fx("images") + "\n"),
    ("trailing spaces", lambda fx, d: fx("images", "0.jpg") + "   \n"),
    ("CRLF", lambda fx, d: fx("images", "0.jpg") + "\r\n" + fx("images", "1.jpg") + "\r\n"),
    ("relative path", lambda fx, d: "images/0.jpg\n"),
    ("binary junk", lambda fx, d: "\x00\x01\x02\xff garbage \x7f\n"),
    ("a label file listed", lambda fx, d: fx("labels", "0.txt") + "\n"),
    ("duplicate lines", lambda fx, d: (fx("images", "0.jpg") + "\n") * 5),
    ("a very long line", lambda fx, d: "/x" * 5000 + ".jpg\n"),
    ("no final newline", lambda fx, d: fx("images", "0.jpg")),
    ("a corrupt image listed", lambda fx, d: d + "/bad.jpg\n"),
    ("an image without labels", lambda fx, d: d + "/images/nolabel.jpg\n"),
]


# ----------------------------------------------------------------------- generators

def dataset_copy(corpus, folder, labels=None, list_text=None, data_extra="", data_text=None):
    """A detection dataset in `folder` (images linked to the fixtures'), with optional
    label text for every image, a train/valid list text and .data lines."""
    images = os.path.join(folder, "images")
    os.makedirs(images, exist_ok=True)
    os.makedirs(os.path.join(folder, "labels"), exist_ok=True)
    paths = []
    for i in range(4):
        target = os.path.join(images, f"{i}.jpg")
        shutil.copyfile(corpus.f("images", f"{i}.jpg"), target)
        with open(corpus.f("labels", f"{i}.txt")) as handle:
            text = handle.read()
        if labels is not None and i < 2:
            text = labels
        _write(os.path.join(folder, "labels", f"{i}.txt"),
               text if isinstance(text, (str, bytes)) else text)
        paths.append(target)
    listing = os.path.join(folder, "list.txt")
    _write(listing, list_text if list_text is not None else "\n".join(paths) + "\n")
    data = os.path.join(folder, "d.data")
    _write(data, data_text if data_text is not None else
           f"classes=2\ntrain={listing}\nvalid={listing}\nnames={corpus.f('names.txt')}\n"
           f"backup={folder}/backup\nresults={folder}/results\n{data_extra}")
    return data


def train_argv(data, cfg, weights=None, max_batches=2, workers=0):
    argv = ["detector", "train", data, cfg] + ([weights] if weights else [])
    return [str(a) for a in argv + ["-max_batches", max_batches, "-workers", workers,
                                    "-seed", 1]]


def gen_cfgs(corpus, shipped, count):
    rng = corpus.rng
    sources = [corpus.f("det.cfg"), corpus.f("cls.cfg")] + shipped
    image = corpus.f("images", "0.jpg")
    for n in range(count):
        source = sources[n % len(sources)] if n < len(sources) * 2 else rng.choice(sources)
        with open(source) as handle:
            text = handle.read()
        what, mutated = mutate_cfg(text, rng)
        folder = corpus.folder()
        cfg = _write(os.path.join(folder, "m.cfg"), mutated)
        name = f"{os.path.basename(source)}: {what}"
        command = rng.choice(["forward", "forward", "train", "test"]) \
            if source.endswith("det.cfg") else \
            (rng.choice(["forward", "train-cls", "predict"]) if source.endswith("cls.cfg")
             else "forward")
        if command == "forward":
            corpus.add("cfg", f"{name} | forward", ["forward", cfg, "none", image, "--dump",
                                                    os.path.join(folder, "dump")], folder,
                       expect=[("npy_dir", os.path.join(folder, "dump"))], timeout=90)
        elif command == "train":
            data = dataset_copy(corpus, folder)
            corpus.add("cfg", f"{name} | detector train", train_argv(data, cfg), folder,
                       expect=[("weights", os.path.join(folder, "backup", "m_final.weights"))],
                       timeout=90)
        elif command == "test":
            corpus.add("cfg", f"{name} | detector test", ["detector", "test",
                       corpus.f("det.data"), cfg, corpus.f("det.weights"), image,
                       "-out", os.path.join(folder, "pred")], folder, timeout=90)
        elif command == "train-cls":
            data = _write(os.path.join(folder, "c.data"),
                          CLS_DATA.format(fx=corpus.fx).replace(
                              f"backup={corpus.fx}/cbackup", f"backup={folder}/backup"))
            corpus.add("cfg", f"{name} | classifier train",
                       ["classifier", "train", data, cfg, "-max_batches", 2, "-workers", 0,
                        "-seed", 1], folder,
                       expect=[("weights", os.path.join(folder, "backup", "m.weights"))],
                       timeout=90)
        else:
            corpus.add("cfg", f"{name} | classifier predict",
                       ["classifier", "predict", corpus.f("cls.data"), cfg,
                        corpus.f("cls.weights"), corpus.f("cimages", "cat_0.png")], folder,
                       timeout=90)


def _layer_ends(cfg):
    import darknet_py
    from darknet_py.layers.params import parameter_count
    net = darknet_py.parse_network_cfg(cfg, batch=1, device="cpu")
    ends, offset = [], 20
    for layer in net.layers:
        count = parameter_count(layer)
        if count:
            offset += 4 * count
            ends.append(offset)
    return [20] + ends[:-1]


def gen_weights(corpus, count):
    rng = corpus.rng
    det_ends, cls_ends = _layer_ends(corpus.f("det.cfg")), _layer_ends(corpus.f("cls.cfg"))
    for n in range(count):
        kind = ("det", "cls")[n % 2]
        with open(corpus.f(f"{kind}.weights"), "rb") as handle:
            good = handle.read()
        what, data = mutate_weights(good, rng, det_ends if kind == "det" else cls_ends)
        folder = corpus.folder()
        weights = _write(os.path.join(folder, "m.weights"), data)
        must = "warn:NaN or infinite" if ("NaN" in what or "inf" in what) else None
        command = rng.choice(["use", "use", "partial", "export", "train"])
        cfg = corpus.f(f"{kind}.cfg")
        if command == "use" and kind == "det":
            corpus.add("weights", f"det: {what} | detector test",
                       ["detector", "test", corpus.f("det.data"), cfg, weights,
                        corpus.f("images", "0.jpg"), "-out", os.path.join(folder, "pred")],
                       folder, must=must)
        elif command == "use":
            corpus.add("weights", f"cls: {what} | classifier predict",
                       ["classifier", "predict", corpus.f("cls.data"), cfg, weights,
                        corpus.f("cimages", "dog_1.png")], folder, must=must)
        elif command == "partial":
            out = os.path.join(folder, "p.weights")
            corpus.add("weights", f"{kind}: {what} | partial",
                       ["partial", cfg, weights, out, rng.choice([1, 2, 3])], folder,
                       expect=[("weights", out)])
        elif command == "export":
            out = os.path.join(folder, "m.onnx")
            corpus.add("weights", f"{kind}: {what} | export", ["export", cfg, weights, out],
                       folder, expect=[("onnx", out)], must=must and "fail")
        elif kind == "det":
            data = dataset_copy(corpus, folder)
            corpus.add("weights", f"det: {what} | detector train (resume)",
                       train_argv(data, cfg, weights, max_batches=3), folder,
                       expect=[("weights", os.path.join(folder, "backup", "det_final.weights"))],
                       timeout=90)
        else:
            data = _write(os.path.join(folder, "c.data"),
                          CLS_DATA.format(fx=corpus.fx).replace(
                              f"backup={corpus.fx}/cbackup", f"backup={folder}/backup"))
            corpus.add("weights", f"cls: {what} | classifier train (resume)",
                       ["classifier", "train", data, cfg, weights, "-max_batches", 3,
                        "-workers", 0, "-seed", 1], folder,
                       expect=[("weights", os.path.join(folder, "backup", "cls.weights"))],
                       timeout=90)
    # whole-file defects
    folder = corpus.folder()
    for what, weights in (("darknet's initial weights (rolling variance 0)",
                           corpus.f("det.init.weights")),
                          ("a cfg as weights", corpus.f("det.cfg")),
                          ("a PNG as weights", corpus.f("cimages", "cat_0.png")),
                          ("a folder as weights", corpus.f("images")),
                          ("a missing weights file", os.path.join(folder, "missing.weights")),
                          ("weights of the other network", corpus.f("cls.weights"))):
        corpus.add("weights", f"{what} | detector test",
                   ["detector", "test", corpus.f("det.data"), corpus.f("det.cfg"), weights,
                    corpus.f("images", "0.jpg"), "-out", os.path.join(folder, "pred")], folder,
                   must=None if "initial" in what else "fail")


def gen_images(corpus):
    rng = corpus.rng
    for what, name, data in image_defects(rng):
        for command in ("test", "predict", "forward", "train"):
            if command in ("forward", "train") and rng.random() < 0.5:
                continue
            folder = corpus.folder()
            path = _write(os.path.join(folder, "images", name), data)
            # inputs no decoder can make an image of (a damaged JPEG often still decodes)
            hopeless = what in ("random bytes named .jpg", "zero-size .jpg", "text named .jpg",
                                "JPEG header claiming 0x30", "JPEG header claiming 40x0",
                                "JPEG header claiming 65500x65500",
                                "PNG header claiming 100000x100000")
            must = "fail" if hopeless else None
            if command == "test":
                corpus.add("images", f"{what} | detector test",
                           ["detector", "test", corpus.f("det.data"), corpus.f("det.cfg"),
                            corpus.f("det.weights"), path, "-out",
                            os.path.join(folder, "pred")], folder, must=must,
                           expect=[] if must else [("image", os.path.join(folder, "pred.jpg"))])
            elif command == "predict":
                corpus.add("images", f"{what} | classifier predict",
                           ["classifier", "predict", corpus.f("cls.data"), corpus.f("cls.cfg"),
                            corpus.f("cls.weights"), path], folder, must=must)
            elif command == "forward":
                corpus.add("images", f"{what} | forward",
                           ["forward", corpus.f("det.cfg"), corpus.f("det.weights"), path,
                            "--dump", os.path.join(folder, "dump")], folder, must=must,
                           expect=[("npy_dir", os.path.join(folder, "dump"))])
            else:
                _write(os.path.join(folder, "labels", os.path.splitext(name)[0] + ".txt"),
                       "0 0.5 0.5 0.3 0.3\n")
                listing = _write(os.path.join(folder, "list.txt"),
                                 corpus.f("images", "0.jpg") + "\n" + path + "\n")
                data = dataset_copy(corpus, folder, list_text=open(listing).read())
                corpus.add("images", f"{what} | detector train",
                           train_argv(data, corpus.f("det.cfg"), max_batches=3), folder,
                           expect=[("weights", os.path.join(folder, "backup",
                                                            "det_final.weights"))],
                           must=must, timeout=90)
    folder = corpus.folder()
    os.makedirs(os.path.join(folder, "dir.jpg"))
    for what, path in (("a folder named .jpg", os.path.join(folder, "dir.jpg")),
                       ("a missing image", os.path.join(folder, "missing.jpg"))):
        corpus.add("images", f"{what} | detector test",
                   ["detector", "test", corpus.f("det.data"), corpus.f("det.cfg"),
                    corpus.f("det.weights"), path, "-out", os.path.join(folder, "pred")],
                   folder, must="fail")


def gen_labels(corpus):
    rng = corpus.rng
    for what, text in LABEL_DEFECTS:
        if text is None:
            text = bytes(rng.randrange(256) for _ in range(80))
        for command in ("train", "map", "recall", "calc_anchors"):
            folder = corpus.folder()
            data = dataset_copy(corpus, folder, labels=text)
            cfg, weights = corpus.f("det.cfg"), corpus.f("det.weights")
            if command == "train":
                corpus.add("labels", f"{what} | detector train", train_argv(data, cfg), folder,
                           expect=[("weights", os.path.join(folder, "backup",
                                                            "det_final.weights"))], timeout=90)
            elif command == "map":
                corpus.add("labels", f"{what} | detector map",
                           ["detector", "map", data, cfg, weights], folder)
            elif command == "recall":
                corpus.add("labels", f"{what} | detector recall",
                           ["detector", "recall", data, cfg, weights], folder)
            else:
                corpus.add("labels", f"{what} | calc_anchors",
                           ["calc_anchors", data, "-num_of_clusters", 2], folder)
    folder = corpus.folder()
    data = dataset_copy(corpus, folder)
    os.unlink(os.path.join(folder, "labels", "0.txt"))
    os.makedirs(os.path.join(folder, "labels", "0.txt"))
    corpus.add("labels", "a label file that is a folder | detector train",
               train_argv(data, corpus.f("det.cfg")), folder, timeout=90)
    corpus.add("labels", "a label file that is a folder | detector map",
               ["detector", "map", data, corpus.f("det.cfg"), corpus.f("det.weights")], folder)


def gen_lists(corpus):
    for what, make in LIST_DEFECTS:
        for command in ("train", "valid", "map", "recall", "calc_anchors", "predict",
                        "classifier-train"):
            folder = corpus.folder()
            _write(os.path.join(folder, "bad.jpg"), b"\xff\xd8\xff\xe0 broken")
            os.makedirs(os.path.join(folder, "images"), exist_ok=True)
            shutil.copyfile(corpus.f("images", "1.jpg"),
                            os.path.join(folder, "images", "nolabel.jpg"))
            text = make(corpus.f, folder)
            cfg, weights = corpus.f("det.cfg"), corpus.f("det.weights")
            if command == "predict":
                listing = _write(os.path.join(folder, "inputs.txt"), text)
                corpus.add("lists", f"{what} | classifier predict (list of images)",
                           ["classifier", "predict", corpus.f("cls.data"), corpus.f("cls.cfg"),
                            corpus.f("cls.weights"), listing], folder)
                continue
            if command == "classifier-train":
                listing = _write(os.path.join(folder, "list.txt"), text)
                data = _write(os.path.join(folder, "c.data"),
                              CLS_DATA.format(fx=corpus.fx).replace(
                                  f"train={corpus.fx}/ctrain.txt", f"train={listing}").replace(
                                  f"backup={corpus.fx}/cbackup", f"backup={folder}/backup"))
                corpus.add("lists", f"{what} | classifier train",
                           ["classifier", "train", data, corpus.f("cls.cfg"), "-max_batches",
                            2, "-workers", 0, "-seed", 1], folder, timeout=90,
                           expect=[("weights", os.path.join(folder, "backup", "cls.weights"))])
                continue
            data = dataset_copy(corpus, folder, list_text=text)
            if command == "train":
                corpus.add("lists", f"{what} | detector train", train_argv(data, cfg), folder,
                           timeout=90, expect=[("weights", os.path.join(folder, "backup",
                                                                       "det_final.weights"))])
            elif command == "valid":
                corpus.add("lists", f"{what} | detector valid",
                           ["detector", "valid", data, cfg, weights], folder)
            elif command == "map":
                corpus.add("lists", f"{what} | detector map",
                           ["detector", "map", data, cfg, weights], folder)
            elif command == "recall":
                corpus.add("lists", f"{what} | detector recall",
                           ["detector", "recall", data, cfg, weights], folder)
            else:
                corpus.add("lists", f"{what} | calc_anchors",
                           ["calc_anchors", data, "-num_of_clusters", 2], folder)


DATA_DEFECTS = [
    ("no train=", {"train": None}),
    ("no valid=", {"valid": None}),
    ("no names=", {"names": None}),
    ("no backup=", {"backup": None}),
    ("no classes=", {"classes": None}),
    ("no results=", {"results": None}),
    ("classes=abc", {"classes": "abc"}),
    ("classes=-1", {"classes": "-1"}),
    ("classes=0", {"classes": "0"}),
    ("classes=nan", {"classes": "nan"}),
    ("classes=1e9", {"classes": "1000000000"}),
    ("classes=3 (cfg has 2)", {"classes": "3"}),
    ("classes=2.5", {"classes": "2.5"}),
    ("train= a missing file", {"train": "{d}/missing.txt"}),
    ("valid= a missing file", {"valid": "{d}/missing.txt"}),
    ("names= a missing file", {"names": "{d}/missing.names"}),
    ("names= a folder", {"names": "{d}"}),
    ("train= a folder", {"train": "{d}"}),
    ("names= one name (2 classes)", {"names": "{d}/one.names"}),
    ("names= empty", {"names": "{d}/empty.names"}),
    ("backup= a file", {"backup": "{d}/afile"}),
    ("backup= under a file", {"backup": "{d}/afile/sub"}),
    ("results= a file", {"results": "{d}/afile"}),
    ("eval=foo", {"eval": "foo"}),
    ("eval=coco", {"eval": "coco"}),
    ("eval=imagenet", {"eval": "imagenet"}),
    ("map= a missing file", {"map": "{d}/missing.map"}),
    ("map= text", {"map": "{d}/text.map"}),
    ("map= out of range", {"map": "{d}/range.map"}),
    ("top=abc", {"top": "abc"}),
    ("top=-3", {"top": "-3"}),
    ("top=0", {"top": "0"}),
    ("top=100", {"top": "100"}),
    ("labels= a missing file", {"labels": "{d}/missing.labels"}),
    ("tree= a missing file", {"tree": "{d}/missing.tree"}),
    ("a line without =", {"__raw__": "this line has no equals sign\n"}),
    ("binary junk", {"__binary__": True}),
    ("empty file", {"__empty__": True}),
    ("duplicate keys", {"__raw__": "classes=7\nclasses=2\n"}),
    ("spaces around =", {"__spaces__": True}),
    ("a missing .data file", {"__missing__": True}),
    ("a folder as .data", {"__folder__": True}),
]


def _data_text(corpus, folder, changes, kind):
    base = DET_DATA if kind == "det" else CLS_DATA
    lines = [line for line in base.format(fx=corpus.fx).splitlines() if line]
    options = dict(line.split("=", 1) for line in lines)
    options["backup"] = f"{folder}/backup"
    options["results"] = f"{folder}/results"
    for key, value in changes.items():
        if key.startswith("__"):
            continue
        if value is None:
            options.pop(key, None)
        else:
            options[key] = value.format(d=folder)
    text = "".join(f"{k}={v}\n" for k, v in options.items())
    if "__raw__" in changes:
        text = changes["__raw__"] + text
    if "__spaces__" in changes:
        text = text.replace("=", "  =  ")
    if "__binary__" in changes:
        return bytes(range(256)) * 2
    if "__empty__" in changes:
        return ""
    return text


def gen_data_files(corpus):
    for what, changes in DATA_DEFECTS:
        for command in ("train", "valid", "map", "recall", "test", "calc_anchors", "predict",
                        "classifier-train"):
            kind = "cls" if command in ("predict", "classifier-train") else "det"
            if kind == "cls" and "eval" in what:
                continue
            if kind == "det" and (what.startswith("top") or "labels=" in what
                                  or "tree=" in what):
                continue
            folder = corpus.folder()
            _write(os.path.join(folder, "afile"), "a file\n")
            _write(os.path.join(folder, "one.names"), "a\n")
            _write(os.path.join(folder, "empty.names"), "")
            _write(os.path.join(folder, "text.map"), "zero\none\n")
            _write(os.path.join(folder, "range.map"), "0\n99\n")
            data = os.path.join(folder, "x.data")
            if changes.get("__folder__"):
                os.makedirs(data)
            elif not changes.get("__missing__"):
                _write(data, _data_text(corpus, folder, changes, kind))
            cfg, weights = corpus.f(f"{kind}.cfg"), corpus.f(f"{kind}.weights")
            image = corpus.f("images", "0.jpg") if kind == "det" else \
                corpus.f("cimages", "owl_2.png")
            expect = []
            if command == "train":
                argv = train_argv(data, cfg)
                expect = [("weights-claimed", None)]
            elif command == "classifier-train":
                argv = ["classifier", "train", data, cfg, "-max_batches", 2, "-workers", 0,
                        "-seed", 1]
                expect = [("weights-claimed", None)]
            elif command in ("valid", "map", "recall"):
                argv = ["detector", command, data, cfg, weights]
            elif command == "test":
                argv = ["detector", "test", data, cfg, weights, image, "-out",
                        os.path.join(folder, "pred")]
            elif command == "calc_anchors":
                argv = ["calc_anchors", data, "-num_of_clusters", 2]
            else:
                argv = ["classifier", "predict", data, cfg, weights, image]
            corpus.add("data", f"{what} | {' '.join(argv[:2]) if argv[0] in ('detector', 'classifier') else argv[0]}",
                       argv, folder, expect=expect, timeout=90,
                       must="warn:backup" if what == "no backup=" and "train" in command
                       else None)


def gen_tools(corpus):
    det_cfg, det_w, cls_cfg = corpus.f("det.cfg"), corpus.f("det.weights"), corpus.f("cls.cfg")
    data = corpus.f("det.data")

    def folder():
        return corpus.folder()

    # forward on odd .npy inputs
    npys = [
        ("a text file", None, b"not an array\n"),
        ("a pickled object", np.array([{"a": 1}], dtype=object), None),
        ("a 2-D array", np.zeros((32, 32), np.float32), None),
        ("a 5-D array", np.zeros((1, 1, 3, 32, 32), np.float32), None),
        ("wrong channels", np.zeros((1, 4, 32, 32), np.float32), None),
        ("wrong size", np.zeros((1, 3, 31, 33), np.float32), None),
        ("NaN values", np.full((1, 3, 32, 32), np.nan, np.float32), None),
        ("inf values", np.full((3, 32, 32), np.inf, np.float32), None),
        ("booleans", np.zeros((3, 32, 32), bool), None),
        ("complex", np.zeros((3, 32, 32), complex), None),
        ("float64", np.random.default_rng(0).random((3, 32, 32)), None),
        ("float64 beyond float32's range", np.full((3, 32, 32), 1e300), None),
        ("uint8", np.full((3, 32, 32), 200, np.uint8), None),
        ("empty", np.zeros((0, 3, 32, 32), np.float32), None),
        ("batch of 3", np.random.default_rng(0).random((3, 3, 32, 32)).astype(np.float32), None),
        ("huge values", np.full((3, 32, 32), 3e38, np.float32), None),
        ("strings", np.array(["a", "b"]), None),
        ("truncated .npy", None, "truncated"),
        ("a .npz file", None, "npz"),
    ]
    for what, array, raw in npys:
        d = folder()
        path = os.path.join(d, "x.npy")
        if raw == "truncated":
            np.save(path, np.zeros((3, 32, 32), np.float32))
            with open(path, "rb") as handle:
                cut = handle.read()[:200]
            _write(path, cut)
        elif raw == "npz":
            np.savez(os.path.join(d, "x"), a=np.zeros(3))
            os.replace(os.path.join(d, "x.npz"), path)
        elif raw is not None:
            _write(path, raw)
        else:
            np.save(path, array, allow_pickle=array.dtype == object)
        must = "warn:NaN or infinite" if what in ("NaN values", "inf values", "float64 beyond "
                                                  "float32's range") else None
        corpus.add("tools", f"forward on {what} .npy",
                   ["forward", det_cfg, det_w, path, "--dump", os.path.join(d, "dump")], d,
                   expect=[("npy_dir", os.path.join(d, "dump"))], must=must)
    # partial
    for count in (-5, -1, 0, 1, 2, 3, 1000, "abc", "1.5", "nan"):
        d = folder()
        out = os.path.join(d, "p.weights")
        corpus.add("tools", f"partial count {count}", ["partial", det_cfg, det_w, out, count], d,
                   expect=[("weights", out)])
    d = folder()
    corpus.add("tools", "partial into a missing folder",
               ["partial", det_cfg, det_w, os.path.join(d, "no", "such", "p.weights"), 1], d,
               must="fail")
    d = folder()
    same = os.path.join(d, "same.weights")
    shutil.copyfile(det_w, same)
    corpus.add("tools", "partial onto its own input", ["partial", det_cfg, same, same, 2], d,
               expect=[("weights", same)])
    d = folder()
    corpus.add("tools", "partial to a folder", ["partial", det_cfg, det_w, d, 2], d,
               must="fail")
    # calc_anchors
    for args in (["-restarts", 0], ["-restarts", -3], ["-num_of_clusters", 0],
                 ["-num_of_clusters", -2], ["-num_of_clusters", 1000], ["-width", 0],
                 ["-width", -32], ["-height", 0], ["-seed", -1], ["-cfg", cls_cfg],
                 ["-cfg", os.path.join(corpus.out, "missing.cfg")], ["-table"],
                 ["-num_of_clusters", "abc"], ["-plain"], ["-cfg", det_cfg, "-table"]):
        d = folder()
        corpus.add("tools", f"calc_anchors {' '.join(map(str, args))}",
                   ["calc_anchors", data] + args, d)
    d = folder()
    data_inf = dataset_copy(corpus, d, labels="0 0.5 0.5 inf 0.2\n1 0.5 0.5 0.1 0.1\n")
    corpus.add("tools", "calc_anchors on labels with inf widths",
               ["calc_anchors", data_inf, "-num_of_clusters", 2], d)
    d = folder()
    data_inf = dataset_copy(corpus, d, labels="0 0.5 0.5 inf inf\n")
    corpus.add("tools", "calc_anchors on labels with only inf sizes",
               ["calc_anchors", data_inf, "-num_of_clusters", 1], d)
    d = folder()
    png = os.path.join(d, "a.png")
    corpus.add("tools", "calc_anchors -png", ["calc_anchors", data, "-num_of_clusters", 2,
                                              "-restarts", 1, "-png", png], d,
               expect=[("image", png)], timeout=120)
    # detector map / test / recall options
    for args in (["-iou", "nan"], ["-iou", 0], ["-iou", 2], ["-iou", -1], ["-iou", "inf"],
                 ["-points", -1], ["-points", 0], ["-points", 1], ["-points", "abc"],
                 ["-points", 100000]):
        d = folder()
        corpus.add("tools", f"detector map {' '.join(map(str, args))}",
                   ["detector", "map", data, det_cfg, det_w] + args, d)
    d = folder()
    corpus.add("tools", "detector map -dets a missing folder",
               ["detector", "map", data, "-dets", os.path.join(d, "missing")], d)
    d = folder()
    _write(os.path.join(d, "comp4_det_test_a.txt"), "0 nan 1 2 3 4\n0 0.5 x y z w\n")
    corpus.add("tools", "detector map -dets with bad lines", ["detector", "map", data, "-dets", d],
               d)
    for args in (["-thresh", "nan"], ["-thresh", -1], ["-thresh", 2], ["-nms", "nan"],
                 ["-nms", -1], ["-hier", "nan"], ["-batch", 0], ["-batch", -1],
                 ["-batch", 1000]):
        d = folder()
        corpus.add("tools", f"detector test {' '.join(map(str, args))}",
                   ["detector", "test", data, det_cfg, det_w, corpus.f("images", "0.jpg"),
                    "-out", os.path.join(d, "pred")] + args, d)
    for args in (["-t", -1], ["-t", 1000], ["-t", "abc"], ["-batch", 0]):
        d = folder()
        corpus.add("tools", f"classifier predict {' '.join(map(str, args))}",
                   ["classifier", "predict", corpus.f("cls.data"), cls_cfg,
                    corpus.f("cls.weights"), corpus.f("cimages", "cat_0.png")] + args, d)
    d = folder()
    corpus.add("tools", "detector recall on a classifier cfg",
               ["detector", "recall", data, cls_cfg, corpus.f("cls.weights")], d)
    d = folder()
    corpus.add("tools", "detector valid on a classifier cfg",
               ["detector", "valid", data, cls_cfg, corpus.f("cls.weights")], d)
    d = folder()
    corpus.add("tools", "detector map on a classifier cfg",
               ["detector", "map", data, cls_cfg, corpus.f("cls.weights")], d)
    d = folder()
    corpus.add("tools", "detector test on a classifier cfg",
               ["detector", "test", data, cls_cfg, corpus.f("cls.weights"),
                corpus.f("images", "0.jpg"), "-out", os.path.join(d, "pred")], d)
    d = folder()
    corpus.add("tools", "classifier predict on a detector cfg",
               ["classifier", "predict", corpus.f("cls.data"), det_cfg, det_w,
                corpus.f("images", "0.jpg")], d)
    d = folder()
    corpus.add("tools", "classifier train on a detector cfg",
               ["classifier", "train", corpus.f("cls.data").replace("cls.data", "cls.data"),
                det_cfg, "-max_batches", 1, "-workers", 0], d,
               expect=[("weights-claimed", None)])
    d = folder()
    corpus.add("tools", "detector train on a classifier cfg",
               train_argv(dataset_copy(corpus, d), cls_cfg), d,
               expect=[("weights-claimed", None)])
    for args in (["-max_batches", 0], ["-max_batches", -1], ["-workers", -1],
                 ["-workers", 0, "-seed", "abc"]):
        d = folder()
        corpus.add("tools", f"detector train {' '.join(map(str, args))}",
                   ["detector", "train", dataset_copy(corpus, d), det_cfg] + args, d,
                   expect=[("weights-claimed", None)])
    # export
    for args in (["-batch", 0], ["-batch", -2], ["-opset", 1], ["-opset", 99], ["-region"],
                 ["-batch", 3]):
        d = folder()
        out = os.path.join(d, "m.onnx")
        corpus.add("tools", f"export {' '.join(map(str, args))}",
                   ["export", det_cfg, det_w, out] + args, d, expect=[("onnx", out)])
    d = folder()
    corpus.add("tools", "export a classifier", ["export", cls_cfg, "none",
                                                 os.path.join(d, "c.onnx")], d,
               expect=[("onnx", os.path.join(d, "c.onnx"))])
    # voc_label
    nan_xml = VOC_XML.format(name="img0", w=40, h=30, cls="cat", x0="nan", y0=4, x1=30, y1=25)
    voc_cases = [
        ("NaN coordinates in XML", {"img0": nan_xml}, None, []),
        ("inf coordinates", {"img0": nan_xml.replace("nan", "inf")}, None, []),
        ("negative coordinates", {"img0": nan_xml.replace("nan", "-50")}, None, []),
        ("xmin > xmax", {"img0": nan_xml.replace("nan", "35")}, None, []),
        ("text coordinates", {"img0": nan_xml.replace("nan", "left")}, None, []),
        ("malformed XML", {"img1": "<annotation><object>"}, None, []),
        ("empty XML", {"img1": ""}, None, []),
        ("no size", {"img0": re.sub(r"<size>.*</size>", "", nan_xml.replace("nan", "5"))},
         None, []),
        ("size 0x0", {"img0": nan_xml.replace("nan", "5").replace("<width>40", "<width>0")
                      .replace("<height>30", "<height>0")}, None, []),
        ("no object name", {"img0": nan_xml.replace("nan", "5").replace("<name>cat</name>",
                                                                       "")}, None, []),
        ("a corrupt image", None, {"img1": b"garbage"}, []),
        ("-split 0", None, None, ["-split", 0]),
        ("-split 1.5", None, None, ["-split", 1.5]),
        ("-split nan", None, None, ["-split", "nan"]),
        ("-split 0.5", None, None, ["-split", 0.5]),
        ("-names a missing file", None, None, ["-names", "/nonexistent/x.names"]),
        ("-sets bogus", None, None, ["-sets", "bogus"]),
        ("-sets empty", None, None, ["-sets", ","]),
    ]
    for what, xml, images, args in voc_cases:
        d = folder()
        root = make_voc(os.path.join(d, "voc"), random.Random(1), xml, images)
        out = os.path.join(d, "out")
        corpus.add("tools", f"voc_label {what}", ["voc_label", root, "-out", out] + args, d,
                   expect=[("file", os.path.join(out, "voc.data"))])
    d = folder()
    corpus.add("tools", "voc_label on a folder that is not VOC",
               ["voc_label", d, "-out", os.path.join(d, "out")], d)
    d = folder()
    corpus.add("tools", "voc_label on a missing folder",
               ["voc_label", os.path.join(d, "missing"), "-out", os.path.join(d, "out")], d)
    # cfg geometry darknet only gets away with by writing out of bounds
    for what, change in (("a 1x1 convolution with stride 2", "stride=2"),
                         ("a 1x1 convolution with padding 1", "padding=1")):
        d = folder()
        cfg = _write(os.path.join(d, "s.cfg"), "[net]\nwidth=16\nheight=16\nchannels=3\n"
                     f"[convolutional]\nfilters=2\nsize=1\n{change}\n")
        corpus.add("tools", f"{what} | forward", ["forward", cfg, "none",
                                                  corpus.f("images", "0.jpg"), "--dump",
                                                  os.path.join(d, "dump")], d,
                   expect=[("npy_dir", os.path.join(d, "dump"))])
    # argument parsing
    for argv in (["detector"], ["detector", "bogus"], ["classifier", "bogus"], ["partial"],
                 ["forward", det_cfg], ["export"], ["bogus"], ["detector", "test", "-h"],
                 ["calc_anchors"], ["voc_label"], ["detector", "train", data, det_cfg,
                                                   "-unknown_flag"]):
        d = folder()
        corpus.add("tools", f"argv {' '.join(a if not a.startswith('/') else os.path.basename(a) for a in argv)}",
                   argv, d)


# writers: name -> function(corpus, target folder D) -> (argv, previous target, expects)
def writer_cases(corpus, d, work):
    det_cfg, det_w, cls_cfg = corpus.f("det.cfg"), corpus.f("det.weights"), corpus.f("cls.cfg")

    cases = {}
    data = dataset_copy(corpus, work)
    text = open(data).read().replace(f"backup={work}/backup", f"backup={d}").replace(
        f"results={work}/results", f"results={d}")
    _write(data, text)
    cases["detector train final save"] = (train_argv(data, det_cfg), os.path.join(
        d, "det_final.weights"))
    cases["detector valid results="] = (["detector", "valid", data, det_cfg, det_w],
                                        os.path.join(d, "comp4_det_test_a.txt"))
    cdata = _write(os.path.join(work, "c.data"), CLS_DATA.format(fx=corpus.fx).replace(
        f"backup={corpus.fx}/cbackup", f"backup={d}"))
    cases["classifier train final save"] = (["classifier", "train", cdata, cls_cfg,
                                             "-max_batches", 2, "-workers", 0, "-seed", 1],
                                            os.path.join(d, "cls.weights"))
    cases["partial"] = (["partial", det_cfg, det_w, os.path.join(d, "p.weights"), 2],
                        os.path.join(d, "p.weights"))
    cases["forward --dump"] = (["forward", det_cfg, det_w, corpus.f("images", "0.jpg"),
                                "--dump", d], os.path.join(d, "input.npy"))
    root = make_voc(os.path.join(work, "voc"), random.Random(2))
    cases["voc_label -out"] = (["voc_label", root, "-out", d], os.path.join(d, "voc.data"))
    cases["calc_anchors -png"] = (["calc_anchors", corpus.f("det.data"), "-num_of_clusters", 2,
                                   "-restarts", 1, "-png", os.path.join(d, "a.png")],
                                  os.path.join(d, "a.png"))
    cases["export"] = (["export", det_cfg, det_w, os.path.join(d, "m.onnx")],
                       os.path.join(d, "m.onnx"))
    cases["detector test -out"] = (["detector", "test", corpus.f("det.data"), det_cfg, det_w,
                                    corpus.f("images", "0.jpg"), "-out",
                                    os.path.join(d, "pred")], os.path.join(d, "pred.jpg"))
    cases["detector test -json"] = (["detector", "test", corpus.f("det.data"), det_cfg, det_w,
                                     corpus.f("images", "0.jpg"), "-json",
                                     os.path.join(d, "o.json"), "-dont_show"],
                                    os.path.join(d, "o.json"))
    return cases


WRITERS = ["detector train final save", "detector valid results=", "classifier train final save",
           "partial", "forward --dump", "voc_label -out", "calc_anchors -png", "export",
           "detector test -out", "detector test -json"]


def _retarget(argv, old, new, work):
    """The writer's output folder moved from `old` to `new`: in its argv and in the .data
    files of its work folder."""
    for name in os.listdir(work):
        if name.endswith(".data"):
            path = os.path.join(work, name)
            with open(path) as handle:
                text = handle.read()
            _write(path, text.replace(old, new))
    return [a.replace(old, new) if isinstance(a, str) else a for a in argv]


FAULTS = ("full", "readonly", "perm", "missing-folder", "file-as-folder", "folder-as-file")
# writers that create their output folder (a missing one is made, not an error)
CREATES_FOLDER = ("detector train final save", "classifier train final save", "forward --dump",
                  "voc_label -out", "detector valid results=")


def fault_case(corpus, fault, writer):
    """One write fault through one writer: the Case, with `where` (a path the one-line
    error must name) in case.expect as ("names", path)."""
    folder = corpus.folder()
    work = os.path.join(folder, "work")
    target_dir = os.path.join(folder, "target")
    os.makedirs(work)
    argv, target = writer_cases(corpus, target_dir, work)[writer]
    intact, kwargs, where = {}, {}, target_dir
    if fault in ("full", "readonly", "perm"):
        intact = {target: PREVIOUS}
        kwargs = dict(fault=fault, fault_dir=target_dir)
    elif fault == "missing-folder":
        new_dir = os.path.join(folder, "no", "such", "folder")
        argv = _retarget(argv, target_dir, new_dir, work)
        where = new_dir
    elif fault == "file-as-folder":
        new_dir = os.path.join(folder, "afile")
        _write(new_dir, PREVIOUS)
        argv = _retarget(argv, target_dir, new_dir, work)
        intact, where = {new_dir: PREVIOUS}, new_dir
    else:   # a folder where the file should be
        os.makedirs(target)
        _write(os.path.join(target, "keep.txt"), PREVIOUS)
        intact = {os.path.join(target, "keep.txt"): PREVIOUS}
    must = None if fault == "missing-folder" and writer in CREATES_FOLDER else "fail"
    return corpus.add("faults", f"{fault}: {writer}", argv, folder, intact=intact, must=must,
                      timeout=120, expect=[("names", where)], **kwargs)


def gen_faults(corpus):
    for fault in FAULTS:
        for writer in WRITERS:
            fault_case(corpus, fault, writer)
    # Ctrl-C / SIGTERM saves into a full or read-only backup folder
    for fault in ("full", "readonly"):
        for signame in ("SIGINT", "SIGTERM"):
            signal_fault_case(corpus, fault, signame)


def signal_fault_case(corpus, fault, signame):
    """A signal during training whose save meets a full or read-only backup folder."""
    folder = corpus.folder()
    target_dir = os.path.join(folder, "target")
    data = dataset_copy(corpus, folder)
    with open(data) as handle:
        text = handle.read()
    _write(data, text.replace(f"backup={folder}/backup", f"backup={target_dir}"))
    return corpus.add("faults", f"{fault}: {signame} save",
                      train_argv(data, corpus.f("det.cfg"), max_batches=100000), folder,
                      fault=fault, fault_dir=target_dir, signal=[signame, 2, "main"],
                      intact={os.path.join(target_dir, "det.backup"): PREVIOUS}, timeout=120)


SIGNAL_PLANS = [("SIGINT", 1, "main", 0), ("SIGINT", 3, "main", 2), ("SIGINT", 2, "main", 1),
                ("SIGINT", 0, "main", 2), ("SIGTERM", 2, "main", 2), ("SIGTERM", 1, "main", 0),
                ("SIGTERM", 0, "main", 2), ("SIGKILL", 2, "main", 2), ("SIGKILL", 1, "main", 0),
                ("SIGKILL", 2, "worker", 2), ("SIGKILL", 1, "worker", 1),
                ("SIGINT*2", 2, "main", 2), ("SIGINT", 5, "main", 2), ("SIGTERM", 4, "main", 1),
                ("SIGKILL", 0, "main", 2)]


def signal_case(corpus, signame, after, target, workers):
    """`signame` to the trainer (or its loader workers) after `after` iteration lines; a
    kill -9 of the trainer is followed by a resume from its backup."""
    folder = corpus.folder()
    data = dataset_copy(corpus, folder)
    cfg = corpus.f("det.cfg")
    backup = os.path.join(folder, "backup", "det.backup")
    after_argv = None
    if signame == "SIGKILL" and target == "main":
        after_argv = train_argv(data, cfg, backup, max_batches=1, workers=0)
    return corpus.add("signals", f"{signame} to the {target} after {after} iterations, "
                      f"{workers} workers", train_argv(data, cfg, max_batches=100000,
                                                       workers=workers), folder,
                      signal=[signame, after, target], timeout=120, after=after_argv)


NAN_RUNS = [("learning_rate", "1e30"), ("learning_rate", "inf"), ("learning_rate", "nan"),
            ("learning_rate", "-1"), ("momentum", "inf"), ("momentum", "nan"), ("momentum", "5"),
            ("decay", "nan"), ("decay", "1e30"), ("scales", "inf"), ("scales", "nan"),
            ("steps", "nan"), ("burn_in", "-1"), ("exposure", "nan"), ("saturation", "inf"),
            ("hue", "nan"), ("angle", "inf"), ("jitter", "nan"), ("object_scale", "1e30"),
            ("coord_scale", "inf"), ("thresh", "nan"), ("power", "nan")]


def gen_nan_runs(corpus):
    """Training settings that make the numbers explode: each run either stops with a clear
    line (before the first step, or at the first non-finite step) or writes finite weights."""
    for key, value in NAN_RUNS:
        folder = corpus.folder()
        data = dataset_copy(corpus, folder)
        lines = [line for line in DET_CFG.splitlines() if not line.startswith(key + "=")]
        section = "[region]" if key in ("jitter", "object_scale", "coord_scale", "thresh") \
            else "[net]"
        at = lines.index(section) + 1
        cfg = _write(os.path.join(folder, "n.cfg"),
                     "\n".join(lines[:at] + [f"{key}={value}"] + lines[at:]) + "\n")
        for workers in (0,):
            corpus.add("nan-runs", f"{key}={value} | detector train",
                       train_argv(data, cfg, max_batches=6, workers=workers), folder,
                       expect=[("weights", os.path.join(folder, "backup", "n_final.weights")),
                               ("weights-claimed", None)], timeout=90)


def gen_signals(corpus):
    for plan in SIGNAL_PLANS:
        signal_case(corpus, *plan)


# ----------------------------------------------------------------------- checks

NONFINITE = re.compile(r"(?<![A-Za-z])[-+]?(nan|inf|infinity)(?![A-Za-z])", re.I)
CLAIMS = re.compile(r"(?:Saving weights(?: of layers [\d-]+)? to|wrote|written to|data file:|"
                    r"saved in|plot written to)\s+(\S+)")
WARNED_NONFINITE = re.compile(r"NaN or infinite|non-finite|NaN", re.I)


def _finite_weights(path):
    from darknet_py.weights import read_header
    with open(path, "rb") as handle:
        data = handle.read()
    _header, _seen, size = read_header(data, path)
    if (len(data) - size) % 4:
        return f"{path}: {len(data) - size} value bytes, not a multiple of 4"
    values = np.frombuffer(data[size:], dtype="<f4")
    bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    return f"{path}: {bad} of {values.size} values non-finite" if bad else None


def check_outputs(case, stdout, stderr):
    """Problems of an exit-0 run: [(outcome, detail)]."""
    problems = []
    warned = bool(WARNED_NONFINITE.search(stderr))
    for kind, path in case.expect:
        if kind == "weights-claimed":
            continue
        if not os.path.exists(path):
            if kind in ("weights", "onnx", "image", "file"):
                problems.append(("false-message", f"exit 0 but {path} was not written"))
            continue
        try:
            if kind == "weights":
                bad = _finite_weights(path)
                if bad:
                    problems.append(("bad-output", bad))
            elif kind == "npy_dir":
                for name in sorted(os.listdir(path)):
                    array = np.load(os.path.join(path, name))
                    if not np.all(np.isfinite(array)) and not warned:
                        problems.append(("bad-output", f"{name} non-finite, nothing said"))
                        break
            elif kind == "onnx":
                import onnx
                model = onnx.load(path)
                from onnx import numpy_helper
                for init in model.graph.initializer:
                    if not np.all(np.isfinite(numpy_helper.to_array(init))):
                        problems.append(("bad-output", f"{path}: {init.name} non-finite"))
                        break
            elif kind == "image":
                from PIL import Image
                with Image.open(path) as image:
                    image.load()
        except ImportError:
            pass
        except Exception as err:   # noqa: BLE001 (any unreadable output is the finding)
            problems.append(("bad-output", f"{path}: unreadable: {type(err).__name__}: {err}"))
    for claimed in CLAIMS.findall(stdout + "\n" + stderr):
        claimed = claimed.rstrip(".,:;)")
        if claimed.startswith("/") and not os.path.exists(claimed):
            problems.append(("false-message", f"says it wrote {claimed}, which does not exist"))
    for line in stdout.splitlines():
        if NONFINITE.search(line) and not warned and "-nan%" not in line:
            problems.append(("bad-output", f"non-finite number printed: {line.strip()[:120]}"))
            break
    if any(kind == "weights-claimed" for kind, _ in case.expect):
        for claimed in CLAIMS.findall(stdout):
            if claimed.endswith((".weights", ".backup")) and os.path.exists(claimed):
                bad = _finite_weights(claimed)
                if bad:
                    problems.append(("bad-output", bad))
    return problems


def _session_processes(sid):
    """pids of live processes in session `sid` (our runs start new sessions)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(name))
    return found


def _kill_session(sid):
    for pid in _session_processes(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# ----------------------------------------------------------------------- faults

class FaultSetup:
    """Set up a write fault in `folder` with `intact` files in it; undo() cleans up."""

    def __init__(self, fault, folder, intact, can_mount):
        self.fault, self.folder, self.mounted = fault, folder, False
        self.method, self.preexec, self.prefix = None, None, []
        os.makedirs(folder, exist_ok=True)
        if fault == "full":
            if can_mount:
                self._mount("size=96k")
                for path, data in intact.items():
                    _write(path, data)
                self._fill()
                self.method = "tmpfs size=96k, filled"
            else:
                for path, data in intact.items():
                    _write(path, data)
                self.preexec = _limit_file_size
                self.method = "RLIMIT_FSIZE=1 byte (EFBIG)"
        elif fault == "readonly":
            if can_mount:
                self._mount("size=1m")
                for path, data in intact.items():
                    _write(path, data)
                subprocess.run(["mount", "-o", "remount,ro", folder], check=True)
                self.method = "tmpfs remounted read-only"
            elif os.geteuid() != 0:
                for path, data in intact.items():
                    _write(path, data)
                os.chmod(folder, 0o555)
                self.method = "chmod 555"
            else:
                self.method = None
        elif fault == "perm":
            for path, data in intact.items():
                _write(path, data)
                os.chmod(path, 0o444)
            os.chmod(folder, 0o555)
            if os.geteuid() == 0:
                if not shutil.which("setpriv"):
                    self.method = None
                    return
                self.prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                               "--inh-caps=-dac_override,-dac_read_search"]
                self.method = "chmod 555, DAC-override capabilities dropped (setpriv)"
            else:
                self.method = "chmod 555"

    def _mount(self, options):
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", self.folder],
                       check=True, capture_output=True)
        self.mounted = True

    def _fill(self):
        try:
            with open(os.path.join(self.folder, ".filler"), "wb", buffering=0) as handle:
                while True:
                    handle.write(b"\0" * 1024)
        except OSError:   # full: what was meant
            pass

    def undo(self):
        try:
            os.chmod(self.folder, 0o755)
        except OSError:
            pass
        if self.mounted:
            subprocess.run(["umount", "-l", self.folder], capture_output=True)


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (1, 1))   # any non-empty write fails


def can_mount_tmpfs(scratch):
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    os.makedirs(scratch, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", scratch],
                          capture_output=True)
    if done.returncode != 0:
        return False
    subprocess.run(["umount", scratch], capture_output=True)
    return True


# ----------------------------------------------------------------------- running

def _env():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               DARKNET_PY_DEVICE="cpu", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1", HOME=os.environ.get("HOME", "/tmp"))
    env.pop("PYTHONWARNINGS", None)
    return env


def _child_setup(preexec):
    def setup():
        # a runner started in the background (`... &`) ignores SIGINT, and so would its
        # children: Python then never turns SIGINT into KeyboardInterrupt. Runs get the
        # default, as from a terminal.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if preexec is not None:
            preexec()
    return setup


def _start(argv, cwd, prefix=(), preexec=None):
    return subprocess.Popen(list(prefix) + [sys.executable, "-m", "darknet_py", *argv],
                            cwd=cwd, env=_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="replace", start_new_session=True,
                            preexec_fn=_child_setup(preexec))


def _wait_orphans(sid, seconds=5.0):
    deadline = time.time() + seconds
    left = _session_processes(sid)
    while left and time.time() < deadline:
        time.sleep(0.1)
        left = _session_processes(sid)
    return left


def run_plain(case, prefix=(), preexec=None):
    proc = _start(case.argv, case.folder, prefix, preexec)
    start = time.time()
    try:
        stdout, stderr = proc.communicate(timeout=case.timeout)
        hung = False
    except subprocess.TimeoutExpired:
        _kill_session(proc.pid)
        stdout, stderr = proc.communicate()
        hung = True
    seconds = time.time() - start
    orphans = [] if hung else _wait_orphans(proc.pid)
    _kill_session(proc.pid)
    return dict(rc=proc.returncode, stdout=stdout, stderr=stderr, seconds=seconds, hung=hung,
                orphans=orphans)


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def run_signal(case, prefix=(), preexec=None):
    """Start training, wait for `after` iteration lines, send the signal, and watch."""
    import threading
    signame, after, target = case.signal
    proc = _start(case.argv, case.folder, prefix, preexec)
    start = time.time()
    lines, err_chunks, counted = [], [], threading.Event()
    state = {"iterations": 0}

    def read_stdout():
        for line in proc.stdout:
            lines.append(line)
            if " avg, " in line:
                state["iterations"] += 1
                if state["iterations"] >= after:
                    counted.set()
        counted.set()   # the run ended

    built = threading.Event()

    def read_stderr():
        for line in proc.stderr:
            err_chunks.append(line)
            if "BFLOPS" in line:   # the layer table's last line: the network is built
                built.set()
        built.set()

    readers = [threading.Thread(target=read_stdout, daemon=True),
               threading.Thread(target=read_stderr, daemon=True)]
    for reader in readers:
        reader.start()
    if after == 0:   # during start-up: the network built, training not yet under way
        built.wait(case.timeout)
    else:
        counted.wait(case.timeout)
    iterations_before = state["iterations"]
    detail = {}
    sent_at = time.time()
    if proc.poll() is None:
        if target == "worker":
            victims = _children(proc.pid)
            detail["workers"] = victims
            for pid in victims:
                os.kill(pid, signal.SIGKILL)
        elif signame == "SIGINT*2":
            proc.send_signal(signal.SIGINT)
            time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
        else:
            proc.send_signal(getattr(signal, signame))
    else:
        detail["ended_before_signal"] = True
    try:
        proc.wait(timeout=30)
        hung = False
    except subprocess.TimeoutExpired:
        _kill_session(proc.pid)
        proc.wait()
        hung = True
    exit_seconds = time.time() - sent_at
    for reader in readers:
        reader.join(10)
    orphans = [] if hung else _wait_orphans(proc.pid)
    _kill_session(proc.pid)
    return dict(rc=proc.returncode, stdout="".join(lines),
                stderr="".join(c for c in err_chunks if c), seconds=time.time() - start,
                hung=hung, orphans=orphans, exit_seconds=exit_seconds,
                iterations_before=iterations_before, **detail)


def classify(case, run, fault_method=None):
    """(outcome, detail) of one run."""
    rc, stdout, stderr = run["rc"], run["stdout"], run["stderr"]
    if run["hung"]:
        return "hang", f"no exit within {case.timeout:.0f} s"
    if "Traceback (most recent call last)" in stderr or "Traceback" in stdout:
        last = [line for line in stderr.strip().splitlines() if line.strip()]
        return "traceback", last[-1][:200] if last else "traceback"
    if run["orphans"]:
        return "orphan", f"processes left alive: {run['orphans']}"
    warned = [line for line in stderr.splitlines()
              if re.search(r"\b[A-Z]\w*Warning\b", line) and not line.startswith("darknet_py:")]
    if warned:   # a Python warning (numpy's RuntimeWarning ...) reached the user
        return "leaked-warning", warned[0][:200]
    if rc == 0 and case.fault == "full" and not case.signal:
        # a writer that truncates in place can reuse the old file's own space and succeed
        # (not atomic, but not wrong): judged by its outputs alone
        problems = check_outputs(case, stdout, stderr)
        return problems[0] if problems else ("ok", "written over the old file in place")
    for path, data in case.intact.items():
        try:
            with open(path, "rb") as handle:
                now = handle.read()
        except OSError as err:
            return "broken-file", f"{path}: {err.strerror}"
        if now != data:
            return "broken-file", f"{path}: changed"
    if case.signal:
        return classify_signal(case, run)
    if rc == 0:
        problems = check_outputs(case, stdout, stderr)
        if problems:
            return problems[0]
        if case.must == "fail":
            return "false-message", "exit 0 where the case cannot succeed"
        if case.must and case.must.startswith("warn:") and \
                not re.search(case.must[5:], stderr, re.I):
            return "false-message", f"exit 0 without saying /{case.must[5:]}/"
        return "ok", ""
    if rc < 0 or rc not in (1, 2, 130):
        return "crash", f"exit status {rc}"
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = error_lines(stderr)
    if not errors:
        return "unclear", (lines[-1][:200] if lines else "no message")
    for kind, path in case.expect:
        if kind == "names" and path not in errors[-1]:
            return "unclear", f"the error does not name {path}: {errors[-1][:200]}"
    return "error", errors[-1][:240]


def error_lines(stderr):
    """darknet_py's error lines (not its warnings or notes)."""
    return [line for line in stderr.splitlines() if line.startswith("darknet_py:")
            and not line.startswith(("darknet_py: warning", "darknet_py: note"))]


def classify_signal(case, run):
    signame, _after, target = case.signal
    rc, stderr = run["rc"], run["stderr"]
    backup = os.path.join(case.folder, "backup", "det.backup")
    if case.fault:
        backup = os.path.join(case.fault_dir, "det.backup")
    if run.get("ended_before_signal"):
        return classify(Case(case.id, case.category, case.name, case.argv, case.folder,
                             intact=case.intact, must="fail"), run)
    if target == "main" and signame != "SIGKILL" and run["exit_seconds"] > 15:
        return "hang", f"exit {run['exit_seconds']:.1f} s after {signame}"
    if target == "worker":
        if rc == 0:
            return "false-message", "exit 0 after its worker was killed"
        if "darknet_py:" not in stderr:
            return "unclear", stderr.strip().splitlines()[-1][:200] if stderr.strip() else "-"
    if signame in ("SIGINT", "SIGTERM", "SIGINT*2") and not case.fault:
        # 130, or killed by SIGINT, which Python does now and then after a handled Ctrl-C
        # (a shell shows both as $? = 130)
        # SIGTERM before the first iteration: the default action (nothing to save yet)
        early_term = signame == "SIGTERM" and rc == -signal.SIGTERM and \
            run.get("iterations_before", 0) == 0 and " avg, " not in run["stdout"]
        if rc != 130 and not (rc == -signal.SIGINT and signame.startswith("SIGINT")) and \
                not early_term:
            return "crash", f"exit status {rc} after {signame}"
    if case.fault:   # the save on the signal fails: one line naming the backup
        errors = error_lines(stderr)
        if rc == 0:
            return "false-message", "exit 0 although the save failed"
        if not errors:
            return "unclear", f"exit {rc} without a message about the failed save"
        if case.fault_dir not in errors[-1]:
            return "unclear", f"the error does not name {case.fault_dir}: {errors[-1][:200]}"
        return "error", errors[-1][:200]
    if os.path.exists(backup):
        bad = _finite_weights(backup)
        if bad:
            return "bad-output", bad
        try:
            import darknet_py
            darknet_py.load_network(os.path.join(ROOT, "scripts", "..", case.argv[3])
                                    if not os.path.isabs(case.argv[3]) else case.argv[3],
                                    backup)
        except Exception as err:   # noqa: BLE001 (a backup that does not load is the finding)
            return "bad-output", f"{backup} does not load: {err}"
    elif signame in ("SIGINT", "SIGTERM", "SIGINT*2") and run.get("iterations_before", 0):
        return "false-message", "no backup after an interrupted run"
    folder = os.path.dirname(backup)
    temporaries = [name for name in (os.listdir(folder) if os.path.isdir(folder) else [])
                   if name.startswith(".tmp-")]
    if temporaries and signame != "SIGKILL":
        return "bad-output", f"temporary files left behind: {temporaries}"
    if case.after and os.path.exists(backup):
        follow = run_plain(Case(case.id, case.category, case.name, case.after, case.folder,
                                timeout=90))
        if follow["hung"] or "Traceback" in follow["stderr"] or follow["rc"] != 0:
            return "bad-output", f"resuming from the backup failed: rc {follow['rc']}: " \
                   f"{follow['stderr'].strip()[-200:]}"
        stale = [n for n in os.listdir(folder) if n.startswith(".tmp-")
                 and n.endswith("-det_final.weights")]
        if stale:
            return "bad-output", f"a stale temporary file survived the next save: {stale}"
    return ("ok" if rc in (130, -2, -9, -15) else "error"), \
        f"exit {rc} in {run['exit_seconds']:.1f} s"


def run_case(case, can_mount):
    setup, method = None, None
    try:
        if case.fault:
            setup = FaultSetup(case.fault, case.fault_dir, case.intact, can_mount)
            method = setup.method
            if method is None:
                return dict(outcome="skipped", detail="cannot simulate here", seconds=0,
                            rc=None, stderr_tail="", fault_method=None)
        prefix = setup.prefix if setup else ()
        preexec = setup.preexec if setup else None
        run = (run_signal if case.signal else run_plain)(case, prefix, preexec)
        outcome, detail = classify(case, run, method)
    finally:
        if setup:
            setup.undo()
    tail = run["stderr"].strip().splitlines()[-3:]
    return dict(outcome=outcome, detail=detail, seconds=round(run["seconds"], 2),
                rc=run["rc"], stderr_tail="\n".join(tail)[-600:], fault_method=method)


# ----------------------------------------------------------------------- main

def generate(out, seed=13, quick=False, only=None):
    corpus = Corpus(out, seed)
    shipped = make_fixtures(corpus)
    generators = {
        "cfg": lambda: gen_cfgs(corpus, shipped, 150),
        "weights": lambda: gen_weights(corpus, 70),
        "images": lambda: gen_images(corpus),
        "labels": lambda: gen_labels(corpus),
        "lists": lambda: gen_lists(corpus),
        "data": lambda: gen_data_files(corpus),
        "tools": lambda: gen_tools(corpus),
        "nan-runs": lambda: gen_nan_runs(corpus),
        "faults": lambda: gen_faults(corpus),
        "signals": lambda: gen_signals(corpus),
    }
    for number, (name, make) in enumerate(generators.items()):
        # each category draws from its own generator: one category's cases do not depend
        # on another's (nor on --only)
        corpus.rng = random.Random(seed * 1000 + number)
        if only and name not in only:
            continue
        make()
    cases = corpus.cases
    if quick:
        cases = quick_subset(cases, seed)
    return cases


QUICK_PER_CATEGORY = {"cfg": 6, "weights": 5, "images": 5, "labels": 4, "lists": 3, "data": 4,
                      "tools": 6, "nan-runs": 2, "faults": 5, "signals": 1}


def quick_subset(cases, seed):
    rng = random.Random(seed)
    chosen = []
    for category, count in QUICK_PER_CATEGORY.items():
        pool = [case for case in cases if case.category == category]
        if category == "signals":
            pool = [case for case in pool if case.signal[0] == "SIGINT"][:1]
        if category == "faults":
            pool = [case for case in pool if not case.signal]
        chosen += rng.sample(pool, min(count, len(pool)))
    return chosen


def summarize(results, stream=sys.stdout):
    categories = sorted({r["category"] for r in results},
                        key=lambda c: list(QUICK_PER_CATEGORY).index(c)
                        if c in QUICK_PER_CATEGORY else 99)
    outcomes = [o for o in BAD + FINE if any(r["outcome"] == o for r in results)]
    width = max(len(o) for o in outcomes + ["category"]) + 1
    print(f"{'category':<10}{'cases':>6} " + "".join(f"{o:>{width}}" for o in outcomes),
          file=stream)
    for category in categories + ["total"]:
        rows = [r for r in results if category in ("total", r["category"])]
        counts = [sum(r["outcome"] == o for r in rows) for o in outcomes]
        print(f"{category:<10}{len(rows):>6} " + "".join(f"{c:>{width}}" for c in counts),
              file=stream)
    bad = [r for r in results if r["outcome"] in BAD]
    for r in bad:
        print(f"  {r['outcome']:<15} {r['id']} [{r['category']}] {r['name']}: {r['detail']}",
              file=stream)
    return len(bad)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="/tmp/defect_corpus", help="work folder (recreated)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--quick", action="store_true", help="a ~40-case subset")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    parser.add_argument("--only", default=None,
                        help="comma-separated categories: cfg,weights,images,labels,lists,"
                             "data,tools,nan-runs,faults,signals")
    parser.add_argument("--list", action="store_true", help="list the cases, run nothing")
    parser.add_argument("--report", default=None, help="JSON report (default <out>/report.json)")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    out = os.path.abspath(args.out)
    if os.path.isdir(os.path.join(out, "cases")):
        for line in open("/proc/mounts").read().splitlines():
            mount_point = line.split()[1]
            if mount_point.startswith(out + "/"):
                subprocess.run(["umount", "-l", mount_point], capture_output=True)
        shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out, exist_ok=True)
    cases = generate(out, args.seed, args.quick, only)
    if args.list:
        for case in cases:
            print(f"{case.id} [{case.category}] {case.name}: {' '.join(case.argv)}")
        return 0
    can_mount = can_mount_tmpfs(os.path.join(out, ".mount-probe"))
    print(f"{len(cases)} cases in {out}; faults by "
          f"{'tmpfs mounts' if can_mount else 'RLIMIT_FSIZE and chmod'}", flush=True)
    serial = [c for c in cases if c.signal]
    parallel = [c for c in cases if not c.signal]
    results = [None] * len(cases)
    index = {id(c): i for i, c in enumerate(cases)}
    started = time.time()

    def one(case):
        result = run_case(case, can_mount)
        result.update(id=case.id, category=case.category, name=case.name, argv=case.argv)
        results[index[id(case)]] = result
        mark = "!!" if result["outcome"] in BAD else "  "
        print(f"{mark} {case.id} {result['outcome']:<14} {result['seconds']:6.1f}s "
              f"[{case.category}] {case.name}", flush=True)
        return result

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        list(pool.map(one, parallel))
    for case in serial:
        one(case)
    elapsed = time.time() - started
    print(f"\n{len(cases)} cases in {elapsed:.0f} s")
    bad = summarize(results)
    report = args.report or os.path.join(out, "report.json")
    with open(report, "w") as handle:
        json.dump({"seed": args.seed, "quick": args.quick, "seconds": round(elapsed, 1),
                   "fault_simulation": "tmpfs" if can_mount else "rlimit/chmod",
                   "cases": results}, handle, indent=1)
    print(f"report: {report}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
