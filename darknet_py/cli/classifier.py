"""`classifier <predict|train>` and the `classify` shortcut (darknet's classifier.c).

`classifier predict` takes any number of inputs (image paths, folders, globs, .txt/.list
files of paths) in batches of -batch N and prints darknet's top-k lines for each."""
from .. import api
from ..errors import DarknetError
from ..image import load_image
from . import add_device, device_from, dispatch, make_parser, parse
from .common import (Timer, add_inference_inputs, batches, image_paths, load_for_inference,
                     progress, read_names, run_training, train_parser)

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


def predict_classifier(data, cfg, weights, filenames, top=0, device="cpu", exact=False,
                       batch=1):
    options, names = read_names(data)
    if top == 0:
        top = int(options.get("top", 1))
    if isinstance(filenames, str):
        filenames = [filenames]
    filenames = list(filenames or [])
    if batch < 1:
        raise DarknetError(f"-batch: expected a positive batch size, found {batch}")
    net = load_for_inference(cfg, weights, device, exact)
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


def _train_parser():
    return train_parser("classifier", "Train a classifier as darknet's train_classifier "
                        "(random crops, darknet's augmentation).")


def _train(args):
    from ..train import train_classifier
    return run_training(args, train_classifier)


COMMANDS = {"predict": (predict_parser, run_predict), "train": (_train_parser, _train)}


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


PARSERS = {"classifier": [predict_parser, _train_parser], "classify": [classify_parser]}
