"""From a region layer's output to boxes: get_network_boxes, correct_region_boxes and
do_nms_sort as darknet computes them (region_layer.c, network.c, box.c).

Boxes are held as arrays (one row per anchor and cell, in darknet's order
anchor*H*W + row*W + col) and turned into Detection objects at the end. The arithmetic keeps
darknet's types: float32 where darknet stores float, float64 where C promotes to double.
"""
from dataclasses import dataclass

import numpy as np

from .box import Detection, box_iou, region_box_grid  # noqa: F401 (box_iou: re-exported)
from . import log
from .errors import DarknetError
from .tree import hierarchy_predictions, hierarchy_top_prediction

F32 = np.float32
F64 = np.float64


@dataclass
class Boxes:
    """All boxes of a network before NMS: xywh (N, 4) float32 relative to the image,
    prob (N, classes) float32, objectness (N,) float32."""
    xywh: np.ndarray
    prob: np.ndarray
    objectness: np.ndarray


def region_boxes(layer, output, thresh, hier_thresh=0.5, class_map=None):
    """darknet's get_region_detections for batch item 0, before the letterbox correction.

    class_map (a tree index per dataset class, the region's map= file) only applies to tree
    layers, as in darknet.

    output: the layer's output for one image, (n*(coords+classes+1), h, w). It is not
    modified (darknet's hierarchy_predictions writes into l.output; we work on a copy).
    """
    n, hw, classes, coords = layer.n_anchors, layer.h * layer.w, layer.classes, layer.coords
    pred = np.asarray(output, dtype=F32).reshape(n, layer.entries, hw)
    xywh = region_box_grid(pred, layer.biases, layer.w, layer.h).reshape(n * hw, 4)
    scale = np.ones((n, hw), F32) if layer.background else pred[:, coords]
    scale = scale.reshape(-1)
    objectness = np.where(scale > thresh, scale, F32(0))
    start = coords + (0 if layer.background else 1)
    class_probs = pred[:, start:start + classes].transpose(0, 2, 1).reshape(n * hw, classes)
    if layer.tree is not None:
        return Boxes(xywh, _tree_probs(layer, class_probs.copy(), scale, thresh, hier_thresh,
                                       class_map), objectness)
    prob = scale[:, None] * class_probs
    prob = np.where((prob > thresh) & (objectness[:, None] != 0), prob, F32(0)).astype(F32)
    return Boxes(xywh, prob, objectness)


def _tree_probs(layer, class_probs, scale, thresh, hier_thresh, class_map):
    """WordTree boxes: absolute probabilities down the tree, then either the mapped classes
    or the single class that hierarchy_top_prediction picks, with the objectness as prob."""
    hierarchy_predictions(class_probs, layer.tree)
    prob = np.zeros_like(class_probs)
    if class_map is not None:
        # darknet fills the first entries with the mapped classes (200 ImageNet classes)
        mapped = scale[:, None] * class_probs[:, class_map]
        prob[:, :len(class_map)] = np.where(mapped > thresh, mapped, F32(0))
        return prob
    for box in np.nonzero(scale > thresh)[0]:
        best = hierarchy_top_prediction(class_probs[box], layer.tree, hier_thresh)
        prob[box, best] = scale[box]
    return prob


def correct_region_boxes(xywh, im_w, im_h, net_w, net_h, relative=True):
    """Undo the letterbox: boxes relative to the network input -> relative to the image."""
    if F32(net_w) / F32(im_w) < F32(net_h) / F32(im_h):
        new_w, new_h = net_w, (im_h * net_w) // im_w
    else:
        new_w, new_h = (im_w * net_h) // im_h, net_h
    out = xywh.copy()
    # a 1000x1 image letterboxes to 0 rows here (integer division, as darknet): its boxes
    # come out inf/NaN and network_boxes drops them (drop_non_finite) with a warning
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out[:, 0] = ((xywh[:, 0].astype(F64) - (net_w - new_w) / 2.0 / net_w)
                     / F64(F32(new_w) / F32(net_w))).astype(F32)
        out[:, 1] = ((xywh[:, 1].astype(F64) - (net_h - new_h) / 2.0 / net_h)
                     / F64(F32(new_h) / F32(net_h))).astype(F32)
        out[:, 2] = xywh[:, 2] * (F32(net_w) / F32(new_w))
        out[:, 3] = xywh[:, 3] * (F32(net_h) / F32(new_h))
        if not relative:
            out[:, [0, 2]] *= F32(im_w)
            out[:, [1, 3]] *= F32(im_h)
    return out


def network_boxes(net, im_w, im_h, thresh, hier_thresh=0.5, class_map=None, relative=True,
                  batch_index=0):
    """darknet's get_network_boxes: the boxes of every region layer, letterbox-corrected."""
    found = []
    for layer in net.layers:
        if layer.type != "region":
            continue
        output = net.ops.to_host(layer.output)[batch_index]
        boxes = region_boxes(layer, output, thresh, hier_thresh, class_map)
        boxes.xywh = correct_region_boxes(boxes.xywh, im_w, im_h, net.width, net.height,
                                          relative)
        drop_non_finite(boxes, layer.index)
        found.append(boxes)
    if not found:
        raise DarknetError(f"{net.path}: the network has no [region] layer to take boxes "
                           "from (a classifier cfg?)")
    return Boxes(np.concatenate([b.xywh for b in found]),
                 np.concatenate([b.prob for b in found]),
                 np.concatenate([b.objectness for b in found]))


def drop_non_finite(boxes, layer_index):
    """Boxes whose coordinates overflowed (exp of a huge tw/th, NaN outputs) would reach
    NMS and the printed pixels as inf/NaN; darknet prints garbage there. They are dropped
    (their probabilities zeroed) with one warning instead."""
    bad = ~np.isfinite(boxes.xywh).all(axis=1)
    with np.errstate(invalid="ignore"):
        live = bad & ((boxes.prob > 0).any(axis=1) | (boxes.objectness > 0))
    if live.any():
        log.warn_once(("non-finite boxes", layer_index), f"region layer {layer_index}: {int(live.sum())} box(es) above the "
                      "threshold have non-finite coordinates (the network's output "
                      "overflowed: untrained or wrong weights?); they are dropped")
    if bad.any():
        boxes.prob[bad] = 0
        boxes.objectness[bad] = 0
        boxes.xywh[bad] = 0


def zero_objectness_last(objectness):
    """The order darknet's NMS loops leave: each box with objectness 0 swapped with the last
    live one (not a stable partition). Returns the order and the number of live boxes."""
    order = np.arange(len(objectness))
    last = len(order) - 1
    i = 0
    while i <= last:
        if objectness[order[i]] == 0:
            order[i], order[last] = order[last], order[i]
            last -= 1
        else:
            i += 1
    return order, last + 1


def do_nms_obj(boxes, thresh):
    """darknet's do_nms_obj: the live boxes stably sorted by objectness; a box overlapping a
    kept one by IoU > thresh loses its objectness and probabilities. Returns the order."""
    order, total = zero_objectness_last(boxes.objectness)
    live = order[:total]
    live = live[np.argsort(-boxes.objectness[live], kind="stable")]
    for i, keep in enumerate(live):
        if boxes.objectness[keep] == 0:
            continue
        rest = live[i + 1:]
        rest = rest[boxes.objectness[rest] != 0]
        hit = rest[box_iou(boxes.xywh[keep], boxes.xywh[rest]) > thresh]
        boxes.objectness[hit] = 0
        boxes.prob[hit] = 0
    order[:total] = live
    return order


def do_nms_sort(boxes, thresh):
    """darknet's do_nms_sort; returns the box order it leaves and zeroes suppressed probs.

    Boxes with objectness 0 are swapped to the end exactly as darknet's loop does; then per
    class a stable sort by descending probability (glibc's qsort is a merge sort) and greedy
    suppression of later boxes with IoU > thresh. Classes where no box has a probability are
    skipped: their stable sort would leave the order unchanged.
    """
    prob = boxes.prob
    order, total = zero_objectness_last(boxes.objectness)
    live = order[:total]
    for cls in np.nonzero((prob[live] != 0).any(axis=0))[0]:
        live = live[np.argsort(-prob[live, cls], kind="stable")]
        scores = prob[live, cls]
        for i in range(int(np.count_nonzero(scores))):
            if prob[live[i], cls] == 0:
                continue
            rest = live[i + 1:]
            suppress = rest[box_iou(boxes.xywh[live[i]], boxes.xywh[rest]) > thresh]
            prob[suppress, cls] = 0
    order[:total] = live
    return order


def detections(boxes, order=None):
    """Detection objects in `order` (darknet's array order after NMS)."""
    order = np.arange(len(boxes.prob)) if order is None else order
    return [Detection(*map(float, boxes.xywh[i]), prob=boxes.prob[i],
                      objectness=float(boxes.objectness[i]), index=int(i)) for i in order]


def labelled(dets, thresh):
    """(detection, class, prob) for every class above thresh, in draw_detections order."""
    return [(det, int(cls), float(det.prob[cls]))
            for det in dets for cls in np.nonzero(det.prob > thresh)[0]]
