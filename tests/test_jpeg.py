"""darknet_py.jpeg: the numba kernels against the NumPy path (itself checked against
stb_image and darknet's inputs in test_image.py), on photos and on random JPEGs."""
import io
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from darknet_py import jpeg
from darknet_py.errors import ImageError
from darknet_py.image import load_image

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ROOT = Path(__file__).resolve().parents[1]
needs_numba = pytest.mark.skipif(not jpeg.numba_available(),
                                 reason="numba is not installed")


def _photos():
    photos = sorted((SHARED / "darknet" / "data").glob("*.jpg"))
    for folder in ("datasets/bccd/BCCD/JPEGImages", "datasets/raccoon/images"):
        photos += sorted((SHARED / folder).glob("*.jpg"))[:3]
    if not photos:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no photos under {SHARED}"))]
    return [pytest.param(p, id=f"{p.parent.name}/{p.name}") for p in photos]


def _outcome(data, fast):
    """The decoded array, None (left to Pillow) or the error message."""
    try:
        pixels = jpeg.decode_jpeg(data, fast=fast)
    except ImageError as exc:
        return str(exc)
    return None if pixels is None else np.ascontiguousarray(pixels)


def _same(a, b):
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    return type(a) is type(b) and a == b


@needs_numba
@pytest.mark.parametrize("path", _photos())
def test_compiled_and_numpy_paths_agree_on_photos(path):
    data = path.read_bytes()
    fast, slow = _outcome(data, True), _outcome(data, False)
    assert _same(fast, slow)


def _random_jpeg(rng):
    h, w = rng.randint(1, 40), rng.randint(1, 40)
    smooth = rng.random() < 0.5  # smooth images give long zero runs, noise gives big values
    if smooth:
        yy, xx = np.mgrid[0:h, 0:w]
        base = [(yy * rng.randint(1, 9) + xx * rng.randint(1, 9) + rng.randint(0, 255)) % 256
                for _ in range(3)]
        pixels = np.stack(base, axis=2).astype(np.uint8)
    else:
        pixels = np.random.default_rng(rng.randint(0, 2**31)).integers(0, 256, (h, w, 3),
                                                                        dtype=np.uint8)
    options = {"quality": rng.randint(1, 100)}
    kind = rng.choice(["4:4:4", "4:2:2", "4:2:0", "grey", "rgb", "progressive"])
    if kind == "grey":
        img = Image.fromarray(pixels[..., 0])
    else:
        img = Image.fromarray(pixels)
        if kind == "rgb":
            options["keep_rgb"] = True  # component ids R, G, B: no colour conversion
        elif kind == "progressive":
            options["progressive"] = True
        else:
            options["subsampling"] = kind
    restart = rng.choice([None, "blocks", "rows"])
    if restart:
        options[f"restart_marker_{restart}"] = rng.randint(1, 4)
    options["optimize"] = rng.random() < 0.5
    out = io.BytesIO()
    img.save(out, "JPEG", **options)
    return out.getvalue(), kind, options


@needs_numba
def test_compiled_and_numpy_paths_agree_on_random_jpegs():
    rng = random.Random(1234)
    kinds = set()
    for _ in range(150):
        data, kind, options = _random_jpeg(rng)
        fast, slow = _outcome(data, True), _outcome(data, False)
        assert _same(fast, slow), options
        assert (fast is None) == (kind == "progressive"), options  # progressive -> Pillow
        kinds.add(kind)
    assert len(kinds) == 6


@needs_numba
def test_compiled_and_numpy_paths_agree_on_damaged_jpegs():
    # Flipped bytes in the entropy-coded data and odd sampling factors in the frame header:
    # whatever comes out (pixels, None or an error), both paths must give the same.
    rng = random.Random(99)
    errors = 0
    for _ in range(120):
        data, _, _ = _random_jpeg(rng)
        data = bytearray(data)
        sos = data.find(b"\xff\xda")
        if sos < 0:
            continue
        if rng.random() < 0.3:  # the frame header's sampling bytes
            sof = data.find(b"\xff\xc0")
            if sof >= 0 and data[sof + 9] > 1:
                comp = rng.randrange(data[sof + 9])
                data[sof + 11 + 3 * comp] = rng.choice([0x11, 0x12, 0x21, 0x22, 0x41, 0x14])
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(sos + 14, len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[:rng.randrange(sos, len(data))]
        fast, slow = _outcome(bytes(data), True), _outcome(bytes(data), False)
        assert _same(fast, slow)
        errors += isinstance(fast, str)
    assert errors > 0  # the damage does reach the error paths


def test_float_conversion_is_darknets_double_division():
    # load_image divides in float32; darknet computes (float)(byte / 255.) in double.
    values = np.arange(256)
    assert np.array_equal((values / 255.0).astype(np.float32),
                          values.astype(np.float32) / np.float32(255))


def test_load_image_gives_contiguous_chw(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.jpg", quality=90)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    for name in ("a.jpg", "a.png"):
        im = load_image(tmp_path / name)
        assert im.shape == (3, 9, 13) and im.dtype == np.float32 and im.flags.c_contiguous
    expected = jpeg.decode_jpeg((tmp_path / "a.jpg").read_bytes(), fast=False)
    np.testing.assert_array_equal(load_image(tmp_path / "a.jpg"),
                                  (expected.transpose(2, 0, 1) / 255.0).astype(np.float32))


def test_numpy_path_is_used_without_numba(tmp_path):
    # With numba unimportable the module still loads and decodes, through NumPy.
    pixels = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.jpg", quality=75)
    code = ("import sys; sys.modules['numba'] = None\n"
            "import numpy as np\n"
            "from darknet_py import jpeg\n"
            "assert not jpeg.numba_available()\n"
            f"data = open({str(tmp_path / 'a.jpg')!r}, 'rb').read()\n"
            "print(jpeg.decode_jpeg(data).tobytes().hex())\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip()
    expected = jpeg.decode_jpeg((tmp_path / "a.jpg").read_bytes(), fast=False)
    assert bytes.fromhex(out) == expected.tobytes()
