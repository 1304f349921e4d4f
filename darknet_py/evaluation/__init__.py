"""Evaluation: average precision (ap), dimension clusters (anchors) and the result files of
`detector valid` (writers). Ground truth is read by darknet_py.data.labels, shared with
training; evaluation may import data, never the reverse. The commands that use these are in
darknet_py.cli.evaluate."""
from .anchors import Clusters, avg_iou, iou_wh, kmeans_euclidean, kmeans_iou
from .ap import ClassAP, ScoredBox, TruthBox, class_ap, evaluate, interpolated_ap, mean_ap
from .writers import (COCO_IDS, coco_image_id, coco_lines, comp4_records, format_detection_line,
                      imagenet_lines)

__all__ = ["Clusters", "avg_iou", "iou_wh", "kmeans_euclidean", "kmeans_iou", "ClassAP",
           "ScoredBox", "TruthBox", "class_ap", "evaluate", "interpolated_ap", "mean_ap",
           "COCO_IDS", "coco_image_id", "coco_lines", "comp4_records", "format_detection_line",
           "imagenet_lines"]
