"""Each layer type built from plain arguments (layers.make_layer) and run on its own,
without a Network: forward against a direct float64 computation of darknet's formula, and
the gradient-carrying layers' backward against the same formula's derivative."""
import numpy as np
import pytest

from darknet_py.layers import Step, make_layer, params
from darknet_py.ops import numpy_ops

F64 = np.float64
RNG = np.random.default_rng(7)


def step(**kwargs):
    return Step(ops=numpy_ops, **kwargs)


def random(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def conv_reference(x, weights, biases, stride, pad):
    """Direct convolution in float64 (no im2col): out[b,f,i,j] = sum w * x_pad + bias."""
    batch, channels, height, width = x.shape
    filters, _, size, _ = weights.shape
    padded = np.pad(x.astype(F64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out_h = (height + 2 * pad - size) // stride + 1
    out_w = (width + 2 * pad - size) // stride + 1
    out = np.zeros((batch, filters, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = padded[:, :, i * stride:i * stride + size, j * stride:j * stride + size]
            out[:, :, i, j] = np.einsum("bcyx,fcyx->bf", window, weights.astype(F64))
    return out + biases.astype(F64)[None, :, None, None]


@pytest.mark.parametrize("fast", [True, False])
def test_convolutional_with_batch_norm(fast):
    layer = make_layer("convolutional", (3, 7, 6), filters=4, size=3, stride=1, pad=1,
                       batch_normalize=1, activation="leaky")
    assert layer.out_shape == (4, 7, 6)
    layer.weights = random(4, 3, 3, 3)
    layer.biases, layer.scales = random(4), random(4)
    layer.rolling_mean, layer.rolling_variance = random(4), np.abs(random(4)) + 0.5
    x = random(2, 3, 7, 6)
    out = layer.forward(x, step(exact=not fast))
    conv = conv_reference(x, layer.weights, np.zeros(4), 1, 1)
    norm = (conv - layer.rolling_mean[None, :, None, None]) / \
        (np.sqrt(layer.rolling_variance.astype(F64)) + 1e-6)[None, :, None, None]
    expected = norm * layer.scales[None, :, None, None] + layer.biases[None, :, None, None]
    expected = np.where(expected > 0, expected, 0.1 * expected)
    np.testing.assert_allclose(out, expected, rtol=2e-5, atol=2e-5)


def test_convolutional_backward_is_the_gradient_of_its_sum():
    """Linear conv, no batch norm, stride 2: with delta = 1 everywhere, darknet's
    weight_updates are d(sum out)/dW and the input delta d(sum out)/dx."""
    layer = make_layer("convolutional", (2, 5, 5), filters=3, size=3, stride=2, pad=1,
                       activation="linear")
    layer.weights, layer.biases = random(3, 2, 3, 3), random(3)
    params.zero_updates([layer], numpy_ops)
    x = random(1, 2, 5, 5)
    s = step(train=True)
    out = layer.forward(x, s)
    layer.delta = np.ones_like(out)
    input_delta = np.zeros_like(x)
    layer.backward(s, input_delta)
    # d(sum out)/dW[f,c,ky,kx] = sum over windows of x_pad; the same for every filter
    padded = np.pad(x.astype(F64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    per_offset = np.array([[[padded[0, c, ky:ky + 5:2, kx:kx + 5:2].sum() for kx in range(3)]
                            for ky in range(3)] for c in range(2)])
    np.testing.assert_allclose(layer.weight_updates, np.broadcast_to(per_offset, (3, 2, 3, 3)),
                               rtol=1e-5)
    np.testing.assert_allclose(layer.bias_updates, np.full(3, out[0, 0].size), rtol=1e-6)
    # d(sum out)/dx: each input cell gets sum of weights over the windows that cover it
    numeric = np.zeros((2, 5, 5))
    total_w = layer.weights.astype(F64).sum(axis=0)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            for ky in range(3):
                for kx in range(3):
                    y, xx = i * 2 + ky - 1, j * 2 + kx - 1
                    if 0 <= y < 5 and 0 <= xx < 5:
                        numeric[:, y, xx] += total_w[:, ky, kx]
    np.testing.assert_allclose(input_delta[0], numeric, rtol=1e-5, atol=1e-6)


def test_connected():
    layer = make_layer("connected", (3, 2, 2), output=5, activation="logistic")
    layer.weights, layer.biases = random(5, 12), random(5)
    x = random(2, 3, 2, 2)
    out = layer.forward(x, step())
    expected = 1 / (1 + np.exp(-(x.reshape(2, 12).astype(F64) @ layer.weights.T
                                 + layer.biases)))
    np.testing.assert_allclose(out.reshape(2, 5), expected, rtol=1e-6)


def test_maxpool_darknet_padding_and_backward():
    layer = make_layer("maxpool", (1, 3, 3), size=2, stride=1)   # darknet keeps 3x3
    assert layer.out_shape == (1, 3, 3)
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)[:, :, ::-1].copy()
    s = step(train=True)
    out = layer.forward(x, s)
    # window (i, j) covers rows i..i+1, cols j..j+1 (padding -FLT_MAX past the edge)
    padded = np.pad(x[0, 0], ((0, 1), (0, 1)), constant_values=-np.inf)
    expected = np.array([[padded[i:i + 2, j:j + 2].max() for j in range(3)] for i in range(3)])
    np.testing.assert_array_equal(out[0, 0], expected)
    layer.delta = np.ones_like(out)
    input_delta = np.zeros_like(x)
    layer.backward(s, input_delta)
    assert input_delta.sum() == 9 and input_delta[0, 0, 0, 0] == 0   # 2 never wins


def test_avgpool_and_softmax():
    x = random(2, 4, 3, 3)
    pool = make_layer("avgpool", (4, 3, 3))
    pooled = pool.forward(x, step())
    np.testing.assert_allclose(pooled.reshape(2, 4), x.astype(F64).mean(axis=(2, 3)),
                               rtol=1e-6, atol=1e-7)
    soft = make_layer("softmax", (4, 1, 1), groups=2)
    probs = soft.forward(pooled, step()).reshape(2, 2, 2).astype(F64)
    logits = pooled.reshape(2, 2, 2).astype(F64)
    expected = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    np.testing.assert_allclose(probs, expected, rtol=1e-6)


def test_route_reads_its_source_layers():
    a = make_layer("convolutional", (1, 2, 2), filters=2, size=1, activation="linear")
    b = make_layer("convolutional", (2, 2, 2), index=1, filters=3, size=1,
                   activation="linear")
    route = make_layer("route", (3, 2, 2), index=2, previous=[a, b], layers="-1,0")
    assert route.out_shape == (5, 2, 2)
    a.output, b.output = random(1, 2, 2, 2), random(1, 3, 2, 2)
    out = route.forward(b.output, step())
    np.testing.assert_array_equal(out, np.concatenate([b.output, a.output], axis=1))
    a.delta, b.delta = np.zeros_like(a.output), np.zeros_like(b.output)
    route.delta = random(1, 5, 2, 2)
    route.backward(step(train=True), b.delta)
    np.testing.assert_array_equal(b.delta, route.delta[:, :3])
    np.testing.assert_array_equal(a.delta, route.delta[:, 3:])


def test_reorg_matches_darknets_index_rule():
    layer = make_layer("reorg", (8, 4, 4), stride=2)
    assert layer.out_shape == (32, 2, 2)
    x = random(1, 8, 4, 4)
    out = layer.forward(x, step()).reshape(-1)
    # reorg_cpu(x, w=4, h=4, c=8, batch, stride=2, forward=0): for each input position
    # (k, j, i) of the (c, h, w) buffer, out_index = in position, in_index = position in
    # the (c/4, h*2, w*2) reading
    w, h, c, s = 4, 4, 8, 2
    expected = np.zeros(x.size, np.float32)
    out_c = c // (s * s)
    for k in range(c):
        for j in range(h):
            for i in range(w):
                in_index = i + w * (j + h * k)
                c2, offset = k % out_c, k // out_c
                w2, h2 = i * s + offset % s, j * s + offset // s
                out_index = w2 + w * s * (h2 + h * s * c2)
                expected[in_index] = x.reshape(-1)[out_index]
    np.testing.assert_array_equal(out, expected)


def test_dropout_and_batchnorm_layers():
    drop = make_layer("dropout", (2, 3, 3), probability=0.5)
    x = random(2, 2, 3, 3)
    np.testing.assert_array_equal(drop.forward(x.copy(), step()), x)   # identity at inference
    trained = drop.forward(x.copy(), step(train=True, rng=np.random.default_rng(3)))
    kept = trained != 0
    np.testing.assert_allclose(trained[kept], 2 * x[kept], rtol=1e-6)
    bn = make_layer("batchnorm", (2, 3, 3))
    bn.rolling_mean, bn.rolling_variance = np.array([1, -1], np.float32), \
        np.array([4, 9], np.float32)
    out = bn.forward(x, step())
    expected = (x - bn.rolling_mean[None, :, None, None]) / \
        (np.sqrt(bn.rolling_variance)[None, :, None, None] + 1e-6)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_region_and_cost():
    region = make_layer("region", (2 * 7, 2, 2), classes=2, num=2, coords=4, softmax=1,
                        anchors="1,1,2,2")
    assert list(region.biases) == [1, 1, 2, 2]
    x = random(1, 14, 2, 2)
    out = region.forward(x, step()).reshape(2, 7, 4).astype(F64)
    raw = x.reshape(2, 7, 4).astype(F64)
    np.testing.assert_allclose(out[:, 0:2], 1 / (1 + np.exp(-raw[:, 0:2])), rtol=1e-6)
    np.testing.assert_allclose(out[:, 2:4], raw[:, 2:4])
    np.testing.assert_allclose(out[:, 4], 1 / (1 + np.exp(-raw[:, 4])), rtol=1e-6)
    classes = np.exp(raw[:, 5:]) / np.exp(raw[:, 5:]).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out[:, 5:], classes, rtol=1e-6)
    cost = make_layer("cost", (3, 1, 1))
    truth = np.array([[1, 0, 2]], np.float32)
    pred = np.array([[0.5, 0.5, 1]], np.float32).reshape(1, 3, 1, 1)
    cost.forward(pred, step(train=True, truth=truth))
    assert cost.cost == pytest.approx(0.25 + 0.25 + 1)


def test_every_layer_type_is_covered():
    from darknet_py.layers import LAYER_TYPES
    made = {"convolutional", "connected", "maxpool", "avgpool", "softmax", "route", "reorg",
            "dropout", "batchnorm", "region", "cost"}
    assert made == set(LAYER_TYPES)


def test_parameter_tables():
    conv = make_layer("convolutional", (3, 4, 4), filters=2, size=3, batch_normalize=1)
    assert [p.name for p in params.file_params(conv)] == \
        ["biases", "scales", "rolling_mean", "rolling_variance", "weights"]
    assert [p.name for p in conv.params() if p.trained] == ["biases", "scales", "weights"]
    assert [p.name for p in conv.params() if p.decay] == ["weights"]
    dense = make_layer("connected", (2, 1, 1), output=3, batch_normalize=1)
    assert [p.name for p in params.file_params(dense)][:2] == ["biases", "weights"]
    bn = make_layer("batchnorm", (2, 1, 1))
    assert [p.name for p in params.file_params(bn)] == \
        ["scales", "rolling_mean", "rolling_variance"]   # biases trained, never saved
    region = make_layer("region", (6, 2, 2), classes=1, num=1)
    assert params.file_params(region) == [] and not region.params()[0].on_device
    pool = make_layer("maxpool", (2, 4, 4), size=2, stride=2)
    assert params.parameter_layers([conv, pool, dense, bn, region]) == [conv, dense, bn]
