"""[dropout]: identity at inference; in training darknet zeroes inputs with probability p
and scales the rest by 1/(1-p) (dropout_layer.c)."""
import numpy as np

from .base import Layer


class DropoutLayer(Layer):
    type = "dropout"

    def __init__(self, section, index, in_shape, previous=()):
        super().__init__(section, index, in_shape, previous)
        self.probability = section.number("probability", 0.5)
        if not 0 <= self.probability < 1:
            raise self.error(f"probability must be in [0, 1) (found {self.probability})",
                             "probability")
        self.scale = 1.0 / (1.0 - self.probability)

    delta_is_input_delta = True   # darknet: l.delta is the previous layer's delta

    def forward(self, x, step):
        if step.train:
            # darknet draws rand_uniform(0,1) per input and drops where r < p, scaling the
            # rest, in place on the previous layer's output
            self.rand = step.rng.random(x.shape, dtype=np.float32)   # host draws, any backend
            self.mask = step.ops.dropout_mask(self.rand, self.probability, self.scale)
            x *= self.mask
        self.output = x
        return self.output

    def backward(self, step, input_delta):
        if input_delta is not None:
            input_delta *= self.mask

    def describe(self):
        return (f"dropout       p = {self.probability:.2f}               {self.inputs:4d}  ->  "
                f"{self.inputs:4d}")
