"""What every layer shares: its place in the graph, shapes, and darknet's printed summary."""
from ..errors import CfgError
from ..settings import memory_bytes
from .params import allocate, file_params, parameter_count


class Layer:
    """A layer reads `section` (a config.Section), the previous layer's output shape and,
    for the route layer, the layers before it (`previous`); nothing else of the network.

    Subclasses set out_c/out_h/out_w in __init__ and implement forward(x, step) and
    backward(step, input_delta) (step: layers.step.Step). Layers with arrays list them in
    `params()` (layers.params.Param rows) and call allocate_params() once shapes are known.
    """
    type = "layer"

    def __init__(self, section, index, in_shape, previous=()):
        self.section = section
        self.index = index
        self.c, self.h, self.w = in_shape
        self.out_c, self.out_h, self.out_w = in_shape
        self.output = None
        self.delta = None
        # options darknet's parse_network_cfg reads for every layer
        self.learning_rate_scale = section.number("learning_rate", 1.0)
        self.stopbackward = section.integer("stopbackward", 0)
        self.onlyforward = section.integer("onlyforward", 0)
        self.dontload = section.integer("dontload", 0)
        self.dontsave = section.integer("dontsave", 0)
        section.integer("truth", 0)
        section.number("smooth", 0)
        for unsupported in ("numload", "dontloadscales"):
            if section.integer(unsupported, 0):
                raise self.error(f"'{unsupported}' is not supported", unsupported)

    # -- shapes ------------------------------------------------------------------------
    @property
    def inputs(self):
        return self.c * self.h * self.w

    @property
    def outputs(self):
        return self.out_c * self.out_h * self.out_w

    @property
    def out_shape(self):
        return (self.out_c, self.out_h, self.out_w)

    def resize(self, in_shape):
        """Adopt a new input size (multi-scale training, other net sizes)."""
        self.c, self.h, self.w = in_shape
        self.out_c, self.out_h, self.out_w = in_shape

    def error(self, message, option=None):
        where = self.section.where(self.section.options.get(option) if option else None)
        return CfgError(f"{where} layer {self.index}: {message}")

    # -- parameters --------------------------------------------------------------------
    def params(self):
        """This layer's table of arrays (layers.params.Param), .weights order first."""
        return []

    def allocate_params(self):
        need = 4 * parameter_count(self)
        if need > memory_bytes():
            raise self.error(f"its parameters need {need / 2**30:.1f} GiB, more than this "
                             f"machine's {memory_bytes() / 2**30:.1f} GiB")
        allocate(self)

    def param_layout(self):
        """[(attribute, shape)] in the order darknet writes them to a .weights file."""
        return [(param.name, param.shape) for param in file_params(self)]

    # -- computation -------------------------------------------------------------------
    # A layer whose delta is its input's delta (dropout) sets this; the network then
    # hands it the previous layer's delta instead of a fresh one.
    delta_is_input_delta = False
    # Layers with a cost (region, softmax, cost) count in darknet's calc_network_cost,
    # which averages l.cost over them, zero or not.
    has_cost = False
    cost = 0.0

    # A layer with a loss may leave its statistics here after a training forward (the
    # region layer's IoU, recall...); the trainer prints them.
    stats = None

    def reusable_output(self, step, shape):
        """The array of this layer's previous output, for an op to write the new one
        into (an `out=` argument), when step.reuse_outputs and it has `shape`; else None
        (the op allocates). Whether the array suits the backend is the op's to check."""
        previous = self.output
        if step.reuse_outputs and previous is not None and \
                tuple(previous.shape) == tuple(shape):
            return previous
        return None

    def forward(self, x, step):
        raise NotImplementedError

    def backward(self, step, input_delta):
        """Add (or, where darknet overwrites, write) -dLoss/dinput into input_delta, the
        previous layer's delta (None for the first layer), and accumulate *_updates."""

    def bflops(self):
        return 0.0

    def describe(self):
        """The line darknet prints for this layer while parsing the cfg."""
        return self.type
