"""One module per darknet layer type; LAYER_TYPES maps a cfg section to its class."""
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

LAYER_TYPES = {cls.type: cls for cls in (
    ConvolutionalLayer, MaxpoolLayer, AvgpoolLayer, RouteLayer, ReorgLayer, RegionLayer,
    SoftmaxLayer, CostLayer, ConnectedLayer, DropoutLayer, BatchnormLayer)}
