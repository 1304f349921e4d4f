"""`classifier predict` and the `classify` shortcut (darknet's classifier.c)."""
from .. import api
from ..image import load_image
from . import Args, device_from
from .common import Timer, image_paths, load_for_inference, read_names, train_command

USAGE = ("python -m darknet_py classifier predict <data> <cfg> <weights> [image] [-t top] "
         "[-exact] [-i gpu | -nogpu]")


def predict_classifier(data, cfg, weights, filename, top=0, device="cpu", exact=False):
    options, names = read_names(data)
    if top == 0:
        top = int(options.get("top", 1))
    net = load_for_inference(cfg, weights, device, exact)
    for path in image_paths(filename):
        im = load_image(path)
        with Timer() as timer:
            api.predict_image(net, im)
        predictions = api.classifier_predictions(net)
        print(f"{path}: Predicted in {timer.seconds:f} seconds.")
        for index in api.top_k(predictions, top):
            print(f"{predictions[index] * 100:5.2f}%: {names[index]}")
        if filename:
            break


TRAIN_USAGE = ("python -m darknet_py classifier train <data> <cfg> [weights] [-clear] "
               "[-seed N] [-workers N] [-max_batches N] [-i gpu | -nogpu]")


def train_main(argv):
    from ..train import train_classifier
    return train_command(argv, TRAIN_USAGE, train_classifier)


def main(argv):
    if argv and argv[0] == "train":
        return train_main(argv)
    args = Args(argv)
    top = args.integer("-t", default=0)
    exact = args.flag("-exact")
    device = device_from(args)
    command, data, cfg, weights, filename = args.positional(5, USAGE)
    if command == "predict" and cfg and weights:
        return predict_classifier(data, cfg, weights, filename, top, device, exact)
    raise SystemExit(f"usage: {USAGE}")


def classify_shortcut(argv):
    """`classify <cfg> <weights> [image]` = classifier predict with cfg/imagenet1k.data, top 5."""
    args = Args(argv)
    exact = args.flag("-exact")
    device = device_from(args)
    cfg, weights, filename = args.positional(3, "python -m darknet_py classify <cfg> <weights> "
                                                "[image]")
    return predict_classifier("cfg/imagenet1k.data", cfg, weights, filename, 5, device, exact)
