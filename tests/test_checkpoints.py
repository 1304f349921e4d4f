"""Acceptance 4 of the training issue: a kill during a save leaves the previous checkpoint
intact, and resuming from a checkpoint continues `seen` and the learning-rate schedule."""
import io
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import darknet_py
from darknet_py.fileio import _umask
from darknet_py.train import train_detector
from conftest import ROOT

CFG = """[net]
batch=4
subdivisions=2
width=32
height=32
channels=3
learning_rate=0.01
burn_in=3
policy=steps
steps=5
scales=.1
max_batches=8
[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[convolutional]
filters=12
size=1
stride=1
activation=linear
[region]
anchors=1,1,3,3
classes=1
num=2
softmax=1
jitter=.1
random=0
"""


@pytest.fixture
def dataset(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    paths = []
    for i in range(3):
        pixels = (np.random.default_rng(i).random((24, 30, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / "images" / f"{i}.jpg")
        (tmp_path / "labels" / f"{i}.txt").write_text("0 0.5 0.5 0.4 0.5\n")
        paths.append(str(tmp_path / "images" / f"{i}.jpg"))
    (tmp_path / "train.txt").write_text("\n".join(paths) + "\n")
    (tmp_path / "t.data").write_text(f"classes=1\ntrain={tmp_path / 'train.txt'}\n"
                                     f"backup={tmp_path / 'backup'}\n")
    (tmp_path / "t.cfg").write_text(CFG)
    return tmp_path


def _train(folder, max_batches, weights=None):
    log = io.StringIO()
    final = train_detector(str(folder / "t.data"), str(folder / "t.cfg"), weights, seed=3,
                           workers=0, max_batches=max_batches, out=log)
    return darknet_py.load_network(str(folder / "t.cfg"), final), log.getvalue()


def test_resume_continues_seen_and_schedule(dataset):
    straight, log = _train(dataset, 6)
    assert "6: " in log and "Learning Rate: 0.01, Momentum: 0.9, Decay: 0.0001" in log
    half, _ = _train(dataset, 3)
    assert half.seen == 3 * 4   # batch=4 images per iteration (2 minibatches of 2)
    resumed, log = _train(dataset, 6, str(dataset / "backup" / "t_final.weights"))
    assert resumed.seen == straight.seen == 6 * 4
    assert resumed.learning_rate() == straight.learning_rate() == np.float32(0.001)
    assert log.splitlines()[1].startswith("Loaded")   # no restart from batch 0
    assert "4: " in log and "1: " not in log


WRITER = """
import os, sys, time, darknet_py
net = darknet_py.parse_network_cfg(sys.argv[1])
net.ensure_initialized()
real_fsync = os.fsync
def announcing_fsync(fd):
    # the new bytes are in the temporary file, not yet renamed over the checkpoint
    print("in-write", flush=True)
    time.sleep(0.5)
    real_fsync(fd)
os.fsync = announcing_fsync
net.seen = 99
net.save_weights(sys.argv[2])
"""


def test_kill_during_save_leaves_a_whole_checkpoint(dataset):
    """SIGKILL a process in the middle of a save (it announces when its bytes are written
    to the temporary file but not yet renamed); the checkpoint must still be the old one,
    whole (the write goes to a temp file + rename)."""
    cfg = str(dataset / "big.cfg")
    big = CFG.replace("filters=8", "filters=512").replace(
        "[maxpool]", "[convolutional]\nfilters=512\nsize=3\nstride=1\npad=1\n"
        "activation=leaky\n[maxpool]")
    (dataset / "big.cfg").write_text(big)
    target = dataset / "checkpoint.weights"
    net = darknet_py.parse_network_cfg(cfg)
    net.ensure_initialized()
    net.save_weights(str(target))
    size = target.stat().st_size
    before = target.read_bytes()
    for _ in range(2):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, cfg, str(target)],
                                stdout=subprocess.PIPE, text=True,
                                env={"PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"]})
        assert proc.stdout.readline() == "in-write\n"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert target.read_bytes() == before
        loaded = darknet_py.load_network(cfg, str(target))
        np.testing.assert_array_equal(loaded.layers[0].weights, net.layers[0].weights)
    # the kills landed inside writes: the second writer removed the first one's unfinished
    # temporary file (its process was gone); the last one waits for the next save
    leftovers = list(dataset.glob(".tmp-*"))
    assert len(leftovers) == 1 and all(p.stat().st_size == size for p in leftovers)
    net.save_weights(str(target))
    assert list(dataset.glob(".tmp-*")) == []
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())   # not mkstemp's 0600
