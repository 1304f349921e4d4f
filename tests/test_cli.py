"""The command line as a user runs it: darknet's output lines, and clear one-line errors
(no traceback) for bad cfgs, weights and images."""
import subprocess
import sys

import numpy as np
import pytest

from conftest import DARKNET, ORACLE, ROOT, SHARED, need_shared


def run(*args, cwd=None):
    result = subprocess.run([sys.executable, "-m", "darknet_py", *args], cwd=cwd or DARKNET,
                            capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    return result


def reference_lines(path):
    return [line.split() for line in path.read_text().splitlines() if not line.startswith("#")]


def test_detector_test_prints_darknet_lines(tmp_path):
    need_shared("oracle/yolov2-voc-slim_dog")
    result = run("detector", "test", "cfg/voc.data", str(ORACLE / "cfg/yolov2-voc-slim.cfg"),
                 str(ORACLE / "yolov2-voc-slim_dog/weights.weights"), "data/dog.jpg",
                 "-thresh", "0.5", "-out", str(tmp_path / "pred"), "-exact")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("data/dog.jpg: Predicted in ") and lines[0].endswith(" seconds.")
    expected = [f"{r[12]} {r[13]}"
                for r in reference_lines(ORACLE / "yolov2-voc-slim_dog/detections_t0.50.txt")]
    assert lines[1:] == expected
    assert (tmp_path / "pred.jpg").stat().st_size > 0
    assert "Total BFLOPS 0.496" in result.stderr


def test_classifier_predict_prints_darknet_lines():
    need_shared("weights/tiny.weights")
    result = run("classifier", "predict", "cfg/imagenet1k.data",
                 str(ORACLE / "cfg/tiny-darknet_ros.cfg"), str(SHARED / "weights/tiny.weights"),
                 "data/eagle.jpg", "-t", "5")
    assert result.returncode == 0, result.stderr
    expected = [f"{float(r[2]) * 100:5.2f}%: {' '.join(r[3:])}"
                for r in reference_lines(ORACLE / "tiny_eagle/top5.txt")]
    assert result.stdout.splitlines()[1:] == expected


def test_forward_dump_writes_every_layer(tmp_path):
    need_shared("oracle/ttt4_dog")
    result = run("forward", str(ORACLE / "cfg/ttt4-anchors1.cfg"),
                 str(SHARED / "weights/ttt4_minloss.weights"), str(ORACLE / "ttt4_dog/input.npy"),
                 "--dump", str(tmp_path))
    assert result.returncode == 0, result.stderr
    region = np.load(tmp_path / "layer_009_region.npy")
    reference = np.load(ORACLE / "ttt4_dog/layer_009_region.npy")
    assert region.shape == reference.shape == (1, 7, 9, 9)
    assert np.linalg.norm(region - reference) / np.linalg.norm(reference) < 1e-5
    assert len(list(tmp_path.glob("layer_*.npy"))) == 10


def test_partial_command(tmp_path):
    need_shared("weights/ttt4_minloss.weights")
    out = tmp_path / "cut.weights"
    result = run("partial", str(ORACLE / "cfg/ttt4-anchors1.cfg"),
                 str(SHARED / "weights/ttt4_minloss.weights"), str(out), "4")
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 20


@pytest.mark.parametrize("make_input,message", [
    (lambda tmp: ("weights", str(tmp / "missing.weights")), "cannot open weights file"),
    (lambda tmp: ("weights", str(SHARED / "weights/tiny.weights")), "bytes left over"),
    (lambda tmp: ("image", str(tmp / "missing.jpg")), "missing.jpg"),
    (lambda tmp: ("image", str(ROOT / "setup.py")), "setup.py"),
    (lambda tmp: ("cfg", str(tmp / "bad.cfg")), "bad.cfg:2: [net] cannot parse line"),
])
def test_bad_inputs_give_one_clear_line(make_input, message, tmp_path):
    need_shared("weights/ttt4_minloss.weights")
    (tmp_path / "bad.cfg").write_text("[net]\nwidth\n")
    args = {"cfg": str(ORACLE / "cfg/ttt4-anchors1.cfg"),
            "weights": str(SHARED / "weights/ttt4_minloss.weights"), "image": "data/dog.jpg"}
    kind, value = make_input(tmp_path)
    args[kind] = value
    data = tmp_path / "two.data"
    (tmp_path / "two.names").write_text("class0\nclass1\n")
    data.write_text(f"classes=2\nnames={tmp_path / 'two.names'}\n")
    result = run("detector", "test", str(data), args["cfg"], args["weights"], args["image"],
                 "-out", str(tmp_path / "p"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert message in result.stderr


def test_unknown_command_and_option(tmp_path):
    # from a folder of its own: the usage errors need none of ../shared
    assert run("wibble", cwd=tmp_path).returncode == 2
    result = run("detector", "test", "cfg/voc.data", "a.cfg", "b.weights", "-frobnicate",
                 cwd=tmp_path)
    assert result.returncode == 1 and "unknown option -frobnicate" in result.stderr
