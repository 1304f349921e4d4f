"""`classifier <predict|valid|train>` and the `classify` shortcut (darknet's classifier.c).

`classifier predict` takes any number of inputs (image paths, folders, globs, .txt/.list
files of paths) in batches of -batch N and prints darknet's top-k lines for each.
`classifier valid` is darknet's validate_classifier_single: top-1 and top-k accuracy over
the .data file's valid= list, the class of each image read from its path."""
import dataclasses
import os

import numpy as np

from .. import api, log
from ..config import read_data_cfg, read_list
from ..errors import DarknetError
from ..image import load_image, resize_image
from ..tree import hierarchy_predictions
from . import add_device, device_from, dispatch, make_parser, parse
from .common import (Timer, add_inference_inputs, batches, data_integer, image_paths,
                     load_for_inference, progress, read_names, run_training, train_parser)

DESCRIPTION = "Classification: darknet's classifier.c."


def predict_parser(prog="classifier predict", with_data=True, default_top=0):
    parser = make_parser(prog, "Print the top classes of images as darknet's `classifier "
                         "predict`; with no image, paths are read at an 'Enter Image Path:' "
                         "prompt.")
    add_inference_inputs(parser, with_data, ".data file (names=, top=)")
    parser.add_argument("-t", "-top", dest="top", type=int, default=default_top,
                        help="how many classes (default: the .data file's top=, else 1)")
    parser.add_argument("-batch", type=int, default=1, help="images per forward (default 1)")
    add_device(parser)
    return parser


def check_classifier_names(net, data, names):
    """A classifier network (not a detector's [region]) and a name for each of its outputs:
    darknet's predict_classifier prints names[index] past the end of a short list."""
    last = net.output_layer()
    if last.type in ("region", "detection"):
        raise DarknetError(f"{net.path}: the network ends in a [{last.type}] layer (a "
                           "detector): use `detector test` for it")
    outputs = int(np.prod(last.out_shape))
    if len(names) < outputs:
        raise DarknetError(f"{data}: the names file lists {len(names)} names, the network "
                           f"has {outputs} outputs")


def predict_classifier(data, cfg, weights, filenames, top=0, device="cpu", exact=False,
                       batch=1):
    options, names = read_names(data)
    if top == 0:
        top = data_integer(options, "top", 1, data)
    if isinstance(filenames, str):
        filenames = [filenames]
    filenames = list(filenames or [])
    if batch < 1:
        raise DarknetError(f"-batch: expected a positive batch size, found {batch}")
    net = load_for_inference(cfg, weights, device, exact)
    check_classifier_names(net, data, names)
    paths, total = image_paths(filenames), None
    if filenames:
        paths = list(paths)
        total = (len(paths) + batch - 1) // batch
    else:
        batch = 1   # paths typed at the prompt run one by one
    for chunk in progress(batches(paths, batch), total):
        ims = [load_image(path) for path in chunk]
        with Timer() as timer:
            api.predict_images(net, ims)
        for i, path in enumerate(chunk):
            predictions = api.classifier_predictions(net, batch_index=i)
            print(f"{path}: Predicted in {timer.seconds:f} seconds.")
            for index in api.top_k(predictions, top):
                print(f"{predictions[index] * 100:5.2f}%: {names[index]}", flush=True)
    return 0


def run_predict(args):
    return predict_classifier(args.data, args.cfg, args.weights, args.images, args.top,
                              device_from(args), args.exact, args.batch)


# ----------------------------------------------------------------------- classifier valid

F32 = np.float32


def valid_parser():
    parser = make_parser("classifier valid", "Top-1 and top-k accuracy of a classifier over "
                         "the .data file's valid= list, as darknet's `classifier valid` "
                         "(validate_classifier_single): each image is cropped to its centre "
                         "square and resized to the network; its class is the first entry of "
                         "labels= that its path contains. WordTree networks rank leaf "
                         "probabilities (leaves= restricts the leaves).")
    parser.add_argument("data", help=".data file (valid=, labels=, classes=, top=, leaves=)")
    parser.add_argument("cfg", help="network .cfg")
    parser.add_argument("weights", help=".weights file")
    parser.add_argument("-t", "-top", dest="top", type=int, default=0,
                        help="k of the top-k accuracy (default: the .data file's top=, else 1)")
    parser.add_argument("-batch", type=int, default=1, help="images per forward (default 1)")
    add_device(parser)
    return parser


def label_index(path, labels):
    """darknet's class of a validation image: the first label (in the labels file's order)
    that is a substring of the path (strstr), -1 when none is."""
    for index, label in enumerate(labels):
        if label in path:
            return index
    return -1


def center_crop(im, w, h):
    """darknet's center_crop_image: the centred square of side min(width, height), resized
    (resize_image) to w x h."""
    _, im_h, im_w = im.shape
    side = min(im_w, im_h)
    dx, dy = (im_w - side) // 2, (im_h - side) // 2
    return resize_image(im[:, dy:dy + side, dx:dx + side], w, h)


def valid_tree(net, options, data):
    """The network's WordTree (net->hierarchy) with darknet's change_leaves applied when the
    .data file has leaves=: a node is a leaf exactly when its name is listed there."""
    tree = api.hierarchy_of(net)
    leaves_path = options.get("leaves")
    if leaves_path is None:
        return tree
    if tree is None:   # darknet's change_leaves would dereference a NULL tree
        log.warn(f"{data}: leaves = {leaves_path} is ignored: the network has no tree")
        return None
    listed = set(read_list(leaves_path, "leaves list"))
    leaf = np.array([name in listed for name in tree.names], dtype=bool)
    log.info(f"Found {int(leaf.sum())} leaves.")
    return dataclasses.replace(tree, leaf=leaf)


def valid_labels(data, options, top=0):
    """(classes, top, labels, labels file) of a .data file as validate_classifier_single
    reads them: classes= (default 2), top= (default 1; a top given here wins), the first
    `classes` lines of labels= (default data/labels.list). Unlike darknet, top is cut to
    classes (darknet's top_k would leave -1 entries, which match unlabelled images)."""
    classes = data_integer(options, "classes", 2, data)
    top = top or data_integer(options, "top", 1, data)
    if classes < 1 or top < 1:
        raise DarknetError(f"{data}: classes = {classes} and top = {top} must be at least 1")
    labels_path = options.get("labels", "data/labels.list")
    if not os.path.exists(labels_path):
        raise DarknetError(f"{data}: labels = {labels_path}: file not found (paths in .data "
                           f"files are relative to the working directory, {os.getcwd()})")
    labels = read_list(labels_path, "labels list")[:classes]
    if len(labels) < classes:
        raise DarknetError(f"{data}: labels = {labels_path} lists {len(labels)} labels, "
                           f"classes = {classes}")
    if "" in labels:
        log.warn(f"{labels_path}:{labels.index('') + 1}: an empty label: every path contains "
                 "it (darknet's strstr), so it is the class of every image without an "
                 "earlier label")
    if top > classes:
        log.warn(f"{data}: top = {top} is more than the {classes} classes: using {classes}")
        top = classes
    return classes, top, labels, labels_path


def validate_classifier(data, cfg, weights, top=0, device="cpu", exact=False, batch=1,
                        net=None, show_progress=True):
    """darknet's validate_classifier_single over the .data file's valid= list; prints its two
    lines per image and returns (top-1, top-k) accuracy.

    As darknet: the prediction is top_k over the first `classes` outputs (after
    hierarchy_predictions, leaves only, for a WordTree network), an image whose path holds
    no label has class -1 and counts as a miss, and the running accuracies are float32 hit
    counts over the image count, printed with %f. net: an already loaded network (only
    inference forwards: its weights and statistics are left as they are); show_progress: a
    bar on a terminal."""
    # cli.evaluate (imported here: it pulls in the detection evaluation) walks the lists
    from .evaluate import valid_paths, walk
    if batch < 1:
        raise DarknetError(f"-batch: expected a positive batch size, found {batch}")
    options = read_data_cfg(data)
    classes, top, labels, labels_path = valid_labels(data, options, top)
    paths = valid_paths(options, data)
    net = net or load_for_inference(cfg, weights, device, exact)
    tree = valid_tree(net, options, data)
    hits_top1 = hits_topk = F32(0)
    number = unlabelled = 0
    walked, say = walk(list(batches(paths, batch)), show_progress)
    for chunk in walked:
        crops = np.stack([center_crop(load_image(path), net.width, net.height)
                          for path in chunk])
        outputs = net.ops.to_host(net.forward(crops)).reshape(len(chunk), -1)
        if outputs.shape[1] < classes:
            raise DarknetError(f"{data}: classes = {classes} but the network gives "
                               f"{outputs.shape[1]} outputs")
        for path, output in zip(chunk, outputs):
            pred = output.copy()
            if tree is not None:
                hierarchy_predictions(pred, tree, only_leaves=True)
            cls = label_index(path, labels)
            unlabelled += cls < 0
            indexes = api.top_k(pred[:classes], top)
            hits_top1 = F32(hits_top1 + (indexes[0] == cls))
            hits_topk = F32(hits_topk + sum(index == cls for index in indexes))
            count = F32(number + 1)
            second = pred[1] if len(pred) > 1 else F32(0)
            say(f"{path}, {cls}, {float(pred[0]):f}, {float(second):f}, ")
            say(f"{number}: top 1: {float(hits_top1 / count):f}, top {top}: "
                f"{float(hits_topk / count):f}")
            number += 1
    if unlabelled:
        log.warn(f"{unlabelled} of {len(paths)} images have no label of {labels_path} in "
                 "their path: they count as misses")
    return float(hits_top1 / F32(number)), float(hits_topk / F32(number))


def run_valid(args):
    validate_classifier(args.data, args.cfg, args.weights, args.top, device_from(args),
                        args.exact, args.batch)
    return 0


def _train_parser():
    return train_parser("classifier", "Train a classifier as darknet's train_classifier "
                        "(random crops, darknet's augmentation).")


def _train(args):
    from ..train import train_classifier
    return run_training(args, train_classifier)


COMMANDS = {"predict": (predict_parser, run_predict), "valid": (valid_parser, run_valid),
            "train": (_train_parser, _train)}


def main(argv):
    return dispatch("classifier", argv, COMMANDS, DESCRIPTION)


def classify_parser():
    return predict_parser("classify", with_data=False, default_top=5)


def classify_shortcut(argv):
    """`classify <cfg> <weights> [image...]` = classifier predict with cfg/imagenet1k.data,
    top 5."""
    args = parse(classify_parser(), argv)
    return predict_classifier("cfg/imagenet1k.data", args.cfg, args.weights, args.images,
                              args.top, device_from(args), args.exact, args.batch)


PARSERS = {"classifier": [predict_parser, valid_parser, _train_parser],
           "classify": [classify_parser]}
