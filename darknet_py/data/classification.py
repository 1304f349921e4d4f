"""One classification training sample as darknet's load_data_augment makes it: a random
rotated crop, a random flip and HSV distortion; the label is the class whose name occurs
in the image path (darknet's fill_truth, strstr on the path)."""
import numpy as np

from .. import log
from ..image import load_image
from .augment import flip_image, random_augment_image, random_distort_image

def class_truth(path, labels):
    """One-hot truth: every label that occurs in the path is set (darknet warns when not
    exactly one does)."""
    truth = np.zeros(len(labels), dtype=np.float32)
    for index, label in enumerate(labels):
        if label in path:
            truth[index] = 1
    if truth.sum() != 1:
        log.warn_once(("labels", path), f"Too many or too few labels: {int(truth.sum())}, "
                                        f"{path}")
    return truth


def load_classification_sample(path, labels, size, min_size, max_size, angle, aspect, hue,
                               saturation, exposure, rng):
    im = load_image(path, exact=False)
    crop = random_augment_image(im, rng, angle, aspect, min_size, max_size, size, size)
    if rng.integers(2):
        crop = flip_image(crop)
    crop = random_distort_image(crop, rng, hue, saturation, exposure)
    return crop, class_truth(path, labels)
