"""[batchnorm]: a stand-alone batch normalisation (batchnorm_layer.c)."""
from .base import Layer
from .params import Param, batchnorm_params
from .weighted import batch_normalize, batch_normalize_backward


class BatchnormLayer(Layer):
    type = "batchnorm"

    def __init__(self, section, index, in_shape, previous=()):
        super().__init__(section, index, in_shape, previous)
        self.allocate_params()

    def params(self):
        # darknet's load_batchnorm_weights reads scales, mean, variance; the biases are
        # trained but never saved
        return batchnorm_params(self.c) + [Param("biases", (self.c,), in_file=False,
                                                 update="bias_updates")]

    def forward(self, x, step):
        self.output = batch_normalize(self, x, step)
        return self.output

    def backward(self, step, input_delta):
        self.delta = batch_normalize_backward(self, self.delta, step)
        if input_delta is not None:
            input_delta[...] = self.delta   # darknet copies (overwrites) into net.delta

    def describe(self):
        return f"Batch Normalization Layer: {self.w} x {self.h} x {self.c} image"
