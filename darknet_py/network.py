"""The layer graph built from a cfg (parser.c parse_network_cfg + network.c forward).

The network owns the layers in cfg order, the backend, `seen` and the weights file's
header; it runs them (forward, backward, update) by handing each layer a Step, and it
places their arrays (host or backend memory) by walking the layers' parameter tables.
"""
import dataclasses
from dataclasses import dataclass, field

import numpy as np

from . import log, signals
from . import ops as ops_registry
from .config import read_cfg, report_unused
from .errors import CfgError, DarknetError
from .layers import LAYER_TYPES, params
from .layers.step import Step
from .rand import GlibcRandom
from .settings import memory_bytes
from .weights import DEFAULT_HEADER, read_weights, write_weights

POLICIES = ("constant", "step", "steps", "exp", "poly", "sigmoid", "random")
# Plain inference lets a convolution compute the 2x2/2 maxpool after it (_fused_pools);
# False runs every layer on its own (tests compare the two).
FUSE_POOLS = True


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
    """A darknet network: `layers` in cfg order, run by forward() on one backend (`ops`).

    exact=True: darknet's own summation order in GEMMs and batch-norm statistics, so results
    are bit-faithful to darknet (slow: for tests and conversions). Chosen when the network
    is made; every forward and training step passes it to the layers in their Step.
    """

    def __init__(self, sections, path="<cfg>", batch=None, device=None, seed=1, strict=False,
                 verbose=False, exact=False):
        self.path = path
        self.ops = ops_registry.get_ops(device)
        self.exact = bool(exact)
        self.options = parse_net_options(sections[0])
        if batch is not None:
            self.options.batch = batch
        self.width, self.height, self.channels = (self.options.width, self.options.height,
                                                  self.options.channels)
        self.seen = 0
        self.header = DEFAULT_HEADER   # written by save_weights unless a file says otherwise
        self.loaded_layers = 0
        self.weights_transposed = False
        self.rng = np.random.default_rng(seed)   # dropout, the random policy
        self.statistics = []   # the loss layers' statistics of the last train_step
        self._updates_ready = False   # the *_updates accumulators exist (momentum)
        self.layers = []
        shape = (self.channels, self.height, self.width)
        for index, section in enumerate(sections[1:]):
            cls = LAYER_TYPES.get(section.type)
            if cls is None:
                raise CfgError(f"{section.where()} unsupported layer type [{section.name}]: "
                               f"darknet_py implements {', '.join(sorted(LAYER_TYPES))}")
            layer = cls(section, index, shape, self.layers)
            self.layers.append(layer)
            shape = layer.out_shape
        if not self.layers:
            raise CfgError(f"{path}: the cfg has a [net] section but no layers")
        self._check_memory()
        report_unused(sections, strict=strict)
        self.init_seed = seed
        self.initialized = False
        if verbose:
            log.info(self.summary())

    # -- construction --------------------------------------------------------------------
    def _check_memory(self):
        """Refuse sizes whose buffers cannot fit this machine (width=100000...) before any
        forward allocates them: every layer's output at the batch, and the biggest layer
        counted again for its im2col columns."""
        columns = [4 * layer.outputs * max(1, getattr(layer, "size", 1)) ** 2
                   for layer in self.layers]
        need = self.options.batch * (4 * sum(layer.outputs for layer in self.layers)
                                     + max(columns))
        if need > memory_bytes():
            biggest = max(self.layers, key=lambda layer: layer.outputs)
            raise CfgError(f"{biggest.section.where()} layer {biggest.index}: at batch "
                           f"{self.options.batch} and {self.width}x{self.height} the network "
                           f"needs about {need / 2**30:.1f} GiB, more than this machine's "
                           f"{memory_bytes() / 2**30:.1f} GiB (this layer's output: "
                           f"{biggest.out_w}x{biggest.out_h}x{biggest.out_c})")


    def ensure_initialized(self):
        """Darknet's initial weights after srand(seed), drawn in layer order, for the layers
        a weights file did not cover; then every array moves to the backend's memory."""
        if self.initialized:
            return
        params.init_random(self.layers, GlibcRandom(self.init_seed), self.loaded_layers)
        params.move(self.layers, self.ops.to_device)
        self.initialized = True

    def first_non_finite(self):
        """Where a diverged step went wrong: (layer index, what, count) of the first layer
        whose output, delta or parameters hold NaN or inf, or None."""
        for layer in self.layers:
            arrays = [("output", layer.output), ("delta", layer.delta)]
            arrays += [(param.name, getattr(layer, param.name)) for param in layer.params()
                       if param.on_device]   # (the anchors never change)
            for what, array in arrays:
                if array is None or not hasattr(array, "dtype"):
                    continue
                bad = self.ops.count_non_finite(array)
                if bad:
                    return layer.index, what, bad
        return None

    def parameter_layers(self):
        """The layers with arrays in a .weights file, in order."""
        return params.parameter_layers(self.layers)

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
            layer.resize(shape)
            shape = layer.out_shape

    # -- computation ---------------------------------------------------------------------
    def step(self, train=False, truth=None):
        """What the layers get for one forward (and backward): layers.step.Step."""
        return Step(ops=self.ops, train=train, exact=self.exact, truth=truth, seen=self.seen,
                    rng=self.rng)

    def forward(self, x, every_output=False):
        """Run every layer on a float32 (batch, c, h, w) array; returns the network output.

        In plain inference a convolution may compute the 2x2/2 maxpool after it
        (_fused_pools): it then holds the pooled map, as the maxpool does, and its own
        full output is never made. every_output=True runs each layer on its own, so that
        every layer's `output` is darknet's (forward dumps, per-layer comparisons).

        As in darknet, each layer's `output` is its own array, rewritten by the next
        forward (in plain inference the layers write into their previous output arrays:
        Step.reuse_outputs); the array returned is the output layer's, which is new
        every time, so a caller may keep it."""
        expected = (self.channels, self.height, self.width)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise DarknetError(f"{self.path}: input of shape {tuple(x.shape)} does not fit the "
                               f"network: expected (batch, {expected[0]}, {expected[1]}, "
                               f"{expected[2]})")
        self.ensure_initialized()
        step = self.step()
        reusing = dataclasses.replace(step, reuse_outputs=True)
        pooling = dataclasses.replace(reusing, pool=True)
        last = self.output_layer()
        fused = self._fused_pools() if step.fast and not every_output else ()
        x = self.ops.to_device(x)
        if self.ops.count_non_finite(x):
            log.warn(f"{self.path}: the input holds NaN or infinite values")
        # darknet_py says what went non-finite itself: no numpy RuntimeWarnings
        with np.errstate(all="ignore"):
            for layer in self.layers:
                if layer.index - 1 in fused:   # the maxpool its convolution computed
                    layer.output, layer.indexes = x, None
                    continue
                x = layer.forward(x, step if layer is last else
                                  pooling if layer.index in fused else reusing)
        output = last.output
        share = self.ops.xp.may_share_memory
        if any(layer is not last and layer.output is not None and share(output, layer.output)
               for layer in self.layers):
            # an output layer that hands on an earlier layer's array (a one-input route,
            # dropout): that array is rewritten by the next forward, the caller's is not
            output = output.copy()
        if self.ops.count_non_finite(output):
            problem = self.first_non_finite()
            where = "" if problem is None else \
                f"; first at layer {problem[0]} ({self.layers[problem[0]].type}) {problem[1]}"
            log.warn(f"{self.path}: the network output holds NaN or infinite values{where}")
        return output

    def _fused_pools(self):
        """Indexes of the convolutions that compute the 2x2/2 maxpool after them in plain
        inference (Step.pool): a 3x3 stride-1 convolution whose next layer is a size=2
        stride=2 maxpool with windows at (2i, 2j) (padding 0 or 1, output ceil(h/2) x
        ceil(w/2)), whose output no route reads and which is not the output layer, nor
        is its maxpool. The full map then never goes to memory, and the maxpool's pass
        over it goes: 3-4 ms of yolov2-tiny-voc's batch-1 forward. The values are
        maxpool_inference's bit for bit (tests/test_fused_pool.py)."""
        if not FUSE_POOLS:
            return set()
        read = {source for layer in self.layers for source in getattr(layer, "sources", ())}
        last = self.output_layer()
        fused = set()
        for conv, pool in zip(self.layers, self.layers[1:]):
            if conv.type == "convolutional" and pool.type == "maxpool" and \
                    conv.size == 3 and conv.stride == 1 and conv.groups == 1 and \
                    pool.size == 2 and pool.stride == 2 and pool.padding // 2 == 0 and \
                    (pool.out_h, pool.out_w) == ((conv.out_h + 1) // 2,
                                                 (conv.out_w + 1) // 2) and \
                    conv.index not in read and last not in (conv, pool):
                fused.add(conv.index)
        return fused

    def output_layer(self):
        """darknet's network_output: the last layer that is not a [cost] layer."""
        for layer in reversed(self.layers):
            if layer.type != "cost":
                return layer
        return self.layers[-1]

    # -- training ------------------------------------------------------------------------
    def train_step(self, x, truth, run_backward=None):
        """One darknet iteration (train_network): the rows of x are cut into minibatches of
        `batch` (the cfg's batch/subdivisions); each does forward, backward and `seen +=
        batch`, and the update runs after every `subdivisions` minibatches. Returns the
        loss darknet reports: the sum of minibatch costs over the number of rows. The loss
        layers' statistics (one dict per minibatch and loss layer) are left in
        self.statistics. run_backward(layer, step, input_delta), when given, runs each
        layer's backward instead of layer.backward (bench times them with it)."""
        rows, minibatch = x.shape[0], self.options.batch
        if rows % minibatch:
            raise DarknetError(f"train_step: {rows} rows is not a multiple of the minibatch "
                               f"({minibatch} = batch/subdivisions)")
        self.ensure_initialized()
        if not self._updates_ready:
            params.zero_updates(self.layers, self.ops)
            self._updates_ready = True
        self.statistics = []
        total = np.float32(0)   # darknet sums the minibatch costs in float
        with np.errstate(all="ignore"):   # the trainer checks for non-finite values
            for start in range(0, rows, minibatch):
                self.seen += minibatch
                total += np.float32(self._train_minibatch(x[start:start + minibatch],
                                                        truth[start:start + minibatch],
                                                        run_backward))
                if (self.seen // minibatch) % self.options.subdivisions == 0:
                    self.update()
        return float(total / np.float32(rows))

    def _train_minibatch(self, x, truth, run_backward=None):
        """forward_network + backward_network in training mode; returns *net->cost."""
        ops = self.ops
        step = self.step(train=True, truth=ops.to_device(truth))
        x = ops.to_device(x)
        for layer in self.layers:
            # darknet zeroes every delta before the layer's forward (which may set it),
            # in the array it allocated once: the last step's is zeroed and kept where
            # it is the layer's own and of the same shape (no fresh pages every step)
            own = None if layer.delta_is_input_delta else layer.delta
            layer.delta, layer.stats = None, None
            previous = self.layers[layer.index - 1] if layer.index else None
            x = layer.forward(x, step)
            if layer.delta_is_input_delta:
                layer.delta = previous.delta if previous is not None else None
            elif layer.delta is None:
                if own is not None and tuple(own.shape) == tuple(layer.output.shape):
                    own.fill(0)
                    layer.delta = own
                else:
                    layer.delta = ops.zeros(layer.output.shape)
        costs = [layer.cost for layer in self.layers if layer.has_cost]
        self.statistics += [layer.stats for layer in self.layers if layer.stats is not None]
        self.backward(step, run_backward)
        # calc_network_cost: the float mean of l.cost over the layers that have one
        total = np.float32(0)
        for cost in costs:
            total += np.float32(cost)
        return float(total / np.float32(len(costs))) if costs else 0.0

    def backward(self, step, run_backward=None):
        """backward_network: last layer first, each writing into the previous layer's delta."""
        for layer in reversed(self.layers):
            if layer.stopbackward:
                break
            input_delta = self.layers[layer.index - 1].delta if layer.index else None
            if run_backward is None:
                layer.backward(step, input_delta)
            else:
                run_backward(layer, step, input_delta)

    def learning_rate(self):
        from .policy import learning_rate
        return learning_rate(self.options, self.seen, self.rng)

    def update(self):
        """update_network: SGD with momentum and decay, rates scaled by batch*subdivisions."""
        f32 = np.float32
        total = self.options.batch * self.options.subdivisions
        rate = f32(self.learning_rate()) / f32(total)
        decay_term = f32(-f32(self.options.decay)) * f32(total)
        # every layer or none: a Ctrl-C here waits until the step is whole
        with signals.deferred():
            params.sgd_update(self.layers, self.ops, rate, f32(self.options.momentum),
                              decay_term)

    # -- weights -------------------------------------------------------------------------
    def load_weights(self, path, cutoff=None):
        """Read a .weights file (its first `cutoff` layers at most) into the layers: host
        arrays before the first forward, backend arrays after it."""
        found = read_weights(path, self.layers, cutoff, self.path)
        place = self.ops.to_device if self.initialized else (lambda array: array)
        for (index, name), values in found.arrays.items():
            setattr(self.layers[index], name, place(values))
        self.header, self.seen = found.header, found.seen
        self.loaded_layers, self.weights_transposed = found.loaded_layers, found.transposed
        return self

    def save_weights(self, path, cutoff=None, header=None, seen=None):
        """Write the weights atomically (all layers, or the first `cutoff`), with this
        network's header and seen unless others are given."""
        self.ensure_initialized()
        write_weights(path, self.layers, self.header if header is None else header,
                      self.seen if seen is None else seen, self.ops.to_host, cutoff)


def parse_network_cfg(path, **kwargs):
    return Network(read_cfg(path), path=str(path), **kwargs)


def load_network(cfg, weights=None, batch=None, device=None, seed=1, strict=False,
                 verbose=False, exact=False):
    """Build the network of a cfg file and load a .weights file into it (darknet's load_network).

    batch: the input batch size (default: the cfg's batch/subdivisions); layers accept any
    batch at run time. seed: the glibc srand() seed for darknet's random init of layers the
    weights file does not cover (darknet itself runs with the default seed 1). exact:
    darknet's summation order everywhere (bit-faithful, slow).
    """
    net = parse_network_cfg(cfg, batch=batch, device=device, seed=seed, strict=strict,
                            verbose=verbose, exact=exact)
    if weights is not None:
        net.load_weights(weights)
    net.ensure_initialized()
    return net


def partial(cfg, weights, out, cutoff):
    """darknet partial: keep the first `cutoff` layers' weights, with seen reset to 0."""
    if cutoff < 1:
        raise DarknetError(f"partial: the number of layers to keep must be at least 1 "
                           f"(found {cutoff})")
    net = parse_network_cfg(cfg, batch=1, device="cpu")
    net.load_weights(weights, cutoff=cutoff)
    # the kept layers only, as read: no random init of the rest (it is not written)
    write_weights(out, net.layers, DEFAULT_HEADER, 0, cutoff=cutoff)
    return net
