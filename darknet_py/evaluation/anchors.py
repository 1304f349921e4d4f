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


def _seed_centroids(boxes, k, distance, rng):
    """k-means++ seeding: each new centroid is a box drawn with probability proportional to
    its squared distance to the nearest centroid so far, which spreads the starts out and
    makes few restarts enough."""
    centroids = [boxes[rng.integers(len(boxes))]]
    for _ in range(1, k):
        nearest = distance(boxes, np.array(centroids)).min(axis=1) ** 2
        total = nearest.sum()
        if total <= 0:   # fewer distinct boxes than k: repeat one, it will stay empty
            centroids.append(boxes[rng.integers(len(boxes))])
            continue
        centroids.append(boxes[rng.choice(len(boxes), p=nearest / total)])
    return np.array(centroids, np.float64)


def _lloyd(boxes, centroids, distance, max_iter):
    """Alternate assignment and mean update until the assignment no longer changes. An
    emptied cluster is moved onto the box farthest from its own centroid, so k anchors come
    out (a duplicate anchor would waste one of the region layer's predictors)."""
    assignment = None
    for iteration in range(1, max_iter + 1):
        dist = distance(boxes, centroids)
        new_assignment = dist.argmin(axis=1)
        if assignment is not None and np.array_equal(new_assignment, assignment):
            return centroids, assignment, iteration
        assignment = new_assignment
        own = dist[np.arange(len(boxes)), assignment]
        for cluster in range(len(centroids)):
            members = assignment == cluster
            if members.any():
                centroids[cluster] = boxes[members].mean(axis=0)
            else:
                farthest = int(own.argmax())
                centroids[cluster] = boxes[farthest]
                own[farthest] = -1.0
    return centroids, distance(boxes, centroids).argmin(axis=1), max_iter


def _kmeans(boxes, k, distance, score, seed, restarts, max_iter):
    boxes = np.asarray(boxes, np.float64).reshape(-1, 2)
    if k < 1:
        raise DarknetError(f"number of clusters must be at least 1, found {k}")
    if len(boxes) < k:
        raise DarknetError(f"{len(boxes)} boxes cannot make {k} clusters")
    if (boxes <= 0).any():
        raise DarknetError("box sizes must be positive (drop zero-area boxes first)")
    rng = np.random.default_rng(seed)   # one stream for all restarts: same seed, same table
    best = None
    for restart in range(restarts):
        centroids = _seed_centroids(boxes, k, distance, rng)
        centroids, _, iterations = _lloyd(boxes, centroids, distance, max_iter)
        value = score(boxes, centroids)
        if best is None or value > best[0]:
            best = (value, centroids.copy(), restart, iterations)
    _, centroids, restart, iterations = best
    centroids = centroids[np.argsort(centroids[:, 0] * centroids[:, 1], kind="stable")]
    return Clusters(centroids, avg_iou(boxes, centroids), restart, iterations)


def kmeans_iou(boxes, k, seed=0, restarts=10, max_iter=300):
    """The paper's dimension clusters: the restart with the best average IoU wins."""
    return _kmeans(boxes, k, _iou_distance, avg_iou, seed, restarts, max_iter)


def kmeans_euclidean(boxes, k, seed=0, restarts=10, max_iter=300):
    """Standard k-means on (w, h) for comparison: the restart with the smallest sum of squared
    errors wins (its own objective); the reported avg_iou is then measured like the IoU one."""
    def neg_sse(points, centroids):
        return -float(_euclidean_distance(points, centroids).min(axis=1).sum())
    return _kmeans(boxes, k, _euclidean_distance, neg_sse, seed, restarts, max_iter)
