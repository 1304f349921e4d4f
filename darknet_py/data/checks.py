"""The training data checked before the first step, so that a bad label is one clear line
at the start instead of a crash (or silent garbage) hours into a run.

darknet reads label files with fscanf and uses whatever it finds: a class id past the cfg's
classes indexes past the output, a NaN size poisons the loss. Here every label file of the
training list is read once: class ids out of range, NaN/inf values and negative sizes stop
the run naming the file and line; coordinates outside the image are warned about (the
loader clips them, as darknet's correct_boxes does), as are empty boxes (dropped, darknet's
.001 rule) and missing label files (trained on as images without objects).
"""
import math
import os

from .. import log
from ..errors import DarknetError
from .labels import label_path, read_label_file

# How many of each kind of warning are printed before only the count is.
SHOWN = 3


def check_detection_labels(image_paths, classes, class_labels=None):
    """Raise DarknetError at the first label that cannot be trained on; warn about the
    rest. Returns the number of boxes found."""
    boxes = 0
    warnings = {"outside": [], "empty": [], "missing": []}
    for image in image_paths:
        path = label_path(image)
        if not os.path.exists(path):
            # a YOLO9000 classification image names its label in the path instead
            if not (class_labels and any(label in image for label in class_labels)):
                warnings["missing"].append(path)
            continue
        labels = read_label_file(path)   # malformed lines: an error naming the line
        for cls, (x, y, w, h), number in zip(labels.classes, labels.xywh,
                                             labels.line_numbers):
            where = f"{path}:{number}"
            if cls >= classes:
                raise DarknetError(f"{where}: class {cls}, but the network has {classes} "
                                   f"classes (0..{classes - 1})")
            if not all(math.isfinite(value) for value in (x, y, w, h)):
                raise DarknetError(f"{where}: a box with a NaN or infinite value: "
                                   f"{x} {y} {w} {h}")
            if w < 0 or h < 0:
                raise DarknetError(f"{where}: a box with a negative size: {w} x {h}")
            if w < .001 or h < .001:
                warnings["empty"].append(where)
            elif not (0 <= x <= 1 and 0 <= y <= 1 and w <= 1 and h <= 1):
                warnings["outside"].append(where)
            boxes += 1
    _warn(warnings["missing"], "label files not found (trained on as images without "
                               "objects)")
    _warn(warnings["empty"], "boxes narrower or lower than .001 of the image (dropped, as "
                             "darknet does)")
    _warn(warnings["outside"], "boxes reaching outside the image (clipped to it)")
    if not boxes and not class_labels:
        log.warn(f"no boxes in the label files of the {len(image_paths)} training images: "
                 "the detector learns only that there is nothing to find")
    return boxes


def _warn(places, what):
    if places:
        shown = ", ".join(places[:SHOWN]) + (", ..." if len(places) > SHOWN else "")
        log.warn(f"{len(places)} {what}: {shown}")
