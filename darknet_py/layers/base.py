"""What every layer shares: its place in the graph, shapes, and darknet's printed summary."""
from ..errors import CfgError


class Layer:
    """A layer reads `section` (a config.Section) and the previous layer's output shape.

    Subclasses set out_c/out_h/out_w in __init__ and implement forward(); layers with
    parameters list them in `param_layout()` in the order of the .weights file.
    """
    type = "layer"

    def __init__(self, section, index, in_shape, net):
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

    def resize(self, in_shape, net):
        """Adopt a new input size (multi-scale training, other net sizes)."""
        self.c, self.h, self.w = in_shape
        self.out_c, self.out_h, self.out_w = in_shape

    def error(self, message, option=None):
        where = self.section.where(self.section.options.get(option) if option else None)
        return CfgError(f"{where} layer {self.index}: {message}")

    # -- parameters --------------------------------------------------------------------
    def param_layout(self):
        """[(attribute, shape)] in the order darknet writes them to a .weights file."""
        return []

    def init_random(self, rng):
        """Darknet's initial values, drawing from `rng` (a rand.GlibcRandom) as darknet does."""

    def skip_random(self, rng):
        """Advance `rng` past this layer's draws (its values came from a weights file)."""

    # -- computation -------------------------------------------------------------------
    # A layer whose delta is its input's delta (dropout) sets this; the network then
    # hands it the previous layer's delta instead of a fresh one.
    delta_is_input_delta = False
    # Layers with a cost (region, softmax, cost) count in darknet's calc_network_cost,
    # which averages l.cost over them, zero or not.
    has_cost = False
    cost = 0.0

    def forward(self, x, net):
        raise NotImplementedError

    def backward(self, net, input_delta):
        """Add (or, where darknet overwrites, write) -dLoss/dinput into input_delta, the
        previous layer's delta (None for the first layer), and accumulate *_updates."""

    def zero_updates(self, ops):
        """Allocate the *_updates accumulators (layers with parameters)."""

    def update(self, net, rate, momentum, decay_term):
        """Apply darknet's SGD step to the parameters (layers with parameters)."""

    def bflops(self):
        return 0.0

    def describe(self):
        """The line darknet prints for this layer while parsing the cfg."""
        return self.type
