"""Every CUDA kernel of the GPU backend against the NumPy backend (the reference), on fresh
random inputs of several shapes, odd sizes included.

Each test runs twice (tests/gpu_support.py): on a real GPU through CuPy (marked `gpu`;
skips with the reason when CuPy or a device is missing) and with the kernels compiled for
the CPU by tests/cuda_emulator.py (runs wherever g++ is). Every output buffer the backend
allocates is poisoned first (NaN, or -7777 for indexes), so an element a kernel forgets
to write shows up as NaN. Bounds (issue 4): relative L2 <= 1e-5 for forward operations,
<= 1e-4 for gradients; pure data movement (im2col, reorg, maxpool) and the operations whose
arithmetic is the same operation for operation must be bit-identical.
"""
import numpy as np
import pytest

from conftest import rel_l2
from darknet_py import activations
from darknet_py.ops import numpy_ops as ref
from darknet_py.ops.cupy_ops import CupyOps
from gpu_support import KINDS, backend

FORWARD = 1e-5
GRADIENT = 1e-4
F32 = np.float32
SHAPES = [(1, 1, 1, 1), (2, 3, 7, 5), (3, 5, 13, 11), (1, 16, 20, 20), (2, 4, 9, 17)]


@pytest.fixture(params=KINDS)
def gpu(request, monkeypatch):
    ops = backend(request.param)
    cp = ops.cp

    def poisoned(shape, dtype=F32):
        fill = np.nan if np.dtype(dtype).kind == "f" else -7777
        return cp.full(shape, fill, dtype=dtype)
    monkeypatch.setattr(ops, "_empty", poisoned)
    return ops


@pytest.fixture
def rng(request):
    return np.random.default_rng(abs(hash(request.node.name)) % 2**32)


def host(gpu, array):
    return np.asarray(gpu.to_host(array))


def check(gpu, out, expected, bound=FORWARD, exact=False):
    out = host(gpu, out)
    expected = np.asarray(expected)
    assert out.shape == expected.shape, f"shape {out.shape} != {expected.shape}"
    unwritten = np.isnan(out) & ~np.isnan(expected)
    assert not unwritten.any(), f"{int(unwritten.sum())} of {out.size} elements not written"
    if exact:
        np.testing.assert_array_equal(out, expected)
    else:
        error = rel_l2(out, expected)
        assert error <= bound, f"relative L2 {error:.3g} > {bound:g}"


def normal(rng, shape, scale=1.0, offset=0.0):
    return (rng.standard_normal(shape) * scale + offset).astype(F32)


# ---------------------------------------------------------------- interface
def test_cupy_backend_has_every_numpy_op():
    """The GPU backend offers every public name of the reference (runs without a GPU)."""
    public = [n for n in dir(ref) if not n.startswith("_") and callable(getattr(ref, n))
              and getattr(getattr(ref, n), "__module__", "") == ref.__name__]
    missing = [n for n in public if not hasattr(CupyOps, n)]
    assert not missing, f"cupy_ops lacks {missing}"


def _no_cupy():
    try:
        import cupy  # noqa: F401
    except Exception:
        return True
    return False


@pytest.fixture
def fresh_registry(monkeypatch):
    import darknet_py.ops as registry
    monkeypatch.setattr(registry, "_GPU_COUNT", None)
    monkeypatch.delenv("DARKNET_PY_DEVICE", raising=False)
    return registry


@pytest.mark.skipif(not _no_cupy(), reason="CuPy is installed: the no-GPU fallback is not "
                                           "reachable here")
def test_device_choice_without_cupy(fresh_registry, capsys, monkeypatch):
    """darknet_py runs without CuPy: the default is the CPU, and a GPU request warns and
    falls back to it, as a darknet built without GPU=1 does."""
    registry = fresh_registry
    assert not registry.gpu_available()
    assert registry.get_ops() is ref and registry.get_ops("cpu") is ref
    assert registry.get_ops(0) is ref
    assert "no GPU backend available for device 0" in capsys.readouterr().err
    monkeypatch.setenv("DARKNET_PY_DEVICE", "0")
    assert registry.get_ops() is ref


def test_device_choice_rules(fresh_registry, monkeypatch):
    """'cpu' and -1 are NumPy whatever the machine; DARKNET_PY_DEVICE=cpu replaces the
    GPU default; a backend object is used as given; an index past the last GPU is an error."""
    registry = fresh_registry
    monkeypatch.setattr(registry, "_GPU_COUNT", 1)    # as if CuPy saw one device
    made = []
    monkeypatch.setattr(registry, "cupy_backend", lambda index=0: made.append(index) or "gpu")
    assert registry.get_ops("cpu") is ref and registry.get_ops(-1) is ref
    assert registry.get_ops() == "gpu" and registry.get_ops(0) == "gpu" and made == [0, 0]
    monkeypatch.setenv("DARKNET_PY_DEVICE", "cpu")
    assert registry.get_ops() is ref
    custom = CupyOps.__new__(CupyOps)
    assert registry.get_ops(custom) is custom
    from darknet_py.errors import DarknetError
    with pytest.raises(DarknetError, match="GPU 3 does not exist"):
        registry.get_ops(3)


# ---------------------------------------------------------------- convolution
GEOMETRIES = [(3, 1, 1), (3, 2, 1), (1, 1, 0), (2, 2, 0), (5, 2, 2), (3, 1, 0), (4, 3, 2)]


def _out_size(size, stride, pad, h, w):
    return (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1


@pytest.mark.parametrize("shape", SHAPES[1:])
@pytest.mark.parametrize("size,stride,pad", GEOMETRIES)
def test_im2col(gpu, rng, shape, size, stride, pad):
    x = normal(rng, shape)
    out_h, out_w = _out_size(size, stride, pad, *shape[2:])
    if out_h < 1 or out_w < 1:
        pytest.skip("no output for this geometry")
    check(gpu, gpu.im2col(gpu.to_device(x), size, stride, pad, out_h, out_w),
          ref.im2col(x, size, stride, pad, out_h, out_w), exact=True)


@pytest.mark.parametrize("shape", SHAPES[1:])
@pytest.mark.parametrize("size,stride,pad", GEOMETRIES)
def test_col2im_add(gpu, rng, shape, size, stride, pad):
    out_h, out_w = _out_size(size, stride, pad, *shape[2:])
    if out_h < 1 or out_w < 1:
        pytest.skip("no output for this geometry")
    cols = normal(rng, (shape[0], shape[1] * size * size, out_h * out_w))
    image = normal(rng, shape)
    expected = image.copy()
    ref.col2im_add(cols, expected, size, stride, pad, out_h, out_w)
    device_image = gpu.to_device(image)
    gpu.col2im_add(gpu.to_device(cols), device_image, size, stride, pad, out_h, out_w)
    check(gpu, device_image, expected, GRADIENT)


@pytest.mark.parametrize("a_shape,b_shape", [
    ((1, 16, 27), (2, 1, 27, 35)),      # conv forward: (groups, n, k) @ (B, groups, k, hw)
    ((2, 3, 18), (3, 2, 18, 49)),       # grouped conv
    ((5, 7), (7, 3)),                   # connected
    ((1, 33, 17), (1, 17, 129)),
    ((4, 1, 1), (4, 1, 5)),
])
@pytest.mark.parametrize("ordered", [False, True], ids=["cublas", "ordered"])
def test_matmul(gpu, rng, a_shape, b_shape, ordered):
    a, b = normal(rng, a_shape), normal(rng, b_shape)
    out = gpu.matmul(gpu.to_device(a), gpu.to_device(b), ordered)
    # darknet's gemm order is the same float operations on both backends: bit-identical
    check(gpu, out, ref.matmul(a, b, ordered), exact=ordered)


def test_matmul_of_transposed_views(gpu, rng):
    """The layers hand in transposed views (connected: x . W^T; backward: delta^T . x)."""
    x, w = normal(rng, (3, 40)), normal(rng, (7, 40))
    dx, dw = gpu.to_device(x), gpu.to_device(w)
    check(gpu, gpu.matmul(dx, dw.T), ref.matmul(x, w.T))
    check(gpu, gpu.matmul(dx.T, gpu.matmul(dx, dw.T)), ref.matmul(x.T, ref.matmul(x, w.T)))
    check(gpu, gpu.matmul(dx, dw.T, True), ref.matmul(x, w.T, True), exact=True)


# ---------------------------------------------------------------- normalisation
@pytest.mark.parametrize("shape", SHAPES + [(4, 7, 1, 1)])
def test_batchnorm_inference(gpu, rng, shape):
    x = normal(rng, shape, 3.0, 0.5)
    mean = normal(rng, shape[1])
    variance = np.abs(normal(rng, shape[1])) * 2
    variance[0] = 0   # partial-file layers: variance 0, where the CPU rule matters
    check(gpu, gpu.batchnorm_inference(gpu.to_device(x), gpu.to_device(mean),
                                       gpu.to_device(variance)),
          ref.batchnorm_inference(x, mean, variance), exact=True)


@pytest.mark.parametrize("shape", SHAPES + [(4, 7, 1, 1)])
def test_scale_and_bias(gpu, rng, shape):
    x, values = normal(rng, shape), normal(rng, shape[1])
    dx, dv = gpu.to_device(x), gpu.to_device(values)
    check(gpu, gpu.scale_bias(dx, dv), ref.scale_bias(x, values), exact=True)
    check(gpu, gpu.add_bias(dx, dv), ref.add_bias(x, values), exact=True)


@pytest.mark.parametrize("shape", SHAPES + [(4, 7, 1, 1), (8, 3, 40, 40)])
def test_channel_and_bias_sums(gpu, rng, shape):
    x = normal(rng, shape, 1.0, 0.3)
    check(gpu, gpu.channel_sums(gpu.to_device(x)), ref.channel_sums(x), GRADIENT)
    check(gpu, gpu.bias_sums(gpu.to_device(x)), ref.bias_sums(x), GRADIENT)


@pytest.mark.parametrize("shape", SHAPES[1:] + [(4, 7, 1, 1), (8, 3, 40, 40)])
@pytest.mark.parametrize("exact", [False, True], ids=["tree", "ordered"])
def test_batchnorm_statistics(gpu, rng, shape, exact):
    x = normal(rng, shape, 2.0, 1.5)
    mean, variance = gpu.batchnorm_statistics(gpu.to_device(x), exact)
    ref_mean, ref_variance = ref.batchnorm_statistics(x, exact)
    # exact mode runs darknet's loops in darknet's order: bit-identical
    check(gpu, mean, ref_mean, exact=exact)
    check(gpu, variance, ref_variance, exact=exact)


@pytest.mark.parametrize("n", [1, 7, 1000])
def test_update_rolling(gpu, rng, n):
    rolling, value = normal(rng, n), normal(rng, n)
    expected = rolling.copy()
    ref.update_rolling(expected, value)
    device_rolling = gpu.to_device(rolling)
    gpu.update_rolling(device_rolling, gpu.to_device(value))
    check(gpu, device_rolling, expected, exact=True)


@pytest.mark.parametrize("shape", SHAPES[1:] + [(4, 7, 1, 1), (8, 3, 40, 40)])
def test_batchnorm_backward(gpu, rng, shape):
    x = normal(rng, shape, 2.0, 0.7)
    delta = normal(rng, shape)
    mean, variance = ref.batchnorm_statistics(x)
    scales = normal(rng, shape[1], 0.5, 1.0)
    d = gpu.to_device
    out = gpu.batchnorm_backward(d(delta), d(x), d(mean), d(variance), d(scales))
    check(gpu, out, ref.batchnorm_backward(delta, x, mean, variance, scales), GRADIENT)


# ---------------------------------------------------------------- activations
def _activation_inputs(rng):
    special = np.array([0, -0.0, 1, -1, 4, -4, 0.5, -0.5, 2, -2, 3.5, -3.5, 1e-8, -1e-8,
                        40, -40, 400, -400, 1e30, -1e30], dtype=F32)
    return np.concatenate([special, normal(rng, 997, 3.0)]).reshape(1, 1, 1, -1)


@pytest.mark.parametrize("activation", activations.NAMES)
def test_activate(gpu, rng, activation):
    x = _activation_inputs(rng)
    with np.errstate(over="ignore", invalid="ignore"):   # exp(1e30): inf, as darknet
        expected = ref.activate(x, activation)
    check(gpu, gpu.activate(gpu.to_device(x), activation), expected)


@pytest.mark.parametrize("activation", activations.NAMES)
def test_gradient(gpu, rng, activation):
    # gradients take the layer's output: feed them outputs of the activation
    with np.errstate(over="ignore", invalid="ignore"):
        y = ref.activate(_activation_inputs(rng), activation)
    check(gpu, gpu.gradient(gpu.to_device(y), activation), ref.gradient(y, activation),
          GRADIENT)


def test_logistic_of_a_strided_view(gpu, rng):
    x = normal(rng, (2, 5, 9, 13), 4.0)
    view = gpu.to_device(x)[:, 1:4]
    check(gpu, gpu.logistic(view), ref.logistic(x[:, 1:4]))


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5, 1000), (2, 1), (4, 3, 2, 33)])
def test_sequential_sum(gpu, rng, shape):
    x = normal(rng, shape, 1.0, 0.2)
    check(gpu, gpu.sequential_sum(gpu.to_device(x)), ref.sequential_sum(x))


def test_dropout_mask(gpu, rng):
    draws = rng.random((2, 3, 7, 5), dtype=F32)
    check(gpu, gpu.dropout_mask(draws, 0.3, 1 / 0.7), ref.dropout_mask(draws, 0.3, 1 / 0.7),
          exact=True)


# ---------------------------------------------------------------- pooling
POOLS = [(2, 2, 1), (2, 1, 1), (3, 2, 2), (3, 1, 2), (5, 3, 4), (1, 1, 0), (2, 2, 0), (3, 3, 0)]


def _pool_size(size, stride, pad, h, w):
    return (h + pad - size) // stride + 1, (w + pad - size) // stride + 1


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("size,stride,pad", POOLS)
@pytest.mark.parametrize("ties", [False, True], ids=["random", "ties"])
def test_maxpool(gpu, rng, shape, size, stride, pad, ties):
    x = normal(rng, shape)
    if ties:   # few distinct values: the first maximum in window order must win
        x = np.round(x).astype(F32)
    out_h, out_w = _pool_size(size, stride, pad, *shape[2:])
    if out_h < 1 or out_w < 1:
        pytest.skip("no output for this geometry")
    out, indexes = gpu.maxpool(gpu.to_device(x), size, stride, pad, out_h, out_w)
    ref_out, ref_indexes = ref.maxpool(x, size, stride, pad, out_h, out_w)
    check(gpu, out, ref_out, exact=True)
    np.testing.assert_array_equal(host(gpu, indexes), ref_indexes)
    delta = normal(rng, ref_out.shape)
    grad = gpu.maxpool_backward(gpu.to_device(delta), indexes, x.shape, size, stride, pad)
    check(gpu, grad, ref.maxpool_backward(delta, ref_indexes, x.shape, size, stride, pad),
          GRADIENT)


@pytest.mark.parametrize("shape", SHAPES)
def test_avgpool(gpu, rng, shape):
    x = normal(rng, shape)
    check(gpu, gpu.avgpool(gpu.to_device(x)), ref.avgpool(x), exact=True)
    delta, input_delta = normal(rng, shape[:2] + (1, 1)), normal(rng, shape)
    expected = input_delta.copy()
    ref.avgpool_backward(delta, expected)
    device_input_delta = gpu.to_device(input_delta)
    gpu.avgpool_backward(gpu.to_device(delta), device_input_delta)
    check(gpu, device_input_delta, expected, exact=True)


# ---------------------------------------------------------------- reorg
@pytest.mark.parametrize("shape,stride", [((1, 4, 6, 8), 2), ((2, 8, 5, 3), 2),
                                          ((1, 18, 3, 7), 3), ((2, 64, 13, 13), 2),
                                          ((1, 3, 4, 5), 1)])
@pytest.mark.parametrize("forward", [False, True])
def test_reorg(gpu, rng, shape, stride, forward):
    x = normal(rng, shape)
    check(gpu, gpu.reorg(gpu.to_device(x), stride, forward), ref.reorg(x, stride, forward),
          exact=True)


# ---------------------------------------------------------------- softmax
@pytest.mark.parametrize("shape,offsets", [((3, 10), [0]), ((2, 1), [0]),
                                           ((4, 1000), [0]), ((5, 35), [0, 5, 17, 34]),
                                           ((2, 3, 12), [0, 2, 3, 9]), ((7, 20), [0, 10])])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("gpu_mode", [False, True], ids=["cpu-softmax", "softmax_device"])
def test_softmax_groups(gpu, rng, shape, offsets, temperature, gpu_mode):
    x = normal(rng, shape, 4.0)
    out = gpu.softmax_groups(gpu.to_device(x), offsets, temperature, gpu_mode)
    check(gpu, out, ref.softmax_groups(x, offsets, temperature, gpu_mode))


def test_softmax_of_a_transposed_view(gpu, rng):
    """The region layer hands the class planes in transposed (classes last)."""
    x = normal(rng, (2, 5, 20, 13 * 13), 3.0)
    view = gpu.to_device(x).transpose(0, 1, 3, 2)
    check(gpu, gpu.softmax_groups(view, [0]),
          ref.softmax_groups(x.transpose(0, 1, 3, 2), [0]))


@pytest.mark.parametrize("masked", [False, True])
def test_softmax_cross_entropy(gpu, rng, masked):
    output = ref.softmax_groups(normal(rng, (4, 50)), [0, 10, 30])
    truth = np.zeros((4, 50), F32)
    truth[np.arange(4), rng.integers(0, 50, 4)] = 1
    truth[:, 30:] = -1234   # SECRET_NUM: entries the label does not reach in the tree
    delta, cost = gpu.softmax_cross_entropy(gpu.to_device(truth), gpu.to_device(output), masked)
    ref_delta, ref_cost = ref.softmax_cross_entropy(truth, output, masked)
    check(gpu, delta, ref_delta, GRADIENT)
    assert cost == pytest.approx(ref_cost, rel=FORWARD)


# ---------------------------------------------------------------- region
def _tree_offsets(rng, classes):
    cuts = np.sort(rng.choice(np.arange(1, classes), size=min(4, classes - 1), replace=False))
    return np.concatenate([[0], cuts]).astype(np.int64)


@pytest.mark.parametrize("anchors,classes,h,w", [(1, 3, 1, 1), (5, 20, 13, 13),
                                                 (3, 7, 5, 9), (2, 1, 4, 3)])
@pytest.mark.parametrize("mode", ["logistic", "softmax", "softmax+background", "tree",
                                  "background"])
def test_region_activate(gpu, rng, anchors, classes, h, w, mode):
    coords = 4
    entries = coords + classes + 1
    background = int("background" in mode)
    softmax = int("softmax" in mode)
    tree = _tree_offsets(rng, classes) if mode == "tree" and classes > 1 else None
    x = normal(rng, (2, anchors * entries, h, w), 3.0)
    args = (anchors, entries, coords, classes, background, softmax, tree)
    check(gpu, gpu.region_activate(gpu.to_device(x), *args), ref.region_activate(x, *args))


# ---------------------------------------------------------------- update
@pytest.mark.parametrize("n", [1, 9, 4321])
@pytest.mark.parametrize("decay", [False, True])
def test_sgd_step(gpu, rng, n, decay):
    param, update = normal(rng, n), normal(rng, n)
    rate, momentum, decay_term = F32(0.001) / F32(64), F32(0.9), F32(-F32(0.0005)) * F32(64)
    ref_param, ref_update = param.copy(), update.copy()
    ref.sgd_step(ref_param, ref_update, rate, momentum, decay_term if decay else None)
    device_param, device_update = gpu.to_device(param), gpu.to_device(update)
    gpu.sgd_step(device_param, device_update, rate, momentum, decay_term if decay else None)
    check(gpu, device_param, ref_param, exact=True)
    check(gpu, device_update, ref_update, exact=True)
