"""The Python API on top of the engine: detect and classify images as darknet's
`detector test` and `classifier predict` do.

An image may be given as a path, a PIL image, an HWC uint8 array (RGB; `bgr=True` for OpenCV
frames), a CHW float array in [0, 1] (what `load_image` returns), or a list of any of these:
a list runs as one batched forward (each image letterboxed, stacked) and gives one result
per image.
"""
import os
from collections import namedtuple
from dataclasses import dataclass

import numpy as np

from . import detection
from .config import read_data_cfg, read_list
from .errors import DarknetError, ImageError
from .image import letterbox_image, load_image
from .tree import hierarchy_predictions


@dataclass
class DetectedObject:
    """One (box, class) pair above the threshold: x, y, w, h are the box centre and size
    relative to the image (darknet's box); index is the box's position before NMS; left, top,
    right, bottom are the same box in pixels of the original image (not clamped)."""
    class_id: int
    prob: float
    x: float
    y: float
    w: float
    h: float
    objectness: float
    index: int
    name: str = ""
    left: float = 0.0
    top: float = 0.0
    right: float = 0.0
    bottom: float = 0.0

    @property
    def width(self):
        """Box width in pixels."""
        return self.right - self.left

    @property
    def height(self):
        """Box height in pixels."""
        return self.bottom - self.top


class Classification(namedtuple("Classification", "index prob")):
    """One of classify's top classes: unpacks as (index, prob); .name is the class name
    ("" without names)."""

    def __new__(cls, index, prob, name=""):
        self = super().__new__(cls, index, prob)
        self.name = name
        return self

    def __repr__(self):
        return f"Classification(index={self.index}, name={self.name!r}, prob={self.prob!r})"


# --------------------------------------------------------------------------- inputs

def _pixels_to_chw(pixels, bgr=False):
    """HWC uint8 (or HW grey, or HWC with alpha) -> darknet's CHW float32 = byte/255."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4):
        raise ImageError(f"an HWC image array needs 1, 3 or 4 channels, got shape "
                         f"{pixels.shape}")
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    pixels = pixels[:, :, :3]
    if bgr:
        pixels = pixels[:, :, ::-1]
    # as load_image: (float)byte/255. is a double division rounded to float
    return (pixels.astype(np.float64) / 255.0).astype(np.float32).transpose(2, 0, 1).copy()


def as_image(image, bgr=False):
    """Any supported image input as darknet's image: (3, h, w) float32 in [0, 1], RGB.

    path -> load_image (stb_image-exact JPEG decoding); PIL image -> convert("RGB") -> bytes
    / 255; uint8 array -> HWC (RGB, or BGR with bgr=True) bytes / 255; float array -> CHW in
    [0, 1] as is (an HWC float array with 3 channels last is transposed)."""
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    try:
        from PIL import Image
        if isinstance(image, Image.Image):
            return _pixels_to_chw(np.asarray(image.convert("RGB")))
    except ImportError:   # pragma: no cover (pillow is a dependency)
        pass
    if not isinstance(image, np.ndarray):
        raise ImageError(f"cannot use {type(image).__name__} as an image: give a path, a PIL "
                         f"image, an HWC uint8 array or a CHW float array")
    if image.dtype == np.uint8:
        return _pixels_to_chw(image, bgr)
    im = np.asarray(image, dtype=np.float32)
    if im.ndim == 2:
        im = np.repeat(im[None], 3, axis=0)
    if im.ndim != 3:
        raise ImageError(f"an image array needs 2 or 3 dimensions, got shape {im.shape}")
    if im.shape[0] not in (1, 3) and im.shape[2] in (1, 3):
        im = im.transpose(2, 0, 1)
    if im.shape[0] == 1:
        im = np.repeat(im, 3, axis=0)
    if bgr:
        im = im[::-1]
    return np.ascontiguousarray(im)


def _is_batch(image):
    return isinstance(image, (list, tuple))


def predict_images(net, images, bgr=False):
    """Letterbox each image to the network, stack them and run one forward (batch =
    len(images)). Returns the images as CHW float arrays (their sizes place the boxes)."""
    ims = [as_image(image, bgr) for image in images]
    if not ims:
        return ims
    batch = np.stack([letterbox_image(im, net.width, net.height) for im in ims])
    net.forward(batch)
    return ims


def predict_image(net, image, bgr=False):
    """Letterbox one image (any supported input) to the network and run it (batch 1)."""
    return predict_images(net, [image], bgr)[0]


# --------------------------------------------------------------------------- names

def load_names(source):
    """Class names from a names file (one a line) or a .data file's `names =`.

    As in darknet, a .data file's paths are relative to the working directory; when the
    file is not found there, the .data file's folder and its parent are tried too (so
    `load_names("/path/to/darknet_py/cfg/coco.data")` works from anywhere)."""
    if isinstance(source, (list, tuple)):
        return list(source)
    source = os.fspath(source)
    if source.endswith(".data"):
        options = read_data_cfg(source)
        if "names" not in options:
            raise DarknetError(f"{source}: no 'names =' line")
        names_path = options["names"]
        folder = os.path.dirname(os.path.abspath(source))
        for candidate in (names_path, os.path.join(folder, names_path),
                          os.path.join(os.path.dirname(folder), names_path)):
            if os.path.exists(candidate):
                return read_list(candidate, "names list")
        raise DarknetError(f"{source}: names = {names_path}: file not found (paths in .data "
                           f"files are relative to the working directory, {os.getcwd()})")
    return read_list(source, "names list")


read_names = load_names


def _names(names):
    if names is None:
        return None
    return load_names(names)


# --------------------------------------------------------------------------- detection

def detections_for(net, im_w, im_h, thresh, hier=0.5, nms=0.45, batch_index=0):
    """The Detection list (after NMS, darknet's order) of the network's last forward."""
    boxes = detection.network_boxes(net, im_w, im_h, thresh, hier, batch_index=batch_index)
    order = detection.do_nms_sort(boxes, nms) if nms else None
    return detection.detections(boxes, order)


def detected_objects(found, thresh, im_w, im_h, names=None):
    """DetectedObjects (darknet's print order) of a Detection list for an im_w x im_h image."""
    objects = []
    for det, cls, prob in detection.labelled(found, thresh):
        name = names[cls] if names and cls < len(names) else ""
        objects.append(DetectedObject(
            cls, prob, det.x, det.y, det.w, det.h, det.objectness, det.index, name,
            (det.x - det.w / 2) * im_w, (det.y - det.h / 2) * im_h,
            (det.x + det.w / 2) * im_w, (det.y + det.h / 2) * im_h))
    return objects


def detect(net, image, thresh=0.5, hier=0.5, nms=0.45, names=None, bgr=False):
    """Boxes as darknet's detector test finds them: letterbox, get_network_boxes(thresh,
    hier), do_nms_sort(nms), then every class above thresh in darknet's drawing order.

    image: a path, PIL image, HWC uint8 array, CHW float array, or a list of these (one
    batched forward; returns a list of box lists). names: a list, a names file or a .data
    file (see load_names)."""
    names = _names(names)
    batch = _is_batch(image)
    ims = predict_images(net, list(image) if batch else [image], bgr)
    results = []
    for i, im in enumerate(ims):
        found = detections_for(net, im.shape[2], im.shape[1], thresh, hier, nms, batch_index=i)
        results.append(detected_objects(found, thresh, im.shape[2], im.shape[1], names))
    return results if batch else results[0]


# --------------------------------------------------------------------------- classification

def classifier_predictions(net, batch_index=0):
    """The network output of the last forward as darknet's predict_classifier ranks it:
    for a WordTree softmax, absolute leaf probabilities (hierarchy_predictions, leaves only)."""
    predictions = net.ops.to_host(net.output_layer().output)[batch_index].reshape(-1).copy()
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


def classify(net, image, top=5, names=None, bgr=False):
    """The top classes as `classifier predict` prints them: Classification(index, prob)
    tuples (unpack as `index, prob`; `.name` from names: a list, names file or .data file).

    image: as for detect; a list gives one list per image from one batched forward."""
    names = _names(names)
    batch = _is_batch(image)
    ims = predict_images(net, list(image) if batch else [image], bgr)
    results = []
    for i in range(len(ims)):
        predictions = classifier_predictions(net, batch_index=i)
        results.append([Classification(index, float(predictions[index]),
                                       names[index] if names and index < len(names) else "")
                        for index in top_k(predictions, top)])
    return results if batch else results[0]
