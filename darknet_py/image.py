"""Images as darknet handles them: load_image_color, resize_image and letterbox_image
(darknet's src/image.c). Saving and drawing are in darknet_py.draw.

An image is a float32 array of shape (c, h, w) with values in [0, 1], like darknet's
`image` struct (planar, channel-major).

Loading: darknet decodes with stb_image. libjpeg (what Pillow uses) rounds its IDCT,
chroma upsampling and colour conversion differently, so 5-15 % of a JPEG's bytes come out
1-3 levels off and the letterboxed network input is off by up to 2.9/255. Baseline JPEGs
are therefore decoded here with stb_image's own integer arithmetic (darknet_py.jpeg), which
reproduces darknet's network input bit for bit. Everything else (PNG, BMP, GIF, progressive
or CMYK JPEGs, ...) goes through Pillow, converted the way stb_image's 3-channel load does.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from darknet_py.errors import ImageError
from darknet_py.jpeg import decode_jpeg

f32 = np.float32


# --------------------------------------------------------------------------- loading

def load_image(path, channels: int = 3, exact: bool = True) -> np.ndarray:
    """darknet's load_image_color: (3, h, w) float32 = byte/255, RGB, alpha dropped.

    exact=False decodes JPEGs with Pillow (libjpeg: ~2x faster than the numba-compiled
    stb decoder, ~40x than its NumPy fallback; 1-3 levels off stb_image on 7-15% of bytes);
    training uses it, since augmentation changes every pixel anyway."""
    if channels != 3:
        raise ImageError(f"{path}: only 3-channel loading is supported (asked for {channels})")
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"cannot load image {path}: no such file") from None
    except OSError as exc:
        raise ImageError(f"cannot load image {path}: {exc.strerror or exc}") from None
    except ValueError:   # a NUL byte in the path (a binary list file, a pasted name)
        raise ImageError(f"cannot load image {str(path)!r}: the path holds a NUL byte") \
            from None
    if not data:
        raise ImageError(f"cannot load image {path}: the file is empty")
    try:
        pixels = decode_jpeg(data) if exact and data[:2] == b"\xff\xd8" else None
    except ImageError as exc:
        raise ImageError(f"cannot load image {path}: {exc}") from None
    if pixels is None:
        pixels = _decode_with_pillow(data, path)
    # darknet: (float)byte/255. is a double division rounded to float; for the 256 byte
    # values float32 division rounds to the same floats (tests check all 256), in one pass.
    chw = pixels.transpose(2, 0, 1).astype(f32, order="C")
    chw /= f32(255.0)
    return chw


def _decode_with_pillow(data: bytes, path: Path) -> np.ndarray:
    """Any format Pillow reads, as (h, w, 3) uint8 the way stb_image returns 3 channels."""
    try:
        with Image.open(io.BytesIO(data)) as pil:
            pil.load()
            if pil.width == 0 or pil.height == 0:
                raise ImageError(f"cannot load image {path}: it has zero size")
            if pil.mode in ("I;16", "I;16L", "I;16B", "I"):
                # 16-bit greyscale: stb_image keeps the high byte.
                grey = (np.asarray(pil).astype(np.int64) >> 8).clip(0, 255).astype(np.uint8)
                return np.repeat(grey[:, :, None], 3, axis=2)
            # L/1/P/LA/RGBA/CMYK -> RGB: grey replicated, palette expanded, alpha dropped
            # without blending, which is what stb_image does for 3 requested channels.
            return np.asarray(pil.convert("RGB"))
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageError(f"cannot load image {path}: not a recognised image format") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, ... for bad data
        truncated = "truncated" in str(exc)
        reason = "the file is truncated" if truncated else f"corrupt image data ({exc})"
        raise ImageError(f"cannot load image {path}: {reason}") from None


# ------------------------------------------------------------------- resize / letterbox

def resize_image(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """darknet's resize_image: bilinear, horizontal pass then vertical, float32 throughout.

    Scale is (im_w-1)/(w-1), so the corners map onto the corners. The last output column
    copies the last input column; the last output row gets only its (1-dy) term (darknet
    skips the second term there, which matters when the float scale rounds below an integer).
    """
    c, im_h, im_w = im.shape
    im = np.asarray(im, f32)
    part = np.empty((c, im_h, w), f32)
    if w > 1:
        w_scale = f32(im_w - 1) / f32(w - 1)
        sx = np.arange(w - 1, dtype=f32) * w_scale
        ix = sx.astype(np.int64)
        dx = sx - ix.astype(f32)
        if im_w == 1:
            part[:, :, :-1] = im[:, :, :1]
        else:
            part[:, :, :-1] = (f32(1) - dx) * im[:, :, ix] + dx * im[:, :, ix + 1]
    if w > 0:
        part[:, :, -1] = im[:, :, -1]
    # h == 1 divides by zero in darknet (undefined); use the top row, as for h_scale = 0.
    h_scale = f32(im_h - 1) / f32(h - 1) if h > 1 else f32(0)
    sy = np.arange(h, dtype=f32) * h_scale
    iy = sy.astype(np.int64)
    dy = (sy - iy.astype(f32))[:, None]
    resized = (f32(1) - dy) * part[:, iy, :]
    if im_h > 1 and h > 1:
        resized[:, :-1] += dy[:-1] * part[:, iy[:-1] + 1, :]
    return resized


def letterbox_size(im_w: int, im_h: int, net_w: int, net_h: int):
    """(new_w, new_h) of the image inside the letterbox, as darknet's letterbox_image.

    The comparison is in float ((float)w/im.w < (float)h/im.h), the sizes in integers.
    """
    if f32(net_w) / f32(im_w) < f32(net_h) / f32(im_h):
        return net_w, (im_h * net_w) // im_w
    return (im_w * net_h) // im_h, net_h


def letterbox_image(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """darknet's letterbox_image: aspect-preserving resize, centred on a 0.5 canvas."""
    c, im_h, im_w = im.shape
    new_w, new_h = letterbox_size(im_w, im_h, w, h)
    resized = resize_image(im, new_w, new_h)
    boxed = np.full((c, h, w), 0.5, f32)
    dx, dy = (w - new_w) // 2, (h - new_h) // 2
    boxed[:, dy:dy + new_h, dx:dx + new_w] = resized
    return boxed

