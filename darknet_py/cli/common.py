"""Pieces shared by the detector and classifier commands: names, networks, many inputs
(paths, folders, globs, list files) in batches, output names, training options."""
import glob
import os
import sys
import time

from ..config import read_data_cfg, read_list
from ..errors import DarknetError
from ..network import load_network
from . import add_device, device_from, make_parser, parse

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm", ".pnm", ".tga")
LIST_EXTENSIONS = (".txt", ".list")


def add_inference_inputs(parser, with_data, data_help):
    """What `detector test` and `classifier predict` (and their shortcuts) read: [data] cfg
    weights images..."""
    if with_data:
        parser.add_argument("data", help=data_help)
    parser.add_argument("cfg", help="network .cfg")
    parser.add_argument("weights", help=".weights file")
    parser.add_argument("images", nargs="*", default=[],
                        help="images, folders (their images, sorted), globs, or .txt/.list "
                             "files of paths")


def data_integer(options, key, default, data):
    """An integer option of a .data file (darknet's option_find_int), or a one-line error
    naming the file and the key (darknet's atoi would read text as 0)."""
    value = options.get(key)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise DarknetError(f"{data}: {key} = {value}: expected an integer") from None


def read_names(data_path, default="data/names.list"):
    """The class names a .data file points at (paths relative to the working directory)."""
    options = read_data_cfg(data_path)
    names_path = options.get("names", default)
    if not os.path.exists(names_path):
        raise DarknetError(f"{data_path}: names = {names_path}: file not found (paths in .data "
                           f"files are relative to the working directory, {os.getcwd()})")
    return options, read_list(names_path, "names list")


def load_for_inference(cfg, weights, device, exact=False, batch=1):
    return load_network(cfg, weights, batch=batch, device=device, verbose=True, exact=exact)


# ----------------------------------------------------------------------- many inputs

def is_image_name(path):
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS


def expand_inputs(arguments):
    """Image paths from the command line's inputs, in order: a folder gives its images
    (sorted by name), a glob its matches (sorted), a .txt/.list file one path a line (as
    darknet's valid lists; blank lines skipped), anything else is an image path."""
    paths = []
    for argument in arguments:
        if os.path.isdir(argument):
            found = sorted(os.path.join(argument, name) for name in os.listdir(argument)
                           if is_image_name(name)
                           and os.path.isfile(os.path.join(argument, name)))
            if not found:
                raise DarknetError(f"{argument}: the folder holds no images")
            paths += found
        elif not os.path.exists(argument) and any(c in argument for c in "*?["):
            found = sorted(glob.glob(argument))
            if not found:
                raise DarknetError(f"{argument}: no file matches")
            paths += found
        elif argument.lower().endswith(LIST_EXTENSIONS) and os.path.isfile(argument):
            paths += [line.strip() for line in read_list(argument, "image list")
                      if line.strip()]
        else:
            paths.append(argument)
    return paths


def image_paths(filenames):
    """The images to run, or, as darknet does without one, paths typed at a prompt."""
    if isinstance(filenames, str):
        filenames = [filenames]
    if filenames:
        yield from expand_inputs(filenames)
        return
    while True:
        try:
            line = input("Enter Image Path: ")
        except EOFError:
            return
        if line.strip():
            yield line.strip()


def batches(paths, size):
    """Lists of up to `size` paths (from a generator too: the prompt yields one at a time)."""
    chunk = []
    for path in paths:
        chunk.append(path)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def progress(items, total, what="images"):
    """tqdm over items when stderr is a terminal and there is more than one; else items."""
    if total is None or total <= 1 or not sys.stderr.isatty():
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, total=total, unit=" batch", desc=what, file=sys.stderr, leave=False)


def output_path(out, path, several, default="predictions"):
    """Where the drawn image for `path` goes (without .jpg): darknet's <out> (default
    predictions) for one input; with several, <out>/<stem> when out is a folder (or ends
    with /), else <out>_<stem>."""
    stem = os.path.splitext(os.path.basename(path))[0]
    if not several:
        return out or default
    if out and (os.path.isdir(out) or out.endswith(("/", os.sep))):
        os.makedirs(out, exist_ok=True)
        return os.path.join(out, stem)
    return f"{out or default}_{stem}"


class Timer:
    def __enter__(self):
        self.start = time.time()
        return self

    def __exit__(self, *exc):
        self.seconds = time.time() - self.start


# ----------------------------------------------------------------------- training

# darknet's .data file for each of its shipped cfgs, so that `detector train cfg/yolov2-voc.cfg`
# works with the cfg alone (the .data file is looked up beside the cfg)
DATA_FOR_CFG = {"yolov2-voc": "voc.data", "yolov2-tiny-voc": "voc.data",
                "yolov2": "coco.data", "yolov2-tiny": "coco.data", "yolov1": "voc.data",
                "yolov1-tiny": "voc.data", "yolo9000": "combine9k.data",
                "darknet19": "imagenet1k.data", "darknet19_448": "imagenet1k.data",
                "tiny": "imagenet1k.data", "extraction": "imagenet1k.data",
                "darknet": "imagenet1k.data", "darknet9000": "imagenet9k.hierarchy.dataset"}


def matching_data(cfg):
    """darknet's .data file for a shipped cfg, or a one-line error saying to give one."""
    name = os.path.splitext(os.path.basename(cfg))[0]
    if name not in DATA_FOR_CFG:
        raise DarknetError(f"{cfg}: no .data file given and none is known for this cfg: "
                           "give it first, as darknet does (<data> <cfg> [weights])")
    for folder in (os.path.dirname(cfg), "cfg"):
        candidate = os.path.join(folder, DATA_FOR_CFG[name])
        if os.path.exists(candidate):
            return candidate
    raise DarknetError(f"{cfg}: its .data file {DATA_FOR_CFG[name]} is not beside it")


def train_parser(group, description):
    # -map is implemented here (AlexeyAB's meaning), not one of the accepted-and-ignored flags
    parser = make_parser(f"{group} train", description, skip_ignored=("-map",))
    parser.add_argument("data", help=".data file (train=, backup=, classes=, names=); may be "
                                     "left out for darknet's own cfgs (cfg/yolov2-voc.cfg "
                                     "takes cfg/voc.data)")
    parser.add_argument("cfg", nargs="?", default=None, help="network .cfg")
    parser.add_argument("weights", nargs="?", default=None,
                        help="initial weights (partial files too)")
    parser.add_argument("-clear", action="store_true", help="start seen and the schedule at 0")
    parser.add_argument("-seed", type=int, default=None, help="make the run reproducible")
    parser.add_argument("-workers", type=int, default=2, help="loader processes (default 2)")
    parser.add_argument("-max_batches", type=int, default=None,
                        help="stop after N iterations, N >= 1 (overrides the cfg)")
    watching = parser.add_argument_group("watching the run (docs/TRAINING.md)")
    watching.add_argument("-log", default=None, metavar="FILE",
                          help="append darknet's lines to FILE as well (they still go to "
                               "stdout)")
    watching.add_argument("-chart_every", type=int, default=10, metavar="N",
                          help="write <backup>/chart.png (loss, and mAP with -map) every N "
                               "iterations and at the end (default 10)")
    watching.add_argument("-nochart", action="store_true", help="no chart.png")
    if group == "detector":
        map_help = ("mAP@0.5 on the .data file's valid= list every few epochs and after the "
                    "last iteration (AlexeyAB's -map); keeps <backup>/<cfg>_best.weights and "
                    "_last.weights")
        every_help = ("with -map: every N iterations (default AlexeyAB's: 4 epochs, at least "
                      "100 iterations, not before burn_in)")
    else:
        map_help = every_help = "detector train only (a classifier has no mAP): refused here"
    watching.add_argument("-map", action="store_true", help=map_help)
    watching.add_argument("-map_every", type=int, default=None, metavar="N", help=every_help)
    add_device(parser, exact=False)
    return parser


def run_training(args, train_function):
    if args.data.endswith(".cfg"):   # `train <cfg> [weights]`: darknet's matching .data
        args.cfg, args.weights = args.data, args.cfg
        args.data = matching_data(args.cfg)
        print(f"darknet_py: no .data file given: using {args.data}", file=sys.stderr)
    elif args.cfg is None:
        raise DarknetError(f"{args.data}: give the network's .cfg after the .data file")
    if args.max_batches is not None and args.max_batches < 1:
        raise DarknetError(f"-max_batches {args.max_batches}: expected at least 1 iteration "
                           "(for a run without end, as darknet's max_batches=0, set it in "
                           "the cfg)")
    try:
        train_function(args.data, args.cfg, args.weights, args.clear, args.seed, args.workers,
                       device_from(args), args.max_batches, log_path=args.log,
                       chart_every=None if args.nochart else args.chart_every,
                       calc_map=args.map, map_every=args.map_every)
    except KeyboardInterrupt:   # the trainer has saved the backup already
        return 130
    return 0


def train_command(argv, group, train_function, description=None):
    """`detector train` and `classifier train`: the same options, darknet's spelling."""
    return run_training(parse(train_parser(group, description), argv), train_function)
