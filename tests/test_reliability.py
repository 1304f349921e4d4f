"""A run never loses good work, and bad input ends in one clear line: divergence, signals,
a dead loader worker, non-finite weights, write errors and misleading weights files."""
import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import darknet_py
from darknet_py.errors import DarknetError, WeightsError
from darknet_py.train import train_detector
from conftest import ROOT
from test_checkpoints import CFG, dataset  # noqa: F401 (the fixture)


def _cli(*args, **popen):
    env = dict(os.environ, PYTHONPATH=str(ROOT), DARKNET_PY_DEVICE="cpu")
    return subprocess.Popen([sys.executable, "-m", "darknet_py", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, **popen)


def _backup_seen(path):
    return darknet_py.weights.read_header(path.read_bytes(), path)[1]


def test_divergence_keeps_the_good_backup(dataset):  # noqa: F811
    """100 good iterations write the backup; then the rate explodes: training stops naming
    the layer and the batch, and the backup still holds the good weights."""
    cfg = dataset / "t.cfg"
    cfg.write_text(CFG.replace("max_batches=8", "max_batches=100").replace(
        "learning_rate=0.01", "learning_rate=0.001"))
    final = train_detector(str(dataset / "t.data"), str(cfg), seed=1, workers=0,
                           out=io.StringIO())
    backup = dataset / "backup" / "t.backup"
    good = backup.read_bytes()
    cfg.write_text(CFG.replace("max_batches=8", "max_batches=200").replace(
        "learning_rate=0.01", "learning_rate=1e30").replace("burn_in=3", "burn_in=0"))
    with pytest.raises(DarknetError) as err:
        train_detector(str(dataset / "t.data"), str(cfg), final, seed=1, workers=0,
                       out=io.StringIO())
    message = str(err.value)
    assert "training diverged at batch 10" in message and "layer " in message
    assert "NaN or infinite" in message and "no checkpoint was written in this run" in message
    assert backup.read_bytes() == good and _backup_seen(backup) == 100 * 4


def test_infinite_momentum_never_writes_nan_weights(dataset):  # noqa: F811
    cfg = dataset / "t.cfg"
    cfg.write_text(CFG.replace("[net]", "[net]\nmomentum=inf").replace("max_batches=8",
                                                                      "max_batches=3"))
    with pytest.raises(DarknetError, match="training diverged"):
        train_detector(str(dataset / "t.data"), str(cfg), seed=1, workers=0,
                       out=io.StringIO())
    assert not (dataset / "backup" / "t_final.weights").exists()


def test_non_finite_weights_are_never_saved(tmp_path):
    net = darknet_py.parse_network_cfg(str(ROOT / "cfg/yolov2-tiny-voc.cfg"), batch=1)
    net.layers[2].weights[0, 0, 0, 0] = np.nan
    target = tmp_path / "x.weights"
    target.write_bytes(b"old")
    net.loaded_layers = len(net.layers)   # no random init needed
    with pytest.raises(WeightsError, match="layer 2 .convolutional. weights holds 1 NaN"):
        net.save_weights(str(target))
    assert target.read_bytes() == b"old"


def _start_training(dataset, workers, iterations=400):  # noqa: F811
    cfg = dataset / "t.cfg"
    cfg.write_text(CFG.replace("max_batches=8", f"max_batches={iterations}"))
    return _cli("detector", "train", dataset / "t.data", cfg, "-workers", workers,
                "-seed", 1)


def _wait_for_iterations(proc, count):
    """Read the log until `count` iteration lines went by; returns the last batch."""
    done = 0
    while done < count:
        line = proc.stdout.readline()
        assert line, "training ended early"
        if " avg, " in line:
            done += 1
    return int(line.split(":")[0])


@pytest.mark.parametrize("signum, word", [(signal.SIGINT, "Interrupted"),
                                          (signal.SIGTERM, "Terminated")])
def test_a_signal_saves_and_exits_quickly(dataset, signum, word):  # noqa: F811
    proc = _start_training(dataset, workers=2)
    batch = _wait_for_iterations(proc, 3)
    proc.send_signal(signum)
    start = time.time()
    out, err = proc.communicate(timeout=30)
    assert time.time() - start < 15
    assert proc.returncode == 130
    assert f"{word}: saving before exit" in out and "Traceback" not in err
    seen = _backup_seen(dataset / "backup" / "t.backup")
    # the iterations that completed, perhaps one more that completed before the signal
    assert seen in (batch * 4, (batch + 1) * 4)
    assert not list((dataset / "backup").glob(".tmp-*"))


def test_a_killed_worker_is_a_clear_error_after_a_save(dataset):  # noqa: F811
    proc = _start_training(dataset, workers=1)
    _wait_for_iterations(proc, 2)
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                             text=True).stdout.split()
    assert workers, "no loader worker found"
    for pid in workers:
        os.kill(int(pid), signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "Traceback" not in err
    assert "a data loader worker process died" in err and "are saved in" in err
    assert (dataset / "backup" / "t.backup").exists()


def test_write_errors_are_one_line(dataset, tmp_path):  # noqa: F811
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    (dataset / "t.data").write_text((dataset / "t.data").read_text().replace(
        f"backup={dataset / 'backup'}", f"backup={blocker}"))
    proc = _cli("detector", "train", dataset / "t.data", dataset / "t.cfg", "-workers", 0)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "Traceback" not in err
    assert f"{blocker}: cannot create the backup folder" in err
    net = darknet_py.parse_network_cfg(str(dataset / "t.cfg"))
    net.ensure_initialized()
    with pytest.raises(DarknetError, match="cannot write: it is a folder"):
        net.save_weights(str(tmp_path))
    with pytest.raises(DarknetError, match="does not exist"):
        net.save_weights(str(tmp_path / "missing" / "x.weights"))


def test_weights_files_that_do_not_fit_say_why(dataset, tmp_path, capsys):  # noqa: F811
    cfg = str(dataset / "t.cfg")
    net = darknet_py.parse_network_cfg(cfg)
    net.ensure_initialized()
    good = tmp_path / "good.weights"
    net.save_weights(str(good))
    with pytest.raises(WeightsError, match="a text file .a cfg.., not a darknet"):
        darknet_py.load_network(cfg, cfg)
    other = tmp_path / "other.cfg"
    other.write_text(CFG.replace("filters=8", "filters=16"))
    with pytest.raises(WeightsError, match="weights for another cfg .`partial`"):
        darknet_py.load_network(str(other), str(good))
    header_only = tmp_path / "header.weights"
    header_only.write_bytes(good.read_bytes()[:20])
    darknet_py.load_network(cfg, str(header_only))
    nan = bytearray(good.read_bytes())
    nan[20:24] = np.float32(np.nan).tobytes()
    (tmp_path / "nan.weights").write_bytes(bytes(nan))
    darknet_py.load_network(cfg, str(tmp_path / "nan.weights"))
    messages = capsys.readouterr().err
    assert "ends after its header: no layer's weights loaded" in messages
    assert "layer 0 (convolutional) biases: 1 of 8 values are NaN" in messages


def test_non_finite_inference_is_said(capsys):
    net = darknet_py.load_network(str(ROOT / "cfg/yolov2-tiny-voc.cfg"), batch=1)
    net.resize(64, 64)
    net.layers[4].biases[:] = np.inf
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("error")   # no numpy RuntimeWarning escapes
        net.forward(x)
        x[0, 0, 0, 0] = np.nan
        net.forward(x)
    err = capsys.readouterr().err
    assert "the network output holds NaN or infinite values; first at layer 4 " \
           "(convolutional) output" in err
    assert "the input holds NaN or infinite values" in err


@pytest.mark.parametrize("section, change, message", [
    ("[region]", "classes=0", "classes must be at least 1"),
    ("[region]", "num=-1", "num (anchors) must be at least 1"),
    ("[region]", "jitter=nan", "jitter must be a finite number"),
    ("[region]", "anchors=1,nan,3,3", "anchors must be positive finite numbers"),
    ("[maxpool]", "size=10000", "maxpool window is larger than its 32x32 input"),
    ("[convolutional]", "filters=99999999", "GiB, more than this machine's"),
    ("[net]", "width=100000\nheight=100000", "GiB, more than this machine's"),
])
def test_cfg_values_that_cannot_work_fail_at_parse_time(tmp_path, section, change, message):
    key = change.split("=")[0]
    text = "\n".join(line for line in CFG.splitlines()
                     if not (line.startswith(key + "=") and section != "[convolutional]"))
    text = text.replace(section, f"{section}\n{change}", 1)
    cfg = tmp_path / "bad.cfg"
    cfg.write_text(text)
    with pytest.raises(DarknetError, match=message.replace("(", r"\(").replace(")", r"\)")) \
            as err:
        darknet_py.parse_network_cfg(str(cfg))
    assert str(cfg) in str(err.value) and "\n" not in str(err.value)


def test_softmax_temperature_zero(tmp_path):
    cfg = tmp_path / "soft.cfg"
    cfg.write_text("[net]\nwidth=4\nheight=4\nchannels=2\n[avgpool]\n[softmax]\ntemperature=0\n")
    with pytest.raises(DarknetError, match="soft.cfg:7: .softmax. layer 1: temperature"):
        darknet_py.parse_network_cfg(str(cfg))


def test_a_jpeg_header_claiming_a_huge_image(tmp_path):
    from PIL import Image
    from darknet_py.image import load_image
    from darknet_py.errors import ImageError
    path = tmp_path / "small.jpg"
    Image.new("RGB", (16, 16), (200, 10, 10)).save(path)
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (65500).to_bytes(2, "big") * 2   # height, width
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="65500x65500 pixels: more memory"):
        load_image(str(path))


@pytest.mark.parametrize("label, message", [
    ("1 0.5 0.5 0.2 0.2", "1.txt:1: class 1, but the network has 1 classes"),
    ("0 nan 0.5 0.2 0.2", "1.txt:1: a box with a NaN or infinite value"),
    ("0 0.5 0.5 -0.2 0.2", "1.txt:1: a box with a negative size"),
    ("0 0.5 0.5 0.2", "1.txt:1: expected 'class x y w h' (5 fields), found 4"),
])
def test_bad_labels_stop_before_the_first_step(dataset, label, message):  # noqa: F811
    (dataset / "labels" / "1.txt").write_text(label + "\n")
    proc = _cli("detector", "train", dataset / "t.data", dataset / "t.cfg", "-workers", 0)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "Traceback" not in err and message in err
    assert " avg, " not in out   # not one iteration ran
    assert not (dataset / "backup" / "t.backup").exists()


def test_data_file_problems_are_named(dataset):  # noqa: F811
    data = dataset / "t.data"
    text = data.read_text()
    data.write_text(text.replace("classes=1", "classes=3"))
    with pytest.raises(DarknetError, match="classes = 3, but .* has 1 classes"):
        train_detector(str(data), str(dataset / "t.cfg"), workers=0, out=io.StringIO())
    (dataset / "train.txt").write_text("  \n\n")
    data.write_text(text)
    with pytest.raises(DarknetError, match="the list is empty"):
        train_detector(str(data), str(dataset / "t.cfg"), workers=0, out=io.StringIO())
    data.write_text("\n".join(line for line in text.splitlines()
                              if not line.startswith("train")))
    with pytest.raises(DarknetError, match="no 'train =' line"):
        train_detector(str(data), str(dataset / "t.cfg"), workers=0, out=io.StringIO())


def test_outside_and_empty_boxes_are_warned(dataset, capsys):  # noqa: F811
    (dataset / "labels" / "1.txt").write_text("0 1.2 0.5 0.2 0.2\n0 0.5 0.5 0 0.2\n")
    train_detector(str(dataset / "t.data"), str(dataset / "t.cfg"), workers=0, max_batches=1,
                   out=io.StringIO())
    err = capsys.readouterr().err
    assert "1 boxes reaching outside the image (clipped to it):" in err and "1.txt:1" in err
    assert "1 boxes narrower or lower than .001" in err and "1.txt:2" in err


def test_byte_order_marks_and_partial_counts(tmp_path):
    cfg = tmp_path / "bom.cfg"
    cfg.write_bytes(b"\xef\xbb\xbf" + CFG.encode())
    net = darknet_py.parse_network_cfg(str(cfg))
    assert net.layers[0].n_filters == 8
    data = tmp_path / "bom.data"
    data.write_bytes(b"\xef\xbb\xbfclasses=1\n")
    from darknet_py.config import read_data_cfg
    assert read_data_cfg(str(data)) == {"classes": "1"}
    from darknet_py.network import partial
    with pytest.raises(DarknetError, match="at least 1 .found -2."):
        partial(str(cfg), "unused.weights", str(tmp_path / "out.weights"), -2)


def test_tools_refuse_what_cannot_work(dataset, tmp_path):  # noqa: F811
    text = tmp_path / "text.npy"
    text.write_text("not an array")
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    cfg = dataset / "t.cfg"
    cases = [
        (["forward", cfg, "none", text, "--dump", tmp_path / "d"], "not a NumPy array file"),
        (["forward", cfg, "none", pickled, "--dump", tmp_path / "d"], "not a NumPy array file"),
        (["calc_anchors", dataset / "t.data", "-restarts", "0"], "must be at least 1"),
        (["detector", "map", dataset / "t.data", cfg, "x.weights", "-iou", "nan"],
         "-iou nan: expected a number in (0, 1]"),
        (["partial", cfg, "x.weights", tmp_path / "missing" / "p.weights", "2"],
         "No such file"),
    ]
    for args, message in cases:
        proc = _cli(*args)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode != 0 and "Traceback" not in err and message in err, (args, err)


def test_recall_on_a_classifier_and_unknown_eval(tmp_path):
    from darknet_py.cli.evaluate import validate_detector, validate_detector_recall
    image = tmp_path / "images" / "a.png"
    image.parent.mkdir()
    from PIL import Image
    Image.new("RGB", (8, 8)).save(image)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("")
    (tmp_path / "v.txt").write_text(f"{image}\n")
    (tmp_path / "n.names").write_text("a\n")
    (tmp_path / "d.data").write_text(f"valid={tmp_path / 'v.txt'}\nnames={tmp_path / 'n.names'}"
                                     f"\neval=foo\nresults={tmp_path / 'r'}\n")
    cfg = tmp_path / "c.cfg"
    cfg.write_text("[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=2\n"
                   "size=1\nactivation=linear\n[avgpool]\n[softmax]\n")
    with pytest.raises(DarknetError, match="no .region. layer to take boxes from"):
        validate_detector_recall(str(tmp_path / "d.data"), str(cfg), None, stream=io.StringIO())
    with pytest.raises(DarknetError, match="eval = foo: expected voc, coco or imagenet"):
        validate_detector(str(tmp_path / "d.data"), str(cfg), None)
