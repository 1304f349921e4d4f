"""[maxpool]: darknet's window geometry (maxpool_layer.c).

Darknet pads with `padding` (default size-1) split as -padding/2 before the first window, and
its output size is (w + padding - size)/stride + 1: yolov2-tiny's size=2 stride=1 keeps 13x13.
"""
from .base import Layer


class MaxpoolLayer(Layer):
    type = "maxpool"

    def __init__(self, section, index, in_shape, previous=()):
        super().__init__(section, index, in_shape, previous)
        self.stride = section.integer("stride", 1)
        self.size = section.integer("size", self.stride)
        self.padding = section.integer("padding", self.size - 1)
        if self.size < 1 or self.stride < 1 or self.padding < 0:
            raise self.error(f"size and stride must be positive and padding >= 0 (found "
                             f"size={self.size} stride={self.stride} padding={self.padding})")
        self._set_shape()

    def _set_shape(self):
        # darknet pads such a window with size-1 cells and grinds through it for minutes
        if self.size > max(self.w, self.h):
            raise self.error(f"a {self.size}x{self.size} maxpool window is larger than its "
                             f"{self.w}x{self.h} input", "size")
        self.out_w = (self.w + self.padding - self.size) // self.stride + 1
        self.out_h = (self.h + self.padding - self.size) // self.stride + 1
        self.out_c = self.c
        if self.out_w < 1 or self.out_h < 1:
            raise self.error(f"a {self.size}x{self.size}/{self.stride} maxpool of a "
                             f"{self.w}x{self.h} input leaves no output")

    def resize(self, in_shape):
        self.c, self.h, self.w = in_shape
        self._set_shape()

    def forward(self, x, step):
        if step.fast:   # plain inference: the values only, by the backend's fastest path
            out = self.reusable_output(step, (x.shape[0], self.out_c, self.out_h, self.out_w))
            self.output = step.ops.maxpool_inference(x, self.size, self.stride, self.padding,
                                                     self.out_h, self.out_w, out)
            self.indexes = None
            return self.output
        self.output, self.indexes = step.ops.maxpool(x, self.size, self.stride, self.padding,
                                                     self.out_h, self.out_w,
                                                     want_indexes=step.train)
        return self.output

    def backward(self, step, input_delta):
        if input_delta is not None:   # backward_maxpool_layer: net.delta[index] += delta
            step.ops.maxpool_backward_add(self.delta, self.indexes, input_delta, self.size,
                                          self.stride, self.padding)

    def describe(self):
        return (f"max          {self.size} x {self.size} / {self.stride}  {self.w:4d} x{self.h:4d} "
                f"x{self.c:4d}   ->  {self.out_w:4d} x{self.out_h:4d} x{self.out_c:4d}")
