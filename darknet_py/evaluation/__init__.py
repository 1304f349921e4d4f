"""Evaluation and dataset tools: average precision (ap), dimension clusters (anchors) and
ground truth readers (labels). The commands that use them are in darknet_py.cli.evaluate."""
from .anchors import Clusters, avg_iou, iou_wh, kmeans_euclidean, kmeans_iou
from .ap import ClassAP, ScoredBox, TruthBox, class_ap, evaluate, interpolated_ap, mean_ap
from .labels import (Labels, label_path, read_image_labels, read_label_file, read_voc_xml)

__all__ = ["Clusters", "avg_iou", "iou_wh", "kmeans_euclidean", "kmeans_iou", "ClassAP",
           "ScoredBox", "TruthBox", "class_ap", "evaluate", "interpolated_ap", "mean_ap",
           "Labels", "label_path", "read_image_labels", "read_label_file", "read_voc_xml"]
