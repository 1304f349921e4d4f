"""[batchnorm]: a stand-alone batch normalisation (batchnorm_layer.c), inference form."""
import numpy as np

from .base import Layer


class BatchnormLayer(Layer):
    type = "batchnorm"

    def __init__(self, section, index, in_shape, net):
        super().__init__(section, index, in_shape, net)
        self.biases = np.zeros(self.c, np.float32)
        self.scales = np.ones(self.c, np.float32)
        self.rolling_mean = np.zeros(self.c, np.float32)
        self.rolling_variance = np.zeros(self.c, np.float32)

    def param_layout(self):
        # darknet's load_batchnorm_weights reads scales, mean, variance (no biases).
        return [("scales", (self.c,)), ("rolling_mean", (self.c,)),
                ("rolling_variance", (self.c,))]

    def forward(self, x, net):
        ops = net.ops
        if net.train:
            self.x = x
            self.mean, self.variance = ops.batchnorm_statistics(x, net.exact)
            ops.update_rolling(self.rolling_mean, self.mean)
            ops.update_rolling(self.rolling_variance, self.variance)
            out = ops.batchnorm_inference(x, self.mean, self.variance)
            self.x_norm = out
        else:
            out = ops.batchnorm_inference(x, self.rolling_mean, self.rolling_variance)
        out = ops.scale_bias(out, self.scales)
        self.output = ops.add_bias(out, self.biases)
        return self.output

    def zero_updates(self, ops):
        self.bias_updates = ops.zeros(self.biases.shape)
        self.scale_updates = ops.zeros(self.scales.shape)

    def backward(self, net, input_delta):
        ops = net.ops
        self.bias_updates += ops.bias_sums(self.delta)
        self.scale_updates += ops.channel_sums(self.delta * self.x_norm)
        self.delta = ops.batchnorm_backward(self.delta, self.x, self.mean, self.variance,
                                            self.scales)
        if input_delta is not None:
            input_delta[...] = self.delta   # darknet copies (overwrites) into net.delta

    def update(self, net, rate, momentum, decay_term):
        rate = rate * np.float32(self.learning_rate_scale)
        net.ops.sgd_step(self.biases, self.bias_updates, rate, momentum)
        net.ops.sgd_step(self.scales, self.scale_updates, rate, momentum)

    def describe(self):
        return f"Batch Normalization Layer: {self.w} x {self.h} x {self.c} image"
