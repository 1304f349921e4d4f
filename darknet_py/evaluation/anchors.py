"""Dimension clusters (YOLOv2 paper, section "Dimension Clusters"): k-means on the (w, h) of
the training boxes with the distance d(box, centroid) = 1 - IoU(box, centroid), both boxes
placed on the same centre, so that the priors are chosen for overlap and not for absolute
size (Euclidean distance lets big boxes dominate the error).

Boxes and anchors are (N, 2) arrays of (w, h) in any unit; IoU is unchanged when both axes
are scaled, so the IoU clusters found in relative units are the same clusters in grid units.
Euclidean k-means depends on the unit: callers give it the unit they paste into the cfg.
"""
from dataclasses import dataclass

import numpy as np

from ..errors import DarknetError


@dataclass
class Clusters:
    """anchors (k, 2) sorted by area, the mean over boxes of the best IoU with an anchor, the
    restart that produced them and the iterations it needed."""
    anchors: np.ndarray
    avg_iou: float
    restart: int
    iterations: int


def iou_wh(boxes, anchors):
    """(N, K) IoU of every box with every anchor when they share a centre."""
    boxes = np.asarray(boxes, np.float64)
    anchors = np.asarray(anchors, np.float64)
    inter = (np.minimum(boxes[:, None, 0], anchors[None, :, 0])
             * np.minimum(boxes[:, None, 1], anchors[None, :, 1]))
    union = (boxes[:, 0] * boxes[:, 1])[:, None] + (anchors[:, 0] * anchors[:, 1])[None] - inter
    return inter / union


def avg_iou(boxes, anchors):
    """Mean over boxes of the IoU with the closest anchor (the paper's Table 1 figure)."""
    return float(iou_wh(boxes, anchors).max(axis=1).mean())


def _iou_distance(boxes, centroids):
    return 1.0 - iou_wh(boxes, centroids)


def _euclidean_distance(boxes, centroids):
    return ((boxes[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)


# Internally the boxes are the distinct (w, h) with a count each: labels made from integer
# pixels repeat the same sizes a lot (BCCD: 2804 boxes, 1715 sizes), and every step below is
# the same on the weighted distinct sizes as on the full list.

def _seed_centroids(boxes, counts, k, distance, rng):
    """k-means++ seeding: each new centroid is a box drawn with probability proportional to
    its squared distance to the nearest centroid so far, which spreads the starts out and
    makes few restarts enough."""
    centroids = [boxes[rng.choice(len(boxes), p=counts / counts.sum())]]
    for _ in range(1, k):
        weight = counts * distance(boxes, np.array(centroids)).min(axis=1) ** 2
        total = weight.sum()
        if total <= 0:   # fewer distinct boxes than k: repeat one, it will stay empty
            centroids.append(boxes[rng.integers(len(boxes))])
            continue
        centroids.append(boxes[rng.choice(len(boxes), p=weight / total)])
    return np.array(centroids, np.float64)


def _lloyd(boxes, counts, centroids, distance, max_iter):
    """Alternate assignment and mean update until the assignment no longer changes. An
    emptied cluster is moved onto the box farthest from its own centroid, so k anchors come
    out (a duplicate anchor would waste one of the region layer's predictors)."""
    k = len(centroids)
    assignment = None
    for iteration in range(1, max_iter + 1):
        dist = distance(boxes, centroids)
        new_assignment = dist.argmin(axis=1)
        if assignment is not None and np.array_equal(new_assignment, assignment):
            return centroids, iteration
        assignment = new_assignment
        members = np.bincount(assignment, weights=counts, minlength=k)
        for axis in (0, 1):
            sums = np.bincount(assignment, weights=counts * boxes[:, axis], minlength=k)
            centroids[:, axis] = np.where(members > 0, sums / np.maximum(members, 1),
                                          centroids[:, axis])
        own = dist[np.arange(len(boxes)), assignment]
        for cluster in np.nonzero(members == 0)[0]:
            farthest = int(own.argmax())
            centroids[cluster] = boxes[farthest]
            own[farthest] = -1.0
    return centroids, max_iter


# Moves tried by the refinement: scale w, h or both by exp(+-step).
_DIRECTIONS = np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [-1, -1], [1, -1], [-1, 1]],
                       np.float64)


def _refine_centroid(members, counts, centroid, tolerance=1e-4):
    """The (w, h) near `centroid` that maximises the members' total IoU: a pattern search in
    log scale that only accepts improvements. The mean is what k-means' update step uses,
    but it is not the best shape for IoU (with one cluster it is all k-means gives)."""
    best = counts @ iou_wh(members, centroid[None])[:, 0]
    step = 0.1
    while step > tolerance:
        candidates = centroid * np.exp(step * _DIRECTIONS)
        scores = counts @ iou_wh(members, candidates)
        choice = int(scores.argmax())
        if scores[choice] > best:
            best, centroid = scores[choice], candidates[choice]
        else:
            step /= 2
    return centroid


def _refine(boxes, counts, centroids, max_rounds=50):
    """Alternate best-IoU assignment and _refine_centroid until the assignment is stable.
    Both steps can only raise the average IoU, so this never undoes what k-means found."""
    assignment = iou_wh(boxes, centroids).argmax(axis=1)
    for _ in range(max_rounds):
        for cluster in range(len(centroids)):
            chosen = assignment == cluster
            if chosen.any():
                centroids[cluster] = _refine_centroid(boxes[chosen], counts[chosen],
                                                      centroids[cluster])
        new_assignment = iou_wh(boxes, centroids).argmax(axis=1)
        if np.array_equal(new_assignment, assignment):
            break
        assignment = new_assignment
    return centroids


def _weighted_avg_iou(boxes, counts, centroids):
    return float(counts @ iou_wh(boxes, centroids).max(axis=1) / counts.sum())


def _weighted_neg_sse(boxes, counts, centroids):
    return -float(counts @ _euclidean_distance(boxes, centroids).min(axis=1))


def _kmeans(boxes, k, distance, score, seed, restarts, max_iter, refine=False):
    boxes = np.asarray(boxes, np.float64).reshape(-1, 2)
    if k < 1:
        raise DarknetError(f"number of clusters must be at least 1, found {k}")
    if len(boxes) < k:
        raise DarknetError(f"{len(boxes)} boxes cannot make {k} clusters")
    if (boxes <= 0).any():
        raise DarknetError("box sizes must be positive (drop zero-area boxes first)")
    distinct, counts = np.unique(boxes, axis=0, return_counts=True)
    counts = counts.astype(np.float64)
    rng = np.random.default_rng(seed)   # one stream for all restarts: same seed, same table
    best = None
    for restart in range(restarts):
        centroids = _seed_centroids(distinct, counts, k, distance, rng)
        centroids, iterations = _lloyd(distinct, counts, centroids, distance, max_iter)
        if refine:
            centroids = _refine(distinct, counts, centroids)
        value = score(distinct, counts, centroids)
        if best is None or value > best[0]:
            best = (value, centroids.copy(), restart, iterations)
    _, centroids, restart, iterations = best
    centroids = centroids[np.argsort(centroids[:, 0] * centroids[:, 1], kind="stable")]
    return Clusters(centroids, avg_iou(boxes, centroids), restart, iterations)


def kmeans_iou(boxes, k, seed=0, restarts=10, max_iter=300, refine=True):
    """The paper's dimension clusters: k-means with d = 1 - IoU (mean update), then, with
    refine, each centroid moved to the shape that maximises its members' IoU; the restart
    with the best average IoU wins. refine=False gives plain k-means as in the paper."""
    return _kmeans(boxes, k, _iou_distance, _weighted_avg_iou, seed, restarts, max_iter, refine)


def kmeans_euclidean(boxes, k, seed=0, restarts=10, max_iter=300):
    """Standard k-means on (w, h) for comparison: the restart with the smallest sum of squared
    errors wins (its own objective); the reported avg_iou is then measured like the IoU one."""
    return _kmeans(boxes, k, _euclidean_distance, _weighted_neg_sse, seed, restarts, max_iter)
