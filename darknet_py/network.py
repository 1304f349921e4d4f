"""The layer graph built from a cfg (parser.c parse_network_cfg + network.c forward)."""
import sys
from dataclasses import dataclass, field

import numpy as np

from . import ops as ops_registry
from .config import read_cfg, report_unused
from .errors import CfgError, DarknetError
from .layers import LAYER_TYPES
from .rand import GlibcRandom

POLICIES = ("constant", "step", "steps", "exp", "poly", "sigmoid", "random")
# The parameter arrays that live in the backend's memory (on the GPU with CuPy). They are
# built, read from .weights files and randomly initialised on the host, then moved by
# ensure_initialized(). (The region layer's anchors stay on the host: its loss runs there.)
_PARAMETER_LAYERS = ("convolutional", "connected", "batchnorm")
_PARAMETERS = ("biases", "scales", "rolling_mean", "rolling_variance", "weights")


@dataclass
class NetOptions:
    """The [net] block as darknet's parse_net_options reads it."""
    batch: int = 1
    subdivisions: int = 1
    width: int = 0
    height: int = 0
    channels: int = 0
    learning_rate: float = 0.001
    momentum: float = 0.9
    decay: float = 0.0001
    policy: str = "constant"
    burn_in: int = 0
    power: float = 4.0
    step: int = 1
    scale: float = 1.0
    steps: list = field(default_factory=list)
    scales: list = field(default_factory=list)
    gamma: float = 1.0
    max_batches: int = 0
    random: int = 0
    angle: float = 0.0
    aspect: float = 1.0
    saturation: float = 1.0
    exposure: float = 1.0
    hue: float = 0.0
    max_crop: int = 0
    min_crop: int = 0
    max_ratio: float = 0.0
    min_ratio: float = 0.0
    center: int = 0
    clip: float = 0.0


def parse_net_options(section):
    opts = NetOptions()
    opts.batch = section.integer("batch", 1)
    opts.learning_rate = section.number("learning_rate", 0.001)
    opts.momentum = section.number("momentum", 0.9)
    opts.decay = section.number("decay", 0.0001)
    opts.subdivisions = section.integer("subdivisions", 1)
    if section.integer("time_steps", 1) != 1:
        raise CfgError(f"{section.where()} time_steps (recurrent networks) is not supported")
    section.integer("notruth", 0)
    if opts.subdivisions < 1:
        raise CfgError(f"{section.where(section.options.get('subdivisions'))} subdivisions "
                       f"must be positive (found {opts.subdivisions})")
    # darknet divides batch by subdivisions; 0 later crashes darknet with SIGFPE
    if opts.batch // opts.subdivisions < 1:
        raise CfgError(f"{section.where(section.options.get('batch'))} batch={opts.batch} with "
                       f"subdivisions={opts.subdivisions} gives a minibatch of 0")
    opts.batch //= opts.subdivisions
    opts.random = section.integer("random", 0)
    if section.integer("adam", 0):
        raise CfgError(f"{section.where(section.options.get('adam'))} adam is not supported")
    opts.height = section.integer("height", 0)
    opts.width = section.integer("width", 0)
    opts.channels = section.integer("channels", 0)
    inputs = section.integer("inputs", opts.height * opts.width * opts.channels)
    opts.max_crop = section.integer("max_crop", opts.width * 2)
    opts.min_crop = section.integer("min_crop", opts.width)
    opts.max_ratio = section.number("max_ratio", opts.max_crop / opts.width if opts.width else 0)
    opts.min_ratio = section.number("min_ratio", opts.min_crop / opts.width if opts.width else 0)
    opts.center = section.integer("center", 0)
    opts.clip = section.number("clip", 0)
    opts.angle = section.number("angle", 0)
    opts.aspect = section.number("aspect", 1)
    opts.saturation = section.number("saturation", 1)
    opts.exposure = section.number("exposure", 1)
    opts.hue = section.number("hue", 0)
    if not (opts.height and opts.width and opts.channels):
        if inputs:
            opts.height, opts.width, opts.channels = 1, 1, inputs
        else:
            raise CfgError(f"{section.where()} no input size: set width, height and channels")
    opts.policy = section.text("policy", "constant")
    if opts.policy not in POLICIES:
        raise CfgError(f"{section.where(section.options.get('policy'))} unknown policy "
                       f"'{opts.policy}' (expected one of: {', '.join(POLICIES)})")
    opts.burn_in = section.integer("burn_in", 0)
    opts.power = section.number("power", 4)
    if opts.policy == "step":
        opts.step = section.integer("step", 1)
        opts.scale = section.number("scale", 1)
    elif opts.policy == "steps":
        opts.steps = section.numbers("steps", int)
        opts.scales = section.numbers("scales", float)
        if opts.steps is None or opts.scales is None:
            raise CfgError(f"{section.where()} policy=steps needs both steps= and scales=")
        if len(opts.steps) != len(opts.scales):
            raise CfgError(f"{section.where(section.options['steps'])} {len(opts.steps)} steps "
                           f"but {len(opts.scales)} scales")
    elif opts.policy in ("exp", "sigmoid"):
        opts.gamma = section.number("gamma", 1)
        if opts.policy == "sigmoid":
            opts.step = section.integer("step", 1)
    opts.max_batches = section.integer("max_batches", 0)
    return opts


class Network:
    """A darknet network: `layers` in cfg order, run by forward() on one backend (`ops`)."""

    def __init__(self, sections, path="<cfg>", batch=None, device=None, seed=1, strict=False,
                 verbose=False):
        self.path = path
        self.ops = ops_registry.get_ops(device)
        self.options = parse_net_options(sections[0])
        if batch is not None:
            self.options.batch = batch
        self.width, self.height, self.channels = (self.options.width, self.options.height,
                                                  self.options.channels)
        self.seen = 0
        self.header = (0, 2, 0)   # version written by save_weights unless a file says otherwise
        self.loaded_layers = 0
        self.train = False
        self.log = None   # a callable taking a line: training statistics (region layers)
        self.rng = np.random.default_rng(seed)   # dropout, the random policy
        self._updates_ready = False   # the *_updates accumulators exist (momentum)
        # True: darknet's own summation order in GEMMs and batch-norm statistics, so results
        # are bit-faithful to darknet (slow: for tests and conversions)
        self.exact = False
        self.truth = None
        self.layers = []
        shape = (self.channels, self.height, self.width)
        for index, section in enumerate(sections[1:]):
            cls = LAYER_TYPES.get(section.type)
            if cls is None:
                raise CfgError(f"{section.where()} unsupported layer type [{section.name}]: "
                               f"darknet_py implements {', '.join(sorted(LAYER_TYPES))}")
            layer = cls(section, index, shape, self)
            self.layers.append(layer)
            shape = layer.out_shape
        if not self.layers:
            raise CfgError(f"{path}: the cfg has a [net] section but no layers")
        report_unused(sections, strict=strict)
        self.init_seed = seed
        self.initialized = False
        if verbose:
            print(self.summary(), file=sys.stderr)

    # -- construction --------------------------------------------------------------------
    def ensure_initialized(self):
        """Darknet's initial weights after srand(seed), drawn in layer order, for the layers
        a weights file did not cover (darknet draws them all at parse time; drawing millions
        of numbers in Python is slow, so loaded layers are skipped over in the stream)."""
        if self.initialized:
            return
        rng = GlibcRandom(self.init_seed)
        for layer in self.layers:
            if layer.index < self.loaded_layers:
                layer.skip_random(rng)
            else:
                layer.init_random(rng)
        self.initialized = True
        self._move_parameters(self.ops.to_device)

    def _move_parameters(self, move):
        """Replace every parameter array by move(array): ops.to_device puts them in the
        backend's memory (for NumPy: the same arrays, unchanged), _to_host brings them back."""
        for layer in self.layers:
            if layer.type in _PARAMETER_LAYERS:
                for name in _PARAMETERS:
                    value = getattr(layer, name, None)
                    if value is not None:
                        setattr(layer, name, move(value))

    def _to_host(self, array):
        return np.ascontiguousarray(self.ops.to_host(array), dtype=np.float32)

    @property
    def batch(self):
        return self.options.batch

    def summary(self):
        lines = ["layer     filters    size              input                output"]
        lines += [f"{layer.index:5d} {layer.describe()}" for layer in self.layers]
        lines.append(f"Total BFLOPS {self.bflops():.3f}")
        return "\n".join(lines)

    def bflops(self):
        return sum(layer.bflops() for layer in self.layers)

    def resize(self, width, height):
        """Change the input size (darknet's resize_network); layers recompute their shapes."""
        self.width, self.height = width, height
        shape = (self.channels, height, width)
        for layer in self.layers:
            layer.resize(shape, self)
            shape = layer.out_shape

    # -- computation ---------------------------------------------------------------------
    def forward(self, x):
        """Run every layer on a float32 (batch, c, h, w) array; returns the network output."""
        expected = (self.channels, self.height, self.width)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise DarknetError(f"{self.path}: input of shape {tuple(x.shape)} does not fit the "
                               f"network: expected (batch, {expected[0]}, {expected[1]}, "
                               f"{expected[2]})")
        self.ensure_initialized()
        x = self.ops.to_device(x)
        for layer in self.layers:
            x = layer.forward(x, self)
        return self.output_layer().output

    def output_layer(self):
        """darknet's network_output: the last layer that is not a [cost] layer."""
        for layer in reversed(self.layers):
            if layer.type != "cost":
                return layer
        return self.layers[-1]

    # -- training ------------------------------------------------------------------------
    def train_step(self, x, truth):
        """One darknet iteration (train_network): the rows of x are cut into minibatches of
        `batch` (the cfg's batch/subdivisions); each does forward, backward and `seen +=
        batch`, and the update runs after every `subdivisions` minibatches. Returns the
        loss darknet reports: the sum of minibatch costs over the number of rows."""
        rows, minibatch = x.shape[0], self.options.batch
        if rows % minibatch:
            raise DarknetError(f"train_step: {rows} rows is not a multiple of the minibatch "
                               f"({minibatch} = batch/subdivisions)")
        self.ensure_initialized()
        if not self._updates_ready:
            for layer in self.layers:
                layer.zero_updates(self.ops)
            self._updates_ready = True
        total = np.float32(0)   # darknet sums the minibatch costs in float
        for start in range(0, rows, minibatch):
            self.seen += minibatch
            total += np.float32(self._train_minibatch(x[start:start + minibatch],
                                                    truth[start:start + minibatch]))
            if (self.seen // minibatch) % self.options.subdivisions == 0:
                self.update()
        return float(total / np.float32(rows))

    def _train_minibatch(self, x, truth):
        """forward_network + backward_network in training mode; returns *net->cost."""
        ops = self.ops
        self.train, self.truth = True, ops.to_device(truth)
        try:
            x = ops.to_device(x)
            self.input = x
            for layer in self.layers:
                # darknet zeroes every delta before the layer's forward (which may set it)
                layer.delta = None
                previous = self.layers[layer.index - 1] if layer.index else None
                x = layer.forward(x, self)
                if layer.delta_is_input_delta:
                    layer.delta = previous.delta if previous is not None else None
                elif layer.delta is None:
                    layer.delta = ops.zeros(layer.output.shape)
            costs = [layer.cost for layer in self.layers if layer.has_cost]
            self.backward()
        finally:
            self.train, self.truth = False, None
        # calc_network_cost: the float mean of l.cost over the layers that have one
        total = np.float32(0)
        for cost in costs:
            total += np.float32(cost)
        return float(total / np.float32(len(costs))) if costs else 0.0

    def backward(self):
        """backward_network: last layer first, each writing into the previous layer's delta."""
        for layer in reversed(self.layers):
            if layer.stopbackward:
                break
            input_delta = self.layers[layer.index - 1].delta if layer.index else None
            layer.backward(self, input_delta)

    def learning_rate(self):
        from .policy import learning_rate
        return learning_rate(self.options, self.seen, self.rng)

    def update(self):
        """update_network: SGD with momentum and decay, rates scaled by batch*subdivisions."""
        f32 = np.float32
        total = self.options.batch * self.options.subdivisions
        rate = f32(self.learning_rate()) / f32(total)
        decay_term = f32(-f32(self.options.decay)) * f32(total)
        momentum = f32(self.options.momentum)
        for layer in self.layers:
            layer.update(self, rate, momentum, decay_term)

    # -- weights -------------------------------------------------------------------------
    def load_weights(self, path, cutoff=None):
        from .weights import load_weights
        if self.initialized:   # parameters already on the device: read into host copies
            self._move_parameters(self._to_host)
        try:
            load_weights(self, path, cutoff)
        finally:
            if self.initialized:
                self._move_parameters(self.ops.to_device)

    def save_weights(self, path, cutoff=None):
        from .weights import save_weights
        self.ensure_initialized()
        save_weights(self, path, cutoff)


def parse_network_cfg(path, **kwargs):
    return Network(read_cfg(path), path=str(path), **kwargs)


def load_network(cfg, weights=None, batch=None, device=None, seed=1, strict=False,
                 verbose=False):
    """Build the network of a cfg file and load a .weights file into it (darknet's load_network).

    batch: the input batch size (default: the cfg's batch/subdivisions); layers accept any
    batch at run time. seed: the glibc srand() seed for darknet's random init of layers the
    weights file does not cover (darknet itself runs with the default seed 1).
    """
    net = parse_network_cfg(cfg, batch=batch, device=device, seed=seed, strict=strict,
                            verbose=verbose)
    if weights is not None:
        net.load_weights(weights)
    net.ensure_initialized()
    return net
