"""Default-mode training against a float64 evaluation of the same step (issue #12).

Default mode sums with BLAS GEMMs and double accumulators where darknet adds floats one by
one; exact mode reproduces darknet bit for bit (tests/test_oracle_training.py). Here one
default-mode train_step of a small batch-normalised network (3x3 and 1x1 convolutions,
stride 2, maxpools 2/2 and 2/1, an sse cost) is compared with the same step written out
plainly in float64 below: darknet's formulas (batch norm forward with sqrt(var) + 1e-6,
its backward with var + 1e-5, leaky .1, the 1x1 overwrite of the input delta), nothing
shared with the backend but the weights and the input. Loss, every layer's delta and every
bias/scale/weight gradient must agree to 1e-5 relative (L2).

Then the compiled training loops of the NumPy backend against its NumPy code (the
reference it replaced, itself checked against darknet's oracle): bit-identical wherever
darknet's order is kept.
"""
import numpy as np
import pytest

from darknet_py.config import parse_cfg_text
from darknet_py.network import Network
from darknet_py.ops import numpy_ops

F32, F64 = np.float32, np.float64
BOUND = 1e-5

CFG = """[net]
batch=4
subdivisions=1
width=24
height=24
channels=3
learning_rate=0.001
momentum=0.9
decay=0.0005
policy=constant

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=12
size=3
stride=2
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=10
size=1
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=1

[convolutional]
filters=6
size=3
stride=1
pad=1
activation=linear

[cost]
type=sse
"""


def rel_l2(ours, reference):
    ours = np.asarray(ours, F64).reshape(-1)
    reference = np.asarray(reference, F64).reshape(-1)
    return float(np.linalg.norm(ours - reference) / max(np.linalg.norm(reference), 1e-300))


def make_net(exact=False):
    """The network with random weights, scales and biases (seeded)."""
    net = Network(parse_cfg_text(CFG, "fidelity.cfg"), "fidelity.cfg", exact=exact)
    net.ensure_initialized()
    rng = np.random.default_rng(12)
    for layer in net.layers:
        if layer.type != "convolutional":
            continue
        fan_in = layer.c * layer.size * layer.size
        layer.weights[...] = rng.normal(0, np.sqrt(2.0 / fan_in), layer.weights.shape)
        layer.biases[...] = rng.normal(0, 0.2, layer.biases.shape)
        if layer.batch_normalize:
            layer.scales[...] = rng.uniform(0.5, 1.5, layer.scales.shape)
    return net


def batch(net):
    rng = np.random.default_rng(3)
    x = rng.random((4, net.channels, net.height, net.width), dtype=F32)
    truth = rng.normal(0, 1, (4, net.layers[-1].inputs)).astype(F32)
    return x, truth


def run_ours(net, x, truth):
    """One train_step; each layer's delta after its backward and the accumulated
    gradients right before the update."""
    deltas, grads = {}, {}
    for layer in net.layers:
        def recording(step, input_delta, layer=layer, backward=layer.backward):
            backward(step, input_delta)
            deltas[layer.index] = layer.delta.copy()
        layer.backward = recording
    update = net.update

    def recording_update():
        for layer in net.layers:
            for kind in ("bias", "scale", "weight"):
                if hasattr(layer, f"{kind}_updates"):
                    grads[(layer.index, kind)] = getattr(layer, f"{kind}_updates").copy()
        update()
    net.update = recording_update
    loss = net.train_step(x, truth)
    return loss, deltas, grads


# ------------------------------------------------------------------ the float64 step
def windows(x, size, stride, pad, out_h, out_w):
    """(B, C, out_h, out_w, size, size) views of the zero-padded input."""
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    view = np.lib.stride_tricks.sliding_window_view(padded, (size, size), axis=(2, 3))
    return view[:, :, ::stride, ::stride][:, :, :out_h, :out_w]


def conv_input_delta(d, weights, size, stride, pad, in_shape):
    """The adjoint of the convolution: each kernel offset's contribution added back."""
    batch, channels, height, width = in_shape
    out_h, out_w = d.shape[2:]
    padded = np.zeros((batch, channels, height + 2 * pad, width + 2 * pad))
    for ky in range(size):
        for kx in range(size):
            padded[:, :, ky:ky + stride * out_h:stride, kx:kx + stride * out_w:stride] += \
                np.einsum("bkhw,kc->bchw", d, weights[:, :, ky, kx])
    return padded[:, :, pad:pad + height, pad:pad + width]


def maxpool_f64(x, layer):
    """darknet's maxpool geometry: origin -padding/2, cells outside count as -inf.
    Returns the output and each output's winning (row, col) in the input."""
    top = layer.padding // 2
    batch, channels, height, width = x.shape
    out = np.full((batch, channels, layer.out_h, layer.out_w), -np.inf)
    where = np.zeros(out.shape + (2,), dtype=np.int64)
    for i in range(layer.out_h):
        for j in range(layer.out_w):
            for ky in range(layer.size):
                for kx in range(layer.size):
                    r, c = i * layer.stride - top + ky, j * layer.stride - top + kx
                    if 0 <= r < height and 0 <= c < width:
                        better = x[:, :, r, c] > out[:, :, i, j]
                        out[:, :, i, j] = np.where(better, x[:, :, r, c], out[:, :, i, j])
                        where[:, :, i, j][better] = (r, c)
    return out, where


def reference_step(net, x, truth):
    """darknet's forward_network, cost and backward_network in float64."""
    params = {layer.index: {name: np.asarray(getattr(layer, name), F64)
                            for name in ("weights", "biases", "scales")
                            if getattr(layer, name, None) is not None}
              for layer in net.layers if layer.type == "convolutional"}
    value, saved = np.asarray(x, F64), {}
    for layer in net.layers:
        saved[layer.index] = {"input": value}
        if layer.type == "convolutional":
            p = params[layer.index]
            y = np.einsum("bchwij,kcij->bkhw",
                          windows(value, layer.size, layer.stride, layer.padding,
                                  layer.out_h, layer.out_w), p["weights"])
            if layer.batch_normalize:
                mean, var = y.mean(axis=(0, 2, 3)), y.var(axis=(0, 2, 3), ddof=1)
                x_norm = (y - mean[:, None, None]) / (np.sqrt(var) + 1e-6)[:, None, None]
                out = x_norm * p["scales"][:, None, None] + p["biases"][:, None, None]
                saved[layer.index].update(y=y, mean=mean, var=var, x_norm=x_norm)
            else:
                out = y + p["biases"][:, None, None]
            if layer.activation == "leaky":
                out = np.where(out > 0, out, 0.1 * out)
            value = out
        elif layer.type == "maxpool":
            value, saved[layer.index]["where"] = maxpool_f64(value, layer)
        elif layer.type == "cost":
            pred = value.reshape(truth.shape)
            saved[layer.index]["delta"] = np.asarray(truth, F64) - pred
            cost = float((saved[layer.index]["delta"] ** 2).sum())
        saved[layer.index]["output"] = value
    deltas = {layer.index: np.zeros_like(saved[layer.index]["output"])
              for layer in net.layers if layer.type != "cost"}
    grads = {}
    for layer in reversed(net.layers):
        s = saved[layer.index]
        below = deltas.get(layer.index - 1)
        if layer.type == "cost":
            deltas[layer.index] = s["delta"]
            below += layer.scale * s["delta"].reshape(below.shape)
            continue
        d = deltas[layer.index]
        if layer.type == "maxpool":
            if below is not None:
                b, c, _, _ = np.indices(d.shape)
                np.add.at(below, (b, c, s["where"][..., 0], s["where"][..., 1]), d)
            continue
        p = params[layer.index]
        if layer.activation == "leaky":
            d = d * np.where(s["output"] > 0, 1.0, 0.1)
        grads[(layer.index, "bias")] = d.sum(axis=(0, 2, 3))
        if layer.batch_normalize:
            grads[(layer.index, "scale")] = (d * s["x_norm"]).sum(axis=(0, 2, 3))
            count = d.shape[0] * d.shape[2] * d.shape[3]
            d = d * p["scales"][:, None, None]
            var_eps = s["var"] + 1e-5
            centred = s["y"] - s["mean"][:, None, None]
            mean_delta = d.sum(axis=(0, 2, 3)) * (-1 / np.sqrt(var_eps))
            variance_delta = (d * centred).sum(axis=(0, 2, 3)) * (-0.5 * var_eps ** -1.5)
            d = (d / np.sqrt(var_eps)[:, None, None]
                 + variance_delta[:, None, None] * 2 * centred / count
                 + mean_delta[:, None, None] / count)
        deltas[layer.index] = d
        grads[(layer.index, "weight")] = np.einsum(
            "bkhw,bchwij->kcij", d, windows(s["input"], layer.size, layer.stride,
                                            layer.padding, layer.out_h, layer.out_w))
        if below is not None:
            delta_in = conv_input_delta(d, p["weights"], layer.size, layer.stride,
                                        layer.padding, below.shape)
            if layer.size == 1:
                below[...] = delta_in   # darknet's 1x1 gemm overwrites net.delta
            else:
                below += delta_in
    return cost / x.shape[0], deltas, grads


# ------------------------------------------------------------------ the comparison
def test_reference_step_is_darknets_step():
    """The float64 step agrees with exact mode (darknet's own arithmetic) to float32
    precision: it is the same computation, so the comparison below means something."""
    net = make_net(exact=True)
    x, truth = batch(net)
    reference = reference_step(net, x, truth)
    loss, deltas, grads = run_ours(net, x, truth)
    assert abs(loss - reference[0]) <= 1e-4 * abs(reference[0])
    for index, value in deltas.items():
        assert rel_l2(value, reference[1][index]) <= 1e-4, index
    for key, value in grads.items():
        assert rel_l2(value, reference[2][key]) <= 1e-4, key


def test_default_mode_step_matches_float64():
    net = make_net()
    x, truth = batch(net)
    ref_loss, ref_deltas, ref_grads = reference_step(net, x, truth)
    loss, deltas, grads = run_ours(net, x, truth)
    assert abs(loss - ref_loss) <= BOUND * abs(ref_loss), (loss, ref_loss)
    errors = {f"delta {index}": rel_l2(value, ref_deltas[index])
              for index, value in deltas.items()}
    errors.update({f"{kind} updates {index}": rel_l2(value, ref_grads[(index, kind)])
                   for (index, kind), value in grads.items()})
    assert len(errors) == 7 + 4 + 3 + 4   # deltas, bias, scale and weight gradients
    worst = max(errors, key=errors.get)
    assert errors[worst] <= BOUND, f"{worst}: {errors[worst]:.3g}"


# ------------------------------------------------------------------ compiled loops
@pytest.fixture
def numpy_code(monkeypatch):
    """A switch to the NumPy code the compiled loops replaced."""
    def use_numpy():
        monkeypatch.setattr(numpy_ops, "_compiled", lambda: False)
    if not numpy_ops._compiled():
        pytest.skip("numba is not installed: the NumPy code is all there is")
    return use_numpy


def _activations(rng, shape):
    return (rng.normal(0.3, 2.0, shape) * rng.uniform(0.5, 3, (1, shape[1], 1, 1))).astype(F32)


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("shape", [(2, 19, 7, 9), (1, 8, 1, 1), (3, 5, 13, 13)])
def test_statistics_loop_is_the_numpy_code(shape, exact, numpy_code):
    x = _activations(np.random.default_rng(len(shape) + shape[1]), shape)
    with np.errstate(invalid="ignore"):   # one value per channel: variance 0 * 1/0, as C
        compiled = numpy_ops.batchnorm_statistics(x, exact)
        numpy_code()
        expected = numpy_ops.batchnorm_statistics(x, exact)
    for ours, reference in zip(compiled, expected):
        np.testing.assert_array_equal(ours, reference)


@pytest.mark.parametrize("activation", ["leaky", "linear", "relu", "logistic"])
def test_normalize_loop_is_the_numpy_code(activation, numpy_code):
    rng = np.random.default_rng(5)
    x = _activations(rng, (2, 11, 6, 5))
    mean, variance = numpy_ops.batchnorm_statistics(x)
    scales, biases = rng.normal(1, 0.3, 11).astype(F32), rng.normal(0, 1, 11).astype(F32)
    compiled = numpy_ops.normalize_scale_activate(x, mean, variance, scales, biases,
                                                  activation)
    numpy_code()
    np.testing.assert_array_equal(
        compiled, numpy_ops.normalize_scale_activate(x, mean, variance, scales, biases,
                                                     activation))


def _backward_inputs(rng, shape, activation):
    x = _activations(rng, shape)
    mean, variance = numpy_ops.batchnorm_statistics(x)
    scales = rng.normal(1, 0.3, shape[1]).astype(F32)
    biases = rng.normal(0, 1, shape[1]).astype(F32)
    output = numpy_ops.normalize_scale_activate(x, mean, variance, scales, biases, activation)
    delta = rng.normal(0, 1, shape).astype(F32)
    return delta, output, x, mean, variance, scales


@pytest.mark.parametrize("activation", ["leaky", "linear", "logistic", "tanh"])
@pytest.mark.parametrize("shape", [(2, 9, 8, 7), (1, 4, 1, 1)])
def test_exact_backward_loop_is_the_numpy_code(shape, activation, numpy_code):
    rng = np.random.default_rng(9)
    delta, *rest = _backward_inputs(rng, shape, activation)
    results = []
    for switch in (None, numpy_code):
        if switch:
            switch()
        updates = [np.full(shape[1], 0.25, F32), np.full(shape[1], -0.5, F32)]
        out = numpy_ops.batchnorm_train_backward(delta.copy(), *rest, *updates, activation,
                                                 exact=True)
        results.append([out] + updates)
    for ours, reference in zip(*results):
        np.testing.assert_array_equal(ours, reference)


def test_default_backward_loop_is_accurate(numpy_code):
    """Default mode's double sums against the same formulas in float64; darknet's float
    running sums (the NumPy code) are further off on 2x64x64 terms per channel."""
    rng = np.random.default_rng(4)
    shape = (2, 6, 64, 64)
    delta, output, x, mean, variance, scales = _backward_inputs(rng, shape, "leaky")
    updates = [np.zeros(6, F32), np.zeros(6, F32)]
    out = numpy_ops.batchnorm_train_backward(delta.copy(), output, x, mean, variance, scales,
                                             *updates, "leaky")
    d = delta.astype(F64) * np.where(output > 0, 1.0, 0.1)
    centred = x.astype(F64) - mean[:, None, None]
    x_norm = centred / (np.sqrt(variance.astype(F64)) + 1e-6)[:, None, None]
    var_eps = variance.astype(F64) + 1e-5
    scaled = d * scales[:, None, None]
    count = 2 * 64 * 64
    expected = (scaled / np.sqrt(var_eps)[:, None, None]
                + ((scaled * centred).sum(axis=(0, 2, 3)) * -0.5 * var_eps ** -1.5)[:, None,
                                                                                   None]
                * 2 * centred / count
                + (scaled.sum(axis=(0, 2, 3)) * -1 / np.sqrt(var_eps))[:, None, None] / count)
    assert rel_l2(out, expected) <= 1e-6
    assert rel_l2(updates[0], d.sum(axis=(0, 2, 3))) <= 1e-6
    assert rel_l2(updates[1], (d * x_norm).sum(axis=(0, 2, 3))) <= 1e-6


@pytest.mark.parametrize("size,stride,pad,shape", [
    (3, 1, 1, (2, 3, 9, 7)), (3, 2, 1, (1, 4, 10, 11)), (1, 1, 0, (2, 2, 5, 5)),
    (2, 2, 0, (1, 3, 8, 8)), (5, 3, 2, (2, 2, 11, 9)), (3, 1, 0, (1, 2, 6, 6))])
def test_col2im_loop_is_the_numpy_code(size, stride, pad, shape, numpy_code):
    rng = np.random.default_rng(size * 10 + stride)
    out_h = (shape[2] + 2 * pad - size) // stride + 1
    out_w = (shape[3] + 2 * pad - size) // stride + 1
    cols = rng.normal(0, 1, (shape[0], shape[1] * size * size, out_h * out_w)).astype(F32)
    start = rng.normal(0, 1, shape).astype(F32)
    compiled = start.copy()
    numpy_ops.col2im_add(cols, compiled, size, stride, pad, out_h, out_w)
    numpy_code()
    reference = start.copy()
    numpy_ops.col2im_add(cols, reference, size, stride, pad, out_h, out_w)
    np.testing.assert_array_equal(compiled, reference)


@pytest.mark.parametrize("size,stride,pad", [(2, 2, 1), (2, 1, 1), (3, 2, 2)])
def test_maxpool_backward_loop_adds_in_darknets_order(size, stride, pad, numpy_code):
    """input_delta[winner] += delta, output by output: with the delta starting at zero
    the NumPy code's float sums are the same."""
    rng = np.random.default_rng(size + stride)
    x = rng.normal(0, 1, (2, 3, 9, 8)).astype(F32)
    x[0, 0, :4, :4] = 1.0   # ties: the first cell in window order wins
    out_h = (9 + pad - size) // stride + 1
    out_w = (8 + pad - size) // stride + 1
    _, indexes = numpy_ops.maxpool(x, size, stride, pad, out_h, out_w)
    delta = rng.normal(0, 1, (2, 3, out_h, out_w)).astype(F32)
    compiled = np.zeros(x.shape, F32)
    numpy_ops.maxpool_backward_add(delta, indexes, compiled, size, stride, pad)
    numpy_code()
    reference = np.zeros(x.shape, F32)
    numpy_ops.maxpool_backward_add(delta, indexes, reference, size, stride, pad)
    np.testing.assert_array_equal(compiled, reference)
    assert compiled.sum(dtype=F64) == pytest.approx(delta.sum(dtype=F64), rel=1e-5)


# ---------------------------------------------------------------- compiled training kernels
def _darknet_maxpool_indexed(x, size, stride, pad, out_h, out_w):
    """forward_maxpool_layer transcribed with its index: max = -FLT_MAX, max_i = -1, the
    cells in order, `max_i = (val > max) ? index : max_i`, val = -FLT_MAX outside."""
    batch, channels, height, width = x.shape
    top = pad // 2
    out = np.empty((batch, channels, out_h, out_w), np.float32)
    indexes = np.empty((batch, channels, out_h, out_w), np.int64)
    lowest = np.float32(-np.finfo(np.float32).max)
    for b in range(batch):
        for c in range(channels):
            for i in range(out_h):
                for j in range(out_w):
                    best, best_index = lowest, -1
                    for n in range(size):
                        for m in range(size):
                            row, col = i * stride + n - top, j * stride + m - top
                            inside = 0 <= row < height and 0 <= col < width
                            value = x[b, c, row, col] if inside else lowest
                            if value > best:
                                best = value
                                best_index = ((b * channels + c) * height + row) * width + col
                    out[b, c, i, j], indexes[b, c, i, j] = best, best_index
    return out, indexes


@pytest.mark.parametrize("shape,size,stride,pad", [
    ((2, 3, 8, 8), 2, 2, 0), ((1, 4, 7, 9), 2, 2, 1), ((2, 2, 13, 13), 2, 1, 1),
    ((1, 2, 9, 6), 3, 2, 2), ((1, 3, 6, 6), 3, 1, 4), ((2, 3, 5, 4), 1, 2, 0)])
def test_training_maxpool_is_darknets_with_its_indexes(shape, size, stride, pad):
    """The compiled training maxpool (values and the winners' indexes for the backward)
    against forward_maxpool_layer transcribed, with ties (the first cell in order wins)
    and NaN (never taken, as darknet's strict '>' gives)."""
    if not numpy_ops._compiled():
        pytest.skip("numba is not installed: the NumPy maxpool runs instead")
    rng = np.random.default_rng(sum(shape) + size)
    x = rng.standard_normal(shape).astype(np.float32)
    x[..., ::3, ::2] = 0.0
    x[rng.random(shape) < 0.1] = np.nan
    out_h = (shape[2] + pad - size) // stride + 1
    out_w = (shape[3] + pad - size) // stride + 1
    got, got_indexes = numpy_ops.maxpool(x, size, stride, pad, out_h, out_w)
    expected, expected_indexes = _darknet_maxpool_indexed(x, size, stride, pad, out_h, out_w)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got_indexes, expected_indexes)


def test_compiled_sgd_step_rounds_as_numpy(monkeypatch):
    """The compiled SGD step gives NumPy's whole-array float32 steps bit for bit (decay
    on the weights, none on the biases)."""
    if not numpy_ops._compiled():
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(3)
    for decay_term in (np.float32(-0.0005 * 64), None):
        param = rng.standard_normal(300_001).astype(np.float32)
        update = rng.standard_normal(300_001).astype(np.float32)
        param_ref, update_ref = param.copy(), update.copy()
        numpy_ops.sgd_step(param, update, np.float32(0.001 / 64), 0.9, decay_term)
        if decay_term is not None:
            update_ref += np.float32(decay_term) * param_ref
        param_ref += np.float32(0.001 / 64) * update_ref
        update_ref *= np.float32(0.9)
        np.testing.assert_array_equal(param, param_ref)
        np.testing.assert_array_equal(update, update_ref)


@pytest.mark.parametrize("batch,groups", [(2, 1), (5, 2), (1, 1)])
def test_backward_gemms_on_numba_threads_match_float64(monkeypatch, batch, groups):
    """conv_backward_gemms with its GEMMs on numba's threads (cpu_kernels.fused_gemms)
    and on the Python pool: both the float64 products within float32 rounding."""
    from darknet_py.ops import cpu_kernels
    rng = np.random.default_rng(batch * 10 + groups)
    n, k, hw = 12, 27, 61
    delta = rng.standard_normal((batch, groups, n, hw)).astype(np.float32)
    cols = rng.standard_normal((batch, groups, k, hw)).astype(np.float32)
    filters = rng.standard_normal((groups, n, k)).astype(np.float32)
    weights_expected = np.einsum("bgnh,bgkh->gnk", delta.astype(np.float64), cols)
    columns_expected = np.einsum("gnk,bgnh->bgkh", filters.astype(np.float64), delta)
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(cpu_kernels, "fused_gemms", lambda: None)
        updates = np.zeros((groups, n, k), np.float32)
        columns = numpy_ops.conv_backward_gemms(delta, cols, filters, updates, True)
        assert np.abs(updates - weights_expected).max() < 1e-5 * np.abs(weights_expected).max()
        assert np.abs(columns - columns_expected).max() < 1e-5 * np.abs(columns_expected).max()


@pytest.mark.parametrize("batch,groups,hw", [(2, 1, 61), (3, 2, 50), (2, 1, 700)])
def test_backward_gemms_for_big_weights_in_slices(monkeypatch, batch, groups, hw):
    """Big weight matrices take their backward GEMMs in slices on numba's threads, the
    weight gradients added by the GEMM itself image after image (backward_gemm_slices):
    within float32 rounding of float64, and the input delta's columns W^T . delta; the
    same values on a second call (the images' sums in one fixed order)."""
    from darknet_py.ops import cpu_kernels
    if cpu_kernels.fused_gemms() is None:
        pytest.skip("no OpenBLAS sgemm for numba's threads here")
    monkeypatch.setattr(numpy_ops, "BACKWARD_SLICED_WEIGHTS", 1)
    called = []
    real = cpu_kernels.backward_gemm_slices
    monkeypatch.setattr(cpu_kernels, "backward_gemm_slices",
                        lambda *args: called.append(1) or real(*args))
    rng = np.random.default_rng(batch * 100 + hw)
    n, k = 37, 45
    delta = rng.standard_normal((batch, groups, n, hw)).astype(np.float32)
    cols = rng.standard_normal((batch, groups, k, hw)).astype(np.float32)
    filters = rng.standard_normal((groups, n, k)).astype(np.float32)
    start = rng.standard_normal((groups, n, k)).astype(np.float32)
    updates = start.copy()
    columns = numpy_ops.conv_backward_gemms(delta, cols, filters, updates, True)
    assert called
    weights_expected = start + np.einsum("bgnh,bgkh->gnk", delta.astype(F64), cols)
    columns_expected = np.einsum("gnk,bgnh->bgkh", filters.astype(F64), delta)
    assert np.abs(updates - weights_expected).max() < 1e-5 * np.abs(weights_expected).max()
    assert np.abs(columns - columns_expected).max() < 1e-5 * np.abs(columns_expected).max()
    # without input columns only the weight gradients
    again = start.copy()
    assert numpy_ops.conv_backward_gemms(delta, cols, filters, again, False) is None
    np.testing.assert_array_equal(again, updates)


def test_training_zeroes_and_keeps_each_layers_delta_array():
    """Each minibatch zeroes every layer's delta in the array it had (darknet's l.delta,
    allocated once) instead of a new one, with the gradients a new zeroed array gives."""
    x, truth = batch(make_net())
    kept, fresh = make_net(), make_net()
    for net in (kept, fresh):
        net.options.learning_rate = 0.0
        net.train_step(x, truth)
    arrays = [layer.delta for layer in kept.layers]
    for layer in fresh.layers:
        layer.delta = None   # nothing to keep: new zeroed arrays
    _, kept_deltas, kept_grads = run_ours(kept, x, truth)
    _, fresh_deltas, fresh_grads = run_ours(fresh, x, truth)
    assert any(layer.delta is array for layer, array in zip(kept.layers, arrays)
               if layer.type == "convolutional")
    for key in fresh_grads:
        np.testing.assert_array_equal(kept_grads[key], fresh_grads[key])
    for key in fresh_deltas:
        np.testing.assert_array_equal(kept_deltas[key], fresh_deltas[key])
