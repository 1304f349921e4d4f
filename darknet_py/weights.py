"""pjreddie's .weights format (parser.c load_weights_upto / save_weights_upto).

Header: int32 major, minor, revision, then `seen`: 64-bit when major*10+minor >= 2 (and both
< 1000), else 32-bit. Connected weights are stored transposed when major or minor > 1000.
Then, layer by layer, the float32 arrays each layer's table (layers.params) marks `in_file`,
in table order.

A file may end early, at a layer boundary: a partial file (`darknet partial`, e.g.
darknet19_448.conv.23) loads its first layers and the rest keep their initial values. A file
that ends inside a layer, or has bytes left over, is an error naming the layer and the counts.
Saving keeps the version the weights were loaded with, so a load + save round trip gives the
same bytes; a network that loaded nothing is written as darknet writes it (0.2.0).

This module is format code only: it reads a file into host arrays keyed by layer and
attribute, and writes the arrays of a list of layers. Which layers have which arrays comes
from their tables; the network decides where the arrays live.
"""
import struct
from dataclasses import dataclass, field

import numpy as np

from . import log
from .errors import WeightsError
from .fileio import atomic_write_bytes
from .layers.params import file_params, parameter_count

DEFAULT_HEADER = (0, 2, 0)


def _seen_is_64bit(major, minor):
    return (major * 10 + minor) >= 2 and major < 1000 and minor < 1000


def _is_transposed(major, minor):
    return major > 1000 or minor > 1000


@dataclass
class WeightsFile:
    """What a .weights file held: its header, `seen`, how many layers it covered (a
    partial file stops early) and the arrays, {(layer index, attribute): float32 array}."""
    header: tuple
    seen: int
    loaded_layers: int
    transposed: bool
    arrays: dict = field(default_factory=dict)


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


def _layers_in_file(layers, cutoff, skip_flag):
    """Layers whose arrays are in the file, in order; `dontload`/`dontsave` layers are
    skipped (darknet neither reads nor writes their bytes)."""
    last = len(layers) if cutoff is None else min(cutoff, len(layers))
    return [layer for layer in layers[:last]
            if file_params(layer) and not getattr(layer, skip_flag)]


def read_weights(path, layers, cutoff=None, network_name="the network"):
    """Read `path` for `layers` (the first `cutoff` at most) into a WeightsFile."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise WeightsError(f"{path}: cannot open weights file: {err.strerror}") from None
    if _looks_like_text(data):
        raise WeightsError(f"{path}: a text file (a cfg?), not a darknet .weights file")
    header, seen, offset = read_header(data, path)
    transposed = _is_transposed(header[0], header[1])
    total = len(data)
    expected = offset + 4 * sum(parameter_count(layer)
                                for layer in _layers_in_file(layers, cutoff, "dontload"))
    if offset == total and expected > offset:
        log.warn(f"{path}: the file ends after its header: no layer's weights loaded")
    # layers covered by the file: all of them, unless it stops before a layer with parameters
    loaded = len(layers) if cutoff is None else min(cutoff, len(layers))
    found = WeightsFile(header, seen, loaded, transposed)
    for layer in _layers_in_file(layers, cutoff, "dontload"):
        if offset == total:
            found.loaded_layers = layer.index  # a partial file: later layers keep their values
            break
        need = parameter_count(layer) * 4
        if total - offset < need:
            raise WeightsError(
                f"{path}: file ends inside layer {layer.index} ({layer.type}): it needs "
                f"{need} bytes from offset {offset}, only {total - offset} remain. The file "
                f"has {total} bytes where {network_name} needs {expected}: a truncated "
                f"download, or weights for another cfg (`partial` cuts a file to its first "
                f"layers)")
        for param in file_params(layer):
            values = np.frombuffer(data, dtype="<f4", count=param.count, offset=offset)
            offset += 4 * param.count
            bad = param.count - int(np.count_nonzero(np.isfinite(values)))
            if bad:
                log.warn(f"{path}: layer {layer.index} ({layer.type}) {param.name}: {bad} of "
                         f"{param.count} values are NaN or infinite")
            if transposed and param.stored_transposed:
                values = values.reshape(param.shape[::-1]).T  # stored (inputs, outputs)
            # a writable copy, not a view of the file's bytes
            found.arrays[(layer.index, param.name)] = np.array(values.reshape(param.shape),
                                                               dtype=np.float32, order="C")
    if offset != total and (cutoff is None or cutoff >= len(layers)):
        raise WeightsError(f"{path}: {total - offset} bytes left over after the last layer "
                           f"(read {offset} of {total}): this file belongs to a larger network "
                           f"than {network_name} (`partial` cuts a file to its first layers)")
    return found


def _looks_like_text(data):
    """A cfg or other text file passed as weights: its first bytes are printable text
    (a .weights header starts with small int32 version numbers: zero bytes)."""
    head = data[:64]
    return bool(head) and all(32 <= byte < 127 or byte in (9, 10, 13) for byte in head)


def weights_bytes(layers, header, seen, to_host=np.asarray, cutoff=None, path="weights"):
    """The bytes of a .weights file for `layers` (the first `cutoff`); to_host brings an
    array from the backend's memory. Arrays holding NaN or inf are refused (WeightsError
    naming `path`, the layer and the count)."""
    major, minor, revision = header
    parts = [struct.pack("<3i", major, minor, revision)]
    parts.append(struct.pack("<Q", seen) if _seen_is_64bit(major, minor)
                 else struct.pack("<i", seen))
    transposed = _is_transposed(major, minor)
    for layer in _layers_in_file(layers, cutoff, "dontsave"):
        for param in file_params(layer):
            values = to_host(getattr(layer, param.name))
            bad = values.size - int(np.count_nonzero(np.isfinite(values)))
            if bad:   # a diverged run must not overwrite a good checkpoint
                raise WeightsError(f"{path}: not written: layer {layer.index} ({layer.type}) "
                                   f"{param.name} holds {bad} NaN or infinite values")
            if transposed and param.stored_transposed:
                values = values.T
            parts.append(np.ascontiguousarray(values, dtype="<f4").tobytes())
    return b"".join(parts)


def write_weights(path, layers, header, seen, to_host=np.asarray, cutoff=None):
    """Write the file atomically (temp file, then rename); never with NaN or inf."""
    atomic_write_bytes(path, weights_bytes(layers, header, seen, to_host, cutoff, path))
