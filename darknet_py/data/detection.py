"""One detection training sample as darknet's load_data_detection makes it: jittered
aspect ratio and placement on a 0.5 canvas, HSV distortion, random flip, and the truth
boxes corrected for all of it (fill_truth_detection / correct_boxes)."""
import os

import numpy as np

from .. import log
from ..image import load_image
from .augment import flip_image, place_image, rand_uniform, random_distort_image
from .labels import label_path, read_label_file

F32 = np.float32


def read_boxes(image_path, class_labels=None):
    """(classes, xywh float32) of an image's label file; a missing file is warned about
    once and read as no boxes (darknet exits instead).

    With `class_labels` (the .data file's labels=, e.g. 9k.labels) an image without a label
    file whose path names exactly one label is a classification image of a joint YOLO9000
    list: one box at 0, 0, 0, 0, which correct_boxes marks as class-only."""
    path = label_path(image_path)
    if class_labels and not os.path.exists(path):
        found = [index for index, label in enumerate(class_labels) if label in image_path]
        if len(found) == 1:
            return np.array(found), np.zeros((1, 4), F32)
    try:
        labels = read_label_file(path)
    except Exception as err:   # noqa: BLE001 - a bad label file must not stop training
        log.warn_once(("label file", path), f"{err}; training on {image_path} with no boxes")
        return np.zeros(0, np.int64), np.zeros((0, 4), F32)
    return labels.classes, labels.xywh.astype(F32)


def correct_boxes(xywh, dx, dy, sx, sy, flip):
    """darknet's correct_boxes: shift and scale the box edges into the new canvas, mirror
    when flipped, clamp to [0, 1]. Boxes at x = y = 0 become 999999 (darknet's marker)."""
    out = np.empty_like(xywh)
    for i, (x, y, w, h) in enumerate(xywh):
        if x == 0 and y == 0:
            out[i] = 999999
            continue
        left, right = F32(x - w / F32(2)) * F32(sx) - F32(dx), F32(x + w / F32(2)) * F32(sx) - F32(dx)
        top, bottom = F32(y - h / F32(2)) * F32(sy) - F32(dy), F32(y + h / F32(2)) * F32(sy) - F32(dy)
        if flip:
            left, right = F32(1 - right), F32(1 - left)
        left, right, top, bottom = (min(max(v, F32(0)), F32(1)) for v in (left, right, top, bottom))
        out[i] = [(left + right) / F32(2), (top + bottom) / F32(2),
                  min(max(right - left, 0), 1), min(max(bottom - top, 0), 1)]
    return out


def fill_truth(classes, xywh, max_boxes):
    """The truth row: x y w h class per box, at most max_boxes, boxes under .001 dropped."""
    truth = np.zeros(max_boxes * 5, dtype=F32)
    kept = 0
    for cls, box in zip(classes[:max_boxes], xywh[:max_boxes]):
        if box[2] < .001 or box[3] < .001:
            continue
        truth[kept * 5:kept * 5 + 5] = [*box, cls]
        kept += 1
    return truth


def load_detection_sample(path, width, height, jitter, hue, saturation, exposure, max_boxes,
                          rng, randomize=True, class_labels=None):
    """(image CHW float32 of width x height, truth row) for one training image."""
    orig = load_image(path, exact=False)
    im_h, im_w = orig.shape[1:]
    canvas = np.full((3, height, width), 0.5, dtype=F32)
    dw, dh = jitter * im_w, jitter * im_h
    new_ar = ((im_w + rand_uniform(rng, -dw, dw)) / (im_h + rand_uniform(rng, -dh, dh)))
    if new_ar < 1:
        nh = float(height)
        nw = nh * new_ar
    else:
        nw = float(width)
        nh = nw / new_ar
    dx = rand_uniform(rng, 0, width - nw)
    dy = rand_uniform(rng, 0, height - nh)
    place_image(orig, nw, nh, dx, dy, canvas)
    canvas = random_distort_image(canvas, rng, hue, saturation, exposure)
    flip = int(rng.integers(2))
    if flip:
        canvas = flip_image(canvas)
    classes, xywh = read_boxes(path, class_labels)
    if randomize and len(classes):   # randomize_boxes: which 30 survive is random
        order = rng.permutation(len(classes))
        classes, xywh = classes[order], xywh[order]
    xywh = correct_boxes(xywh, -dx / width, -dy / height, nw / width, nh / height, flip)
    return canvas, fill_truth(classes, xywh, max_boxes)
