"""WordTree classifier training as darknet's: fill_hierarchy's targets (every ancestor of
the label true, groups off the label's path masked with SECRET_NUM) and the tree softmax's
masked delta on them."""
import io

import numpy as np
import pytest
from PIL import Image

import darknet_py
from darknet_py.data.classification import class_truth
from darknet_py.settings import SECRET_NUM
from darknet_py.tree import read_tree, tree_from_parents, write_tree
from darknet_py.train import train_classifier

# roots {n0, n1}; n0's children {n2, n3, n4}; n3's children {n5, n6}
PARENTS = [-1, -1, 0, 0, 0, 3, 3]
NAMES = [f"n{i}" for i in range(len(PARENTS))]
M = SECRET_NUM


@pytest.fixture
def tree_file(tmp_path):
    path = tmp_path / "small.tree"
    write_tree(tree_from_parents(NAMES, PARENTS), str(path))
    return path


@pytest.mark.parametrize("label, expected", [
    ("n5", [1, 0, 0, 1, 0, 1, 0]),     # 5 <- 3 <- 0: every group on the path
    ("n1", [0, 1, M, M, M, M, M]),     # a root: the groups below n0 are off the path
    ("n2", [1, 0, 1, 0, 0, M, M]),     # n3's children are not reached
])
def test_fill_hierarchy_by_hand(tree_file, label, expected):
    truth = class_truth(f"/data/{label}/image.jpg", NAMES, read_tree(str(tree_file)))
    np.testing.assert_array_equal(truth, np.array(expected, np.float32))


CFG = """[net]
batch=2
subdivisions=1
width=8
height=8
channels=3
learning_rate=0.1
max_batches=3
min_crop=8
max_crop=10
[convolutional]
filters=7
size=1
stride=1
activation=linear
[avgpool]
[softmax]
tree={tree}
"""


def _dataset(tmp_path, tree_file):
    paths = []
    for label in ("n5", "n1"):
        folder = tmp_path / label
        folder.mkdir()
        for i in range(2):
            pixels = np.random.default_rng(i).integers(0, 255, (10, 10, 3)).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
            paths.append(str(folder / f"{i}.png"))
    (tmp_path / "train.list").write_text("\n".join(paths) + "\n")
    (tmp_path / "labels.list").write_text("\n".join(NAMES) + "\n")
    (tmp_path / "t.data").write_text(f"classes=7\ntrain={tmp_path / 'train.list'}\n"
                                     f"labels={tmp_path / 'labels.list'}\n"
                                     f"tree={tree_file}\nbackup={tmp_path / 'backup'}\n")
    (tmp_path / "t.cfg").write_text(CFG.format(tree=tree_file))
    return paths


def test_a_step_on_hierarchical_truth_masks_off_path_groups(tmp_path, tree_file):
    paths = _dataset(tmp_path, tree_file)
    tree = read_tree(str(tree_file))
    net = darknet_py.load_network(str(tmp_path / "t.cfg"))
    x = np.random.default_rng(3).random((2, 3, 8, 8), dtype=np.float32)
    truth = np.stack([class_truth(paths[0], NAMES, tree), class_truth(paths[2], NAMES, tree)])
    net.train_step(x, truth)
    softmax = net.layers[-1]
    probs = softmax.output.reshape(2, 7)
    expected = np.where(truth == SECRET_NUM, 0, truth - probs)
    np.testing.assert_allclose(softmax.delta.reshape(2, 7), expected, rtol=1e-6, atol=1e-7)
    assert np.all(softmax.delta.reshape(2, 7)[1, 2:] == 0)   # n1: nothing below n0 learns


def test_train_classifier_uses_the_tree(tmp_path, tree_file, monkeypatch):
    _dataset(tmp_path, tree_file)
    from darknet_py.data import classification
    filled = []
    real = classification.fill_hierarchy
    monkeypatch.setattr(classification, "fill_hierarchy",
                        lambda truth, tree: filled.append(real(truth, tree).copy()))
    log = io.StringIO()
    final = train_classifier(str(tmp_path / "t.data"), str(tmp_path / "t.cfg"), seed=1,
                             workers=0, out=log)
    assert final.endswith("t.weights")
    losses = [float(line.split(": ")[1].split(",")[0]) for line in log.getvalue().splitlines()
              if " avg, " in line]
    assert len(losses) == 3 and all(np.isfinite(losses))
    # every sample (3 batches of 2, and the one loaded ahead) got fill_hierarchy's truth
    assert len(filled) == 4 * 2 and any((t == SECRET_NUM).any() for t in filled)
