"""`export <cfg> <weights|none> <out.onnx> [-batch N] [-region] [-opset 13] [-seed N]`:
the network as an ONNX graph (darknet_py.export_onnx)."""
from ..errors import DarknetError
from . import make_parser, parse

USAGE = ("python -m darknet_py export <cfg> <weights|none> <out.onnx> [-batch N] [-region] "
         "[-opset 13] [-seed N]")


def export_parser():
    from ..export_onnx import DEFAULT_OPSET
    parser = make_parser("export", "The network as an ONNX graph (darknet_py.export_onnx).",
                         ignored=False)
    parser.add_argument("cfg", help="network .cfg")
    parser.add_argument("weights", help=".weights file, or none (darknet's random init)")
    parser.add_argument("out", metavar="out.onnx", help="ONNX file to write")
    parser.add_argument("-batch", type=int, default=1, help="batch size (default 1)")
    parser.add_argument("-opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("-seed", type=int, default=1,
                        help="glibc srand() seed for the random init (default 1)")
    parser.add_argument("-region", action="store_true",
                        help="include the region layer's activations")
    return parser


def main(argv):
    from ..export_onnx import export, output_shape
    from ..network import load_network
    args = parse(export_parser(), argv)
    cfg, weights, out, batch = args.cfg, args.weights, args.out, args.batch
    opset, seed, region = args.opset, args.seed, args.region
    if batch < 1:
        raise DarknetError(f"export: -batch {batch}: expected a positive batch size")
    # the CPU: the parameters are only read, and export needs them on the host
    net = load_network(cfg, None if weights == "none" else weights, batch=batch,
                       device="cpu", seed=seed)
    model = export(net, out, batch=batch, region=region, opset=opset)
    shape = (batch, *output_shape(net, region))
    print(f"wrote {out}: {len(model.graph.node)} ONNX nodes, opset {opset}, input "
          f"{(batch, net.channels, net.height, net.width)} -> output {shape}"
          + (" (region activations)" if region else ""))


PARSERS = {"export": [export_parser]}
