"""Default-mode training's convolutions on the CPU (ops/numpy_ops.py conv2d,
conv_input_delta_add, conv_weight_gradient_add; ops/winograd.py's adjoint;
ops/weight_gradient.py) against float64 evaluations of backward_convolutional_layer's
formulas: the forward, the input delta (col2im of W^T . delta) and the weight gradient
(delta . im2col(x)^T) within the float32 GEMM's accuracy (relative L2 below 1e-6), and a
whole training step with every 3x3 layer on Winograd within the 1e-5 of
tests/test_training_fidelity.py.
"""
import numpy as np
import pytest

from darknet_py.ops import cpu_kernels, numpy_ops, threads, winograd, weight_gradient

import test_fast_conv
import test_training_fidelity as fidelity
from test_fast_conv import reference_conv, relative_error

F32, F64 = np.float32, np.float64

pytestmark = pytest.mark.skipif(not cpu_kernels.compiled(), reason="numba is not installed")
thread_setting = test_fast_conv.thread_setting   # 1 or 2 threads, numba's or the pool's


def reference_input_delta(delta, weights, stride, pad, height, width):
    """col2im(W^T . delta) in float64: each output's delta spread back over its window."""
    batch, _, out_h, out_w = delta.shape
    size = weights.shape[2]
    padded = np.zeros((batch, weights.shape[1], height + 2 * pad + size,
                       width + 2 * pad + size))
    d, w = delta.astype(F64), weights.astype(F64)
    for ky in range(size):
        for kx in range(size):
            padded[:, :, ky:ky + stride * out_h:stride, kx:kx + stride * out_w:stride] += \
                np.einsum("kc,bkij->bcij", w[:, :, ky, kx], d)
    return padded[:, :, pad:pad + height, pad:pad + width]


def reference_weight_gradient(delta, x, size, stride, pad):
    """sum over images of delta . im2col(x)^T in float64, as (K, C, size, size)."""
    batch, channels, height, width = x.shape
    out_h, out_w = delta.shape[2:]
    padded = np.zeros((batch, channels, height + 2 * pad + stride * size,
                       width + 2 * pad + stride * size))
    padded[:, :, pad:pad + height, pad:pad + width] = x
    out = np.zeros((delta.shape[1], channels, size, size))
    for ky in range(size):
        for kx in range(size):
            window = padded[:, :, ky:ky + stride * out_h:stride, kx:kx + stride * out_w:stride]
            out[:, :, ky, kx] = np.einsum("bkij,bcij->kc", delta.astype(F64), window)
    return out


def test_flipped_transposed_filters_transform_to_the_exchanged_slabs():
    """What the adjoint relies on: U of the flipped, transposed filters is U with tile
    rows/columns 0 and 3 exchanged (ADJOINT_SLABS), each slab transposed, bit for bit."""
    rng = np.random.default_rng(2)
    for filters, channels in ((6, 5), (1, 3), (40, 1), (33, 70)):
        weights = rng.standard_normal((filters, channels, 3, 3)).astype(F32)
        flipped = np.ascontiguousarray(weights.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
        plain = winograd.transform_filters(weights)
        np.testing.assert_array_equal(winograd.transform_filters(flipped),
                                      plain[winograd.ADJOINT_SLABS].transpose(0, 2, 1))


def test_filter_transform_writes_into_the_array_given():
    weights = np.random.default_rng(3).standard_normal((4, 7, 3, 3)).astype(F32)
    out = np.full(16 * 4 * 7, np.nan, dtype=F32)
    got = winograd.transform_filters(weights, out=out)
    assert np.shares_memory(got, out)
    np.testing.assert_array_equal(got, winograd.transform_filters(weights))


# (batch, channels, filters, side, pad): few and many tiles, odd sides, pad 0..2
ADJOINT_SHAPES = [(1, 3, 5, 7, 1), (2, 6, 10, 15, 1), (2, 8, 4, 9, 0), (1, 9, 7, 6, 2),
                  (2, 16, 32, 40, 1), (1, 130, 70, 13, 1)]


@pytest.mark.parametrize("shape", ADJOINT_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_winograd_adjoint_is_the_input_delta(thread_setting, shape):
    batch, channels, filters, side, pad = shape
    rng = np.random.default_rng(sum(shape))
    weights = rng.standard_normal((filters, channels, 3, 3)).astype(F32)
    out_side = side + 2 * pad - 2
    delta = rng.standard_normal((batch, filters, out_side, out_side)).astype(F32)
    ones, zeros = np.ones(channels, F32), np.zeros(channels, F32)
    got, _ = winograd.conv3x3(delta, winograd.transform_filters(weights), 2 - pad, ones,
                              zeros, "linear", threads.for_blocks, adjoint=True)
    expected = reference_input_delta(delta, weights, 1, pad, side, side)
    assert got.shape == expected.shape
    assert relative_error(got, expected) < 1e-6


@pytest.mark.parametrize("path", ["bands", "steps", "steps_chunked"])
def test_each_winograd_split_gives_the_adjoint(thread_setting, monkeypatch, path):
    test_fast_conv.force_winograd_split(monkeypatch, path)
    rng = np.random.default_rng(8)
    weights = rng.standard_normal((10, 6, 3, 3)).astype(F32)
    delta = rng.standard_normal((2, 10, 15, 17)).astype(F32)
    got, _ = winograd.conv3x3(delta, winograd.transform_filters(weights), 1,
                              np.ones(6, F32), np.zeros(6, F32), "linear",
                              threads.for_blocks, adjoint=True)
    assert relative_error(got, reference_input_delta(delta, weights, 1, 1, 15, 17)) < 1e-6


def test_the_adjoint_refuses_filters_of_another_shape():
    filters = winograd.transform_filters(np.ones((4, 3, 3, 3), F32))
    with pytest.raises(ValueError, match="do not fit"):
        winograd.conv3x3(np.ones((1, 3, 5, 5), F32), filters, 1, np.ones(3, F32),
                         np.zeros(3, F32), "linear", threads.for_blocks, adjoint=True)


def test_training_takes_winograd_only_with_enough_tiles():
    strategy = numpy_ops._training_strategy
    # yolov2's 13x13 layers at batch 2: 98 tiles, the GEMM; at batch 8 Winograd
    assert strategy((2, 1024, 13, 13), (1024, 1024, 3, 3), 3, 1, 1, 1, 13, 13) == "im2col"
    assert strategy((8, 1024, 13, 13), (1024, 1024, 3, 3), 3, 1, 1, 1, 13, 13) == "winograd"
    assert strategy((2, 16, 208, 208), (32, 16, 3, 3), 3, 1, 1, 1, 208, 208) == "winograd"
    assert strategy((2, 3, 416, 416), (16, 3, 3, 3), 3, 1, 1, 1, 416, 416) == "direct"
    assert strategy((2, 16, 20, 20), (8, 16, 3, 3), 3, 2, 1, 1, 10, 10) == "gemm"
    assert numpy_ops.fast_conv_adjoint((2, 16, 208, 208), (32, 16, 3, 3), 3, 1, 1, 1)
    assert not numpy_ops.fast_conv_adjoint((2, 1024, 13, 13), (1024, 1024, 3, 3), 3, 1, 1, 1)
    assert not numpy_ops.fast_conv_adjoint((2, 16, 20, 20), (8, 16, 3, 3), 3, 2, 1, 1)


@pytest.mark.parametrize("pad", [0, 1, 2])
def test_conv_input_delta_add_adds_the_adjoint(monkeypatch, pad):
    monkeypatch.setattr(numpy_ops, "TRAIN_WINOGRAD_MIN_TILES", 0)
    rng = np.random.default_rng(pad)
    weights = rng.standard_normal((12, 5, 3, 3)).astype(F32)
    side = 11
    out_side = side + 2 * pad - 2
    delta = rng.standard_normal((2, 12, out_side, out_side)).astype(F32)
    before = rng.standard_normal((2, 5, side, side)).astype(F32)
    input_delta = before.copy()
    numpy_ops.conv_input_delta_add(delta, weights, 3, 1, pad, 1, input_delta)
    expected = before + reference_input_delta(delta, weights, 1, pad, side, side)
    assert relative_error(input_delta, expected) < 1e-6


@pytest.mark.parametrize("size, stride, pad", [(3, 2, 1), (5, 1, 2), (2, 2, 0)])
def test_conv_input_delta_add_without_winograd_is_gemm_and_col2im(size, stride, pad):
    rng = np.random.default_rng(size + stride)
    weights = rng.standard_normal((6, 4, size, size)).astype(F32)
    side = 10
    out_side = (side + 2 * pad - size) // stride + 1
    delta = rng.standard_normal((2, 6, out_side, out_side)).astype(F32)
    input_delta = np.ones((2, 4, side, side), F32)
    numpy_ops.conv_input_delta_add(delta, weights, size, stride, pad, 1, input_delta)
    expected = 1 + reference_input_delta(delta, weights, stride, pad, side, side)
    assert relative_error(input_delta, expected) < 1e-6


# (batch, channels, filters, side, size, stride, pad): several bands and a short last one,
# more threads than bands, stride 2, size 5 and 2, valid padding
GRADIENT_SHAPES = [(2, 3, 16, 40, 3, 1, 1), (1, 16, 32, 30, 3, 1, 1), (3, 5, 7, 11, 3, 2, 1),
                   (2, 4, 6, 9, 5, 1, 2), (2, 8, 8, 13, 3, 1, 0), (1, 64, 24, 53, 3, 1, 1),
                   (2, 3, 4, 7, 2, 2, 0), (1, 1, 1, 1, 3, 1, 1)]


@pytest.mark.parametrize("shape", GRADIENT_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_banded_weight_gradient_is_delta_times_columns(thread_setting, monkeypatch, shape):
    batch, channels, filters, side, size, stride, pad = shape
    monkeypatch.setattr(weight_gradient, "BAND_BYTES", 4 * channels * size * size * side * 3)
    rng = np.random.default_rng(sum(shape))
    out_side = (side + 2 * pad - size) // stride + 1
    x = rng.standard_normal((batch, channels, side, side)).astype(F32)
    delta = rng.standard_normal((batch, filters, out_side, out_side)).astype(F32)
    before = rng.standard_normal((1, filters, channels * size * size)).astype(F32)
    updates = before.copy()
    numpy_ops.conv_weight_gradient_add(delta, x, updates, size, stride, pad, 1)
    expected = before[0] + reference_weight_gradient(delta, x, size, stride, pad).reshape(
        filters, -1)
    assert relative_error(updates[0], expected) < 1e-6


def test_weight_gradient_bands_fit_their_budget():
    assert weight_gradient.band_rows(16, 3, 208, 208) == \
        weight_gradient.BAND_BYTES // (16 * 9 * 208 * 4)
    assert weight_gradient.band_rows(1024, 3, 13, 13) == 1   # at least one row
    assert weight_gradient.band_rows(1, 3, 5, 5) == 5        # at most the map


def test_grouped_weight_gradient_takes_im2col():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 9, 9)).astype(F32)
    delta = rng.standard_normal((2, 6, 9, 9)).astype(F32)
    updates = np.zeros((2, 3, 2 * 9), F32)
    numpy_ops.conv_weight_gradient_add(delta, x, updates, 3, 1, 1, 2)
    for group in range(2):
        expected = reference_weight_gradient(delta[:, 3 * group:3 * group + 3],
                                             x[:, 2 * group:2 * group + 2], 3, 1, 1)
        assert relative_error(updates[group], expected.reshape(3, -1)) < 1e-6


def test_a_training_step_on_winograd_matches_float64(monkeypatch):
    """tests/test_training_fidelity.py's step with every 3x3 stride-1 layer forced onto
    Winograd (forward, adjoint) and the banded weight gradient."""
    monkeypatch.setattr(numpy_ops, "TRAIN_WINOGRAD_MIN_TILES", 0)
    calls = []
    adjoint = numpy_ops.conv_input_delta_add
    monkeypatch.setattr(numpy_ops, "conv_input_delta_add",
                        lambda *args: calls.append(args[1].shape) or adjoint(*args))
    net = fidelity.make_net()
    x, truth = fidelity.batch(net)
    ref_loss, ref_deltas, ref_grads = fidelity.reference_step(net, x, truth)
    loss, deltas, grads = fidelity.run_ours(net, x, truth)
    assert calls == [(6, 10, 3, 3)]   # the last 3x3 layer's input delta went by Winograd
    assert abs(loss - ref_loss) <= fidelity.BOUND * abs(ref_loss)
    errors = {f"delta {index}": fidelity.rel_l2(value, ref_deltas[index])
              for index, value in deltas.items()}
    errors.update({f"{kind} {index}": fidelity.rel_l2(value, ref_grads[(index, kind)])
                   for (index, kind), value in grads.items()})
    worst = max(errors, key=errors.get)
    assert errors[worst] <= fidelity.BOUND, f"{worst}: {errors[worst]:.3g}"


def test_winograd_filters_survive_until_the_update_and_are_then_redone(monkeypatch):
    """The forward's transformed filters serve the backward; sgd_step drops them (the
    weights change) and the next forward transforms the new weights into the same array."""
    monkeypatch.setattr(numpy_ops, "TRAIN_WINOGRAD_MIN_TILES", 0)
    rng = np.random.default_rng(6)
    weights = rng.standard_normal((8, 4, 3, 3)).astype(F32)
    x = rng.standard_normal((2, 4, 12, 12)).astype(F32)
    first = numpy_ops.conv2d(x, weights, 3, 1, 1, 1, 12, 12)
    assert relative_error(first, reference_conv(x, weights, 1, 1)) < 1e-6
    cached = numpy_ops._winograd_filters[id(weights)][1]
    assert not weights.flags.writeable
    numpy_ops.sgd_step(weights, np.ones_like(weights), 0.25, 0.0)
    assert weights.flags.writeable and id(weights) not in numpy_ops._winograd_filters
    second = numpy_ops.conv2d(x, weights, 3, 1, 1, 1, 12, 12)
    assert np.shares_memory(numpy_ops._winograd_filters[id(weights)][1], cached)
    assert relative_error(second, reference_conv(x, weights, 1, 1)) < 1e-6
    numpy_ops.forget_conv_weights(weights)
