"""`python -m darknet_py <command> ...`, mirroring darknet's command line."""
import sys

from .errors import DarknetError

COMMANDS = {
    "detector": ("darknet_py.cli.detector", "main"),
    "detect": ("darknet_py.cli.detector", "detect_shortcut"),
    "classifier": ("darknet_py.cli.classifier", "main"),
    "classify": ("darknet_py.cli.classifier", "classify_shortcut"),
    "partial": ("darknet_py.cli.tools", "partial_main"),
    "forward": ("darknet_py.cli.tools", "forward_main"),
    "calc_anchors": ("darknet_py.cli.evaluate", "calc_anchors_main"),
    "voc_label": ("darknet_py.cli.evaluate", "voc_label_main"),
    "wordtree": ("darknet_py.cli.wordtree", "main"),
    "bench": ("darknet_py.cli.bench", "main"),
}

USAGE = """usage: python -m darknet_py <command> [args]
commands:
  detector train <data> <cfg> [weights] [-clear] [-seed N] [-workers N] [-max_batches N]
  detector test <data> <cfg> <weights> [image] [-thresh .5] [-hier .5] [-out name]
  detector valid|recall|map <data> <cfg> <weights>
  detect <cfg> <weights> [image]                   (detector test with cfg/coco.data)
  classifier train <data> <cfg> [weights] [-clear] [-seed N] [-workers N]
  classifier predict <data> <cfg> <weights> [image] [-t top]
  classify <cfg> <weights> [image]                 (classifier predict, cfg/imagenet1k.data)
  partial <cfg> <weights> <output> <layers>        (keep the first <layers> layers)
  forward <cfg> <weights|none> <image|input.npy> --dump DIR
  wordtree <labels> -o <tree> [-names F]           (build a WordTree from WordNet)
  bench <cfg> [-batch N] [-train] [-layers] [-json out] [--vs opencv,torch]
common options: -exact (darknet's GEMM summation order: bit-faithful, slow), -i <gpu>, -nogpu"""


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if argv[0] not in COMMANDS:
        print(f"darknet_py: unknown command '{argv[0]}'\n{USAGE}", file=sys.stderr)
        return 2
    module_name, function = COMMANDS[argv[0]]
    import importlib
    try:
        module = importlib.import_module(module_name)
        return getattr(module, function)(argv[1:]) or 0
    except DarknetError as err:
        print(f"darknet_py: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
