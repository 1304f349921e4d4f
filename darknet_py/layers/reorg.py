"""[reorg]: darknet's own reshuffle (reorg_layer.c), which is not space-to-depth.

forward_reorg_layer calls reorg_cpu with the *input* sizes and forward=0, so the input buffer
is read as if it had c/stride^2 channels of size (h*stride, w*stride). Trained YOLOv2 weights
(the passthrough layer) depend on exactly this order.
"""
from .base import Layer


class ReorgLayer(Layer):
    type = "reorg"

    def __init__(self, section, index, in_shape, previous=()):
        super().__init__(section, index, in_shape, previous)
        self.stride = section.integer("stride", 1)
        self.reverse = section.integer("reverse", 0)
        for unsupported in ("flatten", "extra"):
            if section.integer(unsupported, 0):
                raise self.error(f"'{unsupported}' reorg is not supported", unsupported)
        self._set_shape()

    def _set_shape(self):
        s = self.stride
        if s < 1:
            raise self.error(f"stride must be positive (found {s})", "stride")
        if self.reverse:
            if self.c % (s * s):
                raise self.error(f"reverse reorg needs channels ({self.c}) divisible by {s * s}")
            self.out_w, self.out_h, self.out_c = self.w * s, self.h * s, self.c // (s * s)
        else:
            if self.w % s or self.h % s:
                raise self.error(f"reorg /{s} needs width and height divisible by {s} "
                                 f"(found {self.w}x{self.h})")
            if self.c % (s * s):
                # darknet reads the input as c/s^2 channels of a (h*s, w*s) image
                raise self.error(f"reorg /{s} needs channels ({self.c}) divisible by {s * s}")
            self.out_w, self.out_h, self.out_c = self.w // s, self.h // s, self.c * s * s

    def resize(self, in_shape):
        self.c, self.h, self.w = in_shape
        self._set_shape()

    def forward(self, x, step):
        shuffled = step.ops.reorg(x, self.stride, forward=bool(self.reverse))
        self.output = shuffled.reshape(x.shape[0], self.out_c, self.out_h, self.out_w)
        return self.output

    def backward(self, step, input_delta):
        """The inverse shuffle, written over (not added to) the previous delta, as darknet."""
        if input_delta is not None:
            flat = self.delta.reshape(input_delta.shape)
            input_delta[...] = step.ops.reorg(flat, self.stride, forward=not self.reverse)

    def describe(self):
        return (f"reorg              /{self.stride:2d}  {self.w:4d} x{self.h:4d} x{self.c:4d}   ->  "
                f"{self.out_w:4d} x{self.out_h:4d} x{self.out_c:4d}")
