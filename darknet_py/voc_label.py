"""Pascal VOC layout -> darknet training files, as darknet's scripts/voc_label.py does it, made
robust to the defects real datasets have.

Input: a dataset root with an annotations folder (`Annotations/` or `annotations/`, one XML per
image), an image folder (`JPEGImages/` or `images/`) and optionally `ImageSets/Main/<set>.txt`
split lists (without them every annotation goes into one set, `all`).

Output (in `out`, the root itself by default):
- `labels/<id>.txt`: one `class cx cy w h` line per box, relative to the image size and
  computed as darknet's script does (VOC pixel coordinates are 1-based, hence the -1 on the
  centre). Difficult boxes are not in it, as in darknet's script, so darknet trains on the same
  boxes; they go to `labels/<id>.difficult.txt` in the same format, which map reads to ignore
  them (darknet ignores that file).
- `<set>.txt`: absolute image paths, one per line, for the `train=`/`valid=` of a .data file.
- `classes.names` (the class list used) and `voc.data` naming all of the above.
When `out` is not the root, the images are linked into `out/JPEGImages/` so that darknet's
label path rule (JPEGImages -> labels) finds the labels written beside them.

Defects handled with a warning, never a crash: zero-area boxes (skipped), a size of 0 or a size
that disagrees with the image (the image's own size is used, read with Pillow), an image whose
extension does not match its content (linked under the right extension when out is not the
root), images or annotations listed but missing (skipped), unknown class names (skipped).
"""
import errno
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from . import log
from .data.labels import IMAGE_EXTENSIONS, difficult_label_path, label_path, read_voc_xml
from .errors import DarknetError, WriteError
from .fileio import atomic_write_text

# The extensions that truthfully name each format Pillow detects (first one used for links).
FORMAT_EXTENSIONS = {
    "JPEG": (".jpg", ".jpeg", ".jpe"), "PNG": (".png",), "BMP": (".bmp",), "GIF": (".gif",),
    "TIFF": (".tif", ".tiff"), "WEBP": (".webp",), "PPM": (".ppm", ".pgm", ".pbm", ".pnm"),
    "TGA": (".tga",),
}


@dataclass
class VocLabelReport:
    classes: list
    sets: dict = field(default_factory=dict)        # set name -> absolute image paths
    boxes: int = 0                                  # label lines written (not difficult)
    difficult: int = 0                              # boxes written to .difficult.txt files
    skipped_boxes: int = 0
    warnings: list = field(default_factory=list)
    data_path: str = ""


def convert_box(width, height, xmin, xmax, ymin, ymax):
    """darknet's scripts/voc_label.py convert(): VOC corners -> relative centre box."""
    dw, dh = 1.0 / width, 1.0 / height
    x = (xmin + xmax) / 2.0 - 1
    y = (ymin + ymax) / 2.0 - 1
    return x * dw, y * dh, (xmax - xmin) * dw, (ymax - ymin) * dh


def _subfolder(root, names):
    """The first existing child of root whose name matches one of names (any case)."""
    if not os.path.isdir(root):
        return None
    children = {entry.lower(): entry for entry in sorted(os.listdir(root))}
    for name in names:
        if name.lower() in children and os.path.isdir(os.path.join(root, children[name.lower()])):
            return os.path.join(root, children[name.lower()])
    return None


def _set_ids(root, sets, annotations, warn):
    """{set: [ids]} from ImageSets/Main, or every annotation as the set `all`."""
    main = _subfolder(_subfolder(root, ["ImageSets"]) or "", ["Main"])
    if main is None:
        ids = sorted(os.path.splitext(name)[0] for name in os.listdir(annotations)
                     if name.lower().endswith(".xml"))
        warn(f"{root}: no ImageSets/Main folder: every annotation ({len(ids)}) goes into "
             "the set 'all'")
        return {"all": ids}
    result = {}
    for name in sets:
        path = os.path.join(main, name + ".txt")
        if not os.path.isfile(path):
            warn(f"{path}: no such split list, set '{name}' skipped")
            continue
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            # class lists (ImageSets/Main/<class>_train.txt) have a second column; keep ids
            ids = [line.split()[0] for line in handle if line.strip()]
        result[name] = list(dict.fromkeys(ids))
    if not result:
        available = sorted(n[:-4] for n in os.listdir(main) if n.endswith(".txt"))
        raise DarknetError(f"{main}: none of the sets {', '.join(sets)} is there (available: "
                           f"{', '.join(available[:12]) or 'none'}); choose with -sets")
    return result


def _image_index(images):
    """stem -> file names in the image folder, to find an image whatever its extension."""
    index = {}
    for name in sorted(os.listdir(images)):
        stem, ext = os.path.splitext(name)
        if ext.lower() in IMAGE_EXTENSIONS:
            index.setdefault(stem, []).append(name)
    return index


def _find_image(image_id, annotation, images, index):
    # some tools write a whole path in <filename>: only its last part names the image here
    filename = os.path.basename(annotation.filename.replace("\\", "/"))
    if filename and os.path.isfile(os.path.join(images, filename)):
        return os.path.join(images, filename)
    for stem in (image_id, os.path.splitext(filename)[0]):
        if stem in index:
            return os.path.join(images, index[stem][0])
    return None


def _probe_image(path):
    """(format, width, height) from the file's header, or None when Pillow cannot read it."""
    try:
        with Image.open(path) as image:
            return image.format, image.width, image.height
    except Exception:   # Pillow raises many types for bad files; the caller warns and skips
        return None


def _image_lines(image_id, annotation, width, height, class_ids, unknown, report, warn):
    """(label lines, difficult lines) of one annotation."""
    lines, hard = [], []
    for obj in annotation.objects:
        if obj.name not in class_ids:
            unknown[obj.name] = unknown.get(obj.name, 0) + 1
            report.skipped_boxes += 1
            continue
        if obj.xmax <= obj.xmin or obj.ymax <= obj.ymin:
            warn(f"{annotation.path}: zero-area box {obj.name} ({obj.xmin:g},{obj.ymin:g})-"
                 f"({obj.xmax:g},{obj.ymax:g}) skipped")
            report.skipped_boxes += 1
            continue
        box = convert_box(width, height, obj.xmin, obj.xmax, obj.ymin, obj.ymax)
        line = str(class_ids[obj.name]) + " " + " ".join(str(value) for value in box) + "\n"
        (hard if obj.difficult else lines).append(line)
    return lines, hard


def _makedirs(folder):
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise WriteError(f"{folder}: cannot create the folder: {err.strerror}") from None


def _write(path, text):
    _makedirs(os.path.dirname(path))
    atomic_write_text(path, text)


def _place_image(source, out, image_id, true_format, in_place):
    """The path to list for an image: itself in place, else a link in out/JPEGImages."""
    if in_place:
        return os.path.abspath(source)
    ext = os.path.splitext(source)[1]
    if true_format in FORMAT_EXTENSIONS and ext.lower() not in FORMAT_EXTENSIONS[true_format]:
        ext = FORMAT_EXTENSIONS[true_format][0]
    link = os.path.join(os.path.abspath(out), "JPEGImages", image_id + ext)
    _makedirs(os.path.dirname(link))
    try:
        if os.path.lexists(link):
            os.unlink(link)
        try:
            os.symlink(os.path.abspath(source), link)
        except OSError as err:   # no symlinks on this file system: copy instead
            if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC,
                             errno.EDQUOT, errno.EISDIR, errno.ENOTDIR):
                raise
            import shutil
            shutil.copyfile(source, link)
    except OSError as err:
        raise WriteError(f"{link}: cannot write: {err.strerror}") from None
    return link


def split_ids(ids_by_set, fraction, seed=0):
    """Every image of the sets, shuffled by `seed`, cut into disjoint train (the first
    `fraction`) and valid lists: for datasets without ImageSets (raccoon), where train and
    valid would otherwise be the same images."""
    if not 0 < fraction < 1:
        raise DarknetError(f"-split {fraction}: expected a fraction between 0 and 1 (0.8 "
                           "keeps 80% for training)")
    ids = list(dict.fromkeys(i for listed in ids_by_set.values() for i in listed))
    order = np.random.default_rng(seed).permutation(len(ids))
    cut = int(round(fraction * len(ids)))
    if not 0 < cut < len(ids):
        raise DarknetError(f"-split {fraction} of {len(ids)} images leaves one side empty")
    return {"train": [ids[i] for i in sorted(order[:cut])],
            "valid": [ids[i] for i in sorted(order[cut:])]}


def voc_label(root, out=None, sets=("train", "val", "test"), names=None, warn=None,
              split=None, seed=0):
    """Convert the VOC dataset at `root`; returns a VocLabelReport. names: the class list
    (index = class id); by default the sorted names found in the annotations. split: a
    fraction: the images are shuffled with `seed` into disjoint train and valid lists
    instead of the dataset's own sets."""
    report_warnings = []

    def warning(message):
        report_warnings.append(message)
        (warn or (lambda m: log.warn(f"voc_label: {m}")))(message)

    root = os.path.abspath(root)
    out = os.path.abspath(out or root)
    in_place = out == root
    annotations = _subfolder(root, ["Annotations"])
    images = _subfolder(root, ["JPEGImages", "images"])
    if annotations is None or images is None:
        raise DarknetError(f"{root}: not a VOC dataset root: expected folders Annotations/ and "
                           f"JPEGImages/ (or annotations/ and images/); found "
                           f"{sorted(os.listdir(root)) if os.path.isdir(root) else 'no folder'}")
    try:
        os.makedirs(os.path.join(out, "labels"), exist_ok=True)
    except OSError as err:
        raise WriteError(f"{out}: cannot write labels there ({err.strerror}); give another "
                         "folder with -out") from None

    ids_by_set = _set_ids(root, sets, annotations, warning)
    if split is not None:
        ids_by_set = split_ids(ids_by_set, split, seed)
    parsed = {}
    for image_id in dict.fromkeys(i for ids in ids_by_set.values() for i in ids):
        xml = os.path.join(annotations, image_id + ".xml")
        if not os.path.isfile(xml):
            warning(f"{xml}: listed in a split but missing, image skipped")
            continue
        parsed[image_id] = read_voc_xml(xml)
    if names is None:
        names = sorted({obj.name for ann in parsed.values() for obj in ann.objects if obj.name})
    class_ids = {name: index for index, name in enumerate(names)}
    report = VocLabelReport(list(names))

    index, unknown, listed = _image_index(images), {}, {}
    for image_id, annotation in parsed.items():
        source = _find_image(image_id, annotation, images, index)
        probe = _probe_image(source) if source else None
        if probe is None:
            warning(f"{annotation.path}: image {annotation.filename or image_id} "
                    f"{'cannot be read' if source else 'not found in ' + images}, skipped")
            continue
        true_format, width, height = probe
        ext = os.path.splitext(source)[1].lower()
        if true_format in FORMAT_EXTENSIONS and ext not in FORMAT_EXTENSIONS[true_format]:
            warning(f"{source}: extension '{ext}' but the file is {true_format}")
        if (annotation.width, annotation.height) != (width, height):
            warning(f"{annotation.path}: size {annotation.width}x{annotation.height} in the XML, "
                    f"the image is {width}x{height}: using the image's size")
        lines, hard = _image_lines(image_id, annotation, width, height, class_ids, unknown,
                                   report, warning)
        listed[image_id] = _place_image(source, out, image_id, true_format, in_place)
        _write(label_path(listed[image_id]), "".join(lines))
        side = difficult_label_path(listed[image_id])
        if hard:
            _write(side, "".join(hard))
        elif os.path.exists(side):
            try:
                os.unlink(side)   # stale from an earlier conversion
            except OSError as err:
                raise WriteError(f"{side}: cannot remove a stale difficult-box file: "
                                 f"{err.strerror}") from None
        report.boxes += len(lines)
        report.difficult += len(hard)
    for name, count in sorted(unknown.items()):
        warning(f"unknown class name '{name}' ({count} boxes) skipped: not in the class list")

    for set_name, ids in ids_by_set.items():
        report.sets[set_name] = [listed[i] for i in ids if i in listed]
        atomic_write_text(os.path.join(out, set_name + ".txt"),
                          "".join(path + "\n" for path in report.sets[set_name]))
    report.data_path = _write_data_file(out, report)
    report.warnings = report_warnings
    return report


def _write_data_file(out, report):
    """classes.names (the class list used, index = class id) and a .data file for the
    converted set, with absolute paths so it works from any folder. train= is the first of
    train/trainval/all that was produced, valid= the first of test/val/all."""
    names_path = os.path.join(out, "classes.names")
    atomic_write_text(names_path, "".join(name + "\n" for name in report.classes))
    produced = list(report.sets)

    def first(*candidates):
        return next((s for s in candidates if s in produced), produced[0] if produced else None)

    lines = [f"classes = {len(report.classes)}"]
    for key, set_name in (("train", first("train", "trainval", "all")),
                          ("valid", first("valid", "test", "val", "all"))):
        if set_name is not None:
            lines.append(f"{key} = {os.path.join(out, set_name + '.txt')}")
    lines += [f"names = {names_path}", f"backup = {os.path.join(out, 'backup')}",
              f"results = {os.path.join(out, 'results')}"]
    data_path = os.path.join(out, "voc.data")
    atomic_write_text(data_path, "\n".join(lines) + "\n")
    return data_path
