"""Average precision as the Pascal VOC devkit computes it (VOCevaldet.m), and reading back the
comp4 files darknet's `detector valid` writes (writing them is darknet_py.evaluation.writers).

Per class: detections are sorted by decreasing confidence (a stable sort, as MATLAB's sort:
equal scores keep file order); each is matched to the ground-truth box of its image with the
highest IoU. If that IoU >= the threshold and the box is `difficult`, the detection counts
neither as true nor as false positive; if the box is not yet matched it is a true positive and
becomes matched; if it already is, the detection is a duplicate and a false positive. Below the
threshold it is a false positive. Note the devkit matches the best-IoU box even when it is
already taken (then a duplicate), not the best still-free box; we do the same.

AP is the area under the interpolated precision/recall curve: VOC2007's 11 recall levels
0, 0.1, ..., 1 (points=11; any N > 1 gives N levels k/(N-1), e.g. 101 as COCO), or every
recall step (points=0, VOC2010+). A class without non-difficult ground truth has no recall
and its AP is NaN; the mean AP averages the classes that have ground truth.
"""
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ..errors import DarknetError


@dataclass(frozen=True)
class ScoredBox:
    """One detection of one class: image id, confidence, corners (xmin, ymin, xmax, ymax)."""
    image: str
    score: float
    box: tuple


@dataclass(frozen=True)
class TruthBox:
    """One ground-truth box of one class: image id, corners, difficult flag."""
    image: str
    box: tuple
    difficult: bool = False


@dataclass
class ClassAP:
    """The result for one class: ap (NaN without ground truth), the cumulative precision and
    recall after each counted detection, true/false positives and npos (non-difficult
    ground-truth boxes)."""
    ap: float
    precision: np.ndarray
    recall: np.ndarray
    tp: int
    fp: int
    npos: int


def box_overlaps(box, boxes, pixel_inclusive=False):
    """IoU of one (xmin, ymin, xmax, ymax) box with each row of `boxes`.

    pixel_inclusive: the devkit's convention for integer pixel coordinates, where a box from
    column 1 to column 10 is 10 pixels wide (every width and height gets +1).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    one = 1.0 if pixel_inclusive else 0.0
    iw = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]) + one
    ih = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]) + one
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    union = ((box[2] - box[0] + one) * (box[3] - box[1] + one)
             + (boxes[:, 2] - boxes[:, 0] + one) * (boxes[:, 3] - boxes[:, 1] + one) - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / union, 0.0)


def interpolated_ap(recall, precision, points=11):
    """Area under the precision envelope.

    points=0: all-point (VOC2010+): precision made monotone from the right, summed over
    every change of recall. points=N>1: mean over N recall levels k/(N-1) of the best
    precision at recall >= level (0 when the level is never reached). The levels are exact
    fractions k/(N-1); the devkits step by 0.1 in floating point, which puts the level "0.3"
    at 0.30000000000000004 and so skips it when recall is exactly 3/10 (a corner case that
    only differs from ours when recall hits such a value exactly).
    """
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if points == 0:
        mrec = np.concatenate([[0.0], recall, [1.0]])
        mpre = np.concatenate([[0.0], precision, [0.0]])
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]
        steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
        return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))
    if points < 2:
        raise DarknetError(f"interpolation points must be 0 (all points) or at least 2, "
                           f"found {points}")
    total = 0.0
    for k in range(points):
        level = k / (points - 1)
        reached = precision[recall >= level]
        total += float(reached.max()) if reached.size else 0.0
    return total / points


def class_ap(detections, truths, iou_threshold=0.5, points=11, pixel_inclusive=False):
    """AP of one class from its ScoredBox detections and TruthBox ground truth (all images)."""
    gt_boxes, gt_difficult = defaultdict(list), defaultdict(list)
    for truth in truths:
        gt_boxes[truth.image].append(truth.box)
        gt_difficult[truth.image].append(bool(truth.difficult))
    matched = {image: np.zeros(len(boxes), bool) for image, boxes in gt_boxes.items()}
    npos = sum(not flag for flags in gt_difficult.values() for flag in flags)

    order = sorted(range(len(detections)), key=lambda i: -detections[i].score)  # stable
    hits = []   # per counted detection: True (TP) or False (FP); difficult ones are skipped
    for index in order:
        det = detections[index]
        boxes = gt_boxes.get(det.image)
        if not boxes:
            hits.append(False)
            continue
        overlaps = box_overlaps(det.box, boxes, pixel_inclusive)
        best = int(np.argmax(overlaps))   # first of equal maxima, as MATLAB's max
        if overlaps[best] < iou_threshold:
            hits.append(False)
        elif gt_difficult[det.image][best]:
            continue
        elif not matched[det.image][best]:
            matched[det.image][best] = True
            hits.append(True)
        else:
            hits.append(False)   # a duplicate detection of an already found object

    hits = np.array(hits, bool)
    tp, fp = np.cumsum(hits), np.cumsum(~hits)
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    if npos == 0:
        return ClassAP(float("nan"), precision, np.full(len(hits), np.nan), int(hits.sum()),
                       int((~hits).sum()), 0)
    recall = tp / npos
    return ClassAP(interpolated_ap(recall, precision, points), precision, recall,
                   int(hits.sum()), int((~hits).sum()), npos)


def mean_ap(results):
    """Mean of the per-class APs over the classes that have ground truth (NaN if none)."""
    values = [result.ap for result in results if result.npos > 0]
    return float(np.mean(values)) if values else float("nan")


def evaluate(detections_by_class, truths_by_class, classes, iou_threshold=0.5, points=11,
             pixel_inclusive=False):
    """ClassAP for each class index in range(classes), then the mAP."""
    results = [class_ap(detections_by_class.get(c, []), truths_by_class.get(c, []),
                        iou_threshold, points, pixel_inclusive) for c in range(classes)]
    return results, mean_ap(results)


# ------------------------------------------------------------------ comp4 files

def read_detection_file(path):
    """ScoredBoxes of a comp4_det_test_<class>.txt file, in file order."""
    found = []
    try:
        with open(path, "r", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as err:
        raise DarknetError(f"{path}: cannot read detections: {err.strerror}") from None
    for line_no, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 6:
            raise DarknetError(f"{path}:{line_no}: expected '<image id> <prob> <xmin> <ymin> "
                               f"<xmax> <ymax>', found '{line.strip()}'")
        try:
            values = [float(value) for value in fields[1:]]
        except ValueError:
            raise DarknetError(f"{path}:{line_no}: expected 5 numbers after the image id, "
                               f"found '{line.strip()}'") from None
        found.append(ScoredBox(fields[0], values[0], tuple(values[1:])))
    return found
