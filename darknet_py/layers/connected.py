"""[connected]: a fully connected layer (connected_layer.c): output = input . W^T + b."""
import numpy as np

from .base import Layer
from .convolutional import parse_activation


class ConnectedLayer(Layer):
    type = "connected"

    def __init__(self, section, index, in_shape, net):
        super().__init__(section, index, in_shape, net)
        self.n_outputs = section.int("output", 1)
        self.activation = parse_activation(self, section)
        self.batch_normalize = section.int("batch_normalize", 0)
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
        out = ops.matmul(flat, self.weights.T, net.exact).reshape(x.shape[0], self.n_outputs, 1, 1)
        if self.batch_normalize:
            if net.train:
                self.x = out
                self.mean, self.variance = ops.batchnorm_statistics(out, net.exact)
                ops.update_rolling(self.rolling_mean, self.mean)
                ops.update_rolling(self.rolling_variance, self.variance)
                out = ops.batchnorm_inference(out, self.mean, self.variance)
                self.x_norm = out
            else:
                out = ops.batchnorm_inference(out, self.rolling_mean, self.rolling_variance)
            out = ops.scale_bias(out, self.scales)
        out = ops.add_bias(out, self.biases)
        self.output = ops.activate(out, self.activation)
        return self.output

    def zero_updates(self, ops):
        self.bias_updates = ops.zeros(self.biases.shape)
        self.weight_updates = ops.zeros(self.weights.shape)
        if self.batch_normalize:
            self.scale_updates = ops.zeros(self.scales.shape)

    def backward(self, net, input_delta):
        """backward_connected_layer: weight_updates += delta^T . input; input_delta +=
        delta . W (accumulates, unlike a 1x1 convolution)."""
        ops = net.ops
        delta = self.delta * ops.gradient(self.output, self.activation)
        self.bias_updates += ops.bias_sums(delta)
        if self.batch_normalize:
            self.scale_updates += ops.channel_sums(delta * self.x_norm)
            delta = ops.batchnorm_backward(delta, self.x, self.mean, self.variance, self.scales)
        self.delta = delta
        flat = delta.reshape(delta.shape[0], self.n_outputs)
        self.weight_updates += ops.matmul(flat.T, self.input)
        if input_delta is not None:
            input_delta += ops.matmul(flat, self.weights).reshape(input_delta.shape)

    def update(self, net, rate, momentum, decay_term):
        ops = net.ops
        rate = rate * np.float32(self.learning_rate_scale)
        ops.sgd_step(self.biases, self.bias_updates, rate, momentum)
        if self.batch_normalize:
            ops.sgd_step(self.scales, self.scale_updates, rate, momentum)
        ops.sgd_step(self.weights, self.weight_updates, rate, momentum, decay_term)

    def bflops(self):
        return 2.0 * self.inputs * self.n_outputs / 1e9

    def describe(self):
        return f"connected                            {self.inputs:4d}  ->  {self.n_outputs:4d}"
