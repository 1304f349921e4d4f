"""`detector <test|...>` and the `detect` shortcut (darknet's detector.c)."""
from .. import api
from ..image import draw_detections, load_image
from . import Args, device_from
from .common import Timer, image_paths, load_for_inference, read_names, train_command

USAGE = ("python -m darknet_py detector test <data> <cfg> <weights> [image] [-thresh .5] "
         "[-hier .5] [-nms .45] [-out name] [-exact] [-i gpu | -nogpu]")


def test_detector(data, cfg, weights, filename, thresh=0.5, hier=0.5, nms=0.45, outfile=None,
                  device="cpu", exact=False):
    options, names = read_names(data)
    net = load_for_inference(cfg, weights, device, exact)
    for path in image_paths(filename):
        im = load_image(path)
        with Timer() as timer:
            api.predict_image(net, im)
        print(f"{path}: Predicted in {timer.seconds:f} seconds.")
        found = api.detections_for(net, im.shape[2], im.shape[1], thresh, hier, nms)
        for _det, cls, prob in api.detection.labelled(found, thresh):
            print(f"{names[cls]}: {prob * 100:.0f}%")
        out = (outfile or "predictions") + ".jpg"
        draw_detections(im, found, thresh, names, out)
        if filename:
            break


TRAIN_USAGE = ("python -m darknet_py detector train <data> <cfg> [weights] [-clear] "
               "[-seed N] [-workers N] [-max_batches N] [-i gpu | -nogpu]")


def train_main(argv):
    from ..train import train_detector
    return train_command(argv, TRAIN_USAGE, train_detector)


def main(argv):
    if argv and argv[0] in ("valid", "recall", "map"):
        from .evaluate import detector_main
        return detector_main(argv)
    if argv and argv[0] == "train":
        return train_main(argv)
    args = Args(argv)
    thresh = args.number("-thresh", default=0.5)
    hier = args.number("-hier", default=0.5)
    nms = args.number("-nms", default=0.45)
    outfile = args.text("-out")
    exact = args.flag("-exact")
    device = device_from(args)
    command, data, cfg, weights, filename = args.positional(5, USAGE)
    if command == "test" and cfg and weights:
        return test_detector(data, cfg, weights, filename, thresh, hier, nms, outfile, device,
                             exact)
    raise SystemExit(f"usage: {USAGE}")


def detect_shortcut(argv):
    """`detect <cfg> <weights> [image]` = detector test with cfg/coco.data, thresh .5."""
    return main(["test", "cfg/coco.data"] + list(argv))
