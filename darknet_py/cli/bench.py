"""`bench <cfg> [-batch N] [-i gpu | -nogpu] [-train] [-layers] [-json out] [--vs opencv,torch]`"""
from . import Args, device_from

USAGE = ("python -m darknet_py bench <cfg> [-weights W] [-batch N] [-i gpu | -nogpu] [-train] "
         "[-layers] [-runs N] [-exact] [-json out.json] [--vs opencv,torch]")


def main(argv):
    from ..bench import bench, main_json
    args = Args(argv)
    batch = args.int("-batch", default=1)
    runs = args.int("-runs", default=10)
    weights = args.str("-weights")
    json_path = args.str("-json")
    vs = args.str("--vs", "-vs")
    train, layers, exact = args.flag("-train"), args.flag("-layers"), args.flag("-exact")
    device = device_from(args)
    (cfg,) = args.positional(1, USAGE)
    if cfg is None:
        raise SystemExit(f"usage: {USAGE}")
    result = bench(cfg, batch, device, train, layers, runs, weights=weights, exact=exact, vs=vs)
    if json_path:
        main_json(result, json_path)
