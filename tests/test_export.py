"""`export`: the ONNX graph computes what net.forward computes.

Tiny cfgs written here cover each translated layer (batch norm folded or not, grouped and
strided convs, every activation, darknet's maxpool padding, route, reorg both ways,
avgpool + softmax classifiers, connected, dropout, region activations), and the shipped
yolov2-tiny-voc and yolov2-voc cfgs run at 96x96. Weights are darknet's distributions
drawn by NumPy (bench.random_network: darknet's glibc stream in Python is slow) with the
batch-norm statistics replaced by finite random ones, so the fold is exercised too. onnxruntime's output must agree with ours to a relative L2 of 1e-5 and a
max abs difference of 2e-5 * max(1, max |ours|): both compute in float32, in other
summation orders (folding batch norm into the weights rounds differently too).
"""
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from darknet_py.errors import DarknetError
from darknet_py.bench import random_network

onnx = pytest.importorskip("onnx", reason="export needs onnx: pip install -e '.[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="checking the export needs onnxruntime: "
                                                "pip install -e '.[onnx]'")
from darknet_py import export_onnx  # noqa: E402  (after the skips: it needs onnx)

REL_L2 = 1e-5
MAX_ABS = 2e-5   # times max(1, max |ours|)


def write_cfg(tmp_path, body, width=12, height=12, channels=3, name="net.cfg"):
    path = tmp_path / name
    path.write_text(f"[net]\nbatch=1\nwidth={width}\nheight={height}\nchannels={channels}\n"
                    + body)
    return str(path)


def random_net(cfg, seed=0):
    """Random weights, then finite random batch-norm statistics and scales."""
    net = random_network(cfg, batch=1, device="cpu", seed=seed)
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if getattr(layer, "rolling_variance", None) is not None:
            count = layer.rolling_variance.shape
            layer.rolling_variance[...] = rng.uniform(0.5, 2.0, count)
            layer.rolling_mean[...] = rng.normal(0, 0.2, count)
            layer.scales[...] = rng.uniform(0.5, 1.5, count)
        if getattr(layer, "biases", None) is not None and layer.type != "region":
            layer.biases[...] = rng.normal(0, 0.2, layer.biases.shape)
    return net


def run_onnx(model, x):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1   # tests share the machine
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": x})[0]


def expected(net, x, region):
    """net.forward's output; without region, the raw output of the layer before a region."""
    out = net.forward(x)
    last = net.output_layer()
    if last.type == "region" and not region:
        out = net.layers[last.index - 1].output
    return np.asarray(out, np.float32)


def check(net, x, region=False, opset=export_onnx.DEFAULT_OPSET, ours=None):
    """Export, run, compare (ours: net.forward's answer when already computed)."""
    model = export_onnx.build_model(net, batch=x.shape[0], region=region, opset=opset)
    theirs = run_onnx(model, x)
    ours = expected(net, x, region) if ours is None else ours
    assert theirs.shape == ours.shape
    assert np.all(np.isfinite(ours))
    diff = theirs.astype(np.float64) - ours
    rel = np.linalg.norm(diff) / max(np.linalg.norm(ours), 1e-30)
    assert rel <= REL_L2, f"relative L2 {rel:.3g}"
    bound = MAX_ABS * max(1.0, float(np.abs(ours).max()))
    assert np.abs(diff).max() <= bound, f"max abs {np.abs(diff).max():.3g} > {bound:.3g}"
    return model


def image(net, batch=1, low=0.0, high=1.0, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, (batch, net.channels, net.height, net.width)).astype(
        np.float32)


CONV = "[convolutional]\nfilters={f}\nsize={k}\nstride={s}\npad={p}\nactivation={a}\n{extra}\n"


def conv(filters, size=3, stride=1, pad=1, activation="leaky", bn=True, extra=""):
    return CONV.format(f=filters, k=size, s=stride, p=pad, a=activation,
                       extra=("batch_normalize=1\n" if bn else "") + extra)


NETS = {
    "convs": conv(8) + conv(6, 1, activation="logistic", bn=False)
    + conv(8, 3, 2, activation="linear") + conv(8, 3, bn=False, extra="groups=2")
    + conv(4, 3, 1, 0, activation="relu", extra="groups=4"),
    # 2/2, darknet's 2/1 (keeps the size: one row and column of padding after), 3/2 on an
    # odd size, and padding=4 with size 2: windows wholly outside give -FLT_MAX... which
    # the next maxpool 3/1 turns back into real maxima
    "maxpools": conv(4) + "[maxpool]\nsize=2\nstride=2\n" + "[maxpool]\nsize=2\nstride=1\n"
    + "[maxpool]\nsize=3\nstride=2\n" + "[maxpool]\nsize=2\nstride=1\npadding=3\n"
    + "[maxpool]\nsize=3\nstride=1\n" + conv(4, activation="linear"),
    # YOLOv2's passthrough (route back, reorg, concatenate), then a reverse reorg
    "route_reorg": conv(8) + "[maxpool]\nsize=2\nstride=2\n" + conv(16)
    + "[route]\nlayers=-3\n" + "[reorg]\nstride=2\n" + "[route]\nlayers=-1,-3\n"
    + "[reorg]\nstride=2\nreverse=1\n" + conv(4, 1, activation="linear", bn=False)
    + "[route]\nlayers=-1,-8\n" + conv(5, 1),
    "classifier": conv(8) + "[maxpool]\nsize=2\nstride=2\n" + conv(10, 1, activation="linear")
    + "[avgpool]\n" + "[softmax]\ngroups=1\n" + "[cost]\ntype=sse\n",
    "connected": conv(4, 3, 2) + "[batchnorm]\n" + "[dropout]\nprobability=.5\n"
    + "[connected]\noutput=12\nactivation=leaky\n"
    + "[connected]\noutput=12\nactivation=linear\nbatch_normalize=1\n"
    + "[softmax]\ngroups=3\ntemperature=2\n",
    "region": conv(8) + conv(2 * (4 + 3 + 1), 1, activation="linear", bn=False)
    + "[region]\nanchors=1,1,2,2\nclasses=3\ncoords=4\nnum=2\nsoftmax=1\n",
    "region_background": conv(8) + conv(2 * (4 + 3 + 1), 1, activation="linear", bn=False)
    + "[region]\nanchors=1,1,2,2\nclasses=3\ncoords=4\nnum=2\nsoftmax=1\nbackground=1\n",
}


@pytest.mark.parametrize("name", sorted(NETS))
def test_tiny_networks_agree(tmp_path, name):
    net = random_net(write_cfg(tmp_path, NETS[name], width=16, height=12))
    x = image(net, batch=2)
    check(net, x)
    if net.output_layer().type == "region":
        check(net, x, region=True)


@pytest.mark.parametrize("name", ["region", "connected"])
def test_opset_11_agrees(tmp_path, name):
    """Before opset 13 Softmax flattens from its axis on: the region softmax transposes."""
    net = random_net(write_cfg(tmp_path, NETS[name]))
    check(net, image(net), region=True, opset=11)


@pytest.mark.parametrize("activation", export_onnx.ACTIVATIONS)
def test_every_activation_agrees(tmp_path, activation):
    # inputs in -6..6 so that the outputs reach every branch (plse's +-4, lhtan's 0 and 1)
    net = random_net(write_cfg(tmp_path, conv(8, activation=activation, bn=False)))
    x = image(net, low=-6, high=6)
    assert np.abs(net.forward(x)).max() > 0
    check(net, x)


def test_every_darknet_activation_is_exported():
    from darknet_py import activations
    assert set(export_onnx.ACTIVATIONS) == set(activations.NAMES)


def shipped_at_96(tmp_path, name):
    text = (ROOT / "cfg" / name).read_text()
    text = re.sub(r"(?m)^width=\d+", "width=96", text)
    text = re.sub(r"(?m)^height=\d+", "height=96", text)
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("name", ["yolov2-tiny-voc.cfg", "yolov2-voc.cfg"])
def test_shipped_detectors_agree(tmp_path, name):
    net = random_net(shipped_at_96(tmp_path, name))
    assert (net.width, net.height) == (96, 96)
    x = image(net)
    activated = np.array(net.forward(x), np.float32)   # one forward for both checks
    raw = np.array(net.layers[-2].output, np.float32)
    model = check(net, x, ours=raw)
    assert model.graph.output[0].type.tensor_type.shape.dim[1].dim_value == 125
    check(net, x, region=True, ours=activated)


def test_model_declares_its_batch(tmp_path):
    net = random_net(write_cfg(tmp_path, NETS["classifier"]))
    model = export_onnx.build_model(net, batch=3)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [dim.dim_value for dim in dims] == [3, 3, 12, 12]
    free = export_onnx.build_model(net, batch=None)
    assert free.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    check(net, image(net, batch=3))


def assert_one_line_error(net, *words, **options):
    with pytest.raises(DarknetError) as caught:
        export_onnx.build_model(net, **options)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_unsupported_layers_are_named(tmp_path):
    # a [cost] layer that other layers read (a trailing one is skipped, as network_output)
    net = random_net(write_cfg(tmp_path, conv(4) + "[cost]\n" + conv(4, 1)))
    assert_one_line_error(net, "layer 1 [cost]", "cannot be exported")
    # tree softmax
    (tmp_path / "t.tree").write_text("a -1\nb -1\nc 0\nd 0\n")
    net = random_net(write_cfg(tmp_path, conv(4, 1) + "[avgpool]\n[softmax]\ntree=t.tree\n",
                               name="tree.cfg"))
    assert_one_line_error(net, "layer 2 [softmax]", "tree softmax")
    # darknet's 1x1 convolution ignores stride in its GEMM
    net = random_net(write_cfg(tmp_path, conv(4, 1, 2, 0), name="strided.cfg"))
    assert_one_line_error(net, "layer 0 [convolutional]", "1x1")
    assert_one_line_error(net, "opset 7", opset=7)


def test_cli_writes_a_model(tmp_path):
    cfg = write_cfg(tmp_path, NETS["region"])
    out = tmp_path / "net.onnx"
    command = [sys.executable, "-m", "darknet_py", "export", cfg, "none", str(out),
               "-region", "-batch", "2", "-opset", "12"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                 "DARKNET_PY_DEVICE": "cpu"})
    assert result.returncode == 0, result.stderr
    assert "(2, 16, 12, 12)" in result.stdout
    model = onnx.load(str(out))
    assert model.opset_import[0].version == 12
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][0] == 2
    bad = write_cfg(tmp_path, conv(4, 1, 2, 0), name="bad.cfg")
    result = subprocess.run(command[:4] + [bad, "none", str(tmp_path / "bad.onnx")],
                            capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "layer 0 [convolutional]" in result.stderr
    assert not (tmp_path / "bad.onnx").exists()
