"""Drawing and saving images as darknet does: save_image, get_color and draw_detections
(darknet's src/image.c: save_image_options, get_color, draw_box, draw_label,
draw_detections).

Images are the CHW float32 arrays of darknet_py.image. draw_detections draws on a copy with
darknet's colour ramp and box geometry (pixel corners truncated toward zero); the label text
is rendered with Pillow's font, not darknet's bitmap alphabet.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from darknet_py.errors import ImageError, WriteError
from darknet_py.fileio import atomic_write_with

f32 = np.float32


def save_image(im: np.ndarray, path) -> None:
    """Write a CHW float image as .jpg/.jpeg (quality 80, darknet's default) or .png."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".jpg", ".jpeg", ".png"):
        raise ImageError(f"cannot save image {path}: use a .jpg, .jpeg or .png name")
    # darknet writes (unsigned char)(255*v); clipping first keeps out-of-range values sane.
    pixels = (np.clip(np.asarray(im, f32), 0, 1) * f32(255)).astype(np.uint8)
    pixels = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
    picture = Image.fromarray(pixels)
    try:   # atomically: a full disk never leaves half an image in place of the old one
        if suffix == ".png":
            atomic_write_with(path, lambda handle: picture.save(handle, format="PNG"))
        else:
            atomic_write_with(path, lambda handle: picture.save(handle, format="JPEG",
                                                                quality=80))
    except (WriteError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ImageError(f"cannot save image {path}: {reason}") from None


_COLORS = [[1, 0, 1], [0, 0, 1], [0, 1, 1], [0, 1, 0], [1, 1, 0], [1, 0, 0]]


def get_color(c: int, x: int, max_value: int) -> float:
    """darknet's get_color: channel c of a colour ramp through _COLORS, in float32."""
    ratio = (f32(x) / f32(max_value)) * f32(5)
    i, j = int(np.floor(ratio)), int(np.ceil(ratio))
    ratio = ratio - f32(i)
    return float((f32(1) - ratio) * f32(_COLORS[i][c]) + ratio * f32(_COLORS[j][c]))


def _draw_box(im, x1, y1, x2, y2, rgb):
    """darknet's draw_box: a one-pixel rectangle, corners clamped into the image."""
    _, h, w = im.shape
    x1, x2 = min(max(x1, 0), w - 1), min(max(x2, 0), w - 1)
    y1, y2 = min(max(y1, 0), h - 1), min(max(y2, 0), h - 1)
    colour = np.asarray(rgb, f32)[:, None]
    im[:, y1, x1:x2 + 1] = colour
    im[:, y2, x1:x2 + 1] = colour
    im[:, y1:y2 + 1, x1] = colour
    im[:, y1:y2 + 1, x2] = colour


def _draw_label(im, row, col, text, rgb):
    """Black text on a box of the class colour, above the box when it fits (draw_label).

    darknet renders its own bitmap alphabet (data/labels/) at a size from im.h * .03; here
    Pillow's default font at about that size stands in for it.
    """
    try:
        font = ImageFont.load_default(size=max(10, int(im.shape[1] * .03)))
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        font = ImageFont.load_default()
    left, top, right, bottom = font.getbbox(text)
    border = max(1, (bottom - top) // 4)  # darknet's label has a border of a quarter height
    label = Image.new("L", (right - left + 2 * border, bottom - top + 2 * border), 255)
    ImageDraw.Draw(label).text((border - left, border - top), text, fill=0, font=font)
    label = np.asarray(label, f32) / f32(255)
    lh, lw = label.shape
    _, h, w = im.shape
    if row - lh >= 0:
        row -= lh
    rows, cols = min(lh, h - row), min(lw, w - col)
    if rows > 0 and cols > 0:
        im[:, row:row + rows, col:col + cols] = \
            np.asarray(rgb, f32)[:, None, None] * label[None, :rows, :cols]


def draw_detections(im, detections, thresh, names, path=None) -> np.ndarray:
    """darknet's draw_detections on a copy of im; saved to path when given.

    Each detection with some class prob > thresh gets a box in the colour of its first such
    class and a label listing all of them ("dog, cat").
    """
    im = np.array(im, f32, copy=True)
    _, im_h, im_w = im.shape
    for det in detections:
        prob = np.asarray(det.prob)
        classes = prob.size
        above = np.flatnonzero(prob > thresh).tolist()
        if not above:
            continue
        first = above[0]
        offset = first * 123457 % classes
        rgb = [get_color(2, offset, classes), get_color(1, offset, classes),
               get_color(0, offset, classes)]
        width = int(im_h * .006)  # darknet: int width = im.h * .006 (0 below 167 rows)
        # darknet computes these in double and truncates toward zero.
        x, y, w, h = float(det.x), float(det.y), float(det.w), float(det.h)
        left = max(int((x - w / 2.) * im_w), 0)
        right = min(int((x + w / 2.) * im_w), im_w - 1)
        top = max(int((y - h / 2.) * im_h), 0)
        bot = min(int((y + h / 2.) * im_h), im_h - 1)
        for i in range(width):
            _draw_box(im, left + i, top + i, right - i, bot - i, rgb)
        _draw_label(im, top + width, left, ", ".join(names[j] for j in above), rgb)
    if path is not None:
        save_image(im, path)
    return im
