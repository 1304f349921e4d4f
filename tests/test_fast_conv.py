"""The NumPy backend's plain-inference convolution and maxpool (ops/winograd.py,
ops/cpu_kernels.py) against direct float64 evaluations of darknet's formulas.

Winograd F(2x2, 3x3) reorders the arithmetic, so it is held to the accuracy of the GEMM it
replaces (relative L2 error against float64 below 1e-6, as im2col + GEMM reaches); the
maxpool is an exact max and must give darknet's values bit for bit. The choice of path,
the cached filter transform (and the read-only weights that guard it), exact mode's
untouched path and the fallback without numba are checked too.
"""
import itertools

import os
import signal

import numpy as np
import pytest

from darknet_py.layers import Step, make_layer
from darknet_py.network import parse_network_cfg
from darknet_py.ops import cpu_kernels, numpy_ops, threads, winograd

F32, F64 = np.float32, np.float64
FLT_MAX = float(np.finfo(F32).max)

pytestmark = pytest.mark.skipif(not cpu_kernels.compiled(), reason="numba is not installed")


@pytest.fixture(params=[(1, True), (2, True), (2, False)],
                ids=["1thread", "2threads", "2threads-pool"])
def thread_setting(request, monkeypatch):
    """1 or 2 threads; with the GEMMs on numba's threads (cpu_kernels.fused_gemms), or,
    as where NumPy's BLAS is not OpenBLAS, on the Python pool (threads.for_blocks)."""
    count, fused = request.param
    monkeypatch.setenv("DARKNET_PY_THREADS", str(count))
    monkeypatch.setattr(threads, "MIN_PARALLEL_ELEMENTS", 1)   # parallel even when small
    monkeypatch.setattr(cpu_kernels, "MIN_PARALLEL_ELEMENTS", 1)
    monkeypatch.setattr(threads, "_pool", None)
    if not fused:
        monkeypatch.setattr(cpu_kernels, "fused_gemms", lambda: None)
        monkeypatch.setattr(winograd, "fused_gemms", lambda: None)
    return count


def reference_conv(x, weights, stride, pad):
    """The convolution in float64 from its definition: out[b, k, i, j] = sum over c, y, x
    of w[k, c, y, x] * x_padded[b, c, i*stride + y, j*stride + x] (zeros outside)."""
    size = weights.shape[2]
    padded = np.pad(x.astype(F64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride]          # (B, C, out_h, out_w, size, size)
    batch, _, out_h, out_w = windows.shape[:4]
    flat = windows.transpose(0, 2, 3, 1, 4, 5).reshape(batch * out_h * out_w, -1)
    out = flat @ weights.astype(F64).reshape(weights.shape[0], -1).T
    return out.reshape(batch, out_h, out_w, -1).transpose(0, 3, 1, 2)


ACTIVATIONS_F64 = {
    "linear": lambda y: y,
    "leaky": lambda y: np.where(y > 0, y, 0.1 * y),
    "relu": lambda y: np.maximum(y, 0),
    "logistic": lambda y: 1 / (1 + np.exp(-y)),
    "elu": lambda y: np.where(y >= 0, y, np.exp(y) - 1),    # not fused: applied after
    "tanh": np.tanh,                                        # not fused: applied after
}


def relative_error(got, expected):
    return np.linalg.norm(got.astype(F64) - expected) / np.linalg.norm(expected)


def random_case(rng, batch, channels, filters, height, width):
    x = rng.standard_normal((batch, channels, height, width)).astype(F32)
    weights = (rng.standard_normal((filters, channels, 3, 3)) / np.sqrt(9 * channels))
    factor = rng.uniform(0.5, 2.0, filters).astype(F32)
    shift = rng.normal(0, 0.5, filters).astype(F32)
    return x, weights.astype(F32), factor, shift


# (batch, channels, filters, height, width, pad): odd and even sizes, 1 channel, batch > 1,
# maps from 1x1 to 70x67; few tiles (the split over filter blocks) and many (tile bands)
SHAPES = [(1, 1, 1, 5, 5, 1), (1, 3, 5, 7, 9, 1), (2, 4, 6, 13, 13, 1), (3, 5, 7, 6, 5, 0),
          (1, 8, 8, 1, 1, 1), (1, 2, 3, 2, 3, 2), (2, 16, 32, 20, 21, 1),
          (1, 64, 40, 13, 13, 1), (1, 3, 16, 70, 67, 1), (2, 32, 24, 45, 44, 1),
          (1, 7, 9, 66, 80, 0), (1, 200, 130, 13, 13, 1)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_winograd_matches_float64_convolution(thread_setting, shape):
    batch, channels, filters, height, width, pad = shape
    rng = np.random.default_rng(sum(shape))
    x, weights, factor, shift = random_case(rng, batch, channels, filters, height, width)
    got, fused = winograd.conv3x3(x, winograd.transform_filters(weights), pad, factor,
                                  shift, "leaky", threads.for_blocks)
    assert fused
    expected = reference_conv(x, weights, 1, pad) * factor[None, :, None, None] \
        + shift[None, :, None, None]
    expected = ACTIVATIONS_F64["leaky"](expected)
    assert got.shape == expected.shape and got.dtype == F32
    assert relative_error(got, expected) < 1e-6


RGB_SHAPES = [(1, 5, 7, 9, 1), (2, 4, 6, 5, 0), (1, 3, 5, 5, 2), (1, 2, 1, 1, 1),
              (2, 16, 30, 31, 1), (1, 32, 416, 3, 1)]


@pytest.mark.parametrize("shape", RGB_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("activation", ["leaky", "linear", "relu", "logistic"])
def test_direct_3_channel_convolution_matches_float64(thread_setting, shape, activation):
    batch, filters, height, width, pad = shape
    rng = np.random.default_rng(sum(shape))
    x, weights, factor, shift = random_case(rng, batch, 3, filters, height, width)
    code = cpu_kernels.FUSED_ACTIVATIONS[activation]
    got = cpu_kernels.rgb_conv3x3(x, weights, pad, factor, shift, code)
    expected = reference_conv(x, weights, 1, pad) * factor[None, :, None, None] \
        + shift[None, :, None, None]
    assert got.shape == expected.shape
    assert relative_error(got, ACTIVATIONS_F64[activation](expected)) < 1e-6


def force_winograd_split(monkeypatch, path):
    """Make conv3x3 split its work by tile bands ("bands"), or by the three steps whole
    ("steps") or in chunks of tile rows ("steps_chunked"), whatever the shape."""
    if path == "bands":
        monkeypatch.setattr(winograd, "BAND_MIN_TILES", 4)
        monkeypatch.setattr(winograd, "BAND_BYTES", 1)          # one tile row per band
        monkeypatch.setattr(winograd, "BAND_FILTER_BYTES", 1 << 40)
    else:
        monkeypatch.setattr(winograd, "BAND_FILTER_BYTES", 0)
        if path == "steps_chunked":
            monkeypatch.setattr(winograd, "STEP_BYTES", 1)      # one tile row per chunk


@pytest.mark.parametrize("path", ["bands", "steps", "steps_chunked"])
def test_each_winograd_split_gives_the_convolution(thread_setting, monkeypatch, path):
    """The two ways conv3x3 splits its work (tile bands; the three steps, whole or in
    chunks of tile rows) forced on one odd-sized batch-2 case."""
    force_winograd_split(monkeypatch, path)
    rng = np.random.default_rng(21)
    x, weights, factor, shift = random_case(rng, 2, 6, 10, 15, 17)
    got, _ = winograd.conv3x3(x, winograd.transform_filters(weights), 1, factor, shift,
                              "relu", threads.for_blocks)
    expected = reference_conv(x, weights, 1, 1) * factor[None, :, None, None] \
        + shift[None, :, None, None]
    assert relative_error(got, ACTIVATIONS_F64["relu"](expected)) < 1e-6


def test_winograd_is_as_accurate_as_im2col_gemm():
    """On a yolov2 layer shape (1024 -> 256 channels, 13x13) both formulations sit at the
    float32 GEMM's accuracy against float64."""
    rng = np.random.default_rng(11)
    x, weights, _, _ = random_case(rng, 1, 1024, 256, 13, 13)
    expected = reference_conv(x, weights, 1, 1)
    ones, zeros = np.ones(256, F32), np.zeros(256, F32)
    fast, _ = winograd.conv3x3(x, winograd.transform_filters(weights), 1, ones, zeros,
                               "linear", threads.for_blocks)
    gemm = numpy_ops._conv_im2col(x, weights, 3, 1, 1, 1, 13, 13)
    assert relative_error(fast, expected) < 1e-6
    assert relative_error(gemm, expected) < 1e-6


def test_filter_transform_is_the_float64_product_rounded_once():
    rng = np.random.default_rng(5)
    weights = rng.standard_normal((6, 5, 3, 3)).astype(F32)
    g_matrix = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])
    expected = np.einsum("ai,kcij,bj->abkc", g_matrix, weights.astype(F64), g_matrix)
    np.testing.assert_array_equal(winograd.transform_filters(weights),
                                  expected.reshape(16, 6, 5).astype(F32))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS_F64))
@pytest.mark.parametrize("with_factor", [True, False])
def test_conv2d_inference_applies_the_tail(activation, with_factor):
    """x*factor + shift (or + shift alone, as add_bias) and the activation, fused or (elu,
    tanh) applied afterwards."""
    rng = np.random.default_rng(3)
    x, weights, factor, shift = random_case(rng, 2, 6, 5, 11, 10)
    got = numpy_ops.conv2d_inference(x, weights, 3, 1, 1, 1, 11, 10,
                                     factor if with_factor else None, shift, activation)
    conv = reference_conv(x, weights, 1, 1)
    if with_factor:
        conv = conv * factor[None, :, None, None]
    expected = ACTIVATIONS_F64[activation](conv + shift[None, :, None, None])
    assert relative_error(got, expected) < 1e-6


@pytest.mark.parametrize("channels,size,stride,pad,groups,strategy", [
    (4, 3, 1, 1, 1, "winograd"), (4, 3, 1, 0, 1, "winograd"), (3, 3, 1, 1, 1, "direct"),
    (3, 3, 1, 2, 1, "direct"), (4, 3, 2, 1, 1, "gemm"), (4, 1, 1, 0, 1, "gemm"),
    (4, 5, 1, 2, 1, "gemm"), (4, 2, 2, 0, 1, "gemm"), (4, 3, 1, 1, 2, "im2col")])
def test_conv2d_inference_strategy_and_values(channels, size, stride, pad, groups,
                                              strategy):
    rng = np.random.default_rng(size * 10 + stride)
    filters, height, width = 6, 9, 8
    x = rng.standard_normal((2, channels, height, width)).astype(F32)
    weights = rng.standard_normal((filters, channels // groups, size, size)).astype(F32)
    shift = rng.standard_normal(filters).astype(F32)
    out_h = (height + 2 * pad - size) // stride + 1
    out_w = (width + 2 * pad - size) // stride + 1
    assert numpy_ops._conv_strategy(x.shape, weights.shape, size, stride, pad,
                                   groups) == strategy
    got = numpy_ops.conv2d_inference(x, weights, size, stride, pad, groups, out_h, out_w,
                                     None, shift, "linear")
    per_group = channels // groups
    expected = np.concatenate([
        reference_conv(x[:, g * per_group:(g + 1) * per_group],
                       weights[g * filters // groups:(g + 1) * filters // groups], stride,
                       pad) for g in range(groups)], axis=1)
    assert relative_error(got, expected + shift[None, :, None, None]) < 1e-6


@pytest.mark.parametrize("activation", ["leaky", "linear", "logistic", "tanh"])
def test_gemm_path_applies_the_tail_to_every_block(monkeypatch, activation):
    """1x1 convolutions of 13x13 and 40x40 maps, batch 3: several column blocks per image
    (GEMM_COLUMNS shrunk to 64), each with the tail; one 5x5 image of 70 filters: more
    filters than columns, split by filters."""
    monkeypatch.setattr(cpu_kernels, "GEMM_COLUMNS", 64)
    rng = np.random.default_rng(8)
    for side, batch, filters in ((13, 3, 7), (40, 3, 7), (5, 1, 70)):
        x = rng.standard_normal((batch, 20, side, side)).astype(F32)
        weights = rng.standard_normal((filters, 20, 1, 1)).astype(F32)
        factor = rng.uniform(0.5, 2, filters).astype(F32)
        shift = rng.standard_normal(filters).astype(F32)
        got = numpy_ops.conv2d_inference(x, weights, 1, 1, 0, 1, side, side, factor, shift,
                                         activation)
        expected = reference_conv(x, weights, 1, 0) * factor[None, :, None, None] \
            + shift[None, :, None, None]
        assert relative_error(got, ACTIVATIONS_F64[activation](expected)) < 1e-6


@pytest.mark.parametrize("batch, filters, columns, threads, split", [
    (1, 64, 10816, 2, (2, 1)),    # yolov2-voc's 104x104 1x1 layer: halves of the map
    (1, 512, 169, 2, (1, 2)),     # its 13x13 1x1 layer: halves of the filters
    (2, 512, 169, 2, (1, 1)),     # a whole image per thread
    (8, 64, 10816, 2, (2, 1)),    # whole images, but in blocks within GEMM_COLUMNS
    (3, 64, 169, 2, (2, 1)),      # 6 tasks: 3 per thread
    (1, 70, 25, 4, (1, 4)),
    (1, 20, 25, 4, (1, 1)),       # too few filters to split
    (1, 16, 100000, 2, (14, 1)),  # blocks of at most GEMM_COLUMNS, an even count
])
def test_gemm_split_gives_every_thread_one_large_gemm(batch, filters, columns, threads,
                                                      split):
    column_parts, filter_parts = cpu_kernels.gemm_split(batch, filters, columns, threads)
    assert (column_parts, filter_parts) == split
    assert -(-columns // column_parts) <= cpu_kernels.GEMM_COLUMNS


def test_without_numba_every_shape_takes_im2col(monkeypatch):
    monkeypatch.setattr(cpu_kernels, "compiled", lambda: False)
    assert numpy_ops._conv_strategy((1, 4, 9, 9), (6, 4, 3, 3), 3, 1, 1, 1) == "im2col"
    x = np.random.default_rng(0).standard_normal((1, 3, 9, 9)).astype(F32)
    reference = numpy_ops.maxpool(x, 2, 2, 1, 5, 5, want_indexes=False)[0]
    np.testing.assert_array_equal(numpy_ops.maxpool_inference(x, 2, 2, 1, 5, 5), reference)


# ---------------------------------------------------------------- the cached filters
def conv_layer(channels=4, filters=6, size=3, side=9):
    layer = make_layer("convolutional", (channels, side, side), filters=filters, size=size,
                       stride=1, pad=1, batch_normalize=1, activation="leaky")
    rng = np.random.default_rng(4)
    layer.weights = rng.standard_normal(layer.weights.shape).astype(F32)
    layer.biases = rng.standard_normal(filters).astype(F32)
    layer.rolling_variance = np.ones(filters, F32)
    return layer


def test_weights_are_read_only_while_their_transform_is_cached():
    layer = conv_layer()
    x = np.random.default_rng(1).standard_normal((1, 4, 9, 9)).astype(F32)
    first = layer.forward(x, Step(ops=numpy_ops)).copy()
    assert not layer.weights.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        layer.weights[0, 0, 0, 0] = 1.0     # would otherwise run on stale filters
    # a training forward keeps them for its backward; the SGD step, which changes the
    # weights in place, drops them and makes the array writable again
    layer.forward(x, Step(ops=numpy_ops, train=True))
    assert not layer.weights.flags.writeable
    before = layer.weights.copy()
    numpy_ops.sgd_step(layer.weights, np.ones_like(before), 0.5, 0.0)
    assert layer.weights.flags.writeable
    np.testing.assert_array_equal(layer.weights, before + F32(0.5))
    layer.weights *= 2
    again = layer.forward(x, Step(ops=numpy_ops))
    assert not np.allclose(again, first)
    np.testing.assert_allclose(again, layer.forward(x, Step(ops=numpy_ops, exact=True)),
                               rtol=1e-5, atol=1e-5)


def test_replaced_weights_are_transformed_afresh():
    layer = conv_layer()
    x = np.random.default_rng(1).standard_normal((1, 4, 9, 9)).astype(F32)
    layer.forward(x, Step(ops=numpy_ops))
    old = layer.weights
    layer.weights = -old   # as load_weights does: a new array
    got = layer.forward(x, Step(ops=numpy_ops))
    expected = layer.forward(x, Step(ops=numpy_ops, exact=True))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_forget_restores_only_what_it_changed():
    weights = np.ones((2, 2, 3, 3), F32)
    weights.flags.writeable = False      # read-only before: stays so
    numpy_ops._transformed_filters(weights)
    numpy_ops.forget_conv_weights(weights)
    assert not weights.flags.writeable
    numpy_ops.forget_conv_weights(np.ones(3, F32))   # nothing cached: nothing happens


def test_blas_single_threaded_restores_the_thread_count():
    threads_api = cpu_kernels._openblas_threads()
    if threads_api is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS")
    _, getter = threads_api
    before = getter()
    with cpu_kernels.blas_single_threaded() as single:
        assert single and getter() == 1
    assert getter() == before


# ---------------------------------------------------------------- maxpool
def darknet_maxpool(x, size, stride, pad, out_h, out_w):
    """forward_maxpool_layer transcribed: for each output, max = -FLT_MAX, then the cells
    (n, m) in order, `if (val > max) max = val` with val = -FLT_MAX outside the input."""
    top = pad // 2
    out = np.empty(x.shape[:2] + (out_h, out_w), F32)
    for b, c, i, j in itertools.product(range(x.shape[0]), range(x.shape[1]), range(out_h),
                                        range(out_w)):
        best = F32(-FLT_MAX)
        for n, m in itertools.product(range(size), range(size)):
            row, col = i * stride + n - top, j * stride + m - top
            inside = 0 <= row < x.shape[2] and 0 <= col < x.shape[3]
            value = x[b, c, row, col] if inside else F32(-FLT_MAX)
            if value > best:
                best = value
        out[b, c, i, j] = best
    return out


MAXPOOLS = [((1, 3, 8, 8), 2, 2, 1), ((2, 4, 7, 9), 2, 2, 1), ((1, 5, 13, 13), 2, 1, 1),
            ((1, 2, 9, 6), 3, 2, 2), ((2, 3, 5, 4), 1, 2, 0), ((1, 2, 6, 6), 3, 1, 4),
            ((1, 1, 1, 1), 1, 1, 0), ((1, 3, 7, 8), 2, 1, 2), ((1, 3, 416, 10), 2, 2, 1),
            ((1, 2, 11, 12), 4, 3, 3), ((2, 2, 9, 9), 3, 1, 2)]


@pytest.mark.parametrize("shape,size,stride,pad", MAXPOOLS)
def test_maxpool_inference_is_the_numpy_maxpool_bit_for_bit(thread_setting, shape, size,
                                                            stride, pad):
    x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(F32)
    x[..., ::3, ::2] = 0.0     # ties between cells: the first in window order is kept
    out_h = (shape[2] + pad - size) // stride + 1
    out_w = (shape[3] + pad - size) // stride + 1
    got = numpy_ops.maxpool_inference(x, size, stride, pad, out_h, out_w)
    reference = numpy_ops.maxpool(x, size, stride, pad, out_h, out_w, want_indexes=False)[0]
    assert got.dtype == F32
    np.testing.assert_array_equal(got.view(np.uint32), reference.view(np.uint32))


@pytest.mark.parametrize("shape,size,stride,pad", MAXPOOLS[:8])
@pytest.mark.parametrize("path", ["compiled", "numpy"])
def test_maxpool_inference_skips_nan_as_darknet(shape, size, stride, pad, path):
    """darknet's strict '>' never takes a NaN: a window of NaNs gives -FLT_MAX, in the
    compiled inference kernel and in the NumPy values (exact mode's inference)."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal(shape).astype(F32)
    x[rng.random(shape) < 0.4] = np.nan
    out_h = (shape[2] + pad - size) // stride + 1
    out_w = (shape[3] + pad - size) // stride + 1
    if path == "compiled":
        got = numpy_ops.maxpool_inference(x, size, stride, pad, out_h, out_w)
    else:
        got = numpy_ops.maxpool(x, size, stride, pad, out_h, out_w, want_indexes=False)[0]
    np.testing.assert_array_equal(got, darknet_maxpool(x, size, stride, pad, out_h, out_w))


# ---------------------------------------------------------------- whole networks
NETWORK = """[net]
batch=1
width={side}
height={side}
channels=3

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
filters=16
size=3
stride=1
pad=1
activation=relu

[convolutional]
batch_normalize=1
filters=12
size=1
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=1

[convolutional]
batch_normalize=1
filters=24
size=3
stride=2
pad=1
activation=logistic

[route]
layers=-1

[convolutional]
filters=10
size=3
stride=1
pad=1
activation=linear
"""


def random_network(tmp_path, side, batch=1, exact=False):
    from darknet_py.bench import random_network as bench_network
    cfg = tmp_path / "net.cfg"
    cfg.write_text(NETWORK.format(side=side))
    net = bench_network(str(cfg), batch=batch, exact=exact)
    rng = np.random.default_rng(side)
    for layer in net.layers:   # non-trivial folded batch norms
        if getattr(layer, "rolling_mean", None) is not None:
            layer.rolling_mean[...] = rng.normal(0, 0.1, layer.rolling_mean.shape)
            layer.rolling_variance[...] = rng.uniform(0.5, 2, layer.rolling_variance.shape)
            layer.scales[...] = rng.uniform(0.5, 1.5, layer.scales.shape)
    return net


@pytest.mark.parametrize("side,batch", [(32, 1), (29, 3), (64, 2)])
def test_network_output_equals_the_im2col_path(tmp_path, monkeypatch, side, batch):
    net = random_network(tmp_path, side, batch)
    x = np.random.default_rng(0).random((batch, 3, side, side), dtype=F32)
    fast = net.forward(x).copy()
    monkeypatch.setattr(numpy_ops, "FAST_CONV", False)
    im2col = net.forward(x)
    assert relative_error(fast, im2col.astype(F64)) < 1e-5


def test_exact_mode_never_takes_the_fast_path(tmp_path, monkeypatch):
    net = random_network(tmp_path, 24, exact=True)
    x = np.random.default_rng(0).random((1, 3, 24, 24), dtype=F32)

    def refuse(*args, **kwargs):
        raise AssertionError("exact mode reached a fast-path op")
    monkeypatch.setattr(numpy_ops, "conv2d_inference", refuse)
    monkeypatch.setattr(numpy_ops, "maxpool_inference", refuse)
    assert np.isfinite(net.forward(x)).all()


def test_first_network_forward_after_training_uses_updated_weights(tmp_path):
    """A training step updates the weights in place after its forward: the next
    inference forward must see them (the cached transform was dropped)."""
    net = random_network(tmp_path, 16)
    x = np.random.default_rng(2).random((1, 3, 16, 16), dtype=F32)
    before = net.forward(x).copy()
    conv = net.layers[0]
    conv.forward(x, net.step(train=True))    # what train_step does first
    conv.weights += 0.5                      # ... and SGD afterwards
    after = net.forward(x)
    exact = parse_network_cfg(str(tmp_path / "net.cfg"), batch=1, exact=True)
    for mine, theirs in zip(net.layers, exact.layers):
        for name in ("weights", "biases", "scales", "rolling_mean", "rolling_variance"):
            if hasattr(mine, name):
                setattr(theirs, name, np.array(getattr(mine, name)))
    exact.loaded_layers = len(exact.layers)
    exact.ensure_initialized()
    assert not np.allclose(after, before)
    assert relative_error(after, exact.forward(x).astype(F64)) < 1e-5


def test_a_child_forked_after_parallel_kernels_runs_them_on_the_pool():
    """GNU OpenMP's threads do not survive fork(): a child forked after the parent ran the
    parallel kernels would hang in its first parallel region. numba_threads() is False in
    such a child, which takes the Python pool's paths and gets the same values."""
    rng = np.random.default_rng(5)
    x = rng.random((1, 16, 40, 40), dtype=F32)
    weights = rng.standard_normal((32, 16, 3, 3)).astype(F32)
    factor, shift = np.ones(32, F32), np.zeros(32, F32)

    def compute():
        conv = numpy_ops.conv2d_inference(x, weights, 3, 1, 1, 1, 40, 40, factor, shift,
                                          "leaky")
        return numpy_ops.maxpool_inference(conv, 2, 2, 0, 20, 20)
    parent = compute()
    assert cpu_kernels.numba_threads() == cpu_kernels.parallel_loops()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: answer within 60 s or be killed by the alarm
        try:
            signal.alarm(60)
            child = compute()
            ok = not cpu_kernels.numba_threads() and np.array_equal(child, parent)
            os.write(write, b"same" if ok else b"different")
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    answer = os.read(read, 16)
    os.close(read)
    assert os.WIFEXITED(status) and answer == b"same"


def test_inference_writes_into_the_previous_outputs_and_returns_a_new_array(tmp_path):
    """Plain inference writes each layer's output into the array of its previous forward
    (Step.reuse_outputs, darknet's l.output allocated once), with the same values as a
    network that never ran before; the network's output is a new array every forward,
    so one the caller kept is not overwritten."""
    net = random_network(tmp_path, 32)
    rng = np.random.default_rng(7)
    first_input, second_input = (rng.random((1, 3, 32, 32), dtype=F32) for _ in range(2))
    first = net.forward(first_input)
    kept = first.copy()
    before = [layer.output for layer in net.layers]
    second = net.forward(second_input)
    np.testing.assert_array_equal(first, kept)
    assert second is not first
    reused = [layer.index for layer, array in zip(net.layers, before)
              if layer.output is array]
    assert reused == [layer.index for layer in net.layers[:-1]
                      if layer.type in ("convolutional", "maxpool")]
    fresh = random_network(tmp_path, 32)   # the same weights, no earlier forward
    np.testing.assert_array_equal(second, fresh.forward(second_input))
    for mine, theirs in zip(net.layers, fresh.layers):
        np.testing.assert_array_equal(mine.output, theirs.output)
    # another batch size: new arrays of the new shape
    batch_of_two = rng.random((2, 3, 32, 32), dtype=F32)
    third = net.forward(batch_of_two)
    assert net.layers[0].output.shape[0] == 2 and net.layers[0].output is not before[0]
    np.testing.assert_array_equal(third, random_network(tmp_path, 32).forward(batch_of_two))


def test_an_output_layer_that_hands_on_an_earlier_array_returns_a_copy(tmp_path):
    """[dropout] at inference passes its input array on: the network's output would be
    the last convolution's array, which the next forward rewrites. forward copies it."""
    cfg = tmp_path / "net.cfg"
    cfg.write_text(NETWORK.format(side=24) + "\n[dropout]\nprobability=.5\n")
    from darknet_py.bench import random_network as bench_network
    net = bench_network(str(cfg), batch=1)
    rng = np.random.default_rng(8)
    first = net.forward(rng.random((1, 3, 24, 24), dtype=F32))
    kept = first.copy()
    assert not np.shares_memory(first, net.layers[-2].output)
    second = net.forward(rng.random((1, 3, 24, 24), dtype=F32))
    np.testing.assert_array_equal(first, kept)
    assert not np.array_equal(first, second)


def test_output_array_takes_only_a_buffer_the_kernels_may_overwrite():
    source = np.zeros((2, 4, 6, 6), dtype=F32)
    good = np.empty((2, 8, 6, 6), dtype=F32)
    assert cpu_kernels.output_array(good, (2, 8, 6, 6), source) is good
    read_only = np.empty((2, 8, 6, 6), dtype=F32)
    read_only.flags.writeable = False
    rejected = [None, np.empty((2, 8, 6, 6), dtype=F64), np.empty((2, 8, 6, 7), dtype=F32),
                np.empty((2, 8, 6, 12), dtype=F32)[..., ::2], read_only,
                source.reshape(2, 4, 6, 6)]   # (the input itself, of its own shape)
    shapes = [(2, 8, 6, 6)] * 5 + [(2, 4, 6, 6)]
    for out, shape in zip(rejected, shapes):
        made = cpu_kernels.output_array(out, shape, source)
        assert made is not out and made.shape == shape and made.dtype == F32
        assert made.flags.c_contiguous and not np.shares_memory(made, source)


# ---------------------------------------------------------------- the region layer
@pytest.mark.parametrize("anchors, classes, background, softmax, side", [
    (5, 20, 0, 1, 13),    # yolov2-voc
    (5, 80, 0, 1, 19),    # yolov2 (coco)
    (3, 4, 1, 1, 5),      # background: no logistic on the objectness, one more softmax entry
    (2, 3, 0, 0, 4),      # no softmax: the classes stay raw
])
def test_region_fast_pass_gives_darknets_activations(anchors, classes, background, softmax,
                                                     side):
    """The compiled pass of plain inference against the NumPy path that the oracle tests
    check: the same float arithmetic, so the same bits (exp from the C library, as in
    darknet, against NumPy's; they agree on these values)."""
    if not cpu_kernels.compiled():
        pytest.skip("numba is not installed: plain inference takes the NumPy path")
    entries = 4 + classes + 1
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((2, anchors * entries, side, side)) * 6).astype(F32)
    x[0, 0, 0, :3] = (-104.0, 104.0, 0.0)   # logistic's saturated ends
    args = (anchors, entries, 4, classes, background, softmax)
    fast = numpy_ops.region_activate(x, *args, fast=True)
    np.testing.assert_array_equal(fast, numpy_ops.region_activate(x, *args))
    flipped = np.asfortranarray(x)   # not C-contiguous: copied before the compiled pass
    np.testing.assert_array_equal(numpy_ops.region_activate(flipped, *args, fast=True),
                                  numpy_ops.region_activate(flipped, *args))
    grid = fast.reshape(2, anchors, entries, -1)
    if softmax:
        start = 4 + (0 if background else 1)
        sums = grid[:, :, start:start + classes + background].astype(np.float64).sum(axis=2)
        np.testing.assert_allclose(sums, 1, rtol=1e-5)
    else:
        np.testing.assert_array_equal(grid[:, :, 5:], x.reshape(grid.shape)[:, :, 5:])


def test_region_fast_pass_leaves_trees_to_the_numpy_path():
    """A tree softmax (YOLO9000) follows darknet's GPU arithmetic in softmax_groups; the
    fast flag does not change it."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((1, 2 * 11, 3, 3)).astype(F32)
    args = (2, 11, 4, 6, 0, 0, [0, 2, 3])
    np.testing.assert_array_equal(numpy_ops.region_activate(x, *args, fast=True),
                                  numpy_ops.region_activate(x, *args))
