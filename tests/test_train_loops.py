"""The training loops' darknet behaviours: classifier training with labels from paths and
its checkpoints, and multi-scale resizing (random=1)."""
import io
import re

import numpy as np
from PIL import Image

import darknet_py
from darknet_py import train as train_module
from darknet_py.train import train_classifier

CLASSIFIER = """[net]
batch=4
subdivisions=1
width=16
height=16
channels=3
learning_rate=0.1
policy=poly
power=4
max_batches=30
min_crop=16
max_crop=20
[convolutional]
filters=2
size=3
stride=1
pad=1
activation=linear
[avgpool]
[softmax]
"""


def test_classifier_learns_labels_from_paths(tmp_path):
    """Red images live under .../red/..., blue ones under .../blue/...: darknet takes the
    class from the path. 30 iterations suffice to separate them."""
    paths = []
    for colour, channel in (("red", 0), ("blue", 2)):
        folder = tmp_path / colour
        folder.mkdir()
        for i in range(4):
            pixels = np.random.default_rng(i).integers(0, 60, (20, 20, 3)).astype(np.uint8)
            pixels[:, :, channel] = 220
            Image.fromarray(pixels).save(folder / f"{i}.png")
            paths.append(str(folder / f"{i}.png"))
    (tmp_path / "train.list").write_text("\n".join(paths) + "\n")
    (tmp_path / "labels.list").write_text("red\nblue\n")
    (tmp_path / "c.data").write_text(f"classes=2\ntrain={tmp_path / 'train.list'}\n"
                                     f"labels={tmp_path / 'labels.list'}\n"
                                     f"backup={tmp_path / 'backup'}\n")
    (tmp_path / "c.cfg").write_text(CLASSIFIER)
    log = io.StringIO()
    final = train_classifier(str(tmp_path / "c.data"), str(tmp_path / "c.cfg"), seed=2,
                             workers=0, out=log)
    assert final.endswith("c.weights")
    lines = re.findall(r"^(\d+), ([\d.]+): ([\d.]+), ([\d.]+) avg", log.getvalue(), re.M)
    assert len(lines) == 30 and lines[-1][1] == "15.000"    # epochs = seen / 8 images
    assert (tmp_path / "backup" / "c_1.weights").exists()   # one checkpoint per epoch
    net = darknet_py.load_network(str(tmp_path / "c.cfg"), final)
    for path in paths:
        (best, _), = darknet_py.classify(net, path, top=1)
        assert best == (0 if "/red/" in path else 1)


def test_multiscale_sizes_follow_darknet(monkeypatch, tmp_path):
    """random=1: a new size every 10 iterations from 320..608 in steps of 32, and 608 for
    the last 200 batches. The loader and the step are stubbed: only the sizes matter."""
    sizes = []

    class RecordingLoader:
        def __init__(self, *args, **kwargs):
            pass

        def next_batch(self, width, height):
            sizes.append(width)
            return np.zeros((1, 3, height, width), np.float32), None

        def close(self):
            pass

    def counting_step(net, x, truth):
        net.seen += 1
        return 1.0

    monkeypatch.setattr(train_module, "BatchLoader", RecordingLoader)
    monkeypatch.setattr(darknet_py.Network, "train_step", counting_step)
    cfg = tmp_path / "r.cfg"
    cfg.write_text("[net]\nbatch=1\nwidth=64\nheight=64\nchannels=3\nmax_batches=250\n"
                   "[convolutional]\nfilters=6\nsize=1\nstride=32\nactivation=linear\n"
                   "[region]\nnum=1\nclasses=1\nrandom=1\n")
    (tmp_path / "t.list").write_text("x.jpg\n")
    (tmp_path / "r.data").write_text(f"train={tmp_path / 't.list'}\nbackup={tmp_path}\n")
    train_module.train_detector(str(tmp_path / "r.data"), str(cfg), seed=4, workers=0,
                                out=io.StringIO())
    assert len(sizes) == 250
    for start in range(0, 250, 10):
        block = set(sizes[start:start + 10])
        assert len(block) == 1
        size = block.pop()
        if start + 200 > 250:
            assert size == 608
        else:
            assert 320 <= size <= 608 and size % 32 == 0
    assert len(set(sizes[:50])) > 1
