"""`partial` and `forward`: weights surgery and per-layer dumps for debugging conversions."""
import os

import numpy as np

from ..errors import DarknetError
from ..image import letterbox_image, load_image
from ..network import load_network
from ..network import partial
from . import Args, device_from

PARTIAL_USAGE = "python -m darknet_py partial <cfg> <weights> <output> <layers>"
FORWARD_USAGE = ("python -m darknet_py forward <cfg> <weights|none> <image|input.npy> "
                 "--dump DIR [-seed N] [-exact] [-i gpu | -nogpu]")


def partial_main(argv):
    cfg, weights, out, count = Args(argv).positional(4, PARTIAL_USAGE)
    if count is None:
        raise SystemExit(f"usage: {PARTIAL_USAGE}")
    try:
        cutoff = int(count)
    except ValueError:
        raise DarknetError(f"partial: <layers> must be an integer, found '{count}'") from None
    net = partial(cfg, weights, out, cutoff)
    print(f"Saving weights of layers 0-{min(cutoff, len(net.layers)) - 1} to {out}")


def forward_main(argv):
    args = Args(argv)
    dump = args.text("--dump", "-dump")
    seed = args.integer("-seed", default=1)
    exact = args.flag("-exact")
    device = device_from(args)
    cfg, weights, source = args.positional(3, FORWARD_USAGE)
    if source is None or dump is None:
        raise SystemExit(f"usage: {FORWARD_USAGE}")
    net = load_network(cfg, None if weights == "none" else weights, batch=1, device=device,
                       seed=seed, exact=exact)
    if source.endswith(".npy"):
        x = np.load(source).astype(np.float32)
        if x.ndim == 3:
            x = x[None]
    else:
        x = letterbox_image(load_image(source), net.width, net.height)[None]
    net.forward(x)
    os.makedirs(dump, exist_ok=True)
    np.save(os.path.join(dump, "input.npy"), x)
    for layer in net.layers:
        output = net.ops.to_host(layer.output).astype(np.float32)
        output = output.reshape(output.shape[0], layer.out_c, layer.out_h, layer.out_w)
        np.save(os.path.join(dump, f"layer_{layer.index:03d}_{layer.type}.npy"), output)
    print(f"wrote {len(net.layers)} layer outputs to {dump}")
