"""`detector <test|train|valid|recall|map|demo>` and the `detect` shortcut (darknet's
detector.c; `demo` on video is cli/demo.py).

`detector test` takes any number of inputs (image paths, folders, globs, .txt/.list files of
paths) in batches of -batch N, prints darknet's lines (with -ext_output each box in pixels
as AlexeyAB's fork does), draws one predictions image per input, and can write AlexeyAB's
JSON (-json FILE, or -out FILE.json) and YOLO label files (-save_labels).
"""
import json
import os

from .. import api
from ..draw import draw_detections
from ..errors import DarknetError
from ..fileio import atomic_write_text
from ..image import load_image
from . import add_device, device_from, dispatch, make_parser, parse
from .common import (Timer, add_inference_inputs, batches, image_paths, load_for_inference,
                     output_path, progress, read_names, run_training, train_parser)

DESCRIPTION = "Detection with a [region] network: darknet's detector.c."


def test_parser(prog="detector test", with_data=True):
    parser = make_parser(prog, "Detect objects in images as darknet's `detector test`; with "
                         "no image, paths are read at an 'Enter Image Path:' prompt.",
                         skip_ignored=("-dont_show",))
    add_inference_inputs(parser, with_data, ".data file (names=)")
    parser.add_argument("-thresh", type=float, default=0.5, help="box threshold (default .5)")
    parser.add_argument("-hier", type=float, default=0.5,
                        help="WordTree hierarchy threshold (default .5)")
    parser.add_argument("-nms", type=float, default=0.45, help="NMS IoU (default .45; 0: off)")
    parser.add_argument("-out", default=None,
                        help="drawn image name without .jpg (default predictions); with "
                             "several inputs <out>_<stem>.jpg, or <out>/<stem>.jpg for a "
                             "folder; a name ending .json writes the JSON instead (AlexeyAB)")
    parser.add_argument("-batch", type=int, default=1, help="images per forward (default 1)")
    parser.add_argument("-ext_output", action="store_true",
                        help="print each box in pixels (left_x top_y width height)")
    parser.add_argument("-json", default=None, metavar="FILE",
                        help="write the boxes as AlexeyAB's JSON (a list of frames)")
    parser.add_argument("-save_labels", action="store_true",
                        help="write YOLO labels (<class> <x> <y> <w> <h>) beside each image")
    parser.add_argument("-dont_show", "-nodraw", dest="nodraw", action="store_true",
                        help="draw no predictions image")
    add_device(parser)
    return parser


def ext_box(obj):
    """AlexeyAB's -ext_output box: rounded pixels of the unclamped box."""
    return (f"\t(left_x: {round(obj.left):4.0f}   top_y: {round(obj.top):4.0f}   "
            f"width: {round(obj.right - obj.left):4.0f}   "
            f"height: {round(obj.bottom - obj.top):4.0f})")


def json_frame(frame_id, path, objects):
    """One frame of AlexeyAB's JSON output."""
    return {"frame_id": frame_id, "filename": path,
            "objects": [{"class_id": obj.class_id, "name": obj.name,
                         "relative_coordinates": {"center_x": obj.x, "center_y": obj.y,
                                                  "width": obj.w, "height": obj.h},
                         "confidence": obj.prob} for obj in objects]}


def label_lines(objects):
    """YOLO label lines as AlexeyAB's -save_labels writes them."""
    return "".join(f"{obj.class_id} {obj.x:.6f} {obj.y:.6f} {obj.w:.6f} {obj.h:.6f}\n"
                   for obj in objects)


def check_region_names(net, data, names):
    """As AlexeyAB's demo ("Parameters don't match"): a [region] network, a name for each of
    its classes (the printed and drawn labels name them; darknet reads past the list)."""
    last = net.layers[-1]
    if last.type != "region":
        raise DarknetError(f"{net.path}: the last layer is [{last.type}], not a [region] "
                           "detection layer")
    if len(names) < last.classes:
        raise DarknetError(f"{data}: the names file lists {len(names)} names, the network has "
                           f"{last.classes} classes")


def test_detector(data, cfg, weights, filenames, thresh=0.5, hier=0.5, nms=0.45, outfile=None,
                  device="cpu", exact=False, batch=1, ext_output=False, json_path=None,
                  save_labels=False, draw=True):
    """darknet's test_detector over many inputs; returns the JSON frames."""
    if isinstance(filenames, str):
        filenames = [filenames]
    filenames = list(filenames or [])
    if batch < 1:
        raise DarknetError(f"-batch: expected a positive batch size, found {batch}")
    if outfile and outfile.lower().endswith(".json") and json_path is None:
        json_path, outfile = outfile, None
    options, names = read_names(data)
    net = load_for_inference(cfg, weights, device, exact)
    check_region_names(net, data, names)
    paths = image_paths(filenames)
    total = None
    if not filenames:
        batch = 1   # paths typed at the prompt run one by one
    else:
        paths = list(paths)
        total = (len(paths) + batch - 1) // batch
    several = total is not None and len(paths) > 1
    frames, used = [], set()
    for chunk in progress(batches(paths, batch), total):
        ims = [load_image(path) for path in chunk]
        with Timer() as timer:
            api.predict_images(net, ims)
        for i, (path, im) in enumerate(zip(chunk, ims)):
            print(f"{path}: Predicted in {timer.seconds:f} seconds.")
            found = api.detections_for(net, im.shape[2], im.shape[1], thresh, hier, nms,
                                       batch_index=i)
            objects = api.detected_objects(found, thresh, im.shape[2], im.shape[1], names)
            for obj in objects:
                print(f"{names[obj.class_id]}: {obj.prob * 100:.0f}%"
                      + (ext_box(obj) if ext_output else ""), flush=True)
            frames.append(json_frame(len(frames) + 1, path, objects))
            if save_labels:
                atomic_write_text(os.path.splitext(path)[0] + ".txt", label_lines(objects))
            if draw:
                out = output_path(outfile, path, several)
                while out in used:
                    out += "_"
                used.add(out)
                draw_detections(im, found, thresh, names, out + ".jpg")
    if json_path:
        atomic_write_text(json_path, json.dumps(frames, indent=1) + "\n")
    return frames


def run_test(args, data=None):
    test_detector(data or args.data, args.cfg, args.weights, args.images, args.thresh,
                  args.hier, args.nms, args.out, device_from(args), args.exact, args.batch,
                  args.ext_output, args.json, args.save_labels, draw=not args.nodraw)
    return 0


def _evaluate(command):
    """The parser factory of `detector valid|recall|map` (darknet_py.cli.evaluate)."""
    def factory():
        from .evaluate import detector_parser
        return detector_parser(command)
    return factory


def _demo_module():
    # by name, as __main__ finds commands: cli/demo.py imports this module's line printers
    import importlib
    return importlib.import_module("darknet_py.cli.demo")


def _demo_parser():
    return _demo_module().demo_parser()


def _demo(args):
    return _demo_module().run(args)


def _run_parsed(args):
    """Commands whose parser carries its own runner (calc_anchors)."""
    return args.run(args)


def _train_parser():
    return train_parser("detector", "Train a detector as darknet's train_detector.")


def _train(args):
    import functools
    from ..train import train_detector
    from .evaluate import detector_map
    # -map measures with detector map's own code, handed down (train.py is below cli/)
    return run_training(args, functools.partial(train_detector, map_function=detector_map))


def main(argv):
    argv = list(argv)
    if argv and argv[0] in ("valid", "recall", "map"):
        from .evaluate import detector_main
        return detector_main(argv)
    commands = {
        "test": (test_parser, run_test),
        "train": (_train_parser, _train),
        "valid": (_evaluate("valid"), None),
        "recall": (_evaluate("recall"), None),
        "map": (_evaluate("map"), None),
        "calc_anchors": (_evaluate("calc_anchors"), _run_parsed),
        "demo": (_demo_parser, _demo),
    }
    return dispatch("detector", argv, commands, DESCRIPTION)


def detect_parser():
    return test_parser("detect", with_data=False)


def detect_shortcut(argv):
    """`detect <cfg> <weights> [image...]` = detector test with cfg/coco.data, thresh .5."""
    return run_test(parse(detect_parser(), argv), data="cfg/coco.data")


PARSERS = {"detector": [test_parser, _train_parser, _evaluate("valid"), _evaluate("recall"),
                        _evaluate("map"), _evaluate("calc_anchors"), _demo_parser],
           "detect": [detect_parser]}
