"""[convolutional]: im2col + GEMM, optional batch norm, bias, activation (convolutional_layer.c)."""
import numpy as np

from .. import activations
from .params import Param, batchnorm_params
from .weighted import WeightedLayer


def parse_activation(layer, section):
    name = section.text("activation", "logistic")
    if name not in activations.NAMES:
        raise layer.error(f"unknown activation '{name}' (expected one of: "
                          f"{', '.join(activations.NAMES)})", "activation")
    return name


def one_by_one_columns(x, channels, out_hw):
    """darknet's B for a 1x1 kernel: the first channels*out_hw floats of each image read as
    a (channels, out_hw) matrix (a view)."""
    return x.reshape(x.shape[0], -1)[:, :channels * out_hw].reshape(x.shape[0], channels,
                                                                    out_hw)


class ConvolutionalLayer(WeightedLayer):
    type = "convolutional"

    def __init__(self, section, index, in_shape, previous=()):
        super().__init__(section, index, in_shape, previous)
        self.n_filters = section.integer("filters", 1)
        self.size = section.integer("size", 1)
        self.stride = section.integer("stride", 1)
        pad = section.integer("pad", 0)
        self.padding = section.integer("padding", 0)
        if pad:
            self.padding = self.size // 2  # darknet: pad=1 means "same" padding for odd sizes
        self.groups = section.integer("groups", 1)
        self.activation = parse_activation(self, section)
        self.batch_normalize = section.integer("batch_normalize", 0)
        for unsupported in ("binary", "xnor", "flipped"):
            if section.integer(unsupported, 0):
                raise self.error(f"'{unsupported}=1' convolutions are not supported", unsupported)
        section.number("dot", 0)
        if self.n_filters < 1 or self.size < 1 or self.stride < 1 or self.groups < 1:
            raise self.error(f"filters, size, stride and groups must be positive (found "
                             f"filters={self.n_filters} size={self.size} stride={self.stride} "
                             f"groups={self.groups})")
        if self.c % self.groups or self.n_filters % self.groups:
            raise self.error(f"groups={self.groups} must divide the input channels ({self.c}) "
                             f"and filters ({self.n_filters})", "groups")
        self._set_shape()
        self.allocate_params()

    def _set_shape(self):
        self.out_h = (self.h + 2 * self.padding - self.size) // self.stride + 1
        self.out_w = (self.w + 2 * self.padding - self.size) // self.stride + 1
        self.out_c = self.n_filters
        if self.out_h < 1 or self.out_w < 1:
            raise self.error(f"a {self.size}x{self.size}/{self.stride} convolution of a "
                             f"{self.w}x{self.h} input leaves no output")
        if self.size == 1 and self.out_h * self.out_w > self.h * self.w:
            raise self.error(f"a 1x1 convolution with padding={self.padding} makes a larger "
                             f"map ({self.w}x{self.h} -> {self.out_w}x{self.out_h}); darknet "
                             "skips im2col for 1x1 kernels and would read past its input")

    def resize(self, in_shape):
        self.c, self.h, self.w = in_shape
        self._set_shape()

    def params(self):
        n, k = self.n_filters, self.size
        # make_convolutional_layer: weights = sqrt(2/(size*size*c/groups)) * N(0, 1)
        fan_in = k * k * self.c // self.groups
        table = [Param("biases", (n,), update="bias_updates")]
        if self.batch_normalize:
            table += batchnorm_params(n)
        return table + [Param("weights", (n, self.c // self.groups, k, k),
                              update="weight_updates", decay=True, init="normal",
                              init_scale=float(np.sqrt(2.0 / fan_in)))]

    def _columns(self, x, ops):
        """The GEMM's right operand. Darknet skips im2col for every 1x1 kernel (whatever
        the stride or padding), so that is the rule here too: its gemm reads the first
        c * out_h*out_w floats of the image as a (c, out_h*out_w) matrix (the whole input
        when the map size is kept; its top rows, in the wrong places, with a stride)."""
        if self.size == 1:
            return one_by_one_columns(x, self.c, self.out_h * self.out_w)
        return ops.im2col(x, self.size, self.stride, self.padding, self.out_h, self.out_w)

    def forward(self, x, step):
        ops = step.ops
        batch, groups = x.shape[0], self.groups
        hw = self.out_h * self.out_w
        self.input = x
        if step.fast:
            # plain inference: the backend's fastest convolution for the shape, with the
            # folded batch norm, bias and activation in its output pass
            if self.batch_normalize:
                factor, shift = ops.batchnorm_fold(self.rolling_mean, self.rolling_variance,
                                                   self.scales, self.biases)
            else:
                factor, shift = None, self.biases
            if step.pool:   # the maxpool after this layer, computed here (Step.pool)
                shape = (batch, self.n_filters, (self.out_h + 1) // 2, (self.out_w + 1) // 2)
            else:
                shape = (batch, self.n_filters, self.out_h, self.out_w)
            self.output = ops.conv2d_inference(x, self.weights, self.size, self.stride,
                                               self.padding, groups, self.out_h,
                                               self.out_w, factor, shift, self.activation,
                                               self.reusable_output(step, shape),
                                               pool=step.pool)
            return self.output
        if step.exact:
            # darknet's im2col + gemm, its sums in its order (what an inference forward
            # derived from the weights is not used here)
            ops.forget_conv_weights(self.weights)
            cols = self._columns(x, ops).reshape(batch, groups, -1, hw)
            filters = self.weights.reshape(groups, self.n_filters // groups, -1)
            out = ops.matmul(filters, cols, step.exact)
            out = out.reshape(batch, self.n_filters, self.out_h, self.out_w)
        else:
            # default-mode training: the backend's fastest convolution alone (Winograd on
            # the CPU, its transformed filters kept for the backward until the update);
            # batch norm with the batch's statistics, bias and activation follow
            out = ops.conv2d(x, self.weights, self.size, self.stride, self.padding, groups,
                             self.out_h, self.out_w)
        self.output = self.normalize_activate(out, step)
        return self.output

    # -- training ----------------------------------------------------------------------
    def backward(self, step, input_delta):
        """backward_convolutional_layer. input_delta (the previous layer's delta) is
        accumulated through col2im for k > 1 but OVERWRITTEN for 1x1 kernels: darknet's gemm
        writes it with beta = 0 there. Kept on purpose: trained weights came from this."""
        ops = step.ops
        delta = self.delta_before_normalize(step)
        batch, groups, hw = delta.shape[0], self.groups, self.out_h * self.out_w
        per_group = self.n_filters // groups
        weight_updates = self.weight_updates.reshape(groups, per_group, -1)
        image_delta = delta.reshape(batch, self.n_filters, self.out_h, self.out_w)
        # default mode carries the delta back to a k > 1 layer's input as the backend's
        # adjoint convolution (Winograd on the CPU) instead of W^T . delta and col2im,
        # where the backend has one that is faster for the shape
        adjoint = input_delta is not None and self.size > 1 and not step.exact and \
            ops.fast_conv_adjoint(self.input.shape, self.weights.shape, self.size,
                                  self.stride, self.padding, groups)
        input_columns = input_delta is not None and not adjoint
        if self.size > 1 and not step.exact and not input_columns:
            # the weight gradient alone: the backend's way (in cached bands on the CPU)
            ops.conv_weight_gradient_add(image_delta, self.input, weight_updates,
                                         self.size, self.stride, self.padding, groups)
        else:
            # weight_updates += delta . cols^T, per image as darknet adds them (the
            # backend may run the images' GEMMs side by side); and the input delta's
            # columns W^T . delta
            cols = self._columns(self.input, ops).reshape(batch, groups, -1, hw)
            col_delta = ops.conv_backward_gemms(delta.reshape(batch, groups, per_group, hw),
                                                cols, self.weights.reshape(groups, per_group,
                                                                           -1),
                                                weight_updates, input_columns, step.exact)
        if input_delta is None:
            return
        if adjoint:
            ops.conv_input_delta_add(image_delta, self.weights, self.size, self.stride,
                                     self.padding, groups, input_delta)
        elif self.size == 1:   # the same first c*out_h*out_w floats, overwritten
            flat = input_delta.reshape(batch, -1)
            flat[:, :self.c * hw] = col_delta.reshape(batch, -1)
        else:
            ops.col2im_add(col_delta.reshape(batch, -1, hw), input_delta, self.size,
                           self.stride, self.padding, self.out_h, self.out_w)

    def bflops(self):
        return (2.0 * self.n_filters * self.size * self.size * self.c / self.groups
                * self.out_h * self.out_w) / 1e9

    def describe(self):
        return (f"conv  {self.n_filters:5d} {self.size:2d} x{self.size:2d} /{self.stride:2d}  "
                f"{self.w:4d} x{self.h:4d} x{self.c:4d}   ->  {self.out_w:4d} x{self.out_h:4d} "
                f"x{self.out_c:4d}  {self.bflops():5.3f} BFLOPs")
