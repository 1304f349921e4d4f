"""Boxes as darknet computes them: the `detection` struct, get_region_box for a whole grid
and box_iou (box.c). Used by the detection path (detection.py) and the loss (region_loss.py),
so both decode a region layer's boxes with the same arithmetic. NMS lives in detection.py."""
from dataclasses import dataclass

import numpy as np

F32 = np.float32
F64 = np.float64


@dataclass
class Detection:
    """One box of a detection layer, as darknet's `detection` struct.

    x, y, w, h are the box centre and size relative to the image (0..1); `prob` holds one
    probability per class (0 where below the threshold); `index` is the box's position
    before NMS (anchor * H*W + row * W + col).
    """
    x: float
    y: float
    w: float
    h: float
    prob: np.ndarray
    objectness: float
    index: int = 0


def region_box_grid(raw, biases, grid_w, grid_h):
    """get_region_box for every anchor and cell of one image: raw (n, >=4, h*w) holds
    x, y (already through the logistic), w, h (raw) per anchor and cell; biases the 2n
    anchors. Returns (n, h*w, 4) float32 centre boxes relative to the grid: x = (col +
    x)/w, w = exp(tw)*anchor_w/w in double, as darknet's float-by-double arithmetic."""
    cells = np.arange(grid_h * grid_w)
    col, row = (cells % grid_w).astype(F32), (cells // grid_w).astype(F32)
    anchors = np.asarray(biases).astype(F64).reshape(-1, 2)
    x = (col + raw[:, 0]) / F32(grid_w)
    y = (row + raw[:, 1]) / F32(grid_h)
    with np.errstate(over="ignore", invalid="ignore"):   # overflow is reported by callers
        w = (np.exp(raw[:, 2].astype(F64)) * anchors[:, 0:1] / grid_w).astype(F32)
        h = (np.exp(raw[:, 3].astype(F64)) * anchors[:, 1:2] / grid_h).astype(F32)
    return np.stack([x, y, w, h], axis=-1)


def box_iou(box, others):
    """IoU of one xywh box with each row of `others`, in float32 as box.c computes it."""
    half = F32(2)

    def overlap(c1, s1, c2, s2):
        left = np.maximum(c1 - s1 / half, c2 - s2 / half)
        right = np.minimum(c1 + s1 / half, c2 + s2 / half)
        return right - left

    # huge boxes (labels of 1e30) overflow to inf as in C; the caller judges the result
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        w = overlap(box[0], box[2], others[:, 0], others[:, 2])
        h = overlap(box[1], box[3], others[:, 1], others[:, 3])
        inter = np.where((w < 0) | (h < 0), F32(0), w * h)
        union = box[2] * box[3] + others[:, 2] * others[:, 3] - inter
        return inter / union
