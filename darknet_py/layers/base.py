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
    def forward(self, x, net):
        raise NotImplementedError

    def bflops(self):
        return 0.0

    def describe(self):
        """The line darknet prints for this layer while parsing the cfg."""
        return self.type
