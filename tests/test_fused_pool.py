"""A 3x3 convolution that computes the 2x2/2 maxpool after it (plain inference:
Network._fused_pools, Step.pool, conv2d_inference(pool=True), the Winograd output
transform and the 3-channel kernel). The fusion only saves memory traffic, so its
values must be those of the convolution followed by maxpool_inference bit for bit:
NaN and inf included, odd map sizes (a last window half outside), every split of the
work and both row loops.
"""
import numpy as np
import pytest

from darknet_py import network
from darknet_py.config import parse_cfg_text
from darknet_py.network import Network
from darknet_py.ops import cpu_kernels, numpy_ops, threads, winograd

from test_fast_conv import random_case
import test_fast_conv

F32 = np.float32

pytestmark = [pytest.mark.skipif(not cpu_kernels.compiled(), reason="numba is not installed"),
              # NaN inputs: NumPy's GEMM on the Python pool says so (the network silences it)
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]
thread_setting = test_fast_conv.thread_setting   # 1 or 2 threads, numba's or the pool's


def pooled_reference(full):
    out_h, out_w = full.shape[2:]
    return numpy_ops.maxpool_inference(full, 2, 2, 1, (out_h + 1) // 2, (out_w + 1) // 2)


def assert_same_bits(got, expected):
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_array_equal(got.view(np.int32), expected.view(np.int32))


def with_specials(x):
    """NaN in a whole window's worth of inputs, an inf, a -inf: darknet's maxpool takes
    a NaN never, inf always."""
    x = x.copy()
    x[0, 0, :3, :3] = np.nan
    x[0, -1, -1, -1] = np.inf
    x[-1, 0, x.shape[2] // 2, x.shape[3] // 2] = -np.inf
    return x


# (batch, channels, filters, height, width, pad): even and odd maps, rows of tiles above
# and below the vector loop's threshold, padding 0..2
SHAPES = [(1, 4, 6, 9, 14, 1), (2, 5, 7, 13, 13, 1), (1, 4, 3, 7, 7, 0), (1, 3, 5, 6, 5, 2),
          (1, 16, 32, 70, 67, 1), (2, 8, 12, 40, 41, 1), (1, 1, 1, 1, 1, 1)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("activation", ["leaky", "linear", "relu", "logistic"])
def test_winograd_pooled_is_conv_then_maxpool(thread_setting, shape, activation):
    batch, channels, filters, height, width, pad = shape
    rng = np.random.default_rng(sum(shape))
    x, weights, factor, shift = random_case(rng, batch, channels, filters, height, width)
    x = with_specials(x)
    transformed = winograd.transform_filters(weights)
    full, _ = winograd.conv3x3(x, transformed, pad, factor, shift, activation,
                               threads.for_blocks)
    pooled, _ = winograd.conv3x3(x, transformed, pad, factor, shift, activation,
                                 threads.for_blocks, pool=True)
    assert_same_bits(pooled, pooled_reference(full))


@pytest.mark.parametrize("path", ["bands", "steps", "steps_chunked"])
def test_each_winograd_split_pools_alike(thread_setting, monkeypatch, path):
    test_fast_conv.force_winograd_split(monkeypatch, path)
    rng = np.random.default_rng(9)
    x, weights, factor, shift = random_case(rng, 2, 6, 10, 15, 37)
    transformed = winograd.transform_filters(weights)
    full, _ = winograd.conv3x3(x, transformed, 1, factor, shift, "leaky", threads.for_blocks)
    pooled, _ = winograd.conv3x3(x, transformed, 1, factor, shift, "leaky",
                                 threads.for_blocks, pool=True)
    assert_same_bits(pooled, pooled_reference(full))


def test_winograd_refuses_to_pool_before_an_activation_it_cannot_fuse():
    rng = np.random.default_rng(1)
    x, weights, factor, shift = random_case(rng, 1, 2, 3, 6, 6)
    with pytest.raises(ValueError, match="cannot pool"):
        winograd.conv3x3(x, winograd.transform_filters(weights), 1, factor, shift, "tanh",
                         threads.for_blocks, pool=True)


@pytest.mark.parametrize("shape", [(1, 5, 7, 9, 1), (2, 4, 6, 5, 0), (1, 3, 5, 5, 2),
                                   (1, 16, 31, 30, 1), (1, 2, 1, 1, 1)],
                         ids=lambda s: "x".join(map(str, s)))
def test_direct_3_channel_pooled_is_conv_then_maxpool(thread_setting, shape):
    batch, filters, height, width, pad = shape
    rng = np.random.default_rng(sum(shape))
    x, weights, factor, shift = random_case(rng, batch, 3, filters, height, width)
    x = with_specials(x)
    full = cpu_kernels.rgb_conv3x3(x, weights, pad, factor, shift, 1)
    pooled = cpu_kernels.rgb_conv3x3(x, weights, pad, factor, shift, 1, pool=True)
    assert_same_bits(pooled, pooled_reference(full))


@pytest.mark.parametrize("size, stride, pad, activation", [
    (3, 1, 1, "leaky"),     # Winograd
    (3, 1, 1, "tanh"),      # Winograd, an activation applied afterwards: pooled after it
    (3, 2, 1, "leaky"),     # GEMM
    (1, 1, 0, "leaky")])    # 1x1 GEMM
def test_conv2d_inference_pools_whatever_the_strategy(size, stride, pad, activation):
    rng = np.random.default_rng(size + stride)
    x = rng.standard_normal((2, 5, 11, 11)).astype(F32)
    weights = rng.standard_normal((6, 5, size, size)).astype(F32)
    out_h = out_w = (11 + 2 * pad - size) // stride + 1
    factor = rng.uniform(0.5, 2, 6).astype(F32)
    shift = rng.normal(0, 1, 6).astype(F32)
    full = numpy_ops.conv2d_inference(x, weights, size, stride, pad, 1, out_h, out_w,
                                      factor, shift, activation)
    pooled = numpy_ops.conv2d_inference(x, weights, size, stride, pad, 1, out_h, out_w,
                                        factor, shift, activation, pool=True)
    assert_same_bits(pooled, pooled_reference(full))
    numpy_ops.forget_conv_weights(weights)


def make_net(body, side=27, batch=2):
    text = f"[net]\nbatch={batch}\nwidth={side}\nheight={side}\nchannels=3\n" + body
    net = Network(parse_cfg_text(text, "fused.cfg"), "fused.cfg")
    net.ensure_initialized()
    rng = np.random.default_rng(7)
    for layer in net.layers:
        if layer.type == "convolutional":
            layer.weights[...] = rng.normal(0, 0.3, layer.weights.shape)
            layer.biases[...] = rng.normal(0, 0.2, layer.biases.shape)
            if layer.batch_normalize:
                layer.rolling_variance[...] = rng.uniform(0.5, 2, layer.n_filters)
                layer.rolling_mean[...] = rng.normal(0, 0.1, layer.n_filters)
    return net


def conv(filters, size=3, stride=1, activation="leaky"):
    return (f"[convolutional]\nbatch_normalize=1\nfilters={filters}\nsize={size}\n"
            f"stride={stride}\npad=1\nactivation={activation}\n")


def pool(size=2, stride=2, padding=None):
    return f"[maxpool]\nsize={size}\nstride={stride}\n" + \
        ("" if padding is None else f"padding={padding}\n")


BODY = (conv(8) + pool() +                          # 0-1: the 3-channel kernel, 27 -> 14
        conv(16) + pool() +                         # 2-3: Winograd, 14 -> 7
        conv(16) + pool(2, 1) +                     # 4-5: a stride-1 pool: not fused
        conv(12) + pool(2, 2, 0) +                  # 6-7: padding 0 on a 7x7 map: 3x3 out
        conv(12) + pool() +                         # 8-9: its output read by the route
        conv(10) + "[route]\nlayers=-3\n" +         # 10-11
        conv(8) + pool() +                          # 12-13: Winograd, 3 -> 2
        conv(6, 1, activation="linear"))            # 14


def test_the_network_fuses_only_pools_that_can_be():
    net = make_net(BODY)
    assert net._fused_pools() == {0, 2, 12}
    # a maxpool that is the output layer is left to itself (its array is returned)
    last = make_net(conv(4) + pool())
    assert last._fused_pools() == set()


def test_fused_forward_is_the_layer_by_layer_forward(monkeypatch):
    net = make_net(BODY)
    x = with_specials(np.random.default_rng(2).random((2, 3, 27, 27), dtype=F32))
    first = net.forward(x)
    second = net.forward(x)              # into the arrays of the first forward
    pooled = {index: net.layers[index].output.copy() for index in (1, 3, 13)}
    monkeypatch.setattr(network, "FUSE_POOLS", False)
    expected = net.forward(x)
    assert_same_bits(first, expected)
    assert_same_bits(second, expected)
    for index, values in pooled.items():   # each fused maxpool's output is its own
        assert_same_bits(values, net.layers[index].output)
    monkeypatch.setattr(network, "FUSE_POOLS", True)
    again = net.forward(x, every_output=True)   # each layer on its own, outputs kept
    assert_same_bits(again, expected)
    assert net.layers[0].output.shape == (2, 8, 27, 27)


def test_training_after_a_fused_forward_keeps_every_layer(monkeypatch):
    """The fusion is for plain inference: a training step after it runs each maxpool
    (with its winner indexes for the backward) and gives the unfused network's loss."""
    x = np.random.default_rng(3).random((2, 3, 27, 27), dtype=F32)
    losses = []
    for fuse in (True, False):
        monkeypatch.setattr(network, "FUSE_POOLS", fuse)
        net = make_net(BODY + "[cost]\ntype=sse\n")
        net.forward(x)
        truth = np.zeros((2, net.layers[-1].inputs), F32)
        losses.append(net.train_step(x, truth))
        assert net.layers[1].indexes is not None
    assert losses[0] == losses[1]
