"""[softmax]: flat, grouped (`groups=`) or tree (`tree=`) softmax (softmax_layer.c).

Darknet's CPU code is used here as it is: float running max, exp in double, float sum.
The output is flat: (batch, inputs, 1, 1), as darknet gives no spatial shape to it.
"""
import math

import numpy as np

from ..config import find_data_file
from ..tree import read_tree
from .base import Layer


class SoftmaxLayer(Layer):
    type = "softmax"
    has_cost = True

    def __init__(self, section, index, in_shape, previous=()):
        super().__init__(section, index, in_shape, previous)
        self.groups = section.integer("groups", 1)
        self.temperature = section.number("temperature", 1.0)
        if not math.isfinite(self.temperature) or self.temperature == 0:
            raise self.error(f"temperature must be a finite non-zero number (found "
                             f"{self.temperature})", "temperature")
        tree_path = find_data_file(section, "tree")
        self.tree = read_tree(tree_path) if tree_path else None
        self.spatial = section.number("spatial", 0)
        self.noloss = section.integer("noloss", 0)
        if self.spatial:
            raise self.error("spatial softmax is not supported", "spatial")
        self._set_shape()

    def _set_shape(self):
        if self.tree is not None and self.tree.n != self.inputs:
            raise self.error(f"tree has {self.tree.n} nodes but the input has {self.inputs} "
                             "values", "tree")
        if self.groups < 1 or self.inputs % self.groups:
            raise self.error(f"groups={self.groups} must divide the {self.inputs} inputs",
                             "groups")
        self.out_c, self.out_h, self.out_w = self.inputs, 1, 1

    def resize(self, in_shape):
        self.c, self.h, self.w = in_shape
        self._set_shape()

    def group_offsets(self):
        if self.tree is not None:
            return self.tree.group_offset
        return np.arange(self.groups) * (self.inputs // self.groups)

    def forward(self, x, step):
        flat = x.reshape(x.shape[0], -1)
        probs = step.ops.softmax_groups(flat, self.group_offsets(), self.temperature)
        self.output = probs.reshape(x.shape[0], self.outputs, 1, 1)
        if step.train and step.truth is not None and not self.noloss:
            # softmax_x_ent_cpu: delta = truth - p; loss = -log(p) where the truth is set
            truth = step.truth.reshape(self.output.shape)
            # darknet's GPU path masks the tree entries a label does not reach (truth ==
            # SECRET_NUM): no gradient and no loss there
            self.delta, self.cost = step.ops.softmax_cross_entropy(
                truth, self.output, masked=self.tree is not None)
        return self.output

    def backward(self, step, input_delta):
        if input_delta is not None:
            input_delta += self.delta.reshape(input_delta.shape)

    def describe(self):
        return f"softmax                                        {self.inputs:4d}"
