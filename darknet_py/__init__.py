"""darknet_py: pjreddie's darknet (YOLOv2, YOLO9000, Darknet-19) in Python.

    net = darknet_py.load_network("cfg/yolov2-voc.cfg", "yolov2-voc.weights", batch=1)
    boxes = darknet_py.detect(net, "data/dog.jpg", thresh=.5, names="cfg/voc.data")
    top = darknet_py.classify(net, image, top=5, names="data/imagenet.shortnames.list")

Images: a path, a PIL image, an HWC uint8 array (RGB; bgr=True for OpenCV frames), a CHW
float array in [0, 1], or a list of these (one batched forward). load_image(path) gives
darknet's (3, h, w) float32 image, JPEGs decoded bit-exactly as stb_image does.
"""
from .api import (Classification, DetectedObject, as_image, classify, detect, load_names,
                  read_names)
from .errors import DarknetError
from .image import load_image
from .network import Network, load_network, parse_network_cfg

__all__ = ["load_network", "parse_network_cfg", "Network", "detect", "classify",
           "DetectedObject", "Classification", "DarknetError", "load_image", "as_image",
           "load_names", "read_names"]
__version__ = "0.1.0"
