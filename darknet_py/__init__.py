"""darknet_py: pjreddie's darknet (YOLOv2, YOLO9000, Darknet-19) in Python.

    net = darknet_py.load_network("cfg/yolov2-voc.cfg", "yolov2-voc.weights", batch=1)
    boxes = darknet_py.detect(net, "data/dog.jpg", thresh=.5)
"""
from .api import DetectedObject, classify, detect
from .errors import DarknetError
from .network import Network, load_network, parse_network_cfg

__all__ = ["load_network", "parse_network_cfg", "Network", "detect", "classify",
           "DetectedObject", "DarknetError"]
__version__ = "0.1.0"
