"""Watching a training run (issue 15): the progress line on a terminal, -log, chart.png,
AlexeyAB's -map with _best/_last weights, and the start-up report. The -map numbers are
checked against `detector map` on the saved weights, and a run with -map against the same
run without it (bit-identical weights: measuring disturbs nothing)."""
import io
import re
import sys
from contextlib import redirect_stdout

import numpy as np
import pytest
from PIL import Image

import darknet_py
from darknet_py import log as dn_log
from darknet_py.__main__ import main
from darknet_py.cli.evaluate import detector_map
from darknet_py.errors import DarknetError
from darknet_py.network import partial
from darknet_py.train import (chart_loss_cap, default_map_every, progress_text, thin_curve,
                              train_classifier, train_detector)
from darknet_py.voc_label import voc_label
from conftest import need_shared

# a 4x4 grid (stride 8) with an anchor of the boxes' size; no batch norm, whose rolling
# statistics need hundreds of iterations before inference means anything
DETECTOR = """[net]
batch=4
subdivisions=2
width=32
height=32
channels=3
learning_rate=0.002
burn_in=3
policy=steps
steps=1000
scales=.1
max_batches=30
[convolutional]
filters=8
size=3
stride=1
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[convolutional]
filters=16
size=3
stride=1
pad=1
activation=leaky
[maxpool]
size=4
stride=4
[convolutional]
filters=12
size=1
stride=1
activation=linear
[region]
anchors=1.6,2,0.8,1
classes=1
num=2
softmax=1
jitter=.1
random=0
"""
# batch norm, dropout (the network's random stream) and multi-scale training (random=1: a
# short run trains at 608x608), cheap at that size: stride 4, then 2
DETECTOR_BN_RANDOM = """[net]
batch=4
subdivisions=2
width=32
height=32
channels=3
learning_rate=0.01
burn_in=3
max_batches=30
[convolutional]
batch_normalize=1
filters=4
size=3
stride=4
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[dropout]
probability=.2
[convolutional]
filters=12
size=1
stride=1
activation=linear
[region]
anchors=1.6,2,0.8,1
classes=1
num=2
softmax=1
jitter=.1
random=1
"""
BOXES = [(0.3, 0.3, 0.4, 0.5), (0.65, 0.6, 0.4, 0.5), (0.4, 0.7, 0.4, 0.5)]

MAP_LINE = re.compile(r"^mean_average_precision \(mAP@0\.50\) = ([\d.]+)$", re.M)
BEST_LINE = re.compile(r"^New best mAP@0\.50 = ([\d.]+) at iteration (\d+), saved to (.+)$",
                       re.M)


class Terminal(io.StringIO):
    """A stream that says it is a terminal, keeping everything written to it."""

    def isatty(self):
        return True


def screen_lines(raw):
    """The lines a terminal shows for `raw`: \\r returns to the line's start, ESC[K erases
    to its end, other characters overwrite; \\n ends the line."""
    lines, line, cursor, i = [], [], 0, 0
    while i < len(raw):
        if raw.startswith("\033[K", i):
            del line[cursor:]
            i += 3
            continue
        char = raw[i]
        if char == "\r":
            cursor = 0
        elif char == "\n":
            lines.append("".join(line))
            line, cursor = [], 0
        else:
            if cursor < len(line):
                line[cursor] = char
            else:
                line.append(char)
            cursor += 1
        i += 1
    return lines, "".join(line)


@pytest.fixture
def dataset(tmp_path):
    """Three 32x32 images, each with a bright box on dark noise; they are the valid list
    too."""
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    paths = []
    for i, (x, y, w, h) in enumerate(BOXES):
        pixels = (np.random.default_rng(i).random((32, 32, 3)) * 60).astype(np.uint8)
        pixels[int((y - h / 2) * 32):int((y + h / 2) * 32),
               int((x - w / 2) * 32):int((x + w / 2) * 32)] = 230
        Image.fromarray(pixels).save(tmp_path / "images" / f"{i}.png")
        (tmp_path / "labels" / f"{i}.txt").write_text(f"0 {x} {y} {w} {h}\n")
        paths.append(str(tmp_path / "images" / f"{i}.png"))
    (tmp_path / "train.txt").write_text("\n".join(paths) + "\n")
    (tmp_path / "names.txt").write_text("thing\n")
    (tmp_path / "t.data").write_text(f"classes=1\ntrain={tmp_path / 'train.txt'}\n"
                                     f"valid={tmp_path / 'train.txt'}\n"
                                     f"names={tmp_path / 'names.txt'}\n"
                                     f"backup={tmp_path / 'backup'}\n")
    (tmp_path / "t.cfg").write_text(DETECTOR)
    return tmp_path


def test_progress_text_shows_the_eta():
    """5 iterations of 8 images in 10 s: 4 images/s, 2 s an iteration, 5 left: 10 s."""
    assert progress_text(15, 20, 10, 8, 10.0, 1.5, 2.25) == \
        "15/20 75% | ETA 0:00:10 | loss 1.500, avg 2.250 | 4.0 images/s, 0:00:10 elapsed"
    # 3 of 4003 iterations in 9 s: 4000 left at 3 s each
    assert "ETA 3:20:00" in progress_text(3, 4003, 0, 64, 9.0, 1.0, 1.0)
    assert progress_text(0, 0, 0, 8, 0.0, 1.0, 1.0, "mAP 0.500") == \
        "0 | loss 1.000, avg 1.000 | mAP 0.500"   # max_batches 0: no end, no ETA


def test_long_curves_keep_their_extremes():
    """1000 points in 100 runs of 10: each run's lowest and highest, so 200 points, the
    spike at 555 and the dip at 321 among them, in iteration order."""
    points = [(i, 5.0 + (i % 3)) for i in range(1000)]
    points[555], points[321] = (555, 50.0), (321, -1.0)
    kept = thin_curve(points, buckets=100)
    assert len(kept) == 200 and kept == sorted(kept)
    assert (555, 50.0) in kept and (321, -1.0) in kept
    assert thin_curve(points[:150], buckets=100) == points[:150]
    # the loss axis: 10% above the highest loss after the first tenth (here 4.0)
    assert chart_loss_cap([100.0, 3.0] + [4.0] * 18) == pytest.approx(4.4)
    assert chart_loss_cap([100.0] * 19) is None


def test_default_map_every_is_alexeyabs_rule():
    # calc_map_for_each = 4 * train_images_num / (batch * subdivisions), at least 100
    assert default_map_every(1000, 64) == 100      # 62 iterations for 4 epochs: 100
    assert default_map_every(10000, 64) == 625
    assert default_map_every(16, 8) == 100


def test_map_keeps_best_and_last_as_detector_map_measures_them(dataset, monkeypatch):
    """30 iterations with -map every 5 on a terminal: 6 checks; _best holds the weights of
    the highest mAP printed (the later one on a tie) and _last those of the last check, as
    `detector map` measures them; -log has stdout's lines; the progress line shows the ETA
    and never shares a line of the terminal with darknet's lines or a warning."""
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)   # log.py's messages: the same terminal
    real_step = darknet_py.Network.train_step

    def step_with_a_warning(net, x, truth):
        if net.seen == 4 * 7:
            dn_log.warn("a warning in the middle of the run")
        return real_step(net, x, truth)

    monkeypatch.setattr(darknet_py.Network, "train_step", step_with_a_warning)
    run_log = dataset / "run.log"
    data, cfg = str(dataset / "t.data"), str(dataset / "t.cfg")
    final = train_detector(data, cfg, seed=1, workers=0, out=terminal,
                           log_path=str(run_log), calc_map=True, map_function=detector_map, map_every=5,
                           progress=terminal)
    monkeypatch.undo()
    raw = terminal.getvalue()
    backup = dataset / "backup"
    logged = run_log.read_text().splitlines()

    maps = [float(value) for value in MAP_LINE.findall("\n".join(logged))]
    assert len(maps) == 6 and max(maps) > 0
    checks = [int(n) for n in re.findall(r"^(\d+): ", "\n".join(logged), re.M)]
    assert checks == list(range(1, 31))
    bests = BEST_LINE.findall("\n".join(logged))
    assert [float(value) for value, _, _ in bests][-1] == max(maps)
    last_best_check = 5 * (len(maps) - maps[::-1].index(max(maps)))
    assert int(bests[-1][1]) == last_best_check
    assert bests[-1][2] == str(backup / "t_best.weights")

    def measured(weights):
        _, mean = detector_map(data, cfg, str(weights), stream=io.StringIO())
        return f"{mean:f}"

    assert measured(backup / "t_best.weights") == f"{max(maps):f}"
    assert measured(backup / "t_last.weights") == f"{maps[-1]:f}"
    assert (backup / "t_last.weights").read_bytes() == open(final, "rb").read()

    # the terminal: every darknet line whole and in order, the warning on a line of its
    # own, and no piece of the progress line left in any of them
    shown, unfinished = screen_lines(raw)
    shown = shown[shown.index(logged[0]):]       # after the layer table (stderr)
    assert unfinished == ""                      # cleared at the end
    assert "| ETA 0:" in raw and "mAP " in raw   # it was drawn, with the mAP after a check
    warning = "darknet_py: warning: a warning in the middle of the run"
    assert [line for line in shown if line != warning] == logged
    assert shown.count(warning) == 1
    assert not any("ETA" in line for line in shown)

    chart = Image.open(backup / "chart.png")
    assert chart.format == "PNG" and chart.size == (800, 480)


def test_map_does_not_disturb_training(dataset):
    """Multi-scale (random=1: trained at 608, measured at the cfg's 32x32) with batch norm
    and dropout: the run with -map every 2 iterations ends with the same bytes as the run
    without."""
    (dataset / "t.cfg").write_text(DETECTOR_BN_RANDOM)
    data, cfg = str(dataset / "t.data"), str(dataset / "t.cfg")
    finals = []
    for calc_map in (False, True):
        out = io.StringIO()
        final = train_detector(data, cfg, seed=3, workers=0, max_batches=4, out=out,
                               calc_map=calc_map, map_function=detector_map,
                               map_every=2 if calc_map else None,
                               chart_every=None)
        finals.append(open(final, "rb").read())
        assert "Resizing to initial size: 32 x 32" in out.getvalue() or not calc_map
        assert len(MAP_LINE.findall(out.getvalue())) == (2 if calc_map else 0)
    assert finals[0] == finals[1]


def test_map_by_default_once_at_the_end(dataset):
    """3 images, 4 per iteration: 4 epochs are 3 iterations, so AlexeyAB's rule says every
    100; a 4-iteration run measures once, after its last iteration."""
    out = io.StringIO()
    train_detector(str(dataset / "t.data"), str(dataset / "t.cfg"), seed=1, workers=0,
                   max_batches=4, out=out, calc_map=True, map_function=detector_map, chart_every=None)
    text = out.getvalue()
    assert "every 100 iterations (next at 100)" in text
    assert len(MAP_LINE.findall(text)) == 1
    assert text.index("4: ") < MAP_LINE.search(text).start()


def test_start_up_report_names_the_layers_loaded(dataset, capsys):
    """A partial file of the first 2 layers: loaded 2 of the 6 (the cut is after layer 1,
    the maxpool, so the later convolutions keep their random values)."""
    cfg = str(dataset / "t.cfg")
    full, cut = str(dataset / "full.weights"), str(dataset / "cut.weights")
    darknet_py.load_network(cfg).save_weights(full)
    partial(cfg, full, cut, 2)
    capsys.readouterr()
    train_detector(str(dataset / "t.data"), cfg, cut, seed=1, workers=0, max_batches=1,
                   out=io.StringIO())
    err = capsys.readouterr().err
    assert "layer     filters    size              input                output" in err
    assert "    0 conv      8  3 x 3 / 1    32 x  32 x   3   ->    32 x  32 x   8" in err
    assert f"Loading weights from {cut}...Done!\n" in err
    assert f"Loaded 2 of 6 layers from {cut} (seen 0)\n" in err


def test_classifier_train_reports_weights_and_charts_its_loss(tmp_path, capsys):
    folder = tmp_path / "red"
    folder.mkdir()
    Image.fromarray(np.full((20, 20, 3), 200, np.uint8)).save(folder / "0.png")
    (tmp_path / "train.list").write_text(f"{folder / '0.png'}\n")
    (tmp_path / "labels.list").write_text("red\nblue\n")
    (tmp_path / "c.data").write_text(f"classes=2\ntrain={tmp_path / 'train.list'}\n"
                                     f"labels={tmp_path / 'labels.list'}\n"
                                     f"backup={tmp_path / 'backup'}\n")
    cfg = tmp_path / "c.cfg"
    cfg.write_text("[net]\nbatch=2\nwidth=16\nheight=16\nchannels=3\nmax_batches=3\n"
                   "[convolutional]\nfilters=2\nsize=3\nstride=1\npad=1\nactivation=linear\n"
                   "[avgpool]\n[softmax]\n")
    weights = str(tmp_path / "start.weights")
    darknet_py.load_network(str(cfg)).save_weights(weights)
    capsys.readouterr()
    train_classifier(str(tmp_path / "c.data"), str(cfg), weights, workers=0,
                     out=io.StringIO(), chart_every=2)
    err = capsys.readouterr().err
    assert f"Loaded 3 of 3 layers from {weights} (seen 0)" in err
    assert Image.open(tmp_path / "backup" / "chart.png").size == (800, 480)


@pytest.mark.parametrize("options, message", [
    (dict(calc_map=True, map_function=detector_map, map_every=0), "-map_every 0: expected at least 1"),
    (dict(map_every=5), "-map_every 5: give -map too"),
    (dict(chart_every=0), "-chart_every 0: expected at least 1"),
    (dict(log_path="."), r"\.: cannot write the log: Is a directory"),
])
def test_bad_watching_options_are_one_line(dataset, options, message):
    with pytest.raises(DarknetError, match=message):
        train_detector(str(dataset / "t.data"), str(dataset / "t.cfg"), workers=0,
                       max_batches=1, out=io.StringIO(), **options)


def test_map_needs_a_valid_list_with_labels(dataset):
    data = dataset / "t.data"
    text = data.read_text()
    data.write_text("\n".join(line for line in text.splitlines()
                              if not line.startswith("valid")))
    with pytest.raises(DarknetError, match="-map needs a 'valid =' line"):
        train_detector(str(data), str(dataset / "t.cfg"), workers=0, calc_map=True, map_function=detector_map,
                       out=io.StringIO())
    data.write_text(text)
    (dataset / "labels" / "1.txt").unlink()
    with pytest.raises(DarknetError, match=r"1\.txt: label file not found"):
        train_detector(str(data), str(dataset / "t.cfg"), workers=0, calc_map=True, map_function=detector_map,
                       out=io.StringIO())
    assert not (dataset / "backup" / "t_final.weights").exists()


def test_an_unreadable_valid_image_keeps_the_iteration(dataset):
    """Found at the check (labels were checked at the start, images are read then): one
    line naming the check, and the backup holds that iteration's weights."""
    broken = dataset / "images" / "broken.png"
    broken.write_bytes(b"not a picture")
    (dataset / "labels" / "broken.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (dataset / "valid.txt").write_text(f"{broken}\n")
    data = dataset / "t.data"
    data.write_text(data.read_text().replace(f"valid={dataset / 'train.txt'}",
                                             f"valid={dataset / 'valid.txt'}"))
    with pytest.raises(DarknetError, match=r"^-map after iteration 2: .*broken\.png.*; the "
                                           r"weights of batch 2 are saved in .*t\.backup$"):
        train_detector(str(data), str(dataset / "t.cfg"), workers=0, max_batches=3,
                       out=io.StringIO(), calc_map=True, map_function=detector_map, map_every=2)
    backup = dataset / "backup" / "t.backup"
    assert darknet_py.load_network(str(dataset / "t.cfg"), str(backup)).seen == 2 * 4


def test_classifier_train_refuses_map():
    with pytest.raises(DarknetError, match="a classifier has none"):
        train_classifier("x.data", "x.cfg", calc_map=True)


RACCOON_CFG = """[net]
batch=4
subdivisions=1
width=64
height=64
channels=3
learning_rate=0.01
burn_in=2
max_batches=8
policy=constant
[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=leaky
[maxpool]
size=8
stride=8
[convolutional]
filters=12
size=1
stride=1
activation=linear
[region]
anchors=1,1,1.5,1.5
classes=1
num=2
softmax=1
jitter=.1
random=0
"""


def test_detector_train_map_on_raccoon(tmp_path, monkeypatch):
    """Acceptance 1 of issue 15, from the command line: `detector train ... -map` on a
    shared dataset writes chart.png (a PNG with the loss and two mAP points), _best and
    _last weights that load, and the progress line shows an ETA; -log holds stdout's
    lines."""
    root = need_shared("datasets/raccoon")
    voc_label(str(root), str(tmp_path / "voc"))
    images = (tmp_path / "voc" / "all.txt").read_text().split()
    (tmp_path / "train.txt").write_text("\n".join(images[:8]) + "\n")
    (tmp_path / "valid.txt").write_text("\n".join(images[8:12]) + "\n")
    (tmp_path / "r.data").write_text(f"classes=1\ntrain={tmp_path / 'train.txt'}\n"
                                     f"valid={tmp_path / 'valid.txt'}\n"
                                     f"names={tmp_path / 'voc' / 'classes.names'}\n"
                                     f"backup={tmp_path / 'backup'}\n")
    cfg = tmp_path / "r.cfg"
    cfg.write_text(RACCOON_CFG)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    stdout = io.StringIO()
    with redirect_stdout(stdout):
        code = main(["detector", "train", str(tmp_path / "r.data"), str(cfg), "-map",
                     "-map_every", "4", "-seed", "1", "-workers", "0", "-chart_every", "2",
                     "-log", str(tmp_path / "run.log")])
    monkeypatch.undo()
    assert code == 0, terminal.getvalue()
    out = stdout.getvalue()
    assert (tmp_path / "run.log").read_text() == out
    assert len(MAP_LINE.findall(out)) == 2                  # after iterations 4 and 8
    assert re.search(r"\| ETA \d+:\d\d:\d\d \|", terminal.getvalue())
    chart = Image.open(tmp_path / "backup" / "chart.png")
    chart.load()
    assert chart.format == "PNG" and chart.size == (800, 480)
    # the mAP squares are drawn in the colour after the two loss lines'
    from darknet_py.plot import COLOURS
    colours = {colour for _, colour in chart.convert("RGB").getcolors(1 << 16)}
    assert {COLOURS[0], COLOURS[1], COLOURS[2]} <= colours
    best_at = int(BEST_LINE.findall(out)[-1][1])
    for name, iteration in (("r_best.weights", best_at), ("r_last.weights", 8)):
        net = darknet_py.load_network(str(cfg), str(tmp_path / "backup" / name))
        assert net.loaded_layers == len(net.layers) and net.seen == iteration * 4


@pytest.mark.parametrize("group", ["detector", "classifier"])
def test_train_help_lists_the_watching_flags(group, capsys):
    with pytest.raises(SystemExit) as done:
        main([group, "train", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for flag in ("-log FILE", "-chart_every N", "-nochart", "-map ", "-map_every N"):
        assert flag in text, flag
    assert ("AlexeyAB's -map" in text) == (group == "detector")
