"""Ground truth as darknet finds it: the label path rule, darknet label files and Pascal VOC
XML annotations.

Darknet never stores where an image's labels are: it derives the path from the image path
(data.c fill_truth_detection) by replacing the folder `images` or `JPEGImages` with `labels`
and the image extension with `.txt`. Everything that reads ground truth (training batches
in data.detection; map, recall, calc_anchors and voc_label) uses this module, so a dataset
laid out for darknet training evaluates without extra configuration.
"""
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

from ..errors import DarknetError

# Extensions darknet users give images; the rule below replaces any extension, these are
# listed for the dataset tools that look for an image by id.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                    ".ppm", ".pgm", ".pnm", ".tga")

# Where `voc_label` keeps the `difficult` boxes of an image: a file beside its label file in
# the same 5-column format. The label file itself holds only the boxes darknet trains on
# (darknet's scripts/voc_label.py drops difficult boxes), so it stays readable by darknet.
DIFFICULT_SUFFIX = ".difficult.txt"


def label_path(image_path):
    """darknet's label path for an image path.

    Darknet (fill_truth_detection) substitutes the first occurrence of the substrings
    "images" and "JPEGImages" with "labels" and of ".jpg", ".png", ".JPG", ".JPEG" with ".txt".
    We substitute whole folder names only (so `/data/myimages/` is left alone) and replace
    whatever extension the file has (so `.jpeg`, `.bmp` images find their labels too, where
    darknet would read the image bytes as labels). For the usual layouts
    (`.../JPEGImages/x.jpg`, `.../images/train2014/x.jpg`) both give the same path.
    """
    path = os.fspath(image_path)
    folder, name = os.path.split(path)
    parts = folder.split("/")
    for dirname in ("images", "JPEGImages"):
        if dirname in parts:
            parts[parts.index(dirname)] = "labels"
    return os.path.join("/".join(parts), os.path.splitext(name)[0] + ".txt")


def difficult_label_path(image_path):
    """Where voc_label writes the image's difficult boxes (absent when it has none)."""
    return label_path(image_path)[:-len(".txt")] + DIFFICULT_SUFFIX


def image_id(path):
    """darknet's basecfg(): the file name up to its first '.', the id in comp4 files."""
    return os.path.basename(os.fspath(path)).split(".", 1)[0]


@dataclass
class Labels:
    """The boxes of one label file: classes (N,) int, xywh (N, 4) float64 relative centre
    boxes, difficult (N,) bool; line_numbers (N,): each box's line in its file (to name
    it in a message), when read from one file."""
    classes: np.ndarray
    xywh: np.ndarray
    difficult: np.ndarray
    line_numbers: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self):
        return len(self.classes)


def _empty_labels():
    return Labels(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, bool))


def read_label_file(path, difficult=False):
    """A darknet label file, one `class x y w h` line per box (relative centre box).

    Darknet reads these with fscanf("%d %f %f %f %f") and silently stops at the first line
    that does not fit; we reject such a file instead, naming the line, because a silently
    truncated ground truth makes every number computed from it wrong.
    """
    try:
        with open(path, "r", encoding="utf-8-sig", errors="replace") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        raise DarknetError(f"{path}: label file not found (darknet's rule: the image path with "
                           "'images'/'JPEGImages' -> 'labels' and the extension -> '.txt')") \
            from None
    except OSError as err:
        raise DarknetError(f"{path}: cannot read label file: {err.strerror}") from None
    classes, boxes, numbers = [], [], []
    for line_no, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise DarknetError(f"{path}:{line_no}: expected 'class x y w h' (5 fields), "
                               f"found {len(fields)}: '{line.strip()}'")
        try:
            cls = int(fields[0])
            box = [float(value) for value in fields[1:]]
        except ValueError:
            raise DarknetError(f"{path}:{line_no}: expected an integer class and 4 numbers, "
                               f"found '{line.strip()}'") from None
        if cls < 0:
            raise DarknetError(f"{path}:{line_no}: negative class id {cls}")
        if not all(math.isfinite(value) for value in box):
            # inf widths or NaN centres would poison every number computed from them
            # (anchors, AP, the loss): as the training check says it
            raise DarknetError(f"{path}:{line_no}: a box with a NaN or infinite value: "
                               f"{' '.join(fields[1:])}")
        classes.append(cls)
        boxes.append(box)
        numbers.append(line_no)
    if not classes:
        return _empty_labels()
    return Labels(np.array(classes, np.int64), np.array(boxes, np.float64),
                  np.full(len(classes), bool(difficult)), np.array(numbers, np.int64))


def read_image_labels(image_path, with_difficult=True):
    """All ground truth of an image: its label file plus, when present, the difficult side
    file that voc_label writes."""
    labels = read_label_file(label_path(image_path))
    side = difficult_label_path(image_path)
    if with_difficult and os.path.exists(side):
        extra = read_label_file(side, difficult=True)
        labels = Labels(np.concatenate([labels.classes, extra.classes]),
                        np.concatenate([labels.xywh, extra.xywh]),
                        np.concatenate([labels.difficult, extra.difficult]))
    return labels


# ------------------------------------------------------------------ Pascal VOC XML

@dataclass
class VocObject:
    name: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    difficult: bool = False
    truncated: bool = False


@dataclass
class VocAnnotation:
    """One Annotations/<id>.xml: the image file name, its size as written (0 when the tool
    that wrote it did not know it) and the objects in file order."""
    path: str
    filename: str
    width: int
    height: int
    objects: list = field(default_factory=list)


def _number(node, tag, path, default=None, kind=float):
    text = node.findtext(tag)
    if text is None or not text.strip():
        if default is not None:
            return default
        raise DarknetError(f"{path}: <{node.tag}> has no <{tag}>")
    try:
        value = float(text.strip())
    except ValueError:
        raise DarknetError(f"{path}: <{node.tag}><{tag}> expected a number, found "
                           f"'{text.strip()}'") from None
    if not math.isfinite(value):   # a NaN corner would pass every comparison downstream
        raise DarknetError(f"{path}: <{node.tag}><{tag}> expected a finite number, found "
                           f"'{text.strip()}'")
    return kind(value)


def read_voc_xml(path):
    """Parse a VOC annotation. Missing <size> or <difficult> read as 0, as labelling tools
    often omit them; coordinates may be fractional (some tools write 123.5)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise DarknetError(f"{path}: not a valid XML annotation ({err})") from None
    except OSError as err:
        raise DarknetError(f"{path}: cannot read annotation: {err.strerror}") from None
    size = root.find("size")
    width = _number(size, "width", path, 0, int) if size is not None else 0
    height = _number(size, "height", path, 0, int) if size is not None else 0
    objects = []
    for obj in root.iter("object"):
        box = obj.find("bndbox")
        name = (obj.findtext("name") or "").strip()
        if box is None:
            raise DarknetError(f"{path}: object '{name}' has no <bndbox>")
        objects.append(VocObject(
            name, *(_number(box, tag, path) for tag in ("xmin", "ymin", "xmax", "ymax")),
            difficult=bool(_number(obj, "difficult", path, 0, int)),
            truncated=bool(_number(obj, "truncated", path, 0, int))))
    return VocAnnotation(str(path), (root.findtext("filename") or "").strip(), width, height,
                         objects)
