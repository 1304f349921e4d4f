"""The stand-alone [batchnorm] layer against darknet's formula, computed by hand in double:
inference (x - mean) / (sqrt(var) + 1e-6) * scale + bias, in both arithmetic modes; and a
training step's rolling averages (.99 old + .01 batch, variance over N-1)."""
import numpy as np
import pytest

from darknet_py.config import parse_cfg_text
from darknet_py.network import Network


def _net(exact=False):
    text = "[net]\nwidth=3\nheight=2\nchannels=2\nbatch=2\n[batchnorm]\n"
    net = Network(parse_cfg_text(text, "bn.cfg"), "bn.cfg", exact=exact)
    net.ensure_initialized()
    layer = net.layers[0]
    layer.rolling_mean[...] = [0.5, -1.0]
    layer.rolling_variance[...] = [4.0, 0.25]
    layer.scales[...] = [2.0, 0.5]
    layer.biases[...] = [0.1, -0.2]
    return net, layer


@pytest.mark.parametrize("exact", [True, False])
def test_inference_formula(exact):
    net, layer = _net(exact)
    x = np.random.default_rng(0).normal(size=(2, 2, 2, 3)).astype(np.float32)
    expected = ((x - [[[0.5]], [[-1.0]]]) / (np.sqrt([[[4.0]], [[0.25]]]) + 1e-6)
                * [[[2.0]], [[0.5]]] + [[[0.1]], [[-0.2]]])
    np.testing.assert_allclose(net.forward(x), expected, rtol=1e-6, atol=1e-6)


def test_training_updates_rolling_statistics():
    net, layer = _net()
    x = np.random.default_rng(1).normal(size=(2, 2, 2, 3)).astype(np.float32)
    truth = np.zeros((2, 12), np.float32)
    net.options.learning_rate = 0
    net.train_step(x, truth)
    per_channel = x.transpose(1, 0, 2, 3).reshape(2, -1).astype(np.float64)
    np.testing.assert_allclose(layer.rolling_mean,
                               0.99 * np.array([0.5, -1.0]) + 0.01 * per_channel.mean(1),
                               rtol=1e-6)
    np.testing.assert_allclose(layer.rolling_variance,
                               0.99 * np.array([4.0, 0.25]) + 0.01 * per_channel.var(1, ddof=1),
                               rtol=1e-6)
