"""[route]: concatenate earlier layers' outputs along channels (route_layer.c).

`layers=-1,-4` counts back from this layer; non-negative values are absolute indices.
"""
from .base import Layer


class RouteLayer(Layer):
    type = "route"

    def __init__(self, section, index, in_shape, previous=()):
        super().__init__(section, index, in_shape, previous)
        values = section.numbers("layers", int)
        if not values:
            raise self.error("a route layer needs 'layers=' (the layers to concatenate)")
        self.sources = []
        for value in values:
            source = index + value if value < 0 else value
            if not 0 <= source < index:
                raise self.error(f"layers={value} points at layer {source}, but only layers "
                                 f"0..{index - 1} come before it", "layers")
            self.sources.append(source)
        # the layers themselves: their outputs are read in forward, their deltas added to
        self.source_layers = [previous[source] for source in self.sources]
        self._set_shape()

    def _set_shape(self):
        first = self.source_layers[0]
        self.out_w, self.out_h = first.out_w, first.out_h
        self.out_c = 0
        for source, layer in zip(self.sources, self.source_layers):
            if (layer.out_w, layer.out_h) != (self.out_w, self.out_h):
                raise self.error(f"cannot concatenate layer {source} ({layer.out_w}x"
                                 f"{layer.out_h}) with layer {self.sources[0]} ({self.out_w}x"
                                 f"{self.out_h}): spatial sizes differ", "layers")
            self.out_c += layer.out_c
        self.c, self.h, self.w = self.out_c, self.out_h, self.out_w

    def resize(self, in_shape):
        self._set_shape()

    def forward(self, x, step):
        batch = x.shape[0]
        parts = [layer.output.reshape(batch, -1) for layer in self.source_layers]
        joined = step.ops.xp.concatenate(parts, axis=1)
        self.output = joined.reshape(batch, self.out_c, self.out_h, self.out_w)
        return self.output

    def backward(self, step, input_delta):
        """Each source layer's delta gets its slice of this layer's delta (axpy: adds)."""
        batch = self.delta.shape[0]
        flat = self.delta.reshape(batch, -1)
        offset = 0
        for layer in self.source_layers:
            size = layer.outputs
            layer.delta += flat[:, offset:offset + size].reshape(layer.delta.shape)
            offset += size

    def describe(self):
        return "route " + "".join(f" {source}" for source in self.sources)
