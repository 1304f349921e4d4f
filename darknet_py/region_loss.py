"""The region layer's loss: darknet's forward_region_layer (training part), on the CPU.

Given the activated output (batch, anchors, entries, h*w) and the truth (batch, 30*5:
x y w h class per box, relative; a box with x == 0 ends the list), returns the delta
(-dLoss/doutput, darknet's sign), the cost |delta|^2 and the statistics darknet prints.
Everything is float32 where darknet stores floats, so the numbers match darknet's.
"""
import numpy as np

from .box import box_iou, region_box_grid
from .settings import MAX_TRUTHS, PRIOR_SEEN

F32 = np.float32
F64 = np.float64
# A truth box at x, y > 100000 marks an image that only has a class (correct_boxes turns a
# label at x = y = 0 into 999999): YOLO9000's joint training with classification data.
CLASS_ONLY = 100000
CLASS_ONLY_MARK = 999999


def truth_boxes(truth_row, coords):
    """The truths of one image: rows of x, y, w, h, class up to the first with x == 0."""
    boxes = truth_row[:MAX_TRUTHS * (coords + 1)].reshape(-1, coords + 1)
    ends = np.nonzero(boxes[:, 0] == 0)[0]
    return boxes[:ends[0]] if len(ends) else boxes


def region_boxes_grid(layer, out_b):
    """get_region_box for every anchor and cell of one image: (n, hw, 4) float32."""
    return region_box_grid(out_b, layer.biases, layer.w, layer.h)


def box_deltas(layer, truth, out_b, delta_b, anchor, cell, col, row, scale):
    """delta_region_box: targets for x, y (cell offsets) and w, h (log of size/anchor)."""
    w, h = layer.w, layer.h
    bias_w, bias_h = layer.biases[2 * anchor], layer.biases[2 * anchor + 1]
    tx = F32(truth[0] * F32(w)) - F32(col)
    ty = F32(truth[1] * F32(h)) - F32(row)
    tw = F32(np.log(F64(F32(truth[2] * F32(w)) / bias_w)))
    th = F32(np.log(F64(F32(truth[3] * F32(h)) / bias_h)))
    targets = np.array([tx, ty, tw, th], dtype=F32)
    delta_b[anchor, 0:4, cell] = F32(scale) * (targets - out_b[anchor, 0:4, cell])


def class_deltas(layer, out_b, delta_b, anchor, cell, cls, tag):
    """delta_region_class; returns the probability given to the true class (for avg_cat)."""
    start, scale = layer.coords + 1, F32(layer.class_scale)
    probs = out_b[anchor, start:start + layer.classes, cell]
    deltas = delta_b[anchor, start:start + layer.classes, cell]
    tree = layer.tree
    if tree is not None:
        pred = F32(1)
        while cls >= 0:
            pred = F32(pred * probs[cls])
            group = tree.group[cls]
            first = tree.group_offset[group]
            span = slice(first, first + tree.group_size[group])
            deltas[span] = scale * (F32(0) - probs[span])
            deltas[cls] = scale * (F32(1) - probs[cls])
            cls = tree.parent[cls]
        delta_b[anchor, start:start + layer.classes, cell] = deltas
        return float(pred)
    if deltas[0] and tag:
        # darknet: with logistic classes, a class delta already here is only topped up
        delta_b[anchor, start + cls, cell] = scale * (F32(1) - probs[cls])
        return 0.0
    target = np.zeros(layer.classes, dtype=F32)
    target[cls] = 1
    delta_b[anchor, start:start + layer.classes, cell] = scale * (target - probs)
    return float(probs[cls])


def region_loss(layer, out, truth, seen):
    """out: activated output (batch, n, entries, hw). Returns delta, cost, stats."""
    batch, n, hw = out.shape[0], layer.n_anchors, layer.h * layer.w
    coords, obj = layer.coords, layer.coords
    delta = np.zeros_like(out)
    avg_iou = recall = avg_cat = avg_obj = avg_anyobj = 0.0
    count = class_count = 0
    for b in range(batch):
        out_b, delta_b = out[b], delta[b]
        truths = truth_boxes(truth[b], coords)
        if layer.tree is not None:
            marked = [t for t in truths if t[0] > CLASS_ONLY and t[1] > CLASS_ONLY]
            if marked:   # a classification image of a joint (YOLO9000) batch
                avg_cat += _class_only_deltas(layer, out_b, delta_b, int(marked[0][coords]))
                class_count += 1
                continue
        # -- every anchor and cell: no-object delta unless it already overlaps a truth
        preds = region_boxes_grid(layer, out_b).reshape(n * hw, 4)
        best_iou = np.zeros(n * hw, dtype=F32)
        for t in truths:
            best_iou = np.maximum(best_iou, box_iou(t[:4], preds))
        best_iou = best_iou.reshape(n, hw)
        objectness = out_b[:, obj]
        avg_anyobj += float(objectness.astype(F64).sum())
        target = F32(1) if layer.background else F32(0)
        no_obj = F32(layer.noobject_scale) * (target - objectness)
        delta_b[:, obj] = np.where(best_iou > F32(layer.thresh), F32(0), no_obj)
        if seen < PRIOR_SEEN:
            _prior_deltas(layer, out_b, delta_b)
        # -- every truth: the best anchor at its cell gets coordinate, object, class deltas
        for t in truths:
            col, row = int(F32(t[0] * F32(layer.w))), int(F32(t[1] * F32(layer.h)))
            cell = row * layer.w + col
            anchor = _best_anchor(layer, out_b, t, cell, col, row)
            pred = region_boxes_grid(layer, out_b)[anchor, cell]
            iou = float(box_iou(pred, t[None, :4])[0])
            coord_scale = F32(layer.coord_scale) * (F32(2) - F32(t[2] * t[3]))
            box_deltas(layer, t, out_b, delta_b, anchor, cell, col, row, coord_scale)
            recall += iou > 0.5
            avg_iou += iou
            score = out_b[anchor, obj, cell]
            avg_obj += float(score)
            goal = F32(iou) if layer.rescore else F32(1)
            if layer.background:
                goal = F32(0)
            delta_b[anchor, obj, cell] = F32(layer.object_scale) * (goal - score)
            cls = int(t[coords])
            if layer.map is not None:
                cls = layer.map[cls]
            avg_cat += class_deltas(layer, out_b, delta_b, anchor, cell, cls,
                                    tag=not layer.softmax)
            count += 1
            class_count += 1
    # darknet: pow(mag_array(delta), 2), mag_array a float running sum of squares, sqrt'd
    magnitude = F32(np.sqrt(F64(np.cumsum((delta * delta).reshape(-1), dtype=F32)[-1])))
    cost = float(F32(F64(magnitude) ** 2))
    stats = {
        "avg_iou": avg_iou / count if count else 0.0,
        "class": avg_cat / class_count if class_count else 0.0,
        "obj": avg_obj / count if count else 0.0,
        "no_obj": avg_anyobj / (hw * n * batch),
        "recall": recall / count if count else 0.0,
        "count": count,
    }
    return delta, cost, stats


def hierarchy_probability(probs, tree, cls):
    """get_hierarchy_probability: the product of conditional probabilities up to the root."""
    p = F32(1)
    while cls >= 0:
        p = F32(p * probs[cls])
        cls = tree.parent[cls]
    return p


def _class_only_deltas(layer, out_b, delta_b, cls):
    """darknet's classification-image branch: every box's objectness is pushed to 0; the box
    that gives the label the highest probability (objectness x tree probability) gets the
    class deltas along the label's path. darknet computes an objectness target of .3 there
    and then overwrites it with 0; we keep the 0."""
    n, hw, obj = layer.n_anchors, layer.h * layer.w, layer.coords
    start = layer.coords + 1
    objectness = out_b[:, obj]
    delta_b[:, obj] = F32(layer.noobject_scale) * (F32(0) - objectness)
    probs = out_b[:, start:start + layer.classes].transpose(0, 2, 1).reshape(n * hw, -1)
    best_p, best = F32(0), 0
    for box in range(n * hw):
        p = F32(objectness.reshape(-1)[box] * hierarchy_probability(probs[box], layer.tree, cls))
        if p > best_p:
            best_p, best = p, box
    anchor, cell = divmod(best, hw)
    avg_cat = class_deltas(layer, out_b, delta_b, anchor, cell, cls, tag=not layer.softmax)
    delta_b[anchor, obj, cell] = 0
    return avg_cat


def _prior_deltas(layer, out_b, delta_b):
    """While seen < 12800: every box is pulled toward its anchor centred in its cell."""
    cells = np.arange(layer.h * layer.w)
    col, row = cells % layer.w, cells // layer.w
    for anchor in range(layer.n_anchors):
        tx = F32(F32((col + 0.5) / layer.w) * F32(layer.w)) - col.astype(F32)
        ty = F32(F32((row + 0.5) / layer.h) * F32(layer.h)) - row.astype(F32)
        bias_w, bias_h = layer.biases[2 * anchor], layer.biases[2 * anchor + 1]
        tw = F32(np.log(F64(F32(F32(bias_w / F32(layer.w)) * F32(layer.w)) / bias_w)))
        th = F32(np.log(F64(F32(F32(bias_h / F32(layer.h)) * F32(layer.h)) / bias_h)))
        targets = np.stack([tx.astype(F32), ty.astype(F32),
                            np.full(len(cells), tw, F32), np.full(len(cells), th, F32)])
        delta_b[anchor, 0:4] = F32(0.01) * (targets - out_b[anchor, 0:4])


def _best_anchor(layer, out_b, truth, cell, col, row):
    """The anchor whose box (shape only: both centred at 0) overlaps the truth best; with
    bias_match the anchor's own size stands in for the predicted one."""
    shifted = np.array([0, 0, truth[2], truth[3]], dtype=F32)
    best_iou, best = F32(0), 0
    grid = region_boxes_grid(layer, out_b)
    for anchor in range(layer.n_anchors):
        pred = grid[anchor, cell].copy()
        if layer.bias_match:
            pred[2] = F32(layer.biases[2 * anchor] / F32(layer.w))
            pred[3] = F32(layer.biases[2 * anchor + 1] / F32(layer.h))
        pred[0] = pred[1] = 0
        iou = box_iou(pred, shifted[None])[0]
        if iou > best_iou:
            best_iou, best = iou, anchor
    return best
