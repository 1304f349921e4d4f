"""[dropout]: identity at inference; in training darknet zeroes inputs with probability p
and scales the rest by 1/(1-p) (dropout_layer.c)."""
from .base import Layer


class DropoutLayer(Layer):
    type = "dropout"

    def __init__(self, section, index, in_shape, net):
        super().__init__(section, index, in_shape, net)
        self.probability = section.float("probability", 0.5)
        if not 0 <= self.probability < 1:
            raise self.error(f"probability must be in [0, 1) (found {self.probability})",
                             "probability")
        self.scale = 1.0 / (1.0 - self.probability)

    def forward(self, x, net):
        self.output = x
        return self.output

    def describe(self):
        return (f"dropout       p = {self.probability:.2f}               {self.inputs:4d}  ->  "
                f"{self.inputs:4d}")
