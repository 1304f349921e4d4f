"""[cost]: the training loss on the previous layer's output (cost_layer.c).

At inference darknet has no truth and leaves the output at zero; the network's output is
then the layer before it (network_output skips cost layers).
"""
from .base import Layer

COST_TYPES = ("sse", "masked", "smooth", "L1", "seg", "wgan")


class CostLayer(Layer):
    type = "cost"

    def __init__(self, section, index, in_shape, net):
        super().__init__(section, index, in_shape, net)
        self.cost_type = section.str("type", "sse")
        if self.cost_type not in COST_TYPES:
            raise self.error(f"unknown cost type '{self.cost_type}' (expected one of: "
                             f"{', '.join(COST_TYPES)})", "type")
        self.scale = section.float("scale", 1.0)
        self.ratio = section.float("ratio", 0.0)
        self.noobject_scale = section.float("noobj", 1.0)
        self.thresh = section.float("thresh", 0.0)
        self.out_c, self.out_h, self.out_w = self.inputs, 1, 1

    def resize(self, in_shape, net):
        self.c, self.h, self.w = in_shape
        self.out_c, self.out_h, self.out_w = self.inputs, 1, 1

    def forward(self, x, net):
        self.output = net.ops.zeros((x.shape[0], self.outputs, 1, 1))
        return self.output

    def describe(self):
        return f"cost                                           {self.inputs:4d}"
