"""The training data pipeline against darknet's formulas: box correction, placement,
HSV distortion, label rules; and the reproducibility a seed promises."""
import numpy as np
import pytest

from darknet_py.data.augment import distort_image, hsv_to_rgb, place_image, rgb_to_hsv
from darknet_py.data.classification import class_truth
from darknet_py.data.detection import correct_boxes, fill_truth
from darknet_py.data.loader import BatchLoader


def test_correct_boxes_by_hand():
    # a box at x=.5 y=.5 w=.2 h=.4 placed at half size, shifted by (+.25, +.1) of the canvas:
    # darknet passes dx = -.25, dy = -.1, sx = sy = .5
    box = np.array([[0.5, 0.5, 0.2, 0.4]], np.float32)
    out = correct_boxes(box, -0.25, -0.1, 0.5, 0.5, flip=0)
    # left = .4*.5+.25 = .45, right = .6*.5+.25 = .55, top = .3*.5+.1 = .25, bottom = .45
    np.testing.assert_allclose(out[0], [0.5, 0.35, 0.1, 0.2], atol=1e-6)
    flipped = correct_boxes(box, -0.25, -0.1, 0.5, 0.5, flip=1)
    # mirrored: left = 1 - .55 = .45, right = 1 - .45 = .55
    np.testing.assert_allclose(flipped[0], [0.5, 0.35, 0.1, 0.2], atol=1e-6)
    clipped = correct_boxes(np.array([[0.1, 0.5, 0.4, 0.2]], np.float32), 0, 0, 1, 1, 0)
    # left = -.1 clamps to 0, right = .3: x = .15, w = .3
    np.testing.assert_allclose(clipped[0], [0.15, 0.5, 0.3, 0.2], atol=1e-6)


def test_fill_truth_drops_tiny_boxes_and_caps_at_max():
    classes = np.array([3, 1, 2])
    boxes = np.array([[.5, .5, .0005, .3], [.2, .2, .1, .1], [.7, .7, .2, .2]], np.float32)
    truth = fill_truth(classes, boxes, max_boxes=2)
    # the first box is under .001 wide; only the first two boxes are considered (max 2)
    np.testing.assert_allclose(truth[:10], [.2, .2, .1, .1, 1, 0, 0, 0, 0, 0])


def test_place_image_resamples_like_darknet():
    im = np.arange(2 * 2 * 3, dtype=np.float32).reshape(3, 2, 2) / 12
    canvas = np.full((3, 6, 6), 0.5, np.float32)
    place_image(im, 4, 4, 1, 2, canvas)
    # rx = x/4*2: x=1 -> .5, between columns 0 and 1: (im[0,0,0]+im[0,0,1])/2
    assert canvas[0, 2, 2] == pytest.approx((im[0, 0, 0] + im[0, 0, 1]) / 2)
    # x=3 -> rx=1.5: half of column 1, half of the (zero) column outside the image
    assert canvas[0, 2, 4] == pytest.approx(im[0, 0, 1] / 2)
    assert canvas[0, 0, 0] == 0.5 and canvas[0, 1, 2] == 0.5   # outside the placed area


def test_hsv_round_trip_and_distortion():
    rng = np.random.default_rng(0)
    im = rng.random((3, 5, 7), dtype=np.float32)
    np.testing.assert_allclose(hsv_to_rgb(rgb_to_hsv(im)), im, atol=1e-6)
    grey = np.full((3, 2, 2), 0.25, np.float32)
    assert np.all(rgb_to_hsv(grey)[:2] == 0)    # no hue, no saturation, no NaN
    red = np.zeros((3, 1, 1), np.float32)
    red[0] = 1
    shifted = distort_image(red, 1 / 3, 1, 1)   # hue + 1/3: red -> green
    np.testing.assert_allclose(shifted[:, 0, 0], [0, 1, 0], atol=1e-6)
    darker = distort_image(red, 0, 1, 0.5)      # exposure scales V
    np.testing.assert_allclose(darker[:, 0, 0], [0.5, 0, 0], atol=1e-6)


def test_class_from_path_as_darknet():
    labels = ["cat", "dog"]
    np.testing.assert_array_equal(class_truth("/data/train/dog/1.jpg", labels), [0, 1])


def test_seeded_loader_is_reproducible(tmp_path):
    from PIL import Image
    images = tmp_path / "images"
    labels = tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    paths = []
    for i in range(3):
        Image.fromarray((np.random.default_rng(i).random((40, 60, 3)) * 255).astype(np.uint8)
                        ).save(images / f"{i}.jpg")
        (labels / f"{i}.txt").write_text("0 0.5 0.5 0.3 0.4\n")
        paths.append(str(images / f"{i}.jpg"))
    params = dict(jitter=.2, hue=.1, saturation=1.5, exposure=1.5, max_boxes=30)
    first = BatchLoader("detection", paths, 4, params, seed=7, workers=0)
    second = BatchLoader("detection", paths, 4, params, seed=7, workers=2)
    for _ in range(2):
        x1, t1 = first.next_batch(32, 32)
        x2, t2 = second.next_batch(32, 32)
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(t1, t2)
    second.close()
    assert x1.shape == (4, 3, 32, 32) and t1.shape == (4, 150)
    assert np.all(t1[:, 4] == 0) and np.all(t1[:, 2] > 0)
