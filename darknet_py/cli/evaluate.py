"""Evaluation commands: `detector valid|recall|map`, `calc_anchors` and `voc_label`.

valid and recall follow darknet's detector.c (validate_detector, validate_detector_recall);
map and calc_anchors are not in pjreddie's darknet and follow the VOC devkit and the YOLOv2
paper (see darknet_py.evaluation). The commands read, loop and write files; the result-line
formats are darknet_py.evaluation.writers, the charts darknet_py.plot.
"""
import math
import os
import sys
import time

import numpy as np

from .. import detection
from ..config import read_cfg, read_data_cfg, read_list
from ..data.labels import image_id, label_path, read_image_labels, read_label_file
from ..errors import DarknetError, WriteError
from ..evaluation import anchors as dimension_clusters
from ..evaluation.ap import ScoredBox, TruthBox, evaluate, read_detection_file
from ..evaluation.writers import (COCO_IDS, coco_lines, comp4_records, format_detection_line,
                                  imagenet_lines)
from ..fileio import atomic_write_text, atomic_write_with
from ..image import letterbox_image, load_image, resize_image
from ..plot import line_chart
from . import PROG, add_device, device_from, make_parser, parse, short_usage
from .common import load_for_inference, progress, read_names

F32 = np.float32

VALID_THRESH, VALID_NMS = 0.005, 0.45          # validate_detector's fixed values
RECALL_THRESH, RECALL_IOU, RECALL_NMS = 0.001, 0.5, 0.4   # validate_detector_recall's


# ----------------------------------------------------------------------- shared pieces

def walk(paths, show=True, what="images"):
    """(the paths, with a progress bar on a terminal when show (cli.common.progress), and
    the print function to use meanwhile): while a bar is drawn, darknet's lines go through
    tqdm.write, which lifts the bar and puts it back, so they come out whole and unchanged."""
    bar = progress(paths, len(paths), what) if show else paths
    if bar is paths:
        return paths, print

    def say(text, file=None):
        bar.write(str(text), file=file or sys.stdout)
    return bar, say


def valid_paths(options, data):
    path = options.get("valid", "data/train.list")
    paths = [line.strip() for line in read_list(path, "valid list") if line.strip()]
    if not paths:
        raise DarknetError(f"{data}: valid = {path}: the list is empty")
    return paths


def _class_map(options):
    """The data file's map= (one dataset class -> network class index per line)."""
    if "map" not in options:
        return None
    indexes = []
    for line_no, line in enumerate(read_list(options["map"], "map file"), start=1):
        if not line.strip():
            continue
        try:
            indexes.append(int(line))
        except ValueError:
            raise DarknetError(f"{options['map']}:{line_no}: expected a class index, found "
                               f"'{line.strip()}'") from None
    return np.array(indexes, dtype=int)


def _region_classes(net):
    """darknet takes the class count from the last layer (the [region] of a detector)."""
    last = net.layers[-1]
    if last.type != "region":
        raise DarknetError(f"{net.path}: the last layer is [{last.type}], not a [region] "
                           "detection layer")
    return last.classes


def _detect(net, im, thresh, nms, class_map):
    """validate_detector's per-image work: letterbox, forward, pixel boxes, do_nms_sort.
    Returns (Boxes, order after NMS)."""
    net.forward(letterbox_image(im, net.width, net.height)[None])
    boxes = detection.network_boxes(net, im.shape[2], im.shape[1], thresh, 0.5, class_map,
                                    relative=False)
    order = detection.do_nms_sort(boxes, nms) if nms else np.arange(len(boxes.prob))
    return boxes, order


# ----------------------------------------------------------------------- detector valid

def validate_detector(data, cfg, weights, outfile=None, device="cpu", exact=False, net=None,
                      show_progress=True):
    """darknet's validate_detector. Returns the paths written.

    eval=voc (default): <results>/<outfile><class>.txt with outfile "comp4_det_test_" (as in
    darknet, -out replaces that prefix); eval=coco: <results>/<outfile or coco_results>.json;
    eval=imagenet: <results>/<outfile or imagenet-detection>.txt (200 classes). The results
    folder is created (darknet fails on a missing one). An empty COCO file is written as
    "[\\n]\\n" (darknet's seek-back would leave invalid JSON). show_progress: a progress bar
    on a terminal (off for callers with their own, such as training).
    """
    options, names = read_names(data)
    results = options.get("results", "results")
    kind = options.get("eval", "voc")
    if kind not in ("voc", "coco", "imagenet"):
        raise DarknetError(f"{data}: eval = {kind}: expected voc, coco or imagenet")
    class_map = _class_map(options)
    paths = valid_paths(options, data)
    net = net or load_for_inference(cfg, weights, device, exact)
    classes = 200 if kind == "imagenet" else _region_classes(net)
    if kind == "coco" and classes > len(COCO_IDS):
        raise DarknetError(f"{data}: eval=coco needs at most {len(COCO_IDS)} classes, the "
                           f"network has {classes}")
    if kind == "voc" and len(names) < classes:
        raise DarknetError(f"{data}: names = {options.get('names')} lists {len(names)} names, "
                           f"the network has {classes} classes")
    try:
        os.makedirs(results, exist_ok=True)
    except OSError as err:
        raise WriteError(f"{results}: cannot create the results folder: "
                         f"{err.strerror or err}") from None
    per_class = [[] for _ in range(classes)]
    lines = []
    start = time.time()
    walked, say = walk(paths, show_progress)
    for number, path in enumerate(walked, start=1):
        im = load_image(path)
        boxes, order = _detect(net, im, VALID_THRESH, VALID_NMS, class_map)
        w, h = im.shape[2], im.shape[1]
        if kind == "coco":
            lines += coco_lines(path, boxes, order, w, h, classes)
        elif kind == "imagenet":
            lines += imagenet_lines(number, boxes, order, w, h, classes)
        else:
            name = image_id(path)
            for cls, prob, *corners in comp4_records(boxes, order, w, h, classes):
                per_class[cls].append(format_detection_line(name, prob, *corners))
        if number % 4 == 0 or number == len(paths):   # darknet reports per 4-image batch
            say(number, file=sys.stderr)
    print(f"Total Detection Time: {time.time() - start:f} Seconds", file=sys.stderr)
    if kind == "coco":
        target = os.path.join(results, (outfile or "coco_results") + ".json")
        atomic_write_text(target, "[\n" + ",\n".join(lines) + "\n]\n")
        return [target]
    if kind == "imagenet":
        target = os.path.join(results, (outfile or "imagenet-detection") + ".txt")
        atomic_write_text(target, "".join(lines))
        return [target]
    written = []
    for cls in range(classes):
        target = os.path.join(results, f"{outfile or 'comp4_det_test_'}{names[cls]}.txt")
        atomic_write_text(target, "".join(per_class[cls]))
        written.append(target)
    return written


# ----------------------------------------------------------------------- detector recall



def _c_percent(numerator, denominator, dtype):
    """numerator*100/denominator as C prints it with %.2f; 0/0 is the x86 default NaN,
    which glibc prints as -nan."""
    if denominator == 0:
        return "-nan" if numerator == 0 else ("inf" if numerator > 0 else "-inf")
    return f"{float(dtype(numerator) * dtype(100) / dtype(denominator)):.2f}"


def validate_detector_recall(data, cfg, weights, device="cpu", exact=False, net=None,
                             stream=None, show_progress=True):
    """darknet's validate_detector_recall on the data file's valid= list (darknet reads a
    hard-coded data/coco_val_5k.list). As darknet: the image is resized (not letterboxed),
    thresh .001, do_nms_obj at .4, a label counts as found when a proposal (objectness >
    thresh) overlaps it by IoU > .5. Prints darknet's line per image; returns the totals."""
    stream = stream or sys.stderr
    options = read_data_cfg(data)
    paths = valid_paths(options, data)
    net = net or load_for_inference(cfg, weights, device, exact)
    total = correct = proposals = 0
    avg_iou = F32(0)
    walked, say = walk(paths, show_progress)
    for i, path in enumerate(walked):
        im = load_image(path)
        net.forward(resize_image(im, net.width, net.height)[None])
        boxes = detection.network_boxes(net, net.width, net.height, RECALL_THRESH, 0.5)
        detection.do_nms_obj(boxes, RECALL_NMS)
        truth = read_label_file(label_path(path))
        proposals += int(np.count_nonzero(boxes.objectness > F32(RECALL_THRESH)))
        live = boxes.objectness > F32(RECALL_THRESH)
        for t in truth.xywh.astype(F32):
            total += 1
            ious = detection.box_iou(t, boxes.xywh[live])
            ious = ious[ious > 0]     # darknet's `iou > best_iou` from 0: NaN never wins
            best = ious.max() if ious.size else F32(0)
            avg_iou = F32(avg_iou + best)
            correct += int(best > RECALL_IOU)
        rps = float(F32(proposals) / F32(i + 1))
        say(f"{i:5d} {correct:5d} {total:5d}\tRPs/Img: {rps:.2f}\t"
            f"IOU: {_c_percent(avg_iou, total, F32)}%\t"
            f"Recall:{_c_percent(correct, total, np.float64)}%", file=stream)
    return {"total": total, "correct": correct, "proposals": proposals,
            "avg_iou": float(avg_iou / total) if total else float("nan")}


# ----------------------------------------------------------------------- detector map

def _image_size(path):
    from PIL import Image
    try:
        with Image.open(path) as image:
            return image.width, image.height
    except Exception as err:   # any Pillow failure: say which image
        raise DarknetError(f"cannot read the size of image {path}: {err}") from None


def ground_truth(paths, classes, sizes):
    """TruthBoxes per class from the label files of `paths`, as 1-based pixel corners (the
    inverse of voc_label's conversion, so VOC boxes come back as their XML coordinates)."""
    truths = {c: [] for c in range(classes)}
    for path in paths:
        labels = read_image_labels(path)
        width, height = sizes[path]
        for cls, (x, y, w, h), difficult in zip(labels.classes, labels.xywh, labels.difficult):
            if cls >= classes:
                raise DarknetError(f"{label_path(path)}: class {cls} but the data file has "
                                   f"{classes} classes")
            box = ((x - w / 2) * width + 1, (y - h / 2) * height + 1,
                   (x + w / 2) * width + 1, (y + h / 2) * height + 1)
            truths[int(cls)].append(TruthBox(image_id(path), box, bool(difficult)))
    return truths


def _unique_ids(paths):
    seen = {}
    for path in paths:
        other = seen.setdefault(image_id(path), path)
        if other != path:
            raise DarknetError(f"images {other} and {path} have the same id "
                               f"'{image_id(path)}': detection files cannot tell them apart")


def detections_from_network(net, paths, classes, class_map, sizes, show_progress=True):
    """What `detector valid` would write, kept in memory: ScoredBoxes per class."""
    found = {c: [] for c in range(classes)}
    walked, say = walk(paths, show_progress)
    for number, path in enumerate(walked, start=1):
        im = load_image(path)
        sizes[path] = (im.shape[2], im.shape[1])
        boxes, order = _detect(net, im, VALID_THRESH, VALID_NMS, class_map)
        for cls, prob, *corners in comp4_records(boxes, order, *sizes[path], classes):
            found[cls].append(ScoredBox(image_id(path), prob, tuple(corners)))
        if number % 20 == 0:
            say(f"{number}/{len(paths)} images", file=sys.stderr)
    return found


def detections_from_files(folder, prefix, names, warn):
    found = {}
    for cls, name in enumerate(names):
        path = os.path.join(folder, f"{prefix}{name}.txt")
        if os.path.exists(path):
            found[cls] = read_detection_file(path)
        else:
            warn(f"{path}: no detection file, class '{name}' has no detections")
            found[cls] = []
    return found


def detector_map(data, cfg=None, weights=None, iou=0.5, points=11, dets_folder=None,
                 prefix=None, device="cpu", exact=False, net=None, stream=None,
                 show_progress=True):
    """Per-class AP and mAP on the valid= images; returns (list of ClassAP, mAP).
    show_progress: a progress bar on a terminal while the network runs."""
    stream = stream or sys.stdout
    options, names = read_names(data)
    paths = valid_paths(options, data)
    _unique_ids(paths)
    sizes = {}
    if dets_folder is not None:
        classes = int(options.get("classes", len(names)))
        found = detections_from_files(dets_folder, prefix or "comp4_det_test_", names[:classes],
                                      lambda m: print(f"warning: {m}", file=sys.stderr))
        sizes = {path: _image_size(path) for path in paths}
    else:
        net = net or load_for_inference(cfg, weights, device, exact)
        classes = _region_classes(net)
        found = detections_from_network(net, paths, classes, _class_map(options), sizes,
                                        show_progress)
    if len(names) < classes:
        raise DarknetError(f"{data}: {len(names)} names for {classes} classes")
    truths = ground_truth(paths, classes, sizes)
    # comp4 boxes are integer-pixel inclusive coordinates: the devkit's +1 IoU convention
    results, mean = evaluate(found, truths, classes, iou, points, pixel_inclusive=True)
    kind = "11-point (VOC2007)" if points == 11 else \
        ("all-point (VOC2010+)" if points == 0 else f"{points}-point")
    print(f"{len(paths)} images, IoU >= {iou:g}, {kind} interpolation", file=stream)
    print(f"{'class':<20} {'AP':>8} {'TP':>7} {'FP':>7} {'GT':>6}", file=stream)
    for name, result in zip(names, results):
        ap = "n/a" if result.npos == 0 else f"{100 * result.ap:.2f} %"
        print(f"{name:<20} {ap:>8} {result.tp:>7} {result.fp:>7} {result.npos:>6}", file=stream)
    print(f"mAP = {'n/a' if math.isnan(mean) else f'{100 * mean:.2f} %'}", file=stream)
    return results, mean


DETECTOR_HELP = {
    "valid": "Write darknet's comp4 (VOC), COCO JSON or ImageNet detection files for the "
             ".data file's valid= list (validate_detector: thresh .005, nms .45).",
    "recall": "Print darknet's running recall over the valid= list (validate_detector_recall).",
    "map": "VOC mean average precision of a network (or of comp4 files with -dets) over the "
           "valid= list.",
}


def detector_parser(command):
    """The parser of `detector valid|recall|map|calc_anchors`."""
    if command == "calc_anchors":   # AlexeyAB's spelling of calc_anchors
        return calc_anchors_parser("detector calc_anchors")
    parser = make_parser(f"detector {command}", DETECTOR_HELP[command])
    parser.add_argument("data", help=".data file (valid=, names=, classes=)")
    optional = "?" if command == "map" else None
    parser.add_argument("cfg", nargs=optional, default=None, help="network .cfg")
    parser.add_argument("weights", nargs=optional, default=None, help=".weights file")
    if command in ("valid", "map"):
        parser.add_argument("-out", default=None, metavar="PREFIX",
                            help="output file prefix (default comp4_det_test_)")
    if command == "map":
        parser.add_argument("-iou", type=float, default=0.5, help="IoU for a match (default .5)")
        parser.add_argument("-points", type=int, default=11,
                            help="11: VOC2007 11-point AP; 0: all-point AP (default 11)")
        parser.add_argument("-dets", default=None, metavar="FOLDER",
                            help="score comp4 files from this folder instead of a network")
    add_device(parser)
    return parser


def detector_usage():
    """The usage lines of `detector valid|recall|map`, from their parsers."""
    return "usage:\n" + "\n".join(f"  {PROG} {short_usage(detector_parser(command))}"
                                    for command in DETECTOR_HELP)


def detector_main(argv):
    command = argv[0] if argv else None
    if command not in DETECTOR_HELP:
        raise DarknetError(f"unknown detector command '{command}'\n{detector_usage()}")
    args = parse(detector_parser(command), argv[1:])
    data, cfg, weights, exact = args.data, args.cfg, args.weights, args.exact
    device = device_from(args)
    outfile = getattr(args, "out", None)
    iou, points, dets_folder = (getattr(args, "iou", 0.5), getattr(args, "points", 11),
                                getattr(args, "dets", None))
    if not 0 < iou <= 1:   # also NaN
        raise DarknetError(f"detector {command}: -iou {iou}: expected a number in (0, 1]")
    if command == "map" and data and (dets_folder or (cfg and weights)):
        detector_map(data, cfg, weights, iou, points, dets_folder, outfile, device, exact)
        return 0
    if not (data and cfg and weights):
        raise DarknetError(f"detector {command}: needs <data> <cfg> <weights>\n"
                           f"{detector_usage()}")
    if command == "valid":
        for path in validate_detector(data, cfg, weights, outfile, device, exact):
            print(path)
    elif command == "recall":
        validate_detector_recall(data, cfg, weights, device, exact)
    else:
        raise DarknetError(f"unknown detector command '{command}'\n{detector_usage()}")
    return 0


# ----------------------------------------------------------------------- calc_anchors

DEFAULT_STRIDE = 32   # the grid stride of every YOLOv2 cfg darknet ships


def training_box_sizes(data):
    """(w, h) relative to the image of every box in the label files of the data file's
    train= list; zero-size boxes and missing label files are reported and left out."""
    options = read_data_cfg(data)
    if "train" not in options:
        raise DarknetError(f"{data}: no 'train =' line (calc_anchors clusters its labels)")
    paths = [p.strip() for p in read_list(options["train"], "train list") if p.strip()]
    sizes, missing, degenerate = [], 0, 0
    for path in paths:
        if not os.path.exists(label_path(path)):
            missing += 1
            continue
        labels = read_label_file(label_path(path))
        good = (labels.xywh[:, 2] > 0) & (labels.xywh[:, 3] > 0)
        degenerate += int((~good).sum())
        sizes.append(labels.xywh[good, 2:4])
    if missing:
        print(f"calc_anchors: warning: {missing} of {len(paths)} images have no label file",
              file=sys.stderr)
    if degenerate:
        print(f"calc_anchors: warning: {degenerate} boxes of zero width or height left out",
              file=sys.stderr)
    boxes = np.concatenate(sizes) if sizes else np.zeros((0, 2))
    if len(boxes) == 0:
        raise DarknetError(f"{options['train']}: no boxes found in the label files of its images")
    return boxes, len(paths)


def network_grid(cfg):
    """(net width, net height, grid width, grid height) of a cfg: the [net] input and the
    out_w x out_h of its last [region] (else of its last layer), from the layers darknet
    would build (parse_network_cfg; no weights are read). The region layer's anchors are in
    units of that grid, so the stride is width / grid width."""
    from ..network import parse_network_cfg
    net = parse_network_cfg(cfg, batch=1, device="cpu")
    regions = [layer for layer in net.layers if layer.type == "region"]
    last = regions[-1] if regions else net.layers[-1]
    return net.width, net.height, last.out_w, last.out_h


def cfg_anchors(cfg):
    """The anchors of the cfg's last [region] (first `num` pairs), (n, 2) in the cfg's own
    grid units."""
    sections = read_cfg(cfg)
    regions = [s for s in sections if s.type == "region"]
    if not regions:
        raise DarknetError(f"{cfg}: no [region] section, so no anchors to compare with")
    values = regions[-1].numbers("anchors", float, default=[])
    num = regions[-1].integer("num", len(values) // 2)
    if len(values) < 2 * num:
        raise DarknetError(f"{regions[-1].where()} num={num} needs {2 * num} anchor values, "
                           f"found {len(values)}")
    return np.array(values[:2 * num]).reshape(num, 2)


def _format_anchors(anchors):
    return ",  ".join(f"{w:.4f},{h:.4f}" for w, h in anchors)


def anchor_table(boxes, seed, restarts, ks=range(1, 11)):
    """[(k, avg IoU of: IoU k-means refined, IoU k-means plain (the paper's mean update),
    Euclidean k-means)] for each k."""
    return [(k, dimension_clusters.kmeans_iou(boxes, k, seed, restarts).avg_iou,
             dimension_clusters.kmeans_iou(boxes, k, seed, restarts, refine=False).avg_iou,
             dimension_clusters.kmeans_euclidean(boxes, k, seed, restarts).avg_iou) for k in ks]


def plot_table(rows, cfg_point, path):
    """avg IoU against k as a 640x420 PNG (darknet_py.plot): one line per clustering of
    anchor_table's rows, the cfg's anchors (k, avg IoU) as a square. The y axis starts at
    the tenth below the lowest value, so the curves are not squeezed against the top."""
    series = {"IoU k-means, refined": [(row[0], row[1]) for row in rows],
              "IoU k-means, plain": [(row[0], row[2]) for row in rows],
              "Euclidean k-means": [(row[0], row[3]) for row in rows]}
    markers = {f"cfg anchors ({cfg_point[0]})": cfg_point} if cfg_point else {}
    low = min([min(row[1:]) for row in rows] + ([cfg_point[1]] if cfg_point else []))
    line_chart(path, series, "average IoU of each box with its best anchor", "k (clusters)",
               "avg IoU", size=(640, 420), markers=markers,
               y_from=max(0.0, math.floor(low * 10) / 10), log_x=False)


CALC_ANCHORS_HELP = """\
Dimension clusters (k-means with IoU distance) of the training boxes of a .data file's
train= list: anchors for a [region] layer in its grid units (pixels / the network's
stride: from -cfg, -stride, else 32), printed and written to anchors.txt (-out).
Also spelled as AlexeyAB's `detector calc_anchors <data> -num_of_clusters 5 -width 416
-height 416 [-show]`."""


def calc_anchors_parser(prog="calc_anchors"):
    parser = make_parser(prog, CALC_ANCHORS_HELP, ignored=False)
    parser.add_argument("data", help=".data file (train=)")
    parser.add_argument("-num_of_clusters", type=int, default=5, help="k (default 5)")
    parser.add_argument("-width", type=int, default=None,
                        help="network width in pixels (default: the -cfg's, else 416)")
    parser.add_argument("-height", type=int, default=None,
                        help="network height in pixels (default: the -cfg's, else 416)")
    parser.add_argument("-cfg", default=None,
                        help="the network: its stride (input size / last layer's grid) "
                             "gives the grid units, its [region] anchors are compared")
    parser.add_argument("-stride", type=int, default=None,
                        help="grid stride in pixels (default: from -cfg, else 32)")
    parser.add_argument("-seed", type=int, default=0, help="k-means seed (default 0)")
    parser.add_argument("-restarts", type=int, default=10, help="k-means restarts (default 10)")
    parser.add_argument("-plain", action="store_true",
                        help="plain k-means (mean update), no IoU refinement")
    parser.add_argument("-table", action="store_true", help="avg IoU for k = 1..10")
    parser.add_argument("-png", default=None, help="plot the table to this file")
    parser.add_argument("-out", default="anchors.txt", metavar="FILE",
                        help="write the anchors line here (default anchors.txt, as AlexeyAB)")
    parser.add_argument("-show", action="store_true",
                        help="accepted and ignored (AlexeyAB's window; -png draws the table)")
    parser.set_defaults(run=run_calc_anchors)
    return parser


def _check_calc_anchors(args):
    """One-line errors for values that cannot work, before any file is read."""
    k, restarts = args.num_of_clusters, args.restarts
    if restarts < 1 or k < 1:
        raise DarknetError(f"calc_anchors: -restarts and -num_of_clusters must be at least 1 "
                           f"(found {restarts} and {k})")
    if args.seed < 0:
        raise DarknetError(f"calc_anchors: -seed {args.seed}: expected a seed of 0 or more")
    for flag in ("width", "height", "stride"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise DarknetError(f"calc_anchors: -{flag} {value}: expected a positive number "
                               "of pixels")


def _grid(args):
    """(width, height, stride_w, stride_h, where the stride comes from, the -cfg's grid
    (w, h) or None) for calc_anchors."""
    width, height, cfg_grid = args.width, args.height, None
    if args.cfg:
        cfg_w, cfg_h, grid_w, grid_h = network_grid(args.cfg)
        width, height = width or cfg_w, height or cfg_h
        stride_w, stride_h, cfg_grid = cfg_w / grid_w, cfg_h / grid_h, (grid_w, grid_h)
        source = f"from {args.cfg}: {cfg_w}x{cfg_h} input, {grid_w}x{grid_h} grid"
    else:
        width, height = width or 416, height or 416
        stride_w = stride_h = DEFAULT_STRIDE
        source = "YOLOv2's, assumed: give -cfg or -stride to take the network's"
    if args.stride:
        stride_w = stride_h = args.stride
        source = "from -stride"
    return width, height, stride_w, stride_h, source, cfg_grid


def _stride_text(stride_w, stride_h):
    return f"{stride_w:g}" if stride_w == stride_h else f"{stride_w:g}x{stride_h:g}"


def anchors_file_text(anchors):
    """anchors.txt as AlexeyAB writes it, `w,h, w,h, ...` (ready for `anchors=`), with
    YOLOv2's grid units at 4 decimals and a final newline."""
    return ", ".join(f"{w:.4f},{h:.4f}" for w, h in anchors) + "\n"


def run_calc_anchors(args):
    _check_calc_anchors(args)
    if args.show:
        print("darknet_py: note: -show is accepted and ignored (there is no display window "
              "here; -png FILE plots the -table)", file=sys.stderr)
    k, seed, restarts, table = args.num_of_clusters, args.seed, args.restarts, args.table
    cfg, png, plain = args.cfg, args.png, args.plain
    reference = cfg_anchors(cfg) if cfg else None
    width, height, stride_w, stride_h, source, cfg_grid = _grid(args)
    relative, images = training_box_sizes(args.data)
    # the region layer's anchors are in cells of its grid: relative size x grid size
    grid = np.array([width / stride_w, height / stride_h])
    boxes = relative * grid
    stride = _stride_text(stride_w, stride_h)
    print(f"{len(boxes)} boxes from {images} images; network {width}x{height}, grid "
          f"{grid[0]:g}x{grid[1]:g}, anchors in grid units (pixels / {stride}); stride "
          f"{stride} ({source})")
    clusters = dimension_clusters.kmeans_iou(boxes, k, seed, restarts, refine=not plain)
    print(f"num_of_clusters = {k}, seed = {seed}, restarts = {restarts}, "
          f"{'plain k-means (mean update)' if plain else 'k-means + IoU refinement'}")
    print(f"anchors = {_format_anchors(clusters.anchors)}")
    print(f"avg IoU = {100 * clusters.avg_iou:.2f} %")
    cfg_point = None
    if reference is not None:
        # the cfg's anchors are in its own grid (its last layer's out_w x out_h); IoU does
        # not change with the unit, so they are rescaled to ours only to be listed together
        ref = reference / np.array(cfg_grid) * grid
        cfg_point = (len(ref), dimension_clusters.avg_iou(boxes, ref))
        print(f"{cfg} anchors ({len(ref)}): avg IoU = {100 * cfg_point[1]:.2f} %")
    if table or png:
        rows = anchor_table(boxes, seed, restarts)
        if table:
            print(f"{'k':>3} {'IoU refined':>12} {'IoU plain':>11} {'Euclidean':>11}")
            for kk, refined, plain_value, euclid_value in rows:
                print(f"{kk:>3} {100 * refined:>10.2f} % {100 * plain_value:>9.2f} % "
                      f"{100 * euclid_value:>9.2f} %")
            if cfg_point:
                print(f"cfg {os.path.basename(cfg)}: {cfg_point[0]} anchors, "
                      f"{100 * cfg_point[1]:.2f} %")
        if png:
            atomic_write_with(png, lambda handle: plot_table(rows, cfg_point, handle))
            print(f"plot written to {png}")
    atomic_write_text(args.out, anchors_file_text(clusters.anchors))
    print(f"anchors written to {args.out}")
    return 0


def calc_anchors_main(argv):
    """`calc_anchors <data> ...` (and `detector calc_anchors`, AlexeyAB's spelling)."""
    return run_calc_anchors(parse(calc_anchors_parser(), argv))


# ----------------------------------------------------------------------- voc_label

def voc_label_parser():
    parser = make_parser("voc_label", "darknet's scripts/voc_label.py: YOLO label files, "
                         "image lists and a .data file from a VOCdevkit year folder.",
                         ignored=False)
    parser.add_argument("root", metavar="VOC_root", help="e.g. VOCdevkit/VOC2007")
    parser.add_argument("-out", default=None, help="output folder (default: in place)")
    parser.add_argument("-sets", default="train,val,test", help="default train,val,test")
    parser.add_argument("-names", default=None, help="class names file (default: sorted)")
    parser.add_argument("-split", type=float, default=None,
                        help="shuffle every image into disjoint train/valid lists, this "
                             "fraction for training (e.g. 0.8; for datasets without ImageSets)")
    parser.add_argument("-seed", type=int, default=0, help="the -split shuffle's seed")
    return parser


def voc_label_main(argv):
    from ..voc_label import voc_label
    args = parse(voc_label_parser(), argv)
    out, root, names_file = args.out, args.root, args.names
    sets = [s for s in args.sets.split(",") if s]
    names = [n.strip() for n in read_list(names_file, "names list") if n.strip()] \
        if names_file else None
    report = voc_label(root, out, sets, names, split=args.split, seed=args.seed)
    print(f"{len(report.classes)} classes: {', '.join(report.classes)}")
    for name, paths in report.sets.items():
        print(f"{name}: {len(paths)} images")
    print(f"{report.boxes} boxes written, {report.difficult} difficult (kept aside), "
          f"{report.skipped_boxes} skipped, {len(report.warnings)} warnings")
    print(f"data file: {report.data_path}")
    return 0


PARSERS = {"calc_anchors": [calc_anchors_parser], "voc_label": [voc_label_parser]}
