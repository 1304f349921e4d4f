"""[convolutional]: im2col + GEMM, optional batch norm, bias, activation (convolutional_layer.c)."""
import numpy as np

from .. import activations
from .base import Layer


def parse_activation(layer, section):
    name = section.str("activation", "logistic")
    if name not in activations.NAMES:
        raise layer.error(f"unknown activation '{name}' (expected one of: "
                          f"{', '.join(activations.NAMES)})", "activation")
    return name


class ConvolutionalLayer(Layer):
    type = "convolutional"

    def __init__(self, section, index, in_shape, net):
        super().__init__(section, index, in_shape, net)
        self.n_filters = section.int("filters", 1)
        self.size = section.int("size", 1)
        self.stride = section.int("stride", 1)
        pad = section.int("pad", 0)
        self.padding = section.int("padding", 0)
        if pad:
            self.padding = self.size // 2  # darknet: pad=1 means "same" padding for odd sizes
        self.groups = section.int("groups", 1)
        self.activation = parse_activation(self, section)
        self.batch_normalize = section.int("batch_normalize", 0)
        for unsupported in ("binary", "xnor", "flipped"):
            if section.int(unsupported, 0):
                raise self.error(f"'{unsupported}=1' convolutions are not supported", unsupported)
        section.float("dot", 0)
        if self.n_filters < 1 or self.size < 1 or self.stride < 1 or self.groups < 1:
            raise self.error(f"filters, size, stride and groups must be positive (found "
                             f"filters={self.n_filters} size={self.size} stride={self.stride} "
                             f"groups={self.groups})")
        if self.c % self.groups or self.n_filters % self.groups:
            raise self.error(f"groups={self.groups} must divide the input channels ({self.c}) "
                             f"and filters ({self.n_filters})", "groups")
        self._set_shape()
        n, k = self.n_filters, self.size
        self.biases = np.zeros(n, np.float32)
        self.weights = np.zeros((n, self.c // self.groups, k, k), np.float32)
        if self.batch_normalize:
            self.scales = np.ones(n, np.float32)
            self.rolling_mean = np.zeros(n, np.float32)
            self.rolling_variance = np.zeros(n, np.float32)

    def _set_shape(self):
        self.out_h = (self.h + 2 * self.padding - self.size) // self.stride + 1
        self.out_w = (self.w + 2 * self.padding - self.size) // self.stride + 1
        self.out_c = self.n_filters
        if self.out_h < 1 or self.out_w < 1:
            raise self.error(f"a {self.size}x{self.size}/{self.stride} convolution of a "
                             f"{self.w}x{self.h} input leaves no output")

    def resize(self, in_shape, net):
        self.c, self.h, self.w = in_shape
        self._set_shape()

    def param_layout(self):
        layout = [("biases", self.biases.shape)]
        if self.batch_normalize:
            layout += [("scales", (self.n_filters,)), ("rolling_mean", (self.n_filters,)),
                       ("rolling_variance", (self.n_filters,))]
        return layout + [("weights", self.weights.shape)]

    def init_random(self, rng):
        # make_convolutional_layer: scale = sqrt(2/(size*size*c/groups)), weights = scale*N(0,1)
        fan_in = self.size * self.size * self.c // self.groups
        scale = np.float32(np.sqrt(2.0 / fan_in))
        self.weights[...] = (scale * rng.normal(self.weights.size)).reshape(self.weights.shape)

    def skip_random(self, rng):
        rng.skip_normal(self.weights.size)

    def forward(self, x, net):
        ops = net.ops
        batch = x.shape[0]
        groups, k = self.groups, self.size
        hw = self.out_h * self.out_w
        if k == 1 and self.stride == 1 and self.padding == 0:
            cols = x.reshape(batch, self.c, hw)
        else:
            cols = ops.im2col(x, k, self.stride, self.padding, self.out_h, self.out_w)
        cols = cols.reshape(batch, groups, -1, hw)
        filters = self.weights.reshape(groups, self.n_filters // groups, -1)
        out = ops.matmul(filters, cols, net.exact_gemm).reshape(batch, self.n_filters, self.out_h, self.out_w)
        if self.batch_normalize:
            out = ops.batchnorm_inference(out, self.rolling_mean, self.rolling_variance)
            out = ops.scale_bias(out, self.scales)
        out = ops.add_bias(out, self.biases)
        self.output = ops.activate(out, self.activation)
        return self.output

    def bflops(self):
        return (2.0 * self.n_filters * self.size * self.size * self.c / self.groups
                * self.out_h * self.out_w) / 1e9

    def describe(self):
        return (f"conv  {self.n_filters:5d} {self.size:2d} x{self.size:2d} /{self.stride:2d}  "
                f"{self.w:4d} x{self.h:4d} x{self.c:4d}   ->  {self.out_w:4d} x{self.out_h:4d} "
                f"x{self.out_c:4d}  {self.bflops():5.3f} BFLOPs")
