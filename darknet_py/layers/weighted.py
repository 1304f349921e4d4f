"""What convolutional and connected layers share: darknet's forward_batchnorm_layer /
add_bias after the GEMM, the matching backward, and update_convolutional_layer's SGD.
The two batch-norm functions also serve the stand-alone [batchnorm] layer."""
import numpy as np

from .base import Layer


def batch_normalize(layer, out, net):
    """forward_batchnorm_layer: batch statistics (and rolling averages) in training, the
    rolling ones at inference, then scales and biases. Outside training and exact mode the
    three steps are folded into one multiply-add."""
    ops = net.ops
    if not (net.train or net.exact):
        factor, shift = ops.batchnorm_fold(layer.rolling_mean, layer.rolling_variance,
                                           layer.scales, layer.biases)
        return ops.scale_shift(out, factor, shift)
    if net.train:
        layer.x = out
        layer.mean, layer.variance = ops.batchnorm_statistics(out, net.exact)
        ops.update_rolling(layer.rolling_mean, layer.mean)
        ops.update_rolling(layer.rolling_variance, layer.variance)
        out = ops.batchnorm_inference(out, layer.mean, layer.variance)
        layer.x_norm = out
    else:
        out = ops.batchnorm_inference(out, layer.rolling_mean, layer.rolling_variance)
    return ops.add_bias(ops.scale_bias(out, layer.scales), layer.biases)


def batch_normalize_backward(layer, delta, net):
    """backward_batchnorm_layer: bias and scale gradients, then the delta w.r.t. the input."""
    ops = net.ops
    layer.bias_updates += ops.bias_sums(delta)
    layer.scale_updates += ops.channel_sums(delta * layer.x_norm)
    return ops.batchnorm_backward(delta, layer.x, layer.mean, layer.variance, layer.scales)


class WeightedLayer(Layer):
    """A layer with biases, weights and, with batch_normalize, scales and rolling stats."""

    def normalize(self, out, net):
        """Batch norm with scales and biases, or without batch norm just the biases."""
        if self.batch_normalize:
            return batch_normalize(self, out, net)
        return net.ops.add_bias(out, self.biases)

    def normalize_activate(self, out, net):
        """normalize then activate. At plain inference (not training, not exact) in one
        in-place pass over the GEMM's output `out`, which nothing else holds."""
        if net.train or net.exact:
            return self.activate(self.normalize(out, net), net)
        ops = net.ops
        if self.batch_normalize:
            factor, shift = ops.batchnorm_fold(self.rolling_mean, self.rolling_variance,
                                               self.scales, self.biases)
        else:
            factor, shift = None, self.biases
        return ops.scale_shift_activate(out, factor, shift, self.activation)

    def activate(self, out, net):
        """The activation; outside training and exact mode in float32 (fast)."""
        return net.ops.activate(out, self.activation, fast=not (net.train or net.exact))

    def delta_before_normalize(self, net):
        """From this layer's delta to the delta of the GEMM's output: the activation's
        gradient, the bias (and scale) gradients, then batch norm's backward."""
        ops = net.ops
        delta = self.delta * ops.gradient(self.output, self.activation)
        if self.batch_normalize:
            delta = batch_normalize_backward(self, delta, net)
        else:
            self.bias_updates += ops.bias_sums(delta)
        self.delta = delta
        return delta

    def zero_updates(self, ops):
        self.bias_updates = ops.zeros(self.biases.shape)
        self.weight_updates = ops.zeros(self.weights.shape)
        if self.batch_normalize:
            self.scale_updates = ops.zeros(self.scales.shape)

    def update(self, net, rate, momentum, decay_term):
        ops = net.ops
        rate = rate * np.float32(self.learning_rate_scale)
        ops.sgd_step(self.biases, self.bias_updates, rate, momentum)
        if self.batch_normalize:
            ops.sgd_step(self.scales, self.scale_updates, rate, momentum)
        ops.sgd_step(self.weights, self.weight_updates, rate, momentum, decay_term)
