"""[batchnorm]: a stand-alone batch normalisation (batchnorm_layer.c)."""
import numpy as np

from .base import Layer
from .weighted import batch_normalize, batch_normalize_backward


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
        self.output = batch_normalize(self, x, net)
        return self.output

    def zero_updates(self, ops):
        self.bias_updates = ops.zeros(self.biases.shape)
        self.scale_updates = ops.zeros(self.scales.shape)

    def backward(self, net, input_delta):
        self.delta = batch_normalize_backward(self, self.delta, net)
        if input_delta is not None:
            input_delta[...] = self.delta   # darknet copies (overwrites) into net.delta

    def update(self, net, rate, momentum, decay_term):
        rate = rate * np.float32(self.learning_rate_scale)
        net.ops.sgd_step(self.biases, self.bias_updates, rate, momentum)
        net.ops.sgd_step(self.scales, self.scale_updates, rate, momentum)

    def describe(self):
        return f"Batch Normalization Layer: {self.w} x {self.h} x {self.c} image"
