"""The register-blocked direct 3x3 convolution (ops/blocked_conv.py, ops/simd.py) against
the float64 convolution, and its fused maxpool against maxpool_inference bit for bit.

It reorders nothing that the GEMM of im2col keeps in order beyond summing the taps with
fused multiply-adds, so it is held to the GEMM's accuracy (relative L2 error against
float64 below 1e-6). Its layout makes every output point one index of a padded plane read
flat, with a block of 48 points: the shapes cover maps narrower than a block, a last
block past the map (its overrun reads the zero rows below), odd sizes, padding 0..2,
filter counts that are not a multiple of the 8 per block, and batches."""
import numpy as np
import pytest

from darknet_py.layers import Step, make_layer
from darknet_py.ops import cpu_kernels, numpy_ops

from test_fast_conv import ACTIVATIONS_F64, random_case, reference_conv, relative_error
from test_fused_pool import assert_same_bits, pooled_reference, with_specials
import test_fast_conv

F32 = np.float32

pytestmark = pytest.mark.skipif(not cpu_kernels.compiled(), reason="numba is not installed")
thread_setting = test_fast_conv.thread_setting


@pytest.fixture(params=["numba", "pool"])
def blocked(request, monkeypatch, thread_setting):
    """The module, its tasks on numba's threads or (as without a safe threading layer)
    on the Python pool."""
    from darknet_py.ops import blocked_conv
    if request.param == "pool":
        monkeypatch.setattr(blocked_conv, "numba_threads", lambda: False)
    return blocked_conv


def run(blocked, x, weights, pad, factor, shift, activation, pool=False):
    code = cpu_kernels.FUSED_ACTIVATIONS[activation]
    return blocked.conv3x3(x, blocked.pack_filters(weights), weights.shape[0], pad, factor,
                           shift, code, pool=pool)


# (batch, channels, filters, height, width, pad)
SHAPES = [(1, 3, 16, 50, 52, 1), (2, 16, 32, 27, 26, 1), (1, 4, 7, 9, 14, 0),
          (1, 5, 9, 7, 5, 2), (3, 1, 1, 3, 3, 1), (1, 8, 17, 1, 1, 1), (1, 3, 8, 61, 2, 1),
          (1, 16, 24, 44, 45, 1)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("activation", ["leaky", "linear", "relu", "logistic"])
def test_blocked_matches_float64_convolution(blocked, shape, activation):
    batch, channels, filters, height, width, pad = shape
    rng = np.random.default_rng(sum(shape))
    x, weights, factor, shift = random_case(rng, batch, channels, filters, height, width)
    got = run(blocked, x, weights, pad, factor, shift, activation)
    conv = reference_conv(x, weights, 1, pad) * factor[None, :, None, None] \
        + shift[None, :, None, None]
    expected = ACTIVATIONS_F64[activation](conv)
    assert got.shape == expected.shape and got.dtype == F32
    assert relative_error(got, expected) < 1e-6


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_blocked_pooled_is_conv_then_maxpool(blocked, shape):
    batch, channels, filters, height, width, pad = shape
    rng = np.random.default_rng(sum(shape) + 1)
    x, weights, factor, shift = random_case(rng, batch, channels, filters, height, width)
    x = with_specials(x)
    full = run(blocked, x, weights, pad, factor, shift, "leaky")
    pooled = run(blocked, x, weights, pad, factor, shift, "leaky", pool=True)
    assert_same_bits(pooled, pooled_reference(full))


def test_the_padded_input_is_reused_and_stays_zero_outside(blocked):
    """The padded copy is kept per geometry; a second input of that geometry must not
    see the first one's values (only the inner window is rewritten, the border and the
    rows below it stay zero), and an input of another geometry gets its own array."""
    rng = np.random.default_rng(3)
    x, weights, factor, shift = random_case(rng, 1, 3, 8, 30, 31)
    run(blocked, x * 100, weights, 1, factor, shift, "linear")
    run(blocked, rng.standard_normal((1, 3, 12, 12)).astype(F32), weights, 2, factor, shift,
        "linear")
    got = run(blocked, x, weights, 1, factor, shift, "linear")
    expected = reference_conv(x, weights, 1, 1) * factor[None, :, None, None] \
        + shift[None, :, None, None]
    assert relative_error(got, expected) < 1e-6


def test_packed_filters_put_a_taps_filters_side_by_side(blocked):
    weights = np.arange(10 * 2 * 9, dtype=F32).reshape(10, 2, 3, 3)
    packed = blocked.pack_filters(weights)
    assert packed.shape == (2, 2 * 9 * 8)
    block = packed[1].reshape(2, 9, 8)        # channel, tap, filter of filters 8..15
    np.testing.assert_array_equal(block[1, 4, :2], weights[8:10, 1, 1, 1])
    np.testing.assert_array_equal(block[:, :, 2:], 0)   # filters past K are zero


def wide(monkeypatch, value):
    from darknet_py.ops import simd
    monkeypatch.setattr(simd, "wide_vectors", lambda: value)


@pytest.mark.parametrize("shape, strategy", [
    ((1, 3, 416, 416), "blocked"), ((1, 16, 208, 208), "blocked"),
    ((1, 16, 40, 40), "blocked"), ((1, 16, 39, 39), "winograd"), ((1, 3, 9, 9), "direct"),
    ((1, 32, 208, 208), "winograd"), ((1, 16, 208, 208), "blocked")])
def test_strategy_takes_blocked_for_thin_layers_of_large_maps(monkeypatch, shape, strategy):
    wide(monkeypatch, True)
    weights_shape = (32, shape[1], 3, 3)
    assert numpy_ops._conv_strategy(shape, weights_shape, 3, 1, 1, 1) == strategy
    # training keeps Winograd (its filters serve the adjoint) and the 3-channel kernel
    trained = numpy_ops._training_strategy(shape, weights_shape, 3, 1, 1, 1, shape[2],
                                           shape[3])
    assert trained != "blocked"


def test_without_512_bit_vectors_the_strategy_stays_as_before(monkeypatch):
    wide(monkeypatch, False)
    assert numpy_ops._conv_strategy((1, 3, 416, 416), (16, 3, 3, 3), 3, 1, 1, 1) == "direct"
    assert numpy_ops._conv_strategy((1, 16, 208, 208), (32, 16, 3, 3), 3, 1, 1, 1) == \
        "winograd"
    monkeypatch.setattr(numpy_ops, "BLOCKED_CONV", False)
    wide(monkeypatch, True)
    assert numpy_ops._conv_strategy((1, 3, 416, 416), (16, 3, 3, 3), 3, 1, 1, 1) == "direct"


@pytest.mark.parametrize("activation", ["leaky", "tanh"])
def test_conv2d_inference_takes_it_and_pools_alike(monkeypatch, activation):
    """Through the backend: values, the fused pool (tanh: activated after, then pooled),
    and the packed filters cached with the weights read-only until forgotten."""
    wide(monkeypatch, True)
    rng = np.random.default_rng(11)
    x, weights, factor, shift = random_case(rng, 2, 3, 10, 41, 40)
    assert numpy_ops._conv_strategy(x.shape, weights.shape, 3, 1, 1, 1) == "blocked"
    full = numpy_ops.conv2d_inference(x, weights, 3, 1, 1, 1, 41, 40, factor, shift,
                                      activation)
    assert not weights.flags.writeable
    expected = ACTIVATIONS_F64[activation](
        reference_conv(x, weights, 1, 1) * factor[None, :, None, None]
        + shift[None, :, None, None])
    assert relative_error(full, expected) < 1e-6
    pooled = numpy_ops.conv2d_inference(x, weights, 3, 1, 1, 1, 41, 40, factor, shift,
                                        activation, pool=True)
    assert_same_bits(pooled, pooled_reference(full))
    numpy_ops.forget_conv_weights(weights)
    assert weights.flags.writeable and id(weights) not in numpy_ops._blocked_filters


def test_a_layer_updated_in_place_is_repacked(monkeypatch):
    """The SGD step changes the weights in place after forget_conv_weights: the next
    inference forward packs them afresh (a stale pack would give the old output)."""
    wide(monkeypatch, True)
    layer = make_layer("convolutional", (3, 44, 44), filters=9, size=3, stride=1, pad=1,
                       batch_normalize=1, activation="leaky")
    rng = np.random.default_rng(4)
    layer.weights = rng.standard_normal(layer.weights.shape).astype(F32)
    layer.rolling_variance = np.ones(9, F32)
    x = rng.standard_normal((1, 3, 44, 44)).astype(F32)
    first = layer.forward(x, Step(ops=numpy_ops)).copy()
    numpy_ops.sgd_step(layer.weights, np.ones_like(layer.weights), 0.5, 0.0)
    again = layer.forward(x, Step(ops=numpy_ops))
    exact = layer.forward(x, Step(ops=numpy_ops, exact=True))
    assert not np.allclose(again, first)
    np.testing.assert_allclose(again, exact, rtol=1e-5, atol=1e-5)
