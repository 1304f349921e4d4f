"""One classification training sample as darknet's load_data_augment makes it: a random
rotated crop, a random flip and HSV distortion; the label is the class whose name occurs
in the image path (darknet's fill_truth, strstr on the path). With a WordTree (`tree=` in
the .data file) the truth is darknet's fill_hierarchy of it."""
import numpy as np

from .. import log
from ..image import load_image
from ..settings import SECRET_NUM
from .augment import flip_image, random_augment_image, random_distort_image


def class_truth(path, labels, tree=None):
    """One-hot truth: every label that occurs in the path is set (darknet warns when not
    exactly one does); with a tree, fill_hierarchy's targets."""
    truth = np.zeros(len(labels), dtype=np.float32)
    for index, label in enumerate(labels):
        if label in path:
            truth[index] = 1
    if truth.sum() != 1:
        log.warn_once(("labels", path), f"Too many or too few labels: {int(truth.sum())}, "
                                        f"{path}")
    if tree is not None:
        fill_hierarchy(truth, tree)
    return truth


def fill_hierarchy(truth, tree):
    """darknet's fill_hierarchy, in place: every ancestor of a true label is true; a
    sibling group with no true member is masked (SECRET_NUM: no gradient, no loss in the
    tree softmax), so the loss reaches only the groups on the labels' paths."""
    for label in list(np.nonzero(truth[:tree.n])[0]):
        parent = tree.parent[label]
        while parent >= 0:
            truth[parent] = 1
            parent = tree.parent[parent]
    for offset, size in zip(tree.group_offset, tree.group_size):
        group = truth[offset:offset + size]
        if not group.any():
            group[...] = SECRET_NUM
    return truth


def load_classification_sample(path, labels, size, min_size, max_size, angle, aspect, hue,
                               saturation, exposure, rng, tree=None):
    im = load_image(path, exact=False)
    crop = random_augment_image(im, rng, angle, aspect, min_size, max_size, size, size)
    if rng.integers(2):
        crop = flip_image(crop)
    crop = random_distort_image(crop, rng, hue, saturation, exposure)
    return crop, class_truth(path, labels, tree)
