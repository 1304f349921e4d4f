"""A detection as darknet's `detection` struct holds it (box arithmetic and NMS: detection.py)."""
from dataclasses import dataclass

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
