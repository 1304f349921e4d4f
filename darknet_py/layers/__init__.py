"""One module per darknet layer type; LAYER_TYPES maps a cfg section to its class.

Each layer module holds its forward and backward; `params.py` the table of arrays every
layer declares; `step.py` what a forward/backward is given. Layers import the backends'
constants and the loss, never the network.
"""
from ..config import section_from_options
from .avgpool import AvgpoolLayer
from .batchnorm import BatchnormLayer
from .connected import ConnectedLayer
from .convolutional import ConvolutionalLayer
from .cost import CostLayer
from .dropout import DropoutLayer
from .maxpool import MaxpoolLayer
from .region import RegionLayer
from .reorg import ReorgLayer
from .route import RouteLayer
from .softmax import SoftmaxLayer
from .step import Step

LAYER_TYPES = {cls.type: cls for cls in (
    ConvolutionalLayer, MaxpoolLayer, AvgpoolLayer, RouteLayer, ReorgLayer, RegionLayer,
    SoftmaxLayer, CostLayer, ConnectedLayer, DropoutLayer, BatchnormLayer)}


def make_layer(kind, in_shape, index=0, previous=(), **options):
    """A layer from plain arguments: make_layer("convolutional", (3, 8, 8), filters=4,
    size=3, pad=1, activation="leaky"). `previous`: the layers before it (route only)."""
    section = section_from_options(kind, options)
    cls = LAYER_TYPES.get(section.type)
    if cls is None:
        raise ValueError(f"unknown layer type '{kind}' (expected one of: "
                         f"{', '.join(sorted(LAYER_TYPES))})")
    return cls(section, index, tuple(in_shape), list(previous))


__all__ = ["LAYER_TYPES", "Step", "make_layer"]
