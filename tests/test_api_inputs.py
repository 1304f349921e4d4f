"""The Python API as people call it: every image input gives the same boxes, a list runs one
batched forward, names come from a .data file, pixel boxes are the relative boxes times the
image size, classify keeps its (index, prob) tuples and adds names."""
import numpy as np
import pytest

import darknet_py
from darknet_py import api
from conftest import DARKNET, ORACLE, SHARED, need_shared

CFG = ORACLE / "cfg/ttt4-anchors1.cfg"
WEIGHTS = SHARED / "weights/ttt4_minloss.weights"
PHOTOS = ["dog.jpg", "eagle.jpg", "person.jpg"]


@pytest.fixture(scope="module")
def net():
    need_shared("weights/ttt4_minloss.weights")
    need_shared("oracle/cfg/ttt4-anchors1.cfg")
    return darknet_py.load_network(str(CFG), str(WEIGHTS), batch=1)


@pytest.fixture
def data_file(tmp_path):
    (tmp_path / "two.names").write_text("thing\nother\n")
    data = tmp_path / "two.data"
    data.write_text(f"classes=2\nnames={tmp_path / 'two.names'}\n")
    return data


def _key(boxes):
    return [(b.class_id, b.name, round(b.prob, 6), round(b.x, 6), round(b.y, 6), round(b.w, 6),
             round(b.h, 6)) for b in boxes]


def test_every_input_kind_gives_the_same_boxes(net, data_file, tmp_path):
    need_shared("darknet/data/dog.jpg")
    from PIL import Image
    chw = darknet_py.load_image(DARKNET / "data/dog.jpg")
    assert chw.dtype == np.float32 and chw.shape == (3, 576, 768)
    hwc = np.round(chw * 255).astype(np.uint8).transpose(1, 2, 0)
    png = tmp_path / "dog.png"
    Image.fromarray(hwc).save(png)
    reference = darknet_py.detect(net, str(png), thresh=0.2, names=str(data_file))
    assert reference and all(b.name in ("thing", "other") for b in reference)
    for image, bgr in [(chw, False), (hwc, False), (Image.open(png), False),
                       (np.ascontiguousarray(hwc[:, :, ::-1]), True), (png, False)]:
        found = darknet_py.detect(net, image, thresh=0.2, names=str(data_file), bgr=bgr)
        assert _key(found) == _key(reference)
    # the JPEG itself decodes to exactly these pixels (stb_image arithmetic)
    assert _key(darknet_py.detect(net, str(DARKNET / "data/dog.jpg"), thresh=0.2,
                                  names=str(data_file))) == _key(reference)


def test_pixel_boxes_are_relative_boxes_times_image_size(net):
    need_shared("darknet/data/eagle.jpg")
    path = DARKNET / "data/eagle.jpg"
    _, h, w = darknet_py.load_image(path).shape
    found = darknet_py.detect(net, str(path), thresh=0.2)
    assert found
    for b in found:
        assert b.left == pytest.approx((b.x - b.w / 2) * w)
        assert b.right == pytest.approx((b.x + b.w / 2) * w)
        assert b.top == pytest.approx((b.y - b.h / 2) * h)
        assert b.bottom == pytest.approx((b.y + b.h / 2) * h)
        assert b.width == pytest.approx(b.w * w) and b.height == pytest.approx(b.h * h)


def test_a_list_is_one_batched_forward(net):
    paths = [str(need_shared("darknet/data", name)) for name in PHOTOS]
    singles = [darknet_py.detect(net, path, thresh=0.2) for path in paths]
    calls = []
    forward = net.forward
    net.forward = lambda x: (calls.append(x.shape), forward(x))[1]
    try:
        batched = darknet_py.detect(net, paths, thresh=0.2)
    finally:
        del net.forward
    assert calls == [(3, 3, 360, 360)]
    assert len(batched) == 3
    for one, many in zip(singles, batched):
        assert [b.class_id for b in one] == [b.class_id for b in many]
        for a, b in zip(one, many):
            assert [a.prob, a.x, a.y, a.w, a.h] == pytest.approx([b.prob, b.x, b.y, b.w, b.h],
                                                                 abs=1e-4)


def test_load_names_from_names_and_data_files(data_file):
    assert darknet_py.load_names(data_file) == ["thing", "other"]
    assert darknet_py.load_names(data_file.with_name("two.names")) == ["thing", "other"]
    from conftest import ROOT
    coco = darknet_py.load_names(ROOT / "cfg/coco.data")   # data/coco.names ships with us
    assert len(coco) == 80 and coco[16] == "dog"
    assert len(darknet_py.load_names(ROOT / "cfg/voc.data")) == 20
    # darknet's shortnames list covers all 21842 ImageNet synsets; 1k nets use its head
    assert len(darknet_py.load_names(ROOT / "cfg/imagenet1k.data")) == 21842
    assert len(darknet_py.load_names(ROOT / "cfg/combine9k.data")) == 9418


def test_classify_keeps_index_prob_and_adds_names():
    need_shared("weights/tiny.weights")
    from conftest import ROOT
    net = darknet_py.load_network(str(ORACLE / "cfg/tiny-darknet_ros.cfg"),
                                  str(SHARED / "weights/tiny.weights"), batch=1)
    path = str(DARKNET / "data/eagle.jpg")
    plain = darknet_py.classify(net, path, top=3)
    named = darknet_py.classify(net, path, top=3, names=ROOT / "cfg/imagenet1k.data")
    assert [tuple(c) for c in plain] == [tuple(c) for c in named]
    index, prob = named[0]
    assert (named[0].index, named[0].prob) == (index, prob)
    names = darknet_py.load_names(ROOT / "data/imagenet.shortnames.list")
    assert [c.name for c in named] == [names[c.index] for c in named]
    batch = darknet_py.classify(net, [path, darknet_py.load_image(path)], top=3)
    assert [c.index for c in batch[0]] == [c.index for c in batch[1]] == [c.index for c in plain]


def test_bad_image_inputs_fail_clearly():
    with pytest.raises(darknet_py.DarknetError):
        api.as_image(42)
    with pytest.raises(darknet_py.DarknetError):
        api.as_image(np.zeros((4, 5, 7), np.uint8))
