"""[connected]: a fully connected layer (connected_layer.c): output = input . W^T + b."""
import numpy as np

from .weighted import WeightedLayer
from .convolutional import parse_activation


class ConnectedLayer(WeightedLayer):
    type = "connected"

    def __init__(self, section, index, in_shape, net):
        super().__init__(section, index, in_shape, net)
        self.n_outputs = section.integer("output", 1)
        self.activation = parse_activation(self, section)
        self.batch_normalize = section.integer("batch_normalize", 0)
        if self.n_outputs < 1:
            raise self.error(f"output must be positive (found {self.n_outputs})", "output")
        self.out_c, self.out_h, self.out_w = self.n_outputs, 1, 1
        self.biases = np.zeros(self.n_outputs, np.float32)
        self.weights = np.zeros((self.n_outputs, self.inputs), np.float32)
        if self.batch_normalize:
            self.scales = np.ones(self.n_outputs, np.float32)
            self.rolling_mean = np.zeros(self.n_outputs, np.float32)
            self.rolling_variance = np.zeros(self.n_outputs, np.float32)

    def resize(self, in_shape, net):
        if in_shape[0] * in_shape[1] * in_shape[2] != self.inputs:
            raise self.error(f"a connected layer cannot change its input size ({self.inputs} "
                             f"-> {in_shape[0] * in_shape[1] * in_shape[2]})")
        self.c, self.h, self.w = in_shape

    def param_layout(self):
        # darknet writes biases, weights, then the batch-norm parameters (unlike conv).
        layout = [("biases", self.biases.shape), ("weights", self.weights.shape)]
        if self.batch_normalize:
            layout += [("scales", (self.n_outputs,)), ("rolling_mean", (self.n_outputs,)),
                       ("rolling_variance", (self.n_outputs,))]
        return layout

    def init_random(self, rng):
        # make_connected_layer: scale = sqrt(2/inputs), weights = scale*U(-1, 1)
        scale = np.float32(np.sqrt(2.0 / self.inputs))
        draws = rng.uniform(self.weights.size, -1, 1)
        self.weights[...] = (scale * draws).reshape(self.weights.shape)

    def skip_random(self, rng):
        rng.skip_uniform(self.weights.size)

    def forward(self, x, net):
        ops = net.ops
        flat = x.reshape(x.shape[0], self.inputs)
        self.input = flat
        out = ops.matmul(flat, self.weights.T, net.exact)
        out = out.reshape(x.shape[0], self.n_outputs, 1, 1)
        self.output = self.normalize_activate(out, net)
        return self.output

    def backward(self, net, input_delta):
        """backward_connected_layer: weight_updates += delta^T . input; input_delta +=
        delta . W (accumulates, unlike a 1x1 convolution)."""
        ops = net.ops
        delta = self.delta_before_normalize(net)
        flat = delta.reshape(delta.shape[0], self.n_outputs)
        self.weight_updates += ops.matmul(flat.T, self.input)
        if input_delta is not None:
            input_delta += ops.matmul(flat, self.weights).reshape(input_delta.shape)

    def bflops(self):
        return 2.0 * self.inputs * self.n_outputs / 1e9

    def describe(self):
        return f"connected                            {self.inputs:4d}  ->  {self.n_outputs:4d}"
