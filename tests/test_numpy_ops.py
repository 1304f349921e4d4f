"""The NumPy backend's fast inference paths against plain, obviously-correct NumPy.

im2col, maxpool and the fused scale-shift-activation are written for speed (workspace,
per-offset copies, cache-sized blocks on a thread pool); here each is checked value for
value against a direct formulation, on odd shapes and with 1 and several threads.
"""
import itertools

import numpy as np
import pytest

from darknet_py.ops import numpy_ops as ops
from darknet_py.ops import threads

F32 = np.float32


@pytest.fixture(params=[1, 3], ids=["1thread", "3threads"])
def thread_setting(request, monkeypatch):
    monkeypatch.setenv("DARKNET_PY_THREADS", str(request.param))
    monkeypatch.setattr(threads, "MIN_PARALLEL_ELEMENTS", 1)   # parallel even when small
    monkeypatch.setattr(threads, "_pool", None)
    return request.param


def naive_im2col(x, size, stride, pad, out_h, out_w):
    batch, channels, height, width = x.shape
    padded = np.zeros((batch, channels, height + 2 * pad, width + 2 * pad), F32)
    padded[:, :, pad:pad + height, pad:pad + width] = x
    cols = np.zeros((batch, channels, size, size, out_h, out_w), F32)
    for ky, kx, row, col in itertools.product(range(size), range(size), range(out_h),
                                              range(out_w)):
        cols[:, :, ky, kx, row, col] = padded[:, :, row * stride + ky, col * stride + kx]
    return cols.reshape(batch, channels * size * size, out_h * out_w)


@pytest.mark.parametrize("shape,size,stride,pad", [
    ((1, 3, 7, 9), 3, 1, 1), ((2, 5, 8, 8), 3, 2, 1), ((1, 4, 6, 5), 5, 1, 2),
    ((2, 3, 9, 7), 1, 2, 0), ((1, 2, 4, 4), 3, 1, 3), ((1, 6, 13, 13), 3, 1, 0),
    ((1, 1, 2, 3), 3, 3, 2)])
def test_im2col_matches_naive(thread_setting, shape, size, stride, pad):
    x = np.random.default_rng(1).standard_normal(shape).astype(F32)
    out_h = (shape[2] + 2 * pad - size) // stride + 1
    out_w = (shape[3] + 2 * pad - size) // stride + 1
    # a stale workspace must not leak into the result
    ops.im2col(np.full((2, 8, 16, 16), 7, F32), 3, 1, 0, 14, 14)
    got = ops.im2col(x, size, stride, pad, out_h, out_w)
    np.testing.assert_array_equal(got, naive_im2col(x, size, stride, pad, out_h, out_w))


def naive_maxpool(x, size, stride, pad, out_h, out_w):
    top = pad // 2
    out = np.full(x.shape[:2] + (out_h, out_w), -np.finfo(F32).max, F32)
    for row, col, ky, kx in itertools.product(range(out_h), range(out_w), range(size),
                                              range(size)):
        y, x_ = row * stride + ky - top, col * stride + kx - top
        if 0 <= y < x.shape[2] and 0 <= x_ < x.shape[3]:
            out[:, :, row, col] = np.maximum(out[:, :, row, col], x[:, :, y, x_])
    return out


@pytest.mark.parametrize("shape,size,stride", [
    ((1, 3, 8, 8), 2, 2), ((2, 4, 7, 9), 2, 2), ((1, 5, 13, 13), 2, 1), ((1, 2, 9, 6), 3, 2)])
def test_maxpool_inference_matches_naive_and_training_path(thread_setting, shape, size, stride):
    x = np.random.default_rng(2).standard_normal(shape).astype(F32)
    pad = size - 1   # darknet's default padding
    out_h = (shape[2] + pad - size) // stride + 1
    out_w = (shape[3] + pad - size) // stride + 1
    fast, none = ops.maxpool(x, size, stride, pad, out_h, out_w, want_indexes=False)
    slow, indexes = ops.maxpool(x, size, stride, pad, out_h, out_w, want_indexes=True)
    assert none is None and indexes.shape == slow.shape
    np.testing.assert_array_equal(fast, naive_maxpool(x, size, stride, pad, out_h, out_w))
    np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize("activation", ["leaky", "logistic", "linear", "relu", "elu"])
@pytest.mark.parametrize("with_scale", [True, False])
def test_scale_shift_activate_equals_the_separate_steps(thread_setting, activation,
                                                        with_scale):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 33, 17)).astype(F32) * 4
    factor = rng.standard_normal(5).astype(F32) if with_scale else None
    shift = rng.standard_normal(5).astype(F32)
    expected = x * factor[None, :, None, None] if with_scale else x.copy()
    expected = ops.activate(expected + shift[None, :, None, None], activation, fast=True)
    got = ops.scale_shift_activate(x, factor, shift, activation)
    assert got is x or np.shares_memory(got, x)   # in place: no second output buffer
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("length,per_item", [(1, 10), (7, 1), (100, 5000), (1000, 3)])
def test_for_blocks_covers_every_item_once(thread_setting, length, per_item):
    seen = np.zeros(length, np.int64)

    def work(start, stop):
        seen[start:stop] += 1

    threads.for_blocks(length, per_item, work, block_elements=4096)
    np.testing.assert_array_equal(seen, 1)


def test_for_blocks_raises_a_workers_error(thread_setting):
    def work(start, stop):
        if start > 0:
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        threads.for_blocks(10, 10**5, work, block_elements=10**5)


def test_matmul_takes_transposed_views_without_copying():
    """Transposed operands (stacked or not) go to BLAS as they are; other strided views are
    copied first. Either way the product equals the one of contiguous copies."""
    rng = np.random.default_rng(4)
    a = rng.standard_normal((2, 7, 5)).astype(F32)
    b = rng.standard_normal((2, 9, 7)).astype(F32)
    transposed, flat_transposed = a.transpose(0, 2, 1), a[0].T
    every_other = rng.standard_normal((2, 7, 18)).astype(F32)[:, :, ::2]
    assert ops._blas_ready(transposed) is transposed
    assert ops._blas_ready(flat_transposed) is flat_transposed
    copied = ops._blas_ready(every_other)
    assert copied.flags.c_contiguous and not np.shares_memory(copied, every_other)
    np.testing.assert_allclose(ops.matmul(b, every_other),
                               b @ np.ascontiguousarray(every_other), rtol=1e-6)
    np.testing.assert_allclose(ops.matmul(transposed, b.transpose(0, 2, 1)),
                               np.ascontiguousarray(transposed)
                               @ np.ascontiguousarray(b.transpose(0, 2, 1)), rtol=1e-6)


@pytest.mark.parametrize("a_shape,b_shape", [
    ((16, 27), (2, 27, 12000)),          # a thin first layer: bands of columns
    ((1, 300, 200), (2, 1, 200, 169)),   # 13x13: bands of rows
    ((2, 40, 72), (3, 2, 72, 1500)),     # grouped, three images
])
def test_large_gemms_on_numba_threads(monkeypatch, a_shape, b_shape):
    """matmul's large float32 GEMMs run on numba's threads in bands (_team_matmul,
    cpu_kernels.sliced_gemms), within float32 GEMM rounding of float64 (OpenBLAS's
    AVX-512 kernels give its threaded GEMM's values bit for bit, its Haswell kernels,
    whose threaded and single-threaded GEMMs already differ, do not); small ones and
    other layouts are left to NumPy."""
    from darknet_py.ops import cpu_kernels
    if cpu_kernels.fused_gemms() is None:
        pytest.skip("no OpenBLAS sgemm for numba's threads here")
    monkeypatch.setenv("DARKNET_PY_THREADS", "2")
    rng = np.random.default_rng(sum(a_shape))
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    team = ops._team_matmul(a, b)
    assert team is not None and team.shape == np.matmul(a, b).shape
    reference = np.matmul(a.astype(np.float64), b)
    scale = np.abs(a).astype(np.float64) @ np.abs(b)   # the sum of |terms| per entry
    assert (np.abs(team - reference) <= 1e-6 * scale).all()
    np.testing.assert_array_equal(ops.matmul(a, b), team)   # the path matmul takes
    assert ops._team_matmul(a[..., :2, :], b) is None               # small
    assert ops._team_matmul(a, b.astype(np.float64)) is None        # not float32
    assert ops._team_matmul(a, np.swapaxes(b, -1, -2).copy().swapaxes(-1, -2)) is None
