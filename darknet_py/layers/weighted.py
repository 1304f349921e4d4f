"""What convolutional and connected layers share: darknet's forward_batchnorm_layer /
add_bias after the GEMM, the matching backward. The two batch-norm functions also serve the
stand-alone [batchnorm] layer. (The SGD step is layers.params.sgd_update, for every layer.)"""
from .base import Layer


def batch_normalize(layer, out, step, activation="linear"):
    """forward_batchnorm_layer: batch statistics (and rolling averages) in training, the
    rolling ones at inference, then scales and biases. Outside training and exact mode the
    three steps are folded into one multiply-add. In training the activation that follows
    is applied in the same pass (darknet's activate_array after it); otherwise the caller
    applies it. layer.x keeps the batch norm's input for the backward pass (the normalised
    values are recomputed there instead of kept)."""
    ops = step.ops
    if step.fast:
        factor, shift = ops.batchnorm_fold(layer.rolling_mean, layer.rolling_variance,
                                           layer.scales, layer.biases)
        return ops.scale_shift(out, factor, shift)
    if step.train:
        layer.x = out
        layer.mean, layer.variance = ops.batchnorm_statistics(out, step.exact)
        ops.update_rolling(layer.rolling_mean, layer.mean)
        ops.update_rolling(layer.rolling_variance, layer.variance)
        return ops.normalize_scale_activate(out, layer.mean, layer.variance, layer.scales,
                                            layer.biases, activation)
    out = ops.batchnorm_inference(out, layer.rolling_mean, layer.rolling_variance)
    return ops.add_bias(ops.scale_bias(out, layer.scales), layer.biases)


def batch_normalize_backward(layer, delta, step, activation="linear"):
    """gradient_array for `activation` (of layer.output), then backward_batchnorm_layer:
    bias and scale gradients, then the delta w.r.t. the input. May overwrite `delta`."""
    return step.ops.batchnorm_train_backward(delta, layer.output, layer.x, layer.mean,
                                             layer.variance, layer.scales, layer.bias_updates,
                                             layer.scale_updates, activation, step.exact)


class WeightedLayer(Layer):
    """A layer with biases, weights and, with batch_normalize, scales and rolling stats."""

    def normalize(self, out, step):
        """Batch norm with scales and biases, or without batch norm just the biases."""
        if self.batch_normalize:
            return batch_normalize(self, out, step)
        return step.ops.add_bias(out, self.biases)

    def normalize_activate(self, out, step):
        """normalize then activate. At plain inference (not training, not exact) in one
        in-place pass over the GEMM's output `out`, which nothing else holds."""
        if step.train and self.batch_normalize:
            return batch_normalize(self, out, step, self.activation)
        if not step.fast:
            return self.activate(self.normalize(out, step), step)
        ops = step.ops
        if self.batch_normalize:
            factor, shift = ops.batchnorm_fold(self.rolling_mean, self.rolling_variance,
                                               self.scales, self.biases)
        else:
            factor, shift = None, self.biases
        return ops.scale_shift_activate(out, factor, shift, self.activation)

    def activate(self, out, step):
        """The activation; outside training and exact mode in float32 (fast)."""
        return step.ops.activate(out, self.activation, fast=step.fast)

    def delta_before_normalize(self, step):
        """From this layer's delta to the delta of the GEMM's output: the activation's
        gradient, the bias (and scale) gradients, then batch norm's backward. The backend
        may compute it in the layer's delta buffer, which then holds the result."""
        ops = step.ops
        if self.batch_normalize:
            delta = batch_normalize_backward(self, self.delta, step, self.activation)
        else:
            delta = self.delta
            if self.activation != "linear":   # linear's gradient is 1
                delta = delta * ops.gradient(self.output, self.activation)
            self.bias_updates += ops.bias_sums(delta)
        self.delta = delta
        return delta
