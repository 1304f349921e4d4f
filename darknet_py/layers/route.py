"""[route]: concatenate earlier layers' outputs along channels (route_layer.c).

`layers=-1,-4` counts back from this layer; non-negative values are absolute indices.
"""
from .base import Layer


class RouteLayer(Layer):
    type = "route"

    def __init__(self, section, index, in_shape, net):
        super().__init__(section, index, in_shape, net)
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
        self._set_shape(net.layers)

    def _set_shape(self, layers):
        first = layers[self.sources[0]]
        self.out_w, self.out_h = first.out_w, first.out_h
        self.out_c = 0
        for source in self.sources:
            layer = layers[source]
            if (layer.out_w, layer.out_h) != (self.out_w, self.out_h):
                raise self.error(f"cannot concatenate layer {source} ({layer.out_w}x"
                                 f"{layer.out_h}) with layer {self.sources[0]} ({self.out_w}x"
                                 f"{self.out_h}): spatial sizes differ", "layers")
            self.out_c += layer.out_c
        self.c, self.h, self.w = self.out_c, self.out_h, self.out_w

    def resize(self, in_shape, net):
        self._set_shape(net.layers)

    def forward(self, x, net):
        batch = x.shape[0]
        parts = [net.layers[source].output.reshape(batch, -1) for source in self.sources]
        joined = net.ops.xp.concatenate(parts, axis=1)
        self.output = joined.reshape(batch, self.out_c, self.out_h, self.out_w)
        return self.output

    def backward(self, net, input_delta):
        """Each source layer's delta gets its slice of this layer's delta (axpy: adds)."""
        batch = self.delta.shape[0]
        flat = self.delta.reshape(batch, -1)
        offset = 0
        for source in self.sources:
            layer = net.layers[source]
            size = layer.outputs
            layer.delta += flat[:, offset:offset + size].reshape(layer.delta.shape)
            offset += size

    def describe(self):
        return "route " + "".join(f" {source}" for source in self.sources)
