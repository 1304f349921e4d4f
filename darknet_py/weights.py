"""pjreddie's .weights format (parser.c load_weights_upto / save_weights_upto).

Header: int32 major, minor, revision, then `seen`: 64-bit when major*10+minor >= 2 (and both
< 1000), else 32-bit. Connected weights are stored transposed when major or minor > 1000.
Then, layer by layer, the float32 arrays each layer lists in `param_layout()`.

A file may end early, at a layer boundary: a partial file (`darknet partial`, e.g.
darknet19_448.conv.23) loads its first layers and the rest keep their initial values. A file
that ends inside a layer, or has bytes left over, is an error naming the layer and the counts.
Saving keeps the version the weights were loaded with, so a load + save round trip gives the
same bytes; a network that loaded nothing is written as darknet writes it (0.2.0).
"""
import struct

import numpy as np

from .errors import WeightsError
from .fileio import atomic_write_bytes

_PARAM_LAYER_TYPES = ("convolutional", "connected", "batchnorm")


def _seen_is_64bit(major, minor):
    return (major * 10 + minor) >= 2 and major < 1000 and minor < 1000


def _is_transposed(major, minor):
    return major > 1000 or minor > 1000


def read_header(data, path):
    if len(data) < 12:
        raise WeightsError(f"{path}: {len(data)} bytes is too short for a darknet weights "
                           "header (12 bytes of version, then seen)")
    major, minor, revision = struct.unpack_from("<3i", data, 0)
    wide = _seen_is_64bit(major, minor)
    size = 20 if wide else 16
    if len(data) < size:
        raise WeightsError(f"{path}: header of version {major}.{minor}.{revision} needs "
                           f"{size} bytes, the file has {len(data)}")
    seen = struct.unpack_from("<Q" if wide else "<i", data, 12)[0]
    return (major, minor, revision), seen, size


def _layers_with_params(net, cutoff, skip_flag):
    """Layers whose parameters are in the file, in order; `dontload`/`dontsave` layers are
    skipped (darknet neither reads nor writes their bytes)."""
    last = len(net.layers) if cutoff is None else min(cutoff, len(net.layers))
    return [layer for layer in net.layers[:last]
            if layer.type in _PARAM_LAYER_TYPES and not getattr(layer, skip_flag)]


def load_weights(net, path, cutoff=None):
    """Read `path` into net's layers (the first `cutoff` layers at most)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise WeightsError(f"{path}: cannot open weights file: {err.strerror}") from None
    header, seen, offset = read_header(data, path)
    transpose = _is_transposed(header[0], header[1])
    total = len(data)
    # layers covered by the file: all of them, unless it stops before a layer with parameters
    loaded = len(net.layers) if cutoff is None else min(cutoff, len(net.layers))
    for layer in _layers_with_params(net, cutoff, "dontload"):
        if offset == total:
            loaded = layer.index  # a partial file: later layers keep their initial values
            break
        need = sum(int(np.prod(shape)) for _, shape in layer.param_layout()) * 4
        if total - offset < need:
            raise WeightsError(
                f"{path}: file ends inside layer {layer.index} ({layer.type}): it needs "
                f"{need} bytes from offset {offset}, only {total - offset} remain (file size "
                f"{total}; a truncated download?)")
        for name, shape in layer.param_layout():
            count = int(np.prod(shape))
            values = np.frombuffer(data, dtype="<f4", count=count, offset=offset)
            offset += 4 * count
            if transpose and layer.type == "connected" and name == "weights":
                values = values.reshape(shape[1], shape[0]).T  # stored (inputs, outputs)
            getattr(layer, name)[...] = values.reshape(shape)
    if offset != total and (cutoff is None or cutoff >= len(net.layers)):
        raise WeightsError(f"{path}: {total - offset} bytes left over after the last layer "
                           f"(read {offset} of {total}): this file belongs to a larger network "
                           f"than {net.path}")
    net.header, net.seen, net.loaded_layers = header, seen, loaded
    net.weights_transposed = transpose
    return net


def weights_bytes(net, cutoff=None, header=None, seen=None):
    header = net.header if header is None else header
    seen = net.seen if seen is None else seen
    major, minor, revision = header
    parts = [struct.pack("<3i", major, minor, revision)]
    parts.append(struct.pack("<Q", seen) if _seen_is_64bit(major, minor)
                 else struct.pack("<i", seen))
    transpose = _is_transposed(major, minor)
    for layer in _layers_with_params(net, cutoff, "dontsave"):
        for name, _ in layer.param_layout():
            values = net.ops.to_host(getattr(layer, name))
            if transpose and layer.type == "connected" and name == "weights":
                values = values.T
            parts.append(np.ascontiguousarray(values, dtype="<f4").tobytes())
    return b"".join(parts)


def save_weights(net, path, cutoff=None, header=None, seen=None):
    """Write the first `cutoff` layers (all by default) atomically: temp file, then rename."""
    atomic_write_bytes(path, weights_bytes(net, cutoff, header, seen))


def partial(cfg, weights, out, cutoff):
    """darknet partial: keep the first `cutoff` layers' weights, with seen reset to 0."""
    from .network import parse_network_cfg
    net = parse_network_cfg(cfg, batch=1)
    net.load_weights(weights, cutoff=cutoff)
    save_weights(net, out, cutoff, header=(0, 2, 0), seen=0)
    return net
