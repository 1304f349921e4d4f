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
        out = ops.batchnorm_inference(x, self.rolling_mean, self.rolling_variance)
        out = ops.scale_bias(out, self.scales)
        self.output = ops.add_bias(out, self.biases)
        return self.output

    def describe(self):
        return f"Batch Normalization Layer: {self.w} x {self.h} x {self.c} image"
