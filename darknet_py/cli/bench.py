"""`bench <cfg> [-batch N | -batches 1,2,4 [-plot out.png]] [-i gpu | -nogpu] [-train] [-layers]
[-json out] [--vs opencv,torch]`"""
from . import Args, device_from

USAGE = ("python -m darknet_py bench <cfg> [-weights W] [-batch N | -batches 1,2,4,8 "
         "[-plot out.png]] [-i gpu | -nogpu] [-train] [-layers] [-runs N] [-exact] "
         "[-json out.json] [--vs opencv,torch]")


def main(argv):
    from ..bench import bench, main_json, sweep
    args = Args(argv)
    batch = args.integer("-batch", default=1)
    batches = args.text("-batches")
    plot = args.text("-plot")
    runs = args.integer("-runs", default=10)
    weights = args.text("-weights")
    json_path = args.text("-json")
    vs = args.text("--vs", "-vs")
    train, layers, exact = args.flag("-train"), args.flag("-layers"), args.flag("-exact")
    device = device_from(args)
    (cfg,) = args.positional(1, USAGE)
    if cfg is None:
        raise SystemExit(f"usage: {USAGE}")
    if batches:
        try:
            sizes = [int(value) for value in batches.split(",") if value.strip()]
        except ValueError:
            raise SystemExit(f"-batches: expected batch sizes like 1,2,4,8, found {batches!r}")
        if not sizes or min(sizes) < 1:
            raise SystemExit(f"-batches: expected positive batch sizes, found {batches!r}")
        result = sweep(cfg, sizes, device, train, runs, weights=weights, exact=exact, plot=plot)
    elif plot:
        raise SystemExit("-plot draws throughput against batch size: give -batches too")
    else:
        result = bench(cfg, batch, device, train, layers, runs, weights=weights, exact=exact,
                       vs=vs)
    if json_path:
        main_json(result, json_path)
