"""YOLO9000 pieces: darknet's tree files, hierarchical softmax gradients (finite
differences), a joint detection + classification step, and 9k.names detections."""
import numpy as np
import pytest

import darknet_py
from darknet_py.config import parse_cfg_text
from darknet_py.layers.cost import SECRET_NUM
from darknet_py.network import Network
from darknet_py.tree import read_map, read_tree, tree_from_parents, write_tree
from darknet_py.region_loss import CLASS_ONLY_MARK
from conftest import DARKNET, need_shared

# a small tree: two roots (0, 1); 0 has children 2, 3, 4; 3 has children 5, 6
PARENTS = [-1, -1, 0, 0, 0, 3, 3]


@pytest.fixture
def small_tree(tmp_path):
    tree = tree_from_parents([f"n{i}" for i in range(len(PARENTS))], PARENTS)
    path = tmp_path / "small.tree"
    write_tree(tree, str(path))
    return path


def test_darknet_9k_tree_and_maps_load_exactly():
    tree = read_tree(str(need_shared("darknet/data/9k.tree")))
    names = (DARKNET / "data/9k.names").read_text().splitlines()
    assert tree.n == 9418 == len(names)
    assert tree.group_offset[0] == 0 and tree.group_size.sum() == tree.n
    # siblings are contiguous and every child group points back at its parent
    for group, (start, size) in enumerate(zip(tree.group_offset, tree.group_size)):
        parents = set(tree.parent[start:start + size])
        assert len(parents) == 1
        parent = parents.pop()
        assert parent == -1 or tree.child[parent] == group
    coco = read_map(str(DARKNET / "data/coco9k.map"))
    assert len(coco) == 80 and all(0 <= i < tree.n for i in coco)
    assert names[coco[0]] == "person" or "person" in names[coco[0]]


def test_tree_write_read_round_trip(small_tree):
    tree = read_tree(str(small_tree))
    assert list(tree.parent) == PARENTS
    assert list(tree.group_offset) == [0, 2, 5] and list(tree.group_size) == [2, 3, 2]
    assert list(tree.child) == [1, -1, -1, 2, -1, -1, -1]


def _softmax_net(tree_path):
    text = (f"[net]\nwidth=1\nheight=1\nchannels={len(PARENTS)}\nbatch=1\n"
            f"[softmax]\ntree={tree_path}\n")
    return Network(parse_cfg_text(text, "tree.cfg"), "tree.cfg")


def test_tree_softmax_gradient_matches_finite_differences(small_tree):
    """darknet's delta (truth - p, masked where the truth is SECRET_NUM) is -dLoss/dx for
    the loss -sum(truth * log p) over the groups the label reaches."""
    net = _softmax_net(small_tree)
    layer = net.layers[0]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, len(PARENTS), 1, 1)).astype(np.float32)
    # label 5: its path is 5 <- 3 <- 0; groups on the path are one-hot, the rest masked
    truth = np.full((1, len(PARENTS)), SECRET_NUM, np.float32)
    truth[0, [0, 1]] = [1, 0]
    truth[0, [2, 3, 4]] = [0, 1, 0]
    truth[0, [5, 6]] = [1, 0]
    step = net.step(train=True, truth=truth)
    layer.forward(x, step)
    delta = layer.delta.reshape(-1).astype(np.float64)

    def loss(values):
        step = net.step(train=True, truth=truth)
        layer.forward(values.astype(np.float32), step)
        return layer.cost

    step = 1e-2
    for i in range(len(PARENTS)):
        up, down = x.astype(np.float64).copy(), x.astype(np.float64).copy()
        up[0, i] += step
        down[0, i] -= step
        numeric = (loss(up) - loss(down)) / (2 * step)
        assert -delta[i] == pytest.approx(numeric, abs=2e-3), i
    assert delta[[0, 1]].sum() == pytest.approx(0, abs=1e-6)   # softmax within the group


def _tree_detector(tree_path):
    text = ("[net]\nwidth=32\nheight=32\nchannels=3\nbatch=2\nlearning_rate=0\n"
            "[convolutional]\nfilters=24\nsize=1\nstride=1\nactivation=linear\n"
            "[maxpool]\nsize=16\nstride=16\n"
            f"[region]\nanchors=1,1,2,2\nnum=2\nclasses={len(PARENTS)}\ncoords=4\n"
            f"softmax=1\ntree={tree_path}\nobject_scale=5\nnoobject_scale=1\n")
    net = Network(parse_cfg_text(text, "joint.cfg"), "joint.cfg", seed=5)
    net.ensure_initialized()
    net.seen = 20000   # past the anchor-prior phase
    return net


def test_joint_step_classification_image_has_no_coordinate_loss(small_tree):
    net = _tree_detector(small_tree)
    region = net.layers[-1]
    x = np.random.default_rng(1).random((2, 3, 32, 32), dtype=np.float32)
    truth = np.zeros((2, 150), np.float32)
    truth[0, :5] = [0.3, 0.6, 0.4, 0.5, 6]              # detection image: class 6 (n6)
    truth[1, :5] = [CLASS_ONLY_MARK] * 4 + [5]          # classification image: class 5
    net.train_step(x, truth)
    # region deltas of the last minibatch, before the logistic gradient: recompute them
    step = net.step(train=True, truth=truth)
    out = x
    for layer in net.layers:
        out = layer.forward(out, step)
    delta = region.delta.reshape(2, 2, region.entries, -1)
    cls_img = delta[1]
    assert np.all(cls_img[:, 0:4] == 0)                  # no coordinate loss
    touched = np.nonzero(np.any(cls_img[:, 5:] != 0, axis=1))
    assert len(set(zip(*touched))) == 1                  # class loss at one box only
    anchor, cell = next(zip(*touched))
    classes = cls_img[anchor, 5:, cell]
    # groups on the path of 5 (5 <- 3 <- 0): {0, 1}, {2, 3, 4}, {5, 6}: all set; others none
    assert np.all(classes[[0, 1, 2, 3, 4, 5, 6]] != 0)
    assert classes[5] > 0 and classes[3] > 0 and classes[0] > 0
    objectness = cls_img[:, 4]
    assert objectness[anchor, cell] == 0 and np.all(np.delete(objectness, anchor * 4 + cell) < 0)
    det_img = delta[0]
    assert np.count_nonzero(det_img[:, 0:4]) == 4        # one box gets coordinates


def test_joint_step_updates_only_reached_classes(small_tree):
    """With a label deep in the tree, the class loss stays at or above its level: a
    classification image labelled 3 never touches the group {5, 6} below it."""
    net = _tree_detector(small_tree)
    region = net.layers[-1]
    x = np.random.default_rng(2).random((2, 3, 32, 32), dtype=np.float32)
    truth = np.zeros((2, 150), np.float32)
    truth[:, :5] = [CLASS_ONLY_MARK] * 4 + [3]
    step = net.step(train=True, truth=truth)
    out = x
    for layer in net.layers:
        out = layer.forward(out, step)
    delta = region.delta.reshape(2, 2, region.entries, -1)
    assert np.all(delta[:, :, 5 + 5] == 0) and np.all(delta[:, :, 5 + 6] == 0)
    assert np.any(delta[:, :, 5 + 3] != 0)


def test_yolo9000_detections_use_9k_names(in_darknet_dir, tmp_path):
    """detector test end to end with the yolo9000 tree region (the slim oracle net at 160)."""
    from conftest import ORACLE
    case = ORACLE / "yolo9000-slim_dog_160"
    net = darknet_py.load_network(str(case / "effective.cfg"),
                                  str(ORACLE / "yolo9000-slim_dog/weights.weights"), batch=1)
    names = (DARKNET / "data/9k.names").read_text().splitlines()
    found = darknet_py.detect(net, "data/dog.jpg", thresh=0.5, names=names)
    reference = [line.split(maxsplit=12)[12].rsplit(": ", 1)[0] for line in
                 (case / "detections_t0.50.txt").read_text().splitlines()
                 if not line.startswith("#")]
    assert [box.name for box in found] == reference
