"""`partial` and `forward`: weights surgery and per-layer dumps for debugging conversions."""
import os

import numpy as np

from .. import log
from ..errors import DarknetError
from ..fileio import atomic_write_with
from ..image import letterbox_image, load_image
from ..network import load_network
from ..network import partial
from . import add_device, device_from, make_parser, parse


def partial_parser():
    parser = make_parser("partial", "Keep the first <layers> layers of a weights file (seen "
                         "reset to 0), as darknet's partial: e.g. darknet19_448.conv.23.")
    parser.add_argument("cfg", help="network .cfg")
    parser.add_argument("weights", help="input .weights")
    parser.add_argument("output", help="output .weights")
    parser.add_argument("layers", type=int, help="how many layers to keep")
    return parser


def forward_parser():
    parser = make_parser("forward", "Run one input through a network and write each layer's "
                         "output as DIR/layer_NNN_<type>.npy (float32, (batch, c, h, w)).")
    parser.add_argument("cfg", help="network .cfg")
    parser.add_argument("weights", help=".weights file, or none (darknet's random init)")
    parser.add_argument("source", help="an image (letterboxed) or an input .npy")
    parser.add_argument("--dump", "-dump", required=True, metavar="DIR",
                        help="folder for the .npy files")
    parser.add_argument("-seed", type=int, default=1,
                        help="glibc srand() seed for the random init (default 1)")
    add_device(parser)
    return parser


def partial_main(argv):
    args = parse(partial_parser(), argv)
    net = partial(args.cfg, args.weights, args.output, args.layers)
    print(f"Saving weights of layers 0-{min(args.layers, len(net.layers)) - 1} to "
          f"{args.output}")
    return 0


def forward_main(argv):
    args = parse(forward_parser(), argv)
    net = load_network(args.cfg, None if args.weights == "none" else args.weights, batch=1,
                       device=device_from(args), seed=args.seed, exact=args.exact)
    source, dump = args.source, args.dump
    if source.endswith(".npy"):
        x = read_input_array(source, net)
    else:
        x = letterbox_image(load_image(source), net.width, net.height)[None]
    net.forward(x, every_output=True)
    try:
        os.makedirs(dump, exist_ok=True)
    except OSError as err:
        raise DarknetError(f"{dump}: cannot create the dump folder: {err.strerror}") from None
    # atomic: a full disk leaves the previous dump's files as they were, never truncated
    atomic_write_with(os.path.join(dump, "input.npy"), lambda handle: np.save(handle, x))
    first_bad = None
    for layer in net.layers:
        output = net.ops.to_host(layer.output).astype(np.float32)
        output = output.reshape(output.shape[0], layer.out_c, layer.out_h, layer.out_w)
        bad = output.size - int(np.count_nonzero(np.isfinite(output)))
        if bad and first_bad is None:
            # the network's output may still look finite (a maxpool turns NaN windows into
            # -FLT_MAX): the dump says where values first went non-finite
            first_bad = layer.index
            log.warn(f"layer {layer.index} ({layer.type}) output holds {bad} NaN or infinite "
                     "values (dumped as they are; untrained weights overflow: batch norm's "
                     "rolling variance starts at 0)")
        atomic_write_with(os.path.join(dump, f"layer_{layer.index:03d}_{layer.type}.npy"),
                          lambda handle: np.save(handle, output))
    print(f"wrote {len(net.layers)} layer outputs to {dump}")
    return 0


def read_input_array(source, net):
    """A (c, h, w) or (batch, c, h, w) float array from a .npy file, or one clear error
    (a text file, a pickled object, the wrong shape)."""
    try:
        x = np.load(source, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DarknetError(f"{source}: not a NumPy array file ({err})") from None
    if not isinstance(x, np.ndarray):   # np.load opens a .npz archive whatever its name
        x.close()
        raise DarknetError(f"{source}: a .npz archive of arrays "
                           f"({', '.join(x.files) or 'empty'}), expected one .npy array")
    if x.dtype.kind not in "fiu":
        raise DarknetError(f"{source}: holds {x.dtype} values, expected numbers")
    with np.errstate(over="ignore"):   # beyond float32: inf, which the network then reports
        x = x.astype(np.float32)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or 0 in x.shape:
        raise DarknetError(f"{source}: an array of shape {x.shape}, expected (c, h, w) or "
                           f"(batch, c, h, w) = (1, {net.channels}, {net.height}, {net.width})")
    return x


PARSERS = {"partial": [partial_parser], "forward": [forward_parser]}
