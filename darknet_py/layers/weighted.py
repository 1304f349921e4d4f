"""What convolutional and connected layers share: darknet's forward_batchnorm_layer /
add_bias after the GEMM, the matching backward, and update_convolutional_layer's SGD."""
import numpy as np

from .base import Layer


class WeightedLayer(Layer):
    """A layer with biases, weights and, with batch_normalize, scales and rolling stats."""

    def normalize(self, out, net):
        """Batch norm (batch statistics in training, rolling ones at inference), then the
        biases; without batch norm just the biases."""
        ops = net.ops
        if self.batch_normalize and not (net.train or net.exact):
            factor, shift = ops.batchnorm_fold(self.rolling_mean, self.rolling_variance,
                                               self.scales, self.biases)
            return ops.scale_shift(out, factor, shift)
        if self.batch_normalize:
            if net.train:
                self.x = out
                self.mean, self.variance = ops.batchnorm_statistics(out, net.exact)
                ops.update_rolling(self.rolling_mean, self.mean)
                ops.update_rolling(self.rolling_variance, self.variance)
                out = ops.batchnorm_inference(out, self.mean, self.variance)
                self.x_norm = out
            else:
                out = ops.batchnorm_inference(out, self.rolling_mean, self.rolling_variance)
            out = ops.scale_bias(out, self.scales)
        return ops.add_bias(out, self.biases)

    def activate(self, out, net):
        """The activation; outside training and exact mode in float32 (fast)."""
        return net.ops.activate(out, self.activation, fast=not (net.train or net.exact))

    def delta_before_normalize(self, net):
        """From this layer's delta to the delta of the GEMM's output: the activation's
        gradient, the bias (and scale) gradients, then batch norm's backward."""
        ops = net.ops
        delta = self.delta * ops.gradient(self.output, self.activation)
        self.bias_updates += ops.bias_sums(delta)
        if self.batch_normalize:
            self.scale_updates += ops.channel_sums(delta * self.x_norm)
            delta = ops.batchnorm_backward(delta, self.x, self.mean, self.variance, self.scales)
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
