"""[avgpool]: global average over each channel (avgpool_layer.c)."""
from .base import Layer


class AvgpoolLayer(Layer):
    type = "avgpool"

    def __init__(self, section, index, in_shape, previous=()):
        super().__init__(section, index, in_shape, previous)
        self.out_h = self.out_w = 1

    def resize(self, in_shape):
        self.c, self.h, self.w = in_shape
        self.out_c, self.out_h, self.out_w = self.c, 1, 1

    def forward(self, x, step):
        self.output = step.ops.avgpool(x)
        return self.output

    def backward(self, step, input_delta):
        # each input cell gets delta / (h*w), computed in float as darknet does
        if input_delta is not None:
            step.ops.avgpool_backward(self.delta, input_delta)

    def describe(self):
        return f"avg                     {self.w:4d} x{self.h:4d} x{self.c:4d}   ->  {self.c:4d}"
