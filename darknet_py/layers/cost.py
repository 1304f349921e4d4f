"""[cost]: the training loss on the previous layer's output (cost_layer.c).

At inference darknet has no truth and leaves the output at zero; the network's output is
then the layer before it (network_output skips cost layers).
"""
import numpy as np

from ..settings import SECRET_NUM
from .base import Layer

COST_TYPES = ("sse", "masked", "smooth", "L1", "seg", "wgan")


class CostLayer(Layer):
    type = "cost"
    has_cost = True

    def __init__(self, section, index, in_shape, previous=()):
        super().__init__(section, index, in_shape, previous)
        self.cost_type = section.text("type", "sse")
        if self.cost_type not in COST_TYPES:
            raise self.error(f"unknown cost type '{self.cost_type}' (expected one of: "
                             f"{', '.join(COST_TYPES)})", "type")
        self.scale = section.number("scale", 1.0)
        self.ratio = section.number("ratio", 0.0)
        self.noobject_scale = section.number("noobj", 1.0)
        self.thresh = section.number("thresh", 0.0)
        self.out_c, self.out_h, self.out_w = self.inputs, 1, 1

    def resize(self, in_shape):
        self.c, self.h, self.w = in_shape
        self.out_c, self.out_h, self.out_w = self.inputs, 1, 1

    def forward(self, x, step):
        self.output = step.ops.zeros((x.shape[0], self.outputs, 1, 1))
        if not (step.train and step.truth is not None):
            return self.output   # darknet: no truth, no cost, output stays 0
        if self.cost_type not in ("sse", "masked"):
            raise self.error(f"training with cost type '{self.cost_type}' is not supported")
        pred = x.reshape(self.output.shape).copy()
        truth = step.truth.reshape(self.output.shape)
        if self.cost_type == "masked":
            pred[truth == SECRET_NUM] = SECRET_NUM   # masked entries cost nothing
        diff = truth - pred   # l2_cpu: delta = truth - pred, error = diff^2
        self.delta = diff
        self.output = diff * diff
        self.cost = float(step.ops.sequential_sum(self.output.reshape(-1)))
        return self.output

    def backward(self, step, input_delta):
        if input_delta is not None:
            input_delta += np.float32(self.scale) * self.delta.reshape(input_delta.shape)

    def describe(self):
        return f"cost                                           {self.inputs:4d}"
