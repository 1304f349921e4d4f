"""The Python API on top of the engine: detect and classify images as darknet's
`detector test` and `classifier predict` do."""
from dataclasses import dataclass

import numpy as np

from . import detection
from .image import letterbox_image, load_image
from .tree import hierarchy_predictions


@dataclass
class DetectedObject:
    """One (box, class) pair above the threshold: x, y, w, h are the box centre and size
    relative to the image; index is the box's position before NMS."""
    class_id: int
    prob: float
    x: float
    y: float
    w: float
    h: float
    objectness: float
    index: int
    name: str = ""


def _as_image(image):
    if isinstance(image, np.ndarray):
        return np.asarray(image, dtype=np.float32)
    return load_image(image)


def predict_image(net, image):
    """Letterbox an image (path or CHW float array) to the network and run it (batch 1)."""
    im = _as_image(image)
    sized = letterbox_image(im, net.width, net.height)
    net.forward(sized[None])
    return im


def detect(net, image, thresh=0.5, hier=0.5, nms=0.45, names=None):
    """Boxes as darknet's detector test finds them: letterbox, get_network_boxes(thresh,
    hier), do_nms_sort(nms), then every class above thresh in darknet's drawing order."""
    im = predict_image(net, image)
    found = detections_for(net, im.shape[2], im.shape[1], thresh, hier, nms)
    return [DetectedObject(cls, prob, det.x, det.y, det.w, det.h, det.objectness, det.index,
                           names[cls] if names else "")
            for det, cls, prob in detection.labelled(found, thresh)]


def detections_for(net, im_w, im_h, thresh, hier=0.5, nms=0.45):
    """The Detection list (after NMS, darknet's order) of the network's last forward."""
    boxes = detection.network_boxes(net, im_w, im_h, thresh, hier)
    order = detection.do_nms_sort(boxes, nms) if nms else None
    return detection.detections(boxes, order)


def classifier_predictions(net):
    """The network output of the last forward as darknet's predict_classifier ranks it:
    for a WordTree softmax, absolute leaf probabilities (hierarchy_predictions, leaves only)."""
    predictions = net.ops.to_host(net.output_layer().output)[0].reshape(-1).copy()
    tree = hierarchy_of(net)
    if tree is not None:
        hierarchy_predictions(predictions, tree, only_leaves=True)
    return predictions


def hierarchy_of(net):
    """darknet's net->hierarchy: the tree of the last [softmax] layer that has one."""
    tree = None
    for layer in net.layers:
        if layer.type == "softmax":
            tree = layer.tree
    return tree


def top_k(values, k):
    """darknet's top_k, literally: each value bubbles into a k-slot list, displacing an entry
    only when strictly greater, and a displaced entry moves on down the list. With ties this
    is not a stable sort: for [0, 0, 0, 0, 0, 1] and k=3 darknet returns [5, 1, 2]."""
    index = [-1] * k
    values = [float(v) for v in values]
    for i in range(len(values)):
        current = i
        for j in range(k):
            if current < 0:
                break
            if index[j] < 0 or values[current] > values[index[j]]:
                current, index[j] = index[j], current
    return index


def classify(net, image, top=5):
    """[(class index, probability)] of the top classes, as `classifier predict` prints them."""
    predict_image(net, image)
    predictions = classifier_predictions(net)
    return [(index, float(predictions[index])) for index in top_k(predictions, top)]
