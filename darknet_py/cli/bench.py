"""`bench <cfg> [-batch N | -batches 1,2,4 [-plot out.png]] [-i gpu | -nogpu] [-train] [-layers]
[-json out] [--vs opencv,torch]`"""
from . import add_device, device_from, make_parser, parse


def bench_parser():
    parser = make_parser("bench", "Time a network (median of runs after warm-up) against this "
                         "machine's measured GEMM and copy ceilings.", skip_ignored=())
    parser.add_argument("cfg", help="network .cfg")
    parser.add_argument("-weights", default=None, help=".weights (default: random init)")
    parser.add_argument("-batch", type=int, default=1, help="batch size (default 1)")
    parser.add_argument("-batches", default=None, metavar="1,2,4,8",
                        help="sweep batch sizes (throughput against batch size)")
    parser.add_argument("-plot", default=None, metavar="PNG",
                        help="with -batches: draw throughput against batch size")
    parser.add_argument("-runs", type=int, default=10, help="timed runs (default 10)")
    parser.add_argument("-train", action="store_true", help="time training steps too")
    parser.add_argument("-layers", action="store_true",
                        help="each layer's time and distance to the roofline")
    parser.add_argument("-json", default=None, metavar="FILE", help="write the results as JSON")
    parser.add_argument("--vs", "-vs", default=None, metavar="ENGINES",
                        help="time other engines on the same net: opencv,torch,onnxruntime "
                        "(alternately, each engine in a process of its own)")
    parser.add_argument("-one_process", action="store_true",
                        help="with --vs: time every engine in this process instead (they "
                        "then share thread pools and caches)")
    add_device(parser)
    return parser


def main(argv):
    from ..bench import bench, main_json, sweep
    args = parse(bench_parser(), argv)
    device = device_from(args)
    if args.batches:
        try:
            sizes = [int(value) for value in args.batches.split(",") if value.strip()]
        except ValueError:
            raise SystemExit(f"-batches: expected batch sizes like 1,2,4,8, found "
                             f"{args.batches!r}")
        if not sizes or min(sizes) < 1:
            raise SystemExit(f"-batches: expected positive batch sizes, found {args.batches!r}")
        result = sweep(args.cfg, sizes, device, args.train, args.runs, weights=args.weights,
                       exact=args.exact, plot=args.plot)
    elif args.plot:
        raise SystemExit("-plot draws throughput against batch size: give -batches too")
    else:
        result = bench(args.cfg, args.batch, device, args.train, args.layers, args.runs,
                       weights=args.weights, exact=args.exact, vs=args.vs,
                       processes=not args.one_process)
    if args.json:
        main_json(result, args.json)
    return 0


PARSERS = {"bench": [bench_parser]}
