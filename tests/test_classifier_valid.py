"""`classifier valid`: darknet's validate_classifier_single (classifier.c). The class of an
image is the first label that its path contains; each image is centre-cropped and resized;
the running top-1/top-k accuracies are printed per image. Checked against Tiny Darknet's
own forward on labelled photos, and by hand on a small WordTree."""
import math
import os
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import DARKNET, ROOT, SHARED, need_shared
from darknet_py.__main__ import main as cli_main
from darknet_py.cli.classifier import center_crop, label_index, validate_classifier
from darknet_py.errors import DarknetError
from darknet_py.image import load_image, resize_image
from darknet_py.network import load_network

PHOTOS = ["dog.jpg", "eagle.jpg", "giraffe.jpg", "horses.jpg", "person.jpg"]


def accuracy_lines(stdout):
    return [line for line in stdout.splitlines() if ": top 1: " in line]


# ---------------------------------------------------------------- darknet's rules

def test_the_class_is_the_first_label_in_the_path():
    labels = ["dog", "hotdog", "cat"]
    # strstr over the labels in file order: "dog" is inside "hotdog", so it wins
    assert label_index("photos/hotdog_1.jpg", labels) == 0
    # the whole path is searched, folders too
    assert label_index("/data/concatenate/x.jpg", labels) == 2
    assert label_index("/data/bird.jpg", labels) == -1


def test_center_crop_takes_the_middle_square():
    im = np.arange(3 * 5 * 8, dtype=np.float32).reshape(3, 5, 8)
    # 8 wide, 5 high: the square of side 5 starts at column (8 - 5) // 2 = 1; resizing to
    # the same size is the identity (scale (5-1)/(5-1) = 1)
    np.testing.assert_array_equal(center_crop(im, 5, 5), im[:, :, 1:6])
    tall = np.arange(3 * 9 * 4, dtype=np.float32).reshape(3, 9, 4)
    # 4 wide, 9 high: rows (9 - 4) // 2 = 2 .. 5
    np.testing.assert_array_equal(center_crop(tall, 4, 4), tall[:, 2:6, :])
    np.testing.assert_array_equal(center_crop(tall, 2, 2),
                                  resize_image(tall[:, 2:6, :], 2, 2))


# ---------------------------------------------------------------- Tiny Darknet

@pytest.fixture(scope="module")
def tiny():
    weights = need_shared("weights", "tiny.weights")
    labels = need_shared("darknet", "data", "imagenet.labels.list")
    for name in PHOTOS:
        need_shared("darknet", "data", name)
    net = load_network(str(ROOT / "cfg" / "tiny.cfg"), str(weights), batch=1, device="cpu")
    predictions = [reference_predictions(net, DARKNET / "data" / photo) for photo in PHOTOS]
    return net, weights, labels.read_text().splitlines()[:1000], predictions


def reference_predictions(net, path):
    """The network's softmax for darknet's validation input, computed here step by step:
    the centred square of the photo (side min(w, h)), resize_image to 224x224, forward."""
    im = load_image(path)
    _, h, w = im.shape
    side = min(w, h)
    top, left = (h - side) // 2, (w - side) // 2
    crop = resize_image(im[:, top:top + side, left:left + side], 224, 224)
    return net.ops.to_host(net.forward(crop[None])).reshape(-1).copy()


def write_valid(folder, names, labels, top="top=5\n"):
    """A valid list of symlinks to the shared photos under the given names."""
    folder.mkdir()
    paths = []
    for photo, name in zip(PHOTOS, names):
        path = folder / name
        os.symlink(DARKNET / "data" / photo, path)
        paths.append(str(path))
    (folder / "valid.txt").write_text("".join(p + "\n" for p in paths))
    data = folder / "v.data"
    data.write_text(f"classes=1000\nvalid={folder / 'valid.txt'}\nlabels={labels}\n{top}")
    return data, paths


def test_tiny_darknet_accuracy_matches_its_own_forward(tiny, tmp_path, capsys):
    net, weights, wnids, predictions = tiny
    ranked = [np.argsort(-p, kind="stable") for p in predictions]
    # labels chosen from the network's own ranking: dog = its top 1 (a top-1 hit), eagle =
    # its 3rd (a top-5 hit only), giraffe = its 500th (a miss), horses = no label in the
    # path (class -1, a miss), person = its top 1
    classes = [int(ranked[0][0]), int(ranked[1][2]), int(ranked[2][499]), -1,
               int(ranked[4][0])]
    names = [f"{wnids[c]}_{photo}" if c >= 0 else photo for c, photo in zip(classes, PHOTOS)]
    data, paths = write_valid(tmp_path / "right", names,
                              SHARED / "darknet" / "data" / "imagenet.labels.list")
    capsys.readouterr()
    assert cli_main(["classifier", "valid", str(data), str(ROOT / "cfg" / "tiny.cfg"),
                     str(weights)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 2 * len(PHOTOS)
    # darknet's first line per image: path, class, pred[0], pred[1]
    for i, (path, cls, pred) in enumerate(zip(paths, classes, predictions)):
        assert lines[2 * i] == f"{path}, {cls}, {pred[0]:f}, {pred[1]:f}, "
    # hits top 1: 1 0 0 0 1; top 5: 1 1 0 0 1 -> running sums / images
    assert accuracy_lines(captured.out) == [
        "0: top 1: 1.000000, top 5: 1.000000",
        "1: top 1: 0.500000, top 5: 1.000000",
        "2: top 1: 0.333333, top 5: 0.666667",
        "3: top 1: 0.250000, top 5: 0.500000",
        "4: top 1: 0.400000, top 5: 0.600000"]
    assert "1 of 5 images have no label" in captured.err
    # batched forwards give the same accuracies; the returned ones are the last line's
    top1, top5 = validate_classifier(str(data), None, None, batch=3, net=net,
                                     show_progress=False)
    assert accuracy_lines(capsys.readouterr().out) == accuracy_lines(captured.out)
    assert (top1, top5) == (pytest.approx(0.4), pytest.approx(0.6))


def test_wrong_labels_give_zero_and_top_defaults_to_one(tiny, tmp_path, capsys):
    net, weights, wnids, predictions = tiny
    # every photo named after a class its prediction ranks last
    names = [f"{wnids[int(np.argsort(-p, kind='stable')[-1])]}_{photo}"
             for p, photo in zip(predictions, PHOTOS)]
    data, _ = write_valid(tmp_path / "wrong", names,
                          SHARED / "darknet" / "data" / "imagenet.labels.list", top="")
    capsys.readouterr()
    validate_classifier(str(data), None, None, net=net, show_progress=False)
    # no top= in the .data file: darknet's option_find_int(options, "top", 1)
    assert accuracy_lines(capsys.readouterr().out) == [
        f"{i}: top 1: 0.000000, top 1: 0.000000" for i in range(len(PHOTOS))]
    validate_classifier(str(data), None, None, top=5, net=net, show_progress=False)
    assert accuracy_lines(capsys.readouterr().out)[-1] == "4: top 1: 0.000000, top 5: 0.000000"


# ---------------------------------------------------------------- a hand-made WordTree

TREE = "alpha -1\nbeta -1\napple 0\napricot 0\nbanana 1\nblueberry 1\nblackberry 1\n"
# logits chosen so that the group softmaxes are round numbers:
#   {alpha, beta} = softmax(ln 3, 0) = .75, .25
#   {apple, apricot} = softmax(0, ln 3) = .25, .75
#   {banana, blueberry, blackberry} = softmax(ln 2, 0, 0) = .5, .25, .25
LOGITS = [math.log(3), 0, 0, math.log(3), math.log(2), 0, 0]
# absolute (hierarchy_predictions): apple .1875, apricot .5625, banana .125, blueberry and
# blackberry .0625; alpha .75 and beta .25 are not leaves and are set to 0


@pytest.fixture
def wordtree(tmp_path):
    (tmp_path / "t.tree").write_text(TREE)
    (tmp_path / "t.labels").write_text("".join(line.split()[0] + "\n"
                                               for line in TREE.splitlines()))
    cfg = tmp_path / "t.cfg"
    cfg.write_text("[net]\nwidth=8\nheight=8\nchannels=3\n"
                   "[convolutional]\nfilters=7\nsize=1\nstride=1\nactivation=linear\n"
                   f"[avgpool]\n[softmax]\ngroups=1\ntree={tmp_path / 't.tree'}\n")
    net = load_network(str(cfg), None, batch=1, device="cpu")
    conv = net.layers[0]
    conv.weights[...] = 0   # the output is the biases, whatever the image
    conv.biases[...] = np.array(LOGITS, np.float32)
    for name in ("alpha_1.png", "apricot_2.png", "apple_3.png", "banana_4.png"):
        Image.new("RGB", (12, 9), (90, 20, 200)).save(tmp_path / name)
    return tmp_path, net


def run_tree(folder, net, images, extra="", top=2, show_progress=False):
    (folder / "valid.txt").write_text("".join(f"{folder / name}\n" for name in images))
    data = folder / "t.data"
    data.write_text(f"classes=7\ntop={top}\nvalid={folder / 'valid.txt'}\n"
                    f"labels={folder / 't.labels'}\n{extra}")
    return validate_classifier(str(data), None, None, net=net, show_progress=show_progress)


def test_wordtree_ranks_absolute_leaf_probabilities(wordtree, capsys):
    folder, net = wordtree
    run_tree(folder, net, ["apricot_2.png", "apple_3.png", "alpha_1.png"])
    out = capsys.readouterr().out.splitlines()
    # leaves ranked: apricot .5625, apple .1875 (top 2); alpha is not a leaf (0): a miss
    assert out[0] == f"{folder / 'apricot_2.png'}, 3, 0.000000, 0.000000, "
    assert accuracy_lines("\n".join(out)) == ["0: top 1: 1.000000, top 2: 1.000000",
                                              "1: top 1: 0.500000, top 2: 1.000000",
                                              "2: top 1: 0.333333, top 2: 0.666667"]


def test_wordtree_leaves_option_changes_the_leaves(wordtree, capsys):
    folder, net = wordtree
    (folder / "leaves.txt").write_text("alpha\nbanana\nblueberry\nblackberry\n")
    run_tree(folder, net, ["alpha_1.png", "apricot_2.png", "banana_4.png"],
             f"leaves={folder / 'leaves.txt'}\n")
    captured = capsys.readouterr()
    assert "Found 4 leaves." in captured.err   # darknet's change_leaves line
    out = captured.out.splitlines()
    # now alpha (.75) is a leaf and apple/apricot are not: ranked alpha .75, banana .125
    assert out[0] == f"{folder / 'alpha_1.png'}, 0, 0.750000, 0.000000, "
    assert accuracy_lines(captured.out) == ["0: top 1: 1.000000, top 2: 1.000000",
                                            "1: top 1: 0.500000, top 2: 0.500000",
                                            "2: top 1: 0.333333, top 2: 0.666667"]


# ---------------------------------------------------------------- bad input

def test_bad_data_files_are_one_line_errors(wordtree, capsys):
    folder, net = wordtree
    (folder / "valid.txt").write_text(f"{folder / 'alpha_1.png'}\n")
    cases = [("classes=9\n", "lists 7 labels, classes = 9"),
             ("classes=7\nlabels=nowhere.labels\n", "labels = nowhere.labels: file not found"),
             ("classes=0\n", "must be at least 1")]
    for text, message in cases:
        data = folder / "bad.data"
        labels = "" if "labels=" in text else f"labels={folder / 't.labels'}\n"
        data.write_text(f"{text}{labels}valid={folder / 'valid.txt'}\n")
        with pytest.raises(DarknetError, match=message):
            validate_classifier(str(data), None, None, net=net, show_progress=False)
    # more classes than the network has outputs
    labels = folder / "many.labels"
    labels.write_text("".join(f"x{i}\n" for i in range(9)))
    data = folder / "bad.data"
    data.write_text(f"classes=9\nlabels={labels}\nvalid={folder / 'valid.txt'}\n")
    with pytest.raises(DarknetError, match="classes = 9 but the network gives 7 outputs"):
        validate_classifier(str(data), None, None, net=net, show_progress=False)


def test_top_above_classes_is_cut_with_a_warning(wordtree, capsys):
    folder, net = wordtree
    run_tree(folder, net, ["apricot_2.png"], top=10)
    captured = capsys.readouterr()
    assert "top = 10 is more than the 7 classes" in captured.err
    assert accuracy_lines(captured.out) == ["0: top 1: 1.000000, top 7: 1.000000"]


def test_help_and_missing_arguments(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["classifier", "valid", "-h"])
    assert exit_info.value.code == 0
    assert "validate_classifier_single" in capsys.readouterr().out
    assert cli_main(["classifier", "valid", "only.data"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "usage:" in err


# ---------------------------------------------------------------- darknet9000's tree

def test_darknet9000_ranks_the_imagenet_leaves_of_the_9k_tree(in_darknet_dir, tmp_path,
                                                              capsys):
    """The slim darknet9000 of the oracle (darknet's own weights file) with 9k.tree and, as
    imagenet9k.hierarchy.dataset, leaves= the 1000 ImageNet classes: the hierarchy is done
    here by hand from the tree file's parent column."""
    cfg = need_shared("oracle", "cfg", "darknet9000-slim.cfg")
    weights = need_shared("oracle", "darknet9000-slim_dog", "weights.weights")
    net = load_network(str(cfg), str(weights), batch=1, device="cpu")
    parents = [int(line.split()[1]) for line in
               (DARKNET / "data" / "9k.tree").read_text().splitlines()]
    wnids = (DARKNET / "data" / "9k.labels").read_text().split()
    leaves = (DARKNET / "data" / "imagenet.labels.list").read_text().split()[:1000]
    (tmp_path / "leaves.txt").write_text("\n".join(leaves) + "\n")
    is_leaf = np.isin(wnids, leaves)
    photos = PHOTOS[:3]
    ranked = []
    for photo in photos:
        im = load_image(DARKNET / "data" / photo)
        _, h, w = im.shape
        side = min(w, h)
        top, left = (h - side) // 2, (w - side) // 2
        crop = resize_image(im[:, top:top + side, left:left + side], net.width, net.height)
        p = net.ops.to_host(net.forward(crop[None])).reshape(-1).copy()
        for node, parent in enumerate(parents):   # parents come before their children
            if parent >= 0:
                p[node] *= p[parent]
        p[~is_leaf] = 0
        ranked.append(np.argsort(-p, kind="stable"))
    # dog named after its top 1, eagle after its 4th, giraffe after nothing
    names = [f"{wnids[ranked[0][0]]}_dog.jpg", f"{wnids[ranked[1][3]]}_eagle.jpg",
             "giraffe.jpg"]
    for photo, name in zip(photos, names):
        os.symlink(DARKNET / "data" / photo, tmp_path / name)
    (tmp_path / "valid.txt").write_text("".join(f"{tmp_path / n}\n" for n in names))
    data = tmp_path / "9k.data"
    data.write_text(f"classes=9418\nvalid={tmp_path / 'valid.txt'}\n"
                    f"leaves={tmp_path / 'leaves.txt'}\nlabels=data/9k.labels\ntop=5\n")
    capsys.readouterr()
    validate_classifier(str(data), None, None, net=net, show_progress=False)
    captured = capsys.readouterr()
    assert "Found 1000 leaves." in captured.err
    assert accuracy_lines(captured.out) == ["0: top 1: 1.000000, top 5: 1.000000",
                                            "1: top 1: 0.500000, top 5: 1.000000",
                                            "2: top 1: 0.333333, top 5: 0.666667"]


# ---------------------------------------------------------------- progress on a terminal

def test_a_progress_bar_on_a_terminal_keeps_the_lines_whole(wordtree, capsys, monkeypatch):
    """On a terminal, classifier valid (and detector valid/recall/map, which share
    cli.evaluate.walk) draw a tqdm bar on stderr and print darknet's lines through
    tqdm.write: the same lines, each whole."""
    folder, net = wordtree
    images = ["apricot_2.png", "apple_3.png", "alpha_1.png"]
    run_tree(folder, net, images)
    plain = capsys.readouterr().out
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    run_tree(folder, net, images, show_progress=True)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    captured = capsys.readouterr()
    assert captured.out == plain
    assert "images:" in captured.err and "/3 " in captured.err   # the bar was drawn
    # without a terminal there is no bar at all
    run_tree(folder, net, images, show_progress=True)
    assert "images:" not in capsys.readouterr().err
