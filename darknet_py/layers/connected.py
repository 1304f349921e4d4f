"""[connected]: a fully connected layer (connected_layer.c): output = input . W^T + b."""
import numpy as np

from .convolutional import parse_activation
from .params import Param, batchnorm_params
from .weighted import WeightedLayer


class ConnectedLayer(WeightedLayer):
    type = "connected"

    def __init__(self, section, index, in_shape, previous=()):
        super().__init__(section, index, in_shape, previous)
        self.n_outputs = section.integer("output", 1)
        self.activation = parse_activation(self, section)
        self.batch_normalize = section.integer("batch_normalize", 0)
        if self.n_outputs < 1:
            raise self.error(f"output must be positive (found {self.n_outputs})", "output")
        self.out_c, self.out_h, self.out_w = self.n_outputs, 1, 1
        self.allocate_params()

    def resize(self, in_shape):
        if in_shape[0] * in_shape[1] * in_shape[2] != self.inputs:
            raise self.error(f"a connected layer cannot change its input size ({self.inputs} "
                             f"-> {in_shape[0] * in_shape[1] * in_shape[2]})")
        self.c, self.h, self.w = in_shape

    def params(self):
        # darknet writes biases, weights, then the batch-norm parameters (unlike conv);
        # make_connected_layer: weights = sqrt(2/inputs) * U(-1, 1)
        n = self.n_outputs
        table = [Param("biases", (n,), update="bias_updates"),
                 Param("weights", (n, self.inputs), update="weight_updates", decay=True,
                       stored_transposed=True, init="uniform",
                       init_scale=float(np.sqrt(2.0 / self.inputs)))]
        return table + (batchnorm_params(n) if self.batch_normalize else [])

    def forward(self, x, step):
        ops = step.ops
        flat = x.reshape(x.shape[0], self.inputs)
        self.input = flat
        out = ops.matmul(flat, self.weights.T, step.exact)
        out = out.reshape(x.shape[0], self.n_outputs, 1, 1)
        self.output = self.normalize_activate(out, step)
        return self.output

    def backward(self, step, input_delta):
        """backward_connected_layer: weight_updates += delta^T . input; input_delta +=
        delta . W (accumulates, unlike a 1x1 convolution)."""
        ops = step.ops
        delta = self.delta_before_normalize(step)
        flat = delta.reshape(delta.shape[0], self.n_outputs)
        self.weight_updates += ops.matmul(flat.T, self.input)
        if input_delta is not None:
            input_delta += ops.matmul(flat, self.weights).reshape(input_delta.shape)

    def bflops(self):
        return 2.0 * self.inputs * self.n_outputs / 1e9

    def describe(self):
        return f"connected                            {self.inputs:4d}  ->  {self.n_outputs:4d}"
