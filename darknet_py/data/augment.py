"""Image augmentation as darknet's image.c does it: place_image (bilinear resampling into a
canvas), HSV distortion, flips, and the rotated random crop of classifier training.

Random numbers come from a numpy Generator per sample (darknet uses rand() from many
threads, so its runs are not reproducible anyway); the arithmetic follows darknet's.
"""
import numpy as np

F32 = np.float32


def rand_uniform(rng, low, high):
    if high < low:
        low, high = high, low
    return float(F32(rng.random()) * F32(high - low) + F32(low))


def rand_scale(rng, s):
    """darknet's rand_scale: a factor in [1, s], inverted half of the time."""
    scale = rand_uniform(rng, 1, s)
    return scale if rng.integers(2) else 1.0 / scale


def _pixels_extend(im, ys, xs):
    """im[:, y, x] with 0 outside the image (get_pixel_extend)."""
    inside = (ys >= 0) & (ys < im.shape[1]) & (xs >= 0) & (xs < im.shape[2])
    values = im[:, np.clip(ys, 0, im.shape[1] - 1), np.clip(xs, 0, im.shape[2] - 1)]
    return np.where(inside[None], values, F32(0))


def bilinear(im, ys, xs):
    """bilinear_interpolate at float coordinates (arrays of the same shape)."""
    iy, ix = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
    dy, dx = (ys - iy).astype(F32), (xs - ix).astype(F32)
    return ((1 - dy) * (1 - dx) * _pixels_extend(im, iy, ix)
            + dy * (1 - dx) * _pixels_extend(im, iy + 1, ix)
            + (1 - dy) * dx * _pixels_extend(im, iy, ix + 1)
            + dy * dx * _pixels_extend(im, iy + 1, ix + 1)).astype(F32)


def place_image(im, w, h, dx, dy, canvas):
    """Resample im to w x h and write it at (dx, dy) into canvas (parts outside are cut).
    darknet passes these as ints, so the float sizes and offsets are truncated."""
    w, h, dx, dy = int(w), int(h), int(dx), int(dy)
    if w <= 0 or h <= 0:
        return canvas
    xs = (np.arange(w, dtype=F32) / F32(w)) * F32(im.shape[2])
    ys = (np.arange(h, dtype=F32) / F32(h)) * F32(im.shape[1])
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    resampled = bilinear(im, grid_y, grid_x)
    top, left = max(0, dy), max(0, dx)
    bottom, right = min(canvas.shape[1], dy + h), min(canvas.shape[2], dx + w)
    if bottom > top and right > left:
        canvas[:, top:bottom, left:right] = resampled[:, top - dy:bottom - dy,
                                                      left - dx:right - dx]
    return canvas


def rgb_to_hsv(im):
    r, g, b = im
    high, low = im.max(axis=0), im.min(axis=0)
    delta = high - low
    safe = np.where(delta == 0, F32(1), delta)
    hue = np.where(r == high, (g - b) / safe,
                   np.where(g == high, 2 + (b - r) / safe, 4 + (r - g) / safe))
    hue = np.where(hue < 0, hue + 6, hue) / F32(6)
    hue = np.where(delta == 0, F32(0), hue)   # darknet divides 0 by 0 here; grey has no hue
    saturation = np.where(high == 0, F32(0), delta / np.where(high == 0, F32(1), high))
    return np.stack([hue, saturation, high]).astype(F32)


def hsv_to_rgb(im):
    h, s, v = im[0] * F32(6), im[1], im[2]
    index = np.floor(h).astype(np.int64)
    f = h - index
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.empty_like(im)
    for channel in range(3):
        table = [choice[channel] for choice in choices]
        out[channel] = np.select([index == i for i in range(5)], table[:5], table[5])
    grey = s == 0
    out[:, grey] = v[grey]
    return out


def distort_image(im, hue, saturation, exposure):
    """darknet's distort_image: scale S and V, shift H (wrapping), back to RGB, clamp."""
    with np.errstate(invalid="ignore", over="ignore"):   # huge factors: clamped below
        return _distort(im, hue, saturation, exposure)


def _distort(im, hue, saturation, exposure):
    hsv = rgb_to_hsv(im)
    hsv[1] *= F32(saturation)
    hsv[2] *= F32(exposure)
    hsv[0] += F32(hue)
    hsv[0] = np.where(hsv[0] > 1, hsv[0] - 1, hsv[0])
    hsv[0] = np.where(hsv[0] < 0, hsv[0] + 1, hsv[0])
    return np.clip(hsv_to_rgb(hsv), 0, 1).astype(F32)


def random_distort_image(im, rng, hue, saturation, exposure):
    dhue = rand_uniform(rng, -hue, hue)
    dsat = rand_scale(rng, saturation)
    dexp = rand_scale(rng, exposure)
    return distort_image(im, dhue, dsat, dexp)


def flip_image(im):
    return np.ascontiguousarray(im[:, :, ::-1])


def rotate_crop_image(im, rad, scale, w, h, dx, dy, aspect):
    """darknet's rotate_crop_image: a w x h crop, rotated by rad around the image centre,
    scaled and shifted, sampled bilinearly."""
    cx, cy = im.shape[2] / 2.0, im.shape[1] / 2.0
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    cos, sin = np.cos(rad), np.sin(rad)
    rx = (cos * ((xs - w / 2.0) / scale * aspect + dx / scale * aspect)
          - sin * ((ys - h / 2.0) / scale + dy / scale) + cx)
    ry = (sin * ((xs - w / 2.0) / scale * aspect + dx / scale * aspect)
          + cos * ((ys - h / 2.0) / scale + dy / scale) + cy)
    return bilinear(im, ry.astype(F32), rx.astype(F32))


def random_augment_image(im, rng, angle, aspect, low, high, w, h):
    """darknet's random_augment_image: random aspect, shorter side scaled to [low, high],
    rotation in [-angle, angle] degrees, random shift, crop to w x h."""
    aspect = rand_scale(rng, aspect)
    target = int(rng.integers(low, high + 1)) if high > low else low
    shorter = min(im.shape[1], im.shape[2] * aspect)
    scale = target / shorter
    rad = rand_uniform(rng, -angle, angle) * 2 * np.pi / 360.0
    dx = (im.shape[2] * scale / aspect - w) / 2.0
    dy = (im.shape[1] * scale - w) / 2.0
    dx, dy = rand_uniform(rng, -dx, dx), rand_uniform(rng, -dy, dy)
    return rotate_crop_image(im, rad, scale, w, h, dx, dy, aspect)
