"""`export`: a darknet network written as an ONNX graph, with darknet's inference semantics.

Each layer becomes a few standard ONNX operators (built with onnx.helper), reading only the
layers' attributes and parameter arrays:

- convolutional / connected: Conv (groups, darknet's "same" padding) or Flatten + Gemm,
  with batch norm folded into the weights and bias by darknet's CPU rule
  (factor = scale/(sqrt(var) + 1e-6), shift = bias - mean*factor, as
  numpy_ops.batchnorm_fold: in float64, stored as float32), then the activation;
- every darknet activation as elementwise ops (activations.py gives the formulas);
- maxpool with darknet's window geometry (see _maxpool), route as Concat, darknet's reorg
  order as Reshape/Transpose/Reshape (see _reorg), avgpool as GlobalAveragePool, flat or
  grouped softmax, dropout as identity, a stand-alone batchnorm as Mul + Add;
- region: with region=True its inference activations in darknet's entry layout (logistic
  on x, y, objectness; softmax over the classes); otherwise the graph ends at the raw
  output of the layer before it, as detectors usually decode that themselves.

Anything ONNX cannot express the same way (tree softmax, a cost layer feeding others...)
raises a one-line DarknetError naming the layer. Tensors stay NCHW with each layer's
(out_c, out_h, out_w); reshapes copy the batch dimension (0), so the graph is batch-free
apart from the declared input shape.
"""
import numpy as np

from .errors import DarknetError
from .fileio import atomic_write_bytes
from .settings import BN_EPSILON, FLT_MAX

F32, F64 = np.float32, np.float64
DEFAULT_OPSET = 13
# Clip, Pad and Slice with their bounds as inputs, Equal on floats: opset 11 and later.
MIN_OPSET = 11
INPUT, OUTPUT = "input", "output"


def _onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise DarknetError("export needs the onnx package: pip install onnx (or "
                           "pip install -e '.[onnx]')") from None
    return onnx, helper, numpy_helper


def _host(array):
    """A parameter array as float32 NumPy (CuPy arrays are copied off the GPU)."""
    get = getattr(array, "get", None)
    return np.asarray(get() if callable(get) else array, dtype=F32)


def batchnorm_fold(layer):
    """(factor, shift) per output channel, numpy_ops.batchnorm_fold's arithmetic in float64
    (not yet rounded: the caller folds the factor into the weights first)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        factor = _host(layer.scales).astype(F64) / (np.sqrt(_host(layer.rolling_variance)
                                                            .astype(F64)) + BN_EPSILON)
        shift = _host(layer.biases).astype(F64) - _host(layer.rolling_mean).astype(F64) * factor
    return factor, shift


class _Graph:
    """Nodes and initializers under unique names."""

    def __init__(self, helper, numpy_helper, opset):
        self.helper, self.numpy_helper, self.opset = helper, numpy_helper, opset
        self.nodes, self.initializers, self._used = [], [], {INPUT, OUTPUT}

    def name(self, hint):
        name, count = hint, 1
        while name in self._used:
            count += 1
            name = f"{hint}_{count}"
        self._used.add(name)
        return name

    def constant(self, hint, array):
        name = self.name(hint)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(array), name))
        return name

    def scalar(self, value):
        return self.constant("const", np.array(value, dtype=F32))

    def ints(self, values):
        return self.constant("shape", np.array(values, dtype=np.int64))

    def node(self, op, inputs, hint, output=None, **attributes):
        output = output or self.name(hint)
        self.nodes.append(self.helper.make_node(op, list(inputs), [output],
                                                name=self.name(f"{hint}/{op}"), **attributes))
        return output


# ------------------------------------------------------------------- activations
# activations.c's formulas, as elementwise ops on x; darknet's double arithmetic becomes
# float (differences of an ulp).
def _plse(g, x, hint):
    low = g.node("Mul", [g.node("Add", [x, g.scalar(4)], hint), g.scalar(0.01)], hint)
    high = g.node("Add", [g.node("Mul", [g.node("Sub", [x, g.scalar(4)], hint),
                                         g.scalar(0.01)], hint), g.scalar(1)], hint)
    middle = g.node("Add", [g.node("Mul", [x, g.scalar(0.125)], hint), g.scalar(0.5)], hint)
    upper = g.node("Where", [g.node("Greater", [x, g.scalar(4)], hint), high, middle], hint)
    return g.node("Where", [g.node("Less", [x, g.scalar(-4)], hint), low, upper], hint)


def _lhtan(g, x, hint):
    high = g.node("Add", [g.node("Mul", [g.node("Sub", [x, g.scalar(1)], hint),
                                         g.scalar(0.001)], hint), g.scalar(1)], hint)
    upper = g.node("Where", [g.node("Greater", [x, g.scalar(1)], hint), high, x], hint)
    low = g.node("Mul", [x, g.scalar(0.001)], hint)
    return g.node("Where", [g.node("Less", [x, g.scalar(0)], hint), low, upper], hint)


def _stair(g, x, hint):
    """stair_activate: n = floor(x); n even: floor(x/2), else (x - n) + floor(x/2). The
    parity as floor(n/2)*2 == n (C's n%2 == 0), without Mod's sign conventions."""
    n = g.node("Floor", [x], hint)
    half = g.node("Floor", [g.node("Mul", [x, g.scalar(0.5)], hint)], hint)
    twice = g.node("Mul", [g.node("Floor", [g.node("Mul", [n, g.scalar(0.5)], hint)], hint),
                           g.scalar(2)], hint)
    odd = g.node("Add", [g.node("Sub", [x, n], hint), half], hint)
    return g.node("Where", [g.node("Equal", [twice, n], hint), half, odd], hint)


ACTIVATIONS = {
    "linear": lambda g, x, hint: x,
    "logistic": lambda g, x, hint: g.node("Sigmoid", [x], hint),
    "loggy": lambda g, x, hint: g.node("Sub", [g.node("Mul", [g.node("Sigmoid", [x], hint),
                                                              g.scalar(2)], hint),
                                               g.scalar(1)], hint),
    "relu": lambda g, x, hint: g.node("Relu", [x], hint),
    "elu": lambda g, x, hint: g.node("Elu", [x], hint, alpha=1.0),
    "selu": lambda g, x, hint: g.node("Selu", [x], hint, alpha=1.6732, gamma=1.0507),
    "relie": lambda g, x, hint: g.node("LeakyRelu", [x], hint, alpha=0.01),
    "ramp": lambda g, x, hint: g.node("Add", [g.node("Relu", [x], hint),
                                              g.node("Mul", [x, g.scalar(0.1)], hint)], hint),
    "leaky": lambda g, x, hint: g.node("LeakyRelu", [x], hint, alpha=0.1),
    "tanh": lambda g, x, hint: g.node("Tanh", [x], hint),
    "plse": _plse,
    "stair": _stair,
    "hardtan": lambda g, x, hint: g.node("Clip", [x, g.scalar(-1), g.scalar(1)], hint),
    "lhtan": _lhtan,
}


# ------------------------------------------------------------------------ layers
class _Exporter:
    def __init__(self, net, graph, region):
        self.net, self.g, self.region = net, graph, region
        self.tensors = []   # layer index -> the name of its output tensor

    def fail(self, layer, why):
        return DarknetError(f"{self.net.path}: layer {layer.index} [{layer.type}] cannot be "
                            f"exported to ONNX: {why}")

    def activate(self, layer, x, hint):
        function = ACTIVATIONS.get(layer.activation)
        if function is None:
            raise self.fail(layer, f"activation '{layer.activation}' has no ONNX form here")
        return function(self.g, x, hint)

    def input_of(self, layer):
        return self.tensors[layer.index - 1] if layer.index else INPUT

    def finite(self, layer, arrays, folded):
        """Refuse to write NaN or inf into the graph: a model that computes garbage (NaN
        weights, or finite ones whose batch-norm fold overflows float32)."""
        for name, array in arrays.items():
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            if bad:
                why = " after folding batch norm into them" if folded else ""
                raise DarknetError(f"{self.net.path}: layer {layer.index} [{layer.type}] "
                                   f"{name}: {bad} of {array.size} values are NaN or infinite"
                                   f"{why}; nothing exported")
        return arrays.values()

    def folded(self, layer, weights):
        """Weights and bias with batch norm folded in (float64, then float32)."""
        biases = _host(layer.biases)
        self.finite(layer, {"weights": weights, "biases": biases}, False)
        if not layer.batch_normalize:
            return weights, biases
        factor, shift = batchnorm_fold(layer)
        scale = factor.reshape((-1,) + (1,) * (weights.ndim - 1))
        with np.errstate(over="ignore", invalid="ignore"):
            folded = (weights.astype(F64) * scale).astype(F32), shift.astype(F32)
        return self.finite(layer, dict(zip(("weights", "biases"), folded)), True)

    def convolutional(self, layer, x, hint):
        if layer.size == 1 and (layer.stride != 1 or layer.padding != 0):
            # darknet skips im2col for every 1x1 kernel and so ignores stride and padding
            # there while sizing the output by them: nothing a Conv reproduces
            raise self.fail(layer, f"a 1x1 convolution with stride={layer.stride} "
                                   f"padding={layer.padding} (darknet ignores both in the "
                                   "GEMM)")
        weights, biases = self.folded(layer, _host(layer.weights))
        g, p = self.g, layer.padding
        out = g.node("Conv", [x, g.constant(f"{hint}.weights", weights),
                              g.constant(f"{hint}.biases", biases)], hint,
                     kernel_shape=[layer.size] * 2, strides=[layer.stride] * 2,
                     pads=[p, p, p, p], group=layer.groups)
        return self.activate(layer, out, hint)

    def connected(self, layer, x, hint):
        weights, biases = self.folded(layer, _host(layer.weights))   # (outputs, inputs)
        g = self.g
        flat = g.node("Flatten", [x], hint, axis=1)
        out = g.node("Gemm", [flat, g.constant(f"{hint}.weights", weights),
                              g.constant(f"{hint}.biases", biases)], hint, transB=1)
        out = self.activate(layer, out, hint)
        return g.node("Reshape", [out, g.ints([0, layer.n_outputs, 1, 1])], hint)

    def batchnorm(self, layer, x, hint):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            factor, shift = batchnorm_fold(layer)
            factor, shift = self.finite(layer, {"scales": factor.astype(F32),
                                                "biases": shift.astype(F32)}, True)
        g, shape = self.g, (1, layer.c, 1, 1)
        scaled = g.node("Mul", [x, g.constant(f"{hint}.factor",
                                              factor.astype(F32).reshape(shape))], hint)
        return g.node("Add", [scaled, g.constant(f"{hint}.shift",
                                                 shift.astype(F32).reshape(shape))], hint)

    def maxpool(self, layer, x, hint):
        """forward_maxpool_layer: windows start at -padding/2 (top and left alike), cells
        outside the input count as -FLT_MAX, and there are (w + padding - size)/stride + 1
        of them. The bottom/right padding is whatever the last window needs beyond the
        input (none when it ends inside). When every pad is smaller than the window, no
        window lies wholly outside and MaxPool's own padding (which ignores padded cells)
        gives darknet's maxima; otherwise (a large padding=) the input is first padded with
        -FLT_MAX, so that such windows give -FLT_MAX as in darknet."""
        g, size, stride = self.g, layer.size, layer.stride
        top = layer.padding // 2
        bottom = max(0, (layer.out_h - 1) * stride + size - top - layer.h)
        right = max(0, (layer.out_w - 1) * stride + size - top - layer.w)
        attributes = {"kernel_shape": [size, size], "strides": [stride, stride]}
        if max(top, bottom, right) < size:
            if top or bottom or right:
                attributes["pads"] = [top, top, bottom, right]
        else:
            x = g.node("Pad", [x, g.ints([0, 0, top, top, 0, 0, bottom, right]),
                               g.scalar(-FLT_MAX)], hint, mode="constant")
        return g.node("MaxPool", [x], hint, **attributes)

    def avgpool(self, layer, x, hint):
        return self.g.node("GlobalAveragePool", [x], hint)

    def route(self, layer, x, hint):
        # darknet copies each source's (c, h, w) block per image one after the other: with
        # equal h and w (checked at parse time) that is a channel concatenation
        sources = [self.tensors[source] for source in layer.sources]
        if len(sources) == 1:
            return sources[0]
        return self.g.node("Concat", sources, hint, axis=1)

    def reorg(self, layer, x, hint):
        """numpy_ops.reorg, which reproduces darknet's reorg_cpu as [reorg] calls it.
        reverse=0 (darknet's forward=0): the (C, H, W) input is read as C/s^2 channels of
        (H*s, W*s), i.e. (C/s^2, H, s, W, s), and written out as (s, s, C/s^2, H, W):
        transpose (0, 3, 5, 1, 2, 4). reverse=1 reads (s, s, C/s^2, H, W) and writes
        (C/s^2, H, s, W, s): transpose (0, 3, 4, 1, 5, 2). Either way the result is then
        given the layer's output shape."""
        g, s = self.g, layer.stride
        groups = layer.c // (s * s)
        if layer.reverse:
            wide, order = [0, s, s, groups, layer.h, layer.w], [0, 3, 4, 1, 5, 2]
        else:
            wide, order = [0, groups, layer.h, s, layer.w, s], [0, 3, 5, 1, 2, 4]
        out = g.node("Reshape", [x, g.ints(wide)], hint)
        out = g.node("Transpose", [out], hint, perm=order)
        return g.node("Reshape", [out, g.ints([0, layer.out_c, layer.out_h, layer.out_w])],
                      hint)

    def softmax(self, layer, x, hint):
        if layer.tree is not None:
            raise self.fail(layer, "tree softmax (WordTree) has no ONNX form here")
        g = self.g
        flat = g.node("Flatten", [x], hint, axis=1)
        if layer.temperature != 1:   # softmax(): exp(x/t - max/t)
            flat = g.node("Div", [flat, g.scalar(layer.temperature)], hint)
        if layer.groups > 1:   # contiguous groups of the flat input; softmax on the last axis
            flat = g.node("Reshape", [flat, g.ints([0, layer.groups,
                                                    layer.inputs // layer.groups])], hint)
        out = g.node("Softmax", [flat], hint, axis=-1 if layer.groups > 1 else 1)
        return g.node("Reshape", [out, g.ints([0, layer.outputs, 1, 1])], hint)

    def dropout(self, layer, x, hint):
        return x

    def region_layer(self, layer, x, hint):
        """region_activate in darknet's entry layout: per anchor the entries x, y, w, h
        (coords of them), objectness, classes, each an (h, w) plane. Logistic on x, y and
        (unless background) the objectness, a softmax across the classes (softmax=1, with
        the background entry when background=1) at each cell; the rest stays raw."""
        if layer.tree is not None:
            raise self.fail(layer, "tree softmax (WordTree) has no ONNX form here")
        g, coords = self.g, layer.coords
        cells = layer.h * layer.w
        grid = g.node("Reshape", [x, g.ints([0, layer.n_anchors, layer.entries, cells])], hint)
        start = coords + (0 if layer.background else 1)
        pieces = [(0, 2, "logistic"), (2, coords, None)]
        if not layer.background:
            pieces.append((coords, coords + 1, "logistic"))
        pieces.append((start, layer.entries, "softmax" if layer.softmax else None))
        parts = []
        for begin, end, function in pieces:
            if end <= begin:
                continue
            part = g.node("Slice", [grid, g.ints([begin]), g.ints([end]), g.ints([2])], hint)
            if function == "logistic":
                part = g.node("Sigmoid", [part], hint)
            elif function == "softmax":
                part = self._softmax_axis2(part, hint)
            parts.append(part)
        joined = g.node("Concat", parts, hint, axis=2)
        return g.node("Reshape", [joined, g.ints([0, layer.out_c, layer.h, layer.w])], hint)

    def _softmax_axis2(self, x, hint):
        g = self.g
        if g.opset >= 13:
            return g.node("Softmax", [x], hint, axis=2)
        # before opset 13 Softmax flattens from its axis on: put the classes last
        x = g.node("Transpose", [x], hint, perm=[0, 1, 3, 2])
        x = g.node("Softmax", [x], hint, axis=3)
        return g.node("Transpose", [x], hint, perm=[0, 1, 3, 2])

    def run(self):
        output = self.net.output_layer()
        last = output.index
        for layer in self.net.layers:
            if layer.index > last:
                # network_output skips trailing [cost] layers: nothing to compute at inference
                self.tensors.append(None)
                continue
            x, hint = self.input_of(layer), f"l{layer.index}_{layer.type}"
            if layer.type == "region":
                if layer is output and not self.region:
                    self.tensors.append(x)   # the raw output of the layer before it
                    continue
                self.tensors.append(self.region_layer(layer, x, hint))
                continue
            method = getattr(self, layer.type, None) if layer.type in _LAYERS else None
            if method is None:
                raise self.fail(layer, f"no ONNX translation for [{layer.type}] layers "
                                       f"(exported: {', '.join(sorted(_LAYERS + ('region',)))})")
            self.tensors.append(method(layer, x, hint))
        return self.tensors[last]


_LAYERS = ("convolutional", "connected", "batchnorm", "maxpool", "avgpool", "route", "reorg",
           "softmax", "dropout")


def output_shape(net, region=False):
    """(c, h, w) of the exported graph's output (the layer before a region without
    region=True)."""
    last = net.output_layer()
    if last.type == "region" and not region:
        return last.c, last.h, last.w
    return last.out_shape


def build_model(net, batch=1, region=False, opset=DEFAULT_OPSET):
    """The network as an onnx.ModelProto: input 'input' (batch, c, h, w) float32, output
    'output'. batch None declares a free batch dimension."""
    onnx, helper, numpy_helper = _onnx()
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise DarknetError(f"export: opset {opset} is not supported (expected "
                           f"{MIN_OPSET}..{newest})")
    graph = _Graph(helper, numpy_helper, opset)
    last = _Exporter(net, graph, region).run()
    graph.node("Identity", [last], "output", output=OUTPUT)
    dim = "batch" if batch is None else int(batch)
    float_type = onnx.TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info(INPUT, float_type,
                                            [dim, net.channels, net.height, net.width])]
    outputs = [helper.make_tensor_value_info(OUTPUT, float_type,
                                             [dim, *output_shape(net, region)])]
    body = helper.make_graph(graph.nodes, "darknet", inputs, outputs, graph.initializers)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(body, opset_imports=opsets, producer_name="darknet_py",
                              doc_string=f"{net.path}, exported by darknet_py"
                                         + (" with the region activations" if region else ""))
    find_ir = getattr(helper, "find_min_ir_version_for", None)
    if find_ir is not None:   # the oldest IR that holds the opset: older runtimes read it
        model.ir_version = find_ir(opsets)
    onnx.checker.check_model(model)
    return model


def export(net, path, batch=1, region=False, opset=DEFAULT_OPSET):
    """Write the ONNX model of `net` to `path` atomically; returns the model."""
    model = build_model(net, batch=batch, region=region, opset=opset)
    atomic_write_bytes(path, model.SerializeToString())
    return model
