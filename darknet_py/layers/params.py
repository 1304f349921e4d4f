"""Every layer's arrays in one table, and each thing done to parameters as one loop over it.

A layer type lists its arrays in `params()` as `Param` rows: the attribute name, shape,
initial fill, whether the .weights file holds it (and in which order: the order of the
list), whether it is trained (then it has an update accumulator and SGD moves it), whether
weight decay applies, where it lives (the backend's memory, or the host), and how darknet
draws its random initial values. Nothing else in darknet_py keeps a list of which layers
have parameters: the weights format, zeroing the updates, the SGD step, moving to the
device, random init, `partial`, `bench` and the GPU check all walk these tables.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

F32 = np.float32


@dataclass(frozen=True)
class Param:
    name: str                      # the layer's attribute
    shape: tuple
    fill: float = 0.0              # value at construction (darknet's calloc, or 1 for scales)
    in_file: bool = True           # read from / written to .weights, in table order
    update: Optional[str] = None   # the momentum accumulator's attribute: a trained array
    decay: bool = False            # weight decay applies (darknet: weights only)
    on_device: bool = True         # lives in the backend's memory (False: stays on the host)
    stored_transposed: bool = False  # written (inputs, outputs) by files whose version says so
    init: Optional[str] = None     # darknet's random init: "normal" or "uniform" (-1..1)
    init_scale: float = 0.0        # ... times this scale

    @property
    def trained(self):
        return self.update is not None

    @property
    def count(self):
        return int(np.prod(self.shape, dtype=np.int64))


def batchnorm_params(channels):
    """scales (trained), rolling mean and variance: the batch-norm rows, in darknet's order."""
    return [Param("scales", (channels,), fill=1.0, update="scale_updates"),
            Param("rolling_mean", (channels,)), Param("rolling_variance", (channels,))]


def allocate(layer):
    """Create the layer's arrays (on the host) with their initial fill."""
    for param in layer.params():
        setattr(layer, param.name, np.full(param.shape, param.fill, dtype=F32))


def file_params(layer):
    """The rows a .weights file holds for this layer, in file order."""
    return [param for param in layer.params() if param.in_file]


def parameter_layers(layers):
    """The layers that have arrays in a .weights file (convolutional, connected, batchnorm)."""
    return [layer for layer in layers if file_params(layer)]


def parameter_count(layer):
    return sum(param.count for param in file_params(layer))


def zero_updates(layers, ops):
    """Allocate every trained array's update accumulator, zeroed, in the backend's memory."""
    for layer in layers:
        for param in layer.params():
            if param.trained:
                setattr(layer, param.update, ops.zeros(param.shape))


def sgd_update(layers, ops, rate, momentum, decay_term):
    """update_network: darknet's SGD step on every trained array. `rate` (lr/B) is scaled
    by the layer's learning_rate= option; decay only where the table says so."""
    for layer in layers:
        layer_rate = rate * F32(layer.learning_rate_scale)
        for param in layer.params():
            if param.trained:
                ops.sgd_step(getattr(layer, param.name), getattr(layer, param.update),
                             layer_rate, momentum, decay_term if param.decay else None)


def move(layers, place):
    """Replace every array that lives in the backend's memory by place(array)."""
    for layer in layers:
        for param in layer.params():
            if param.on_device:
                setattr(layer, param.name, place(getattr(layer, param.name)))


def init_random(layers, rng, loaded_layers=0):
    """darknet's initial values, drawn in layer order from `rng` (rand.GlibcRandom) as its
    make_*_layer functions draw them at parse time. Layers a weights file covered
    (index < loaded_layers) are skipped over in the stream: same draws for the rest,
    without the Python cost of drawing millions of numbers that would be overwritten."""
    for layer in layers:
        for param in layer.params():
            if param.init is None:
                continue
            if layer.index < loaded_layers:
                _skip(rng, param)
            else:
                setattr(layer, param.name, _draw(rng, param))


def init_numpy_random(layers, generator):
    """The same distributions as init_random, drawn by NumPy's `generator` (fast; not
    darknet's stream): for benchmarks, where 50M glibc draws in Python would take a minute."""
    for layer in layers:
        for param in layer.params():
            if param.init == "normal":
                values = generator.standard_normal(param.shape, dtype=F32)
            elif param.init == "uniform":
                values = generator.uniform(-1, 1, param.shape).astype(F32)
            else:
                continue
            setattr(layer, param.name, F32(param.init_scale) * values)


def _draw(rng, param):
    scale = F32(param.init_scale)
    if param.init == "normal":      # make_convolutional_layer: scale*rand_normal()
        values = scale * rng.normal(param.count)
    elif param.init == "uniform":   # make_connected_layer: scale*rand_uniform(-1, 1)
        values = scale * rng.uniform(param.count, -1, 1)
    else:
        raise ValueError(f"unknown init '{param.init}' for {param.name}")
    return np.ascontiguousarray(values, dtype=F32).reshape(param.shape)


def _skip(rng, param):
    if param.init == "normal":
        rng.skip_normal(param.count)
    else:
        rng.skip_uniform(param.count)
