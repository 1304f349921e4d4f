"""Boxes and detections: darknet's box.c (overlap, IoU, do_nms_sort)."""
from dataclasses import dataclass, field

import numpy as np


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
    sort_class: int = -1
    extra: dict = field(default_factory=dict)
