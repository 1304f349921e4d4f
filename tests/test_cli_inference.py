"""Inference from the command line as people run it: many inputs (paths, a folder, a glob, a
list file) in batches, boxes in pixels (-ext_output) and as AlexeyAB's JSON, YOLO labels,
-h on every command, darknet/AlexeyAB flags accepted with a note."""
import json
import re
import shutil
import subprocess
import sys

import pytest

import darknet_py
from conftest import DARKNET, ORACLE, ROOT, SHARED, need_shared

CFG = ORACLE / "cfg/ttt4-anchors1.cfg"
WEIGHTS = SHARED / "weights/ttt4_minloss.weights"
PHOTOS = ["dog.jpg", "eagle.jpg", "horses.jpg"]
EXT = re.compile(r"^(\w+): (\d+)%\t\(left_x: +(-?\d+) +top_y: +(-?\d+) +width: +(-?\d+) +"
                 r"height: +(-?\d+)\)$")


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "darknet_py", *map(str, args)], cwd=cwd,
                          input="", capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                               "DARKNET_PY_DEVICE": "cpu"})


@pytest.fixture
def photos(tmp_path):
    need_shared("weights/ttt4_minloss.weights")
    need_shared("oracle/cfg/ttt4-anchors1.cfg")
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in PHOTOS:
        shutil.copy(need_shared("darknet/data", name), folder / name)
    (tmp_path / "two.names").write_text("thing\nother\n")
    (tmp_path / "two.data").write_text("classes=2\nnames=two.names\n")
    return tmp_path


def _frames(stdout):
    """{path: [ext lines]} from detector test's output."""
    frames, current = {}, None
    for line in stdout.splitlines():
        if " Predicted in " in line:
            current = line.split(": Predicted in ")[0]
            frames[current] = []
        else:
            frames[current].append(line)
    return frames


def test_many_images_in_pixels_and_json(photos):
    paths = [f"photos/{name}" for name in PHOTOS]
    result = run("detector", "test", "two.data", CFG, WEIGHTS, *paths, "-thresh", ".2",
                 "-ext_output", "-dont_show", "-json", "f.json", cwd=photos)
    assert result.returncode == 0, result.stderr
    frames = _frames(result.stdout)
    assert list(frames) == paths
    data = json.loads((photos / "f.json").read_text())
    assert [frame["frame_id"] for frame in data] == [1, 2, 3]
    assert [frame["filename"] for frame in data] == paths
    assert sum(len(frame["objects"]) for frame in data) >= 3
    for frame in data:
        _, h, w = darknet_py.load_image(photos / frame["filename"]).shape
        lines = frames[frame["filename"]]
        assert len(lines) == len(frame["objects"])
        for line, obj in zip(lines, frame["objects"]):
            name, percent, left, top, width, height = EXT.match(line).groups()
            assert obj["name"] == name == "thing" and obj["class_id"] == 0
            assert int(percent) == round(obj["confidence"] * 100)
            box = obj["relative_coordinates"]
            assert int(left) == pytest.approx((box["center_x"] - box["width"] / 2) * w, abs=1)
            assert int(top) == pytest.approx((box["center_y"] - box["height"] / 2) * h, abs=1)
            assert int(width) == pytest.approx(box["width"] * w, abs=1)
            assert int(height) == pytest.approx(box["height"] * h, abs=1)
    # the API's boxes are the same
    net = darknet_py.load_network(str(CFG), str(WEIGHTS), batch=1)
    for frame in data:
        found = darknet_py.detect(net, str(photos / frame["filename"]), thresh=0.2)
        assert [b.prob for b in found] == pytest.approx([o["confidence"] for o in
                                                         frame["objects"]], abs=1e-4)
    assert not list(photos.glob("*.jpg"))   # -dont_show: nothing drawn


def test_folder_glob_and_list_file_give_the_same_output(photos):
    (photos / "images.txt").write_text("".join(f"photos/{n}\n" for n in PHOTOS) + "\n")
    outputs = []
    for inputs in (["photos"], ["photos/*.jpg"], ["images.txt"],
                   [f"photos/{n}" for n in PHOTOS]):
        result = run("detector", "test", "two.data", CFG, WEIGHTS, *inputs, "-thresh", ".2",
                     "-ext_output", "-nodraw", "-batch", "2", cwd=photos)
        assert result.returncode == 0, result.stderr
        outputs.append({path.replace("photos/", ""): lines
                        for path, lines in _frames(result.stdout).items()})
    assert list(outputs[0]) == sorted(PHOTOS)
    assert all(output == outputs[0] for output in outputs[1:])


def test_drawn_images_labels_and_json_via_out(photos):
    result = run("detector", "test", "two.data", CFG, WEIGHTS, "photos", "-thresh", ".2",
                 "-out", "drawn/", "-save_labels", "-batch", "3", cwd=photos)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (photos / "drawn").iterdir()) == sorted(PHOTOS)
    labels = (photos / "photos/dog.txt").read_text().split()
    assert labels[0] == "0" and len(labels) % 5 == 0
    assert all(0 <= float(v) <= 1.5 for v in labels[1:4])
    result = run("detector", "test", "two.data", CFG, WEIGHTS, "photos/dog.jpg",
                 "photos/eagle.jpg", "-thresh", ".2", "-out", "boxes.json", cwd=photos)
    assert result.returncode == 0, result.stderr
    assert len(json.loads((photos / "boxes.json").read_text())) == 2
    assert (photos / "predictions_dog.jpg").exists() and (photos / "predictions_eagle.jpg").exists()


def test_prompt_without_images(photos):
    result = subprocess.run([sys.executable, "-m", "darknet_py", "detector", "test", "two.data",
                             str(CFG), str(WEIGHTS), "-thresh", ".2", "-nodraw"], cwd=photos,
                            input="photos/dog.jpg\n", capture_output=True, text=True,
                            timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Enter Image Path: photos/dog.jpg: Predicted in ")


def test_classifier_predict_many_images(tmp_path):
    need_shared("weights/tiny.weights")
    reference = run("classifier", "predict", "cfg/imagenet1k.data",
                    ORACLE / "cfg/tiny-darknet_ros.cfg", SHARED / "weights/tiny.weights",
                    "data/eagle.jpg", "data/dog.jpg", "-t", "3", "-batch", "2", cwd=DARKNET)
    assert reference.returncode == 0, reference.stderr
    lines = reference.stdout.splitlines()
    assert [line.split(":")[0] for line in lines if "Predicted" in line] == \
        ["data/eagle.jpg", "data/dog.jpg"]
    assert len(lines) == 8
    single = run("classifier", "predict", "cfg/imagenet1k.data",
                 ORACLE / "cfg/tiny-darknet_ros.cfg", SHARED / "weights/tiny.weights",
                 "data/dog.jpg", "-t", "3", cwd=DARKNET)
    assert single.stdout.splitlines()[1:] == lines[5:]


COMMANDS = [["detector"], ["detector", "test"], ["detector", "train"], ["detector", "valid"],
            ["detector", "recall"], ["detector", "map"], ["detect"], ["classifier"],
            ["classifier", "predict"], ["classifier", "train"], ["classify"], ["partial"],
            ["forward"], ["detector", "demo"], ["detector", "calc_anchors"], ["classifier", "valid"], ["calc_anchors"], ["voc_label"], ["wordtree"], ["bench"], ["export"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_on_every_command(command, tmp_path):
    result = run(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m darknet_py {' '.join(command)}")
    if command in (["detector"], ["classifier"]):   # the sub-commands with their options
        assert "test <data> <cfg> <weights>" in result.stdout or "predict <data>" in result.stdout
    else:
        assert "-h, --help" in result.stdout and "options:" in result.stdout


def test_top_level_usage_lists_every_command(tmp_path):
    from darknet_py.__main__ import COMMANDS as ALL
    result = run("-h", cwd=tmp_path)
    assert result.returncode == 0
    for name in ALL:
        assert f"\n  {name}" in result.stdout, name
    assert "-ext_output" in result.stdout and "[images...]" in result.stdout


@pytest.mark.parametrize("flags", [["-dont_show"], ["-gpus", "0,1"], ["-mjpeg_port", "8090"],
                                   ["-json_port", "8070"], ["-benchmark"]])
def test_darknet_flags_are_accepted_with_a_note(flags, photos):
    result = run("classifier", "predict", "two.data", CFG, WEIGHTS, *flags, cwd=photos)
    assert result.stderr.count("is accepted and ignored") == 1, result.stderr
    assert flags[0] in result.stderr and "unknown option" not in result.stderr


def test_unknown_flags_still_fail(tmp_path):
    result = run("detector", "test", "x.data", "a.cfg", "b.weights", "-frobnicate",
                 cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == "darknet_py: unknown option -frobnicate"
    assert "usage: python -m darknet_py detector test" in result.stderr
    result = run("detector", "test", "x.data", "a.cfg", "-thresh", "x", cwd=tmp_path)
    assert result.returncode == 1 and "invalid float value" in result.stderr


def test_train_with_only_a_cfg_takes_darknets_data_file_and_says_how_to_make_lists():
    """`python -m darknet_py detector train cfg/yolov2-voc.cfg`, as the project describes it:
    cfg/voc.data is taken, and its absent lists are explained in one line."""
    import subprocess
    import sys
    from conftest import ROOT
    result = subprocess.run([sys.executable, "-m", "darknet_py", "detector", "train",
                             "cfg/yolov2-voc.cfg"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "using cfg/voc.data" in result.stderr
    assert "the list of training images does not exist" in result.stderr
    assert "voc_label VOCdevkit/VOC2007 -out voc07" in result.stderr


def test_too_few_names_is_one_line_error(photos):
    (photos / "one.names").write_text("thing\n")
    (photos / "one.data").write_text("names=one.names\n")
    result = run("detector", "test", "one.data", CFG, WEIGHTS, "photos/dog.jpg", "-dont_show",
                 cwd=photos)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "one.data: the names file lists 1 names, the network has 2 classes" in result.stderr


def test_overflowing_boxes_are_dropped_with_a_warning(photos, capsys):
    from darknet_py import api
    from darknet_py.network import load_network
    net = load_network(str(CFG), str(WEIGHTS), device="cpu")
    im = darknet_py.load_image(str(photos / "photos/dog.jpg"))
    before = api.detect(net, im, thresh=.2)
    assert before, "the trained ttt4 weights find boxes in dog.jpg"
    conv = net.layers[-2]
    # the region's tw entry of its one anchor (entries: x, y, w, h, objectness, classes): a
    # bias of 1000 makes exp(tw) overflow to inf for every cell, so no box is left
    assert net.layers[-1].n_anchors == 1
    conv.biases[2] = 1000.0
    assert api.detect(net, im, thresh=.2) == []
    assert "non-finite coordinates" in capsys.readouterr().err
