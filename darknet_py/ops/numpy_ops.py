"""The NumPy backend: every numeric primitive the layers need, on the CPU.

This is the reference implementation. Each function reproduces darknet's CPU arithmetic
(float32 storage, the few places darknet computes in double) closely enough that outputs
agree with darknet to about 1e-6 relative; the comments say where the order of summation
differs (BLAS GEMM, pairwise sums) and so the last bits may.

Arrays are NCHW float32. A layer never calls numpy directly for numerics: it calls these,
and the CuPy backend provides the same names.
"""
import functools
import os
import weakref

import numpy as np

from .. import activations
from ..settings import (BN_BACKWARD_EPSILON, BN_EPSILON, FLT_MAX, SECRET_NUM, import_numba,
                        thread_count)
from . import cpu_kernels, weight_gradient, winograd
from .threads import for_blocks

name = "numpy"
xp = np
F32 = np.float32
F64 = np.float64


def to_device(array):
    return np.ascontiguousarray(array, dtype=F32)


def to_host(array):
    return np.asarray(array)


def synchronize():
    """Nothing is queued on the CPU."""


def gemm_library():
    """NumPy's BLAS as its build names it, with OpenBLAS's kernels for this CPU and the
    OPENBLAS_CORETYPE that forced them, if one did."""
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    text = f"{blas.get('name', 'unknown BLAS')} {blas.get('version', '')}".strip()
    corename = cpu_kernels.openblas_corename()
    if corename:
        text += f", {corename} kernels"
        forced = os.environ.get("OPENBLAS_CORETYPE", "").strip()
        if forced:
            text += f" (OPENBLAS_CORETYPE={forced})"
    return text


def peak_device_bytes():
    return None


def count_non_finite(x):
    """NaN and inf survive a sum, so one float64 sum answers the usual case (none)."""
    with np.errstate(all="ignore"):
        if np.isfinite(x.sum(dtype=F64)):
            return 0
        return int(x.size - np.count_nonzero(np.isfinite(x)))


def zeros(shape):
    return np.zeros(shape, dtype=F32)


# ---------------------------------------------------------------- convolution
# im2col writes into a reusable per-thread workspace (darknet's net->workspace): a fresh
# array per layer costs page faults on every forward. Columns bigger than this are allocated
# each time instead, so a big training batch does not pin its columns in memory.
WORKSPACE_LIMIT_BYTES = 256 << 20


def _scratch(name, shape):
    """A float32 array of `shape` valid until the calling thread's next _scratch(name)
    (cpu_kernels.scratch; a new array where it would pass WORKSPACE_LIMIT_BYTES): im2col's
    columns, the backward's products and columns (10-80 MB a layer, whose fresh pages
    every step cost more than the GEMMs at 13x13)."""
    count = int(np.prod(shape, dtype=np.int64))
    if count * 4 > WORKSPACE_LIMIT_BYTES:
        return np.empty(shape, dtype=F32)
    return cpu_kernels.scratch(name, count).reshape(shape)


def _valid_range(offset, stride, pad, in_size, out_size):
    """Output positions o in [lo, hi) whose input position o*stride + offset - pad lies
    inside [0, in_size), and the first such input position."""
    lo = max(0, -(-(pad - offset) // stride))
    hi = min(out_size, (in_size - 1 + pad - offset) // stride + 1)
    hi = max(hi, lo)
    return lo, hi, lo * stride + offset - pad


def im2col(x, size, stride, pad, out_h, out_w):
    """(B, C, H, W) -> (B, C*size*size, out_h*out_w), rows ordered (c, ky, kx) like darknet,
    zeros where a window reaches into the padding. The result lives in the workspace (see
    _scratch()): use it before the next im2col on this thread.

    No padded copy of the input: for each kernel offset the valid rectangle is copied with
    one strided assignment and the border strips are zeroed. Planes are split across threads."""
    batch, channels, height, width = x.shape
    cols = _scratch("im2col", (batch, channels * size * size, out_h * out_w))
    planes = x.reshape(batch * channels, height, width)
    grid = cols.reshape(batch * channels, size, size, out_h, out_w)
    spans = [(ky, kx, _valid_range(ky, stride, pad, height, out_h),
              _valid_range(kx, stride, pad, width, out_w))
             for ky in range(size) for kx in range(size)]

    def copy(start, stop):
        for ky, kx, (row_lo, row_hi, in_row), (col_lo, col_hi, in_col) in spans:
            target = grid[start:stop, ky, kx]
            n_rows, n_cols = row_hi - row_lo, col_hi - col_lo
            target[:, row_lo:row_hi, col_lo:col_hi] = planes[
                start:stop, in_row:in_row + stride * (n_rows - 1) + 1:stride,
                in_col:in_col + stride * (n_cols - 1) + 1:stride]
            if row_lo or row_hi < out_h or col_lo or col_hi < out_w:
                target[:, :row_lo] = 0
                target[:, row_hi:] = 0
                target[:, row_lo:row_hi, :col_lo] = 0
                target[:, row_lo:row_hi, col_hi:] = 0

    # A pure copy reuses nothing from cache: big blocks, few Python calls per block.
    for_blocks(batch * channels, size * size * out_h * out_w, copy, block_elements=1 << 21)
    return cols


def matmul(a, b, ordered=False):
    """float32 (..., M, K) @ (..., K, N).

    By default through BLAS, which blocks the sum over K: results differ from darknet's in
    the last bits (~1e-7 relative per layer, growing with depth). ordered=True reproduces
    darknet's gemm_nn exactly: C starts at 0 and, for k = 0, 1, ..., C += A[:, k] * B[k, :]
    with the product and the sum each rounded to float32 (no FMA, as darknet's x86-64 build).
    It is one vector operation per k, so it is slow: for tests and conversions, not speed.
    """
    if not ordered:
        out = _team_matmul(a, b)
        if out is not None:
            return out
        # numpy hands row- or column-major matrices (stacked or not) to BLAS; other
        # strided views take a loop 20x slower
        return np.matmul(_blas_ready(a), _blas_ready(b))
    out_shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
    out = np.zeros(out_shape, dtype=F32)
    product = np.empty(out_shape, dtype=F32)
    for k in range(a.shape[-1]):
        np.multiply(a[..., :, k:k + 1], b[..., k:k + 1, :], out=product)
        out += product
    return out


# A GEMM of at least this many multiply-adds runs on numba's threads (_team_matmul).
TEAM_MATMUL_MIN_FLOPS = 1 << 22


def _team_matmul(a, b):
    """a (M, K) or (G, M, K) @ b (..., [G,] K, N), both C-contiguous float32, on numba's
    threads (cpu_kernels.sliced_gemms: one single-threaded GEMM per band; with OpenBLAS's
    AVX-512 kernels the values of its threaded GEMM, with its Haswell kernels another
    float32 rounding as accurate: docs/QUIRKS.md), or None where that does not apply
    (no OpenBLAS sgemm for the kernels, small, other layouts): a training step
    mixes these GEMMs with numba's parallel kernels, and OpenBLAS's threads, spinning
    ~0.1 s after each of its calls, halved the speed of the kernels that followed."""
    if a.dtype != F32 or b.dtype != F32 or a.ndim not in (2, 3) or b.ndim < 2 or \
            not (a.flags.c_contiguous and b.flags.c_contiguous):
        return None
    m, k = a.shape[-2:]
    n = b.shape[-1]
    if b.shape[-2] != k or m * n * k < TEAM_MATMUL_MIN_FLOPS:
        return None
    groups = a.shape[0] if a.ndim == 3 else 1
    if a.ndim == 3 and (b.ndim < 3 or b.shape[-3] != groups):
        return None
    from .cpu_kernels import blas_single_threaded, fused_gemms, sliced_gemms
    sgemm = fused_gemms()
    if sgemm is None:
        return None
    lead = b.shape[:-3] if a.ndim == 3 else b.shape[:-2]
    pairs = int(np.prod(lead, dtype=np.int64)) * groups
    out = np.empty(lead + ((groups,) if a.ndim == 3 else ()) + (m, n), dtype=F32)
    a_index = np.arange(pairs, dtype=np.int64) % groups
    threads = thread_count()
    by_rows = n < 256 * threads
    parts = max(1, min(-(-2 * threads // pairs), m if by_rows else -(-n // 64)))
    with blas_single_threaded() as alone:
        if not alone:
            return None
        sliced_gemms(sgemm, a.reshape(groups, m, k), b.reshape(pairs, k, n),
                     out.reshape(pairs, m, n), a_index, parts, by_rows)
    return out


def _blas_ready(matrix):
    """matrix itself when numpy can hand it to BLAS: its last two axes row- or column-major
    with unit stride (a transpose goes to BLAS as a flag, whatever the stacking axes do);
    otherwise a contiguous copy."""
    if matrix.ndim < 2:
        return matrix
    item = matrix.itemsize
    rows, cols = matrix.shape[-2:]
    row_stride, col_stride = matrix.strides[-2:]
    if (col_stride == item and row_stride >= item * cols) or \
            (row_stride == item and col_stride >= item * rows):
        return matrix
    return np.ascontiguousarray(matrix)


# ---------------------------------------------------------------- inference convolution
# Plain inference (neither training nor exact) calls conv2d_inference, which picks the
# fastest formulation for the shape: Winograd F(2x2, 3x3) (ops/winograd.py: 2.25x fewer
# FLOPs, its transforms compiled by numba) for 3x3 stride-1 convolutions, a direct loop
# for those of 3 input channels, else im2col + GEMM as the training and exact paths
# compute it, the GEMM and the folded batch norm, bias and activation done block by
# block on the thread pool (cpu_kernels.gemm_tail).
# FAST_CONV = False keeps the training path's im2col + GEMM + scale_shift_activate for
# every shape (tests and benchmarks compare the two).
FAST_CONV = True
_winograd_filters = {}   # id(weights) -> (weakref to the weights, U, was it writable)
_spare_filters = {}   # id(weights) -> (weakref, the U array of a dropped transform)
_blocked_filters = {}   # id(weights) -> (weakref, blocked_conv's packed filters, writable)


def _conv_strategy(x_shape, weights_shape, size, stride, pad, groups):
    """'direct', 'blocked', 'winograd', 'gemm' or 'im2col': what conv2d_inference does for these
    shapes (shape rules, so the choice is deterministic). Winograd takes every 3x3
    stride-1 ungrouped convolution but those of 3 channels (a first layer), which
    cpu_kernels.rgb_conv3x3 computes directly in 0.6x Winograd's time. Measured against
    im2col + GEMM on this project's 2-core machine, Winograd was faster from 8 input
    channels at 208x208 to 1024 at 13x13, and within 0.1 ms on the few tiny shapes
    where it was not (16->32 channels at 13x13). Other ungrouped shapes take the GEMM by
    tasks; grouped ones, and every shape without numba, the training path's im2col."""
    if not (FAST_CONV and groups == 1 and cpu_kernels.compiled()):
        return "im2col"
    if size == 1 and (stride != 1 or pad != 0):
        # darknet reads a 1x1 layer's input without im2col whatever its stride or padding
        # (convolutional.py _columns); only the training path reproduces that reading
        return "im2col"
    if size == 3 and stride == 1 and pad <= 2 and x_shape[2] + 2 * pad >= 3 \
            and x_shape[3] + 2 * pad >= 3:
        out_h, out_w = x_shape[2] + 2 * pad - 2, x_shape[3] + 2 * pad - 2
        if out_h * out_w >= BLOCKED_MIN_POINTS and x_shape[1] <= BLOCKED_MAX_CHANNELS \
                and _blocked_ready():
            return "blocked"
        return "direct" if x_shape[1] == 3 else "winograd"
    return "gemm"


# The register-blocked direct convolution (ops/blocked_conv.py) takes a 3x3 stride-1
# layer of up to this many input channels from this many output points per image (a
# 40x40 map). Measured in the networks' forwards on this project's machine (AVX-512):
# 3->16 channels at 416x416 0.43x the 3-channel kernel's time, 3->32 0.66x; 16->32 at
# 208x208 0.89x Winograd's; from 32 channels Winograd's GEMMs grow efficient and win
# (32->64 at 208: 1.4x; 64->128 at 52-104: 1.0-1.2x; 128->256 at 52: 1.5x), as it does
# on small maps. BLOCKED_CONV = False keeps the 3-channel kernel and Winograd.
BLOCKED_CONV = True
BLOCKED_MIN_POINTS = 40 * 40
BLOCKED_MAX_CHANNELS = 16


def _blocked_ready():
    """Whether the blocked kernel is worth taking: numba compiles to 512-bit vectors."""
    if not BLOCKED_CONV:
        return False
    from . import simd
    return simd.wide_vectors()


def conv2d_inference(x, weights, size, stride, pad, groups, out_h, out_w, factor, shift,
                     activation, out=None, pool=False):
    """A convolutional layer's inference forward: x (B, C, H, W) convolved with weights
    (K, C/groups, size, size), then y*factor + shift per filter (factor None: + shift
    only, as add_bias) and the activation with activate(fast=True)'s arithmetic.

    The Winograd filters are transformed once per weights array and kept while it is
    alive; meanwhile the array is made read-only, so that an in-place change cannot go
    unnoticed (it raises instead of running on stale filters). forget_conv_weights makes
    it writable again: the layer calls it in every training or exact forward, before SGD
    updates the weights in place. Replacing the array (load_weights) starts afresh.

    out (the layer's previous output, in plain inference) is written into where it is a
    float32 C-contiguous array of the result's shape that x does not overlap
    (cpu_kernels.output_array); the im2col path, for other shapes, allocates.

    pool: darknet's size=2 stride=2 maxpool of the result instead (B, K, ceil(out_h/2),
    ceil(out_w/2)), windows at (2i, 2j), the same values bit for bit as
    maxpool_inference of the result: Winograd's output transform and the 3-channel
    kernel pool each 2x2 block as they write it (the full map never goes to memory);
    other shapes run the two one after the other."""
    strategy = _conv_strategy(x.shape, weights.shape, size, stride, pad, groups)
    if pool and not (strategy in ("winograd", "direct", "blocked") and x.dtype == F32 and
                     activation in cpu_kernels.FUSED_ACTIVATIONS):
        # no kernel of its own for this shape: the convolution, then the maxpool
        full = _convolve(strategy, x, weights, size, stride, pad, groups, out_h, out_w,
                         factor, shift, activation, None)
        return maxpool_inference(full, 2, 2, 1, (out_h + 1) // 2, (out_w + 1) // 2, out)
    return _convolve(strategy, x, weights, size, stride, pad, groups, out_h, out_w, factor,
                     shift, activation, out, pool)


# Default-mode training takes Winograd for a layer only with at least this many tiles
# in the minibatch: its filters are transformed afresh after every update (16*K*C
# floats written), which a GEMM over few tiles does not repay. yolov2's 1024-filter
# layers at 13x13 and batch 2 (98 tiles): im2col + GEMM 43 ms, Winograd 35 ms plus 25 ms
# for the transform; at 52x52 and beyond Winograd takes half the time.
TRAIN_WINOGRAD_MIN_TILES = 256


def _training_strategy(x_shape, weights_shape, size, stride, pad, groups, out_h, out_w):
    """conv2d's choice: conv2d_inference's, but Winograd only with enough tiles."""
    strategy = _conv_strategy(x_shape, weights_shape, size, stride, pad, groups)
    if strategy == "blocked":
        # training keeps what it had: Winograd, whose filters serve the input delta's
        # adjoint, and the 3-channel kernel
        strategy = "direct" if x_shape[1] == 3 else "winograd"
    tiles = x_shape[0] * ((out_h + 1) // 2) * ((out_w + 1) // 2)
    if strategy == "winograd" and tiles < TRAIN_WINOGRAD_MIN_TILES:
        return "im2col"
    return strategy


def conv2d(x, weights, size, stride, pad, groups, out_h, out_w):
    """The convolution alone (no bias, no activation) for a default-mode training
    forward, by _training_strategy: Winograd (its filters kept for conv_input_delta_add
    until sgd_step changes the weights), the direct 3-channel kernel, or a GEMM."""
    strategy = _training_strategy(x.shape, weights.shape, size, stride, pad, groups, out_h,
                                  out_w)
    if strategy == "im2col" or x.dtype != F32:
        return _conv_im2col(x, weights, size, stride, pad, groups, out_h, out_w)
    return _convolve(strategy, x, weights, size, stride, pad, groups, out_h, out_w, None,
                     np.zeros(weights.shape[0], dtype=F32), "linear", None)


def _convolve(strategy, x, weights, size, stride, pad, groups, out_h, out_w, factor, shift,
              activation, out, pool=False):
    """conv2d_inference's work for a chosen strategy (pool: Winograd and direct only)."""
    n_filters = weights.shape[0]
    if strategy == "im2col" or x.dtype != F32:
        out = _conv_im2col(x, weights, size, stride, pad, groups, out_h, out_w)
        return scale_shift_activate(out, factor, shift, activation)
    factors = np.ascontiguousarray(np.ones(n_filters, dtype=F32) if factor is None
                                   else factor, dtype=F32)
    shifts = np.ascontiguousarray(shift, dtype=F32)
    if strategy == "winograd":
        out, activated = winograd.conv3x3(x, _transformed_filters(weights), pad, factors,
                                          shifts, activation, for_blocks, out, pool=pool)
    elif strategy == "direct":
        code = cpu_kernels.FUSED_ACTIVATIONS.get(activation, 0)
        out = cpu_kernels.rgb_conv3x3(x, weights, pad, factors, shifts, code, out, pool)
        activated = activation in cpu_kernels.FUSED_ACTIVATIONS
    elif strategy == "blocked":
        from . import blocked_conv
        code = cpu_kernels.FUSED_ACTIVATIONS.get(activation, 0)
        out = blocked_conv.conv3x3(x, _packed_filters(weights), n_filters, pad, factors,
                                   shifts, code, out, pool)
        activated = activation in cpu_kernels.FUSED_ACTIVATIONS
    else:
        cols = _conv_columns(x, size, stride, pad, out_h, out_w)
        filters = weights.reshape(n_filters, -1)
        if cols.shape[1] != filters.shape[1]:   # the layer's own path says what is wrong
            return scale_shift_activate(_conv_im2col(x, weights, size, stride, pad, groups,
                                                     out_h, out_w), factor, shift,
                                        activation)
        result = cpu_kernels.output_array(out, (x.shape[0], n_filters, out_h, out_w), x)
        out = result.reshape(x.shape[0], n_filters, out_h * out_w)
        code = cpu_kernels.FUSED_ACTIVATIONS.get(activation, 0)
        if not cpu_kernels.gemm_tail(filters, cols, out, factors, shifts, code, for_blocks):
            # a BLAS whose threads cannot be set: one threaded GEMM call, then the tail
            out[...] = matmul(filters, cols)
            return scale_shift_activate(result, factor, shift, activation)
        out = result
        activated = activation in cpu_kernels.FUSED_ACTIVATIONS
    if not activated:
        scale_shift_activate(out, None, np.zeros(n_filters, dtype=F32), activation)
    return out


def _conv_columns(x, size, stride, pad, out_h, out_w):
    """The GEMM's right operand (B, C*size*size, columns): im2col's, or for every 1x1
    kernel (whatever the stride or padding) the input itself, as darknet skips im2col."""
    batch, channels, height, width = x.shape
    if size == 1:   # darknet's gemm reads the first channels*out_h*out_w floats
        return x.reshape(batch, -1)[:, :channels * out_h * out_w].reshape(
            batch, channels, out_h * out_w)
    return im2col(x, size, stride, pad, out_h, out_w)


def _conv_im2col(x, weights, size, stride, pad, groups, out_h, out_w):
    """im2col + GEMM as convolutional.py's training/exact forward."""
    cols = _conv_columns(x, size, stride, pad, out_h, out_w)
    hw = out_h * out_w
    filters = weights.reshape(groups, weights.shape[0] // groups, -1)
    out = matmul(filters, cols.reshape(x.shape[0], groups, -1, hw))
    return out.reshape(x.shape[0], weights.shape[0], out_h, out_w)


def _transformed_filters(weights):
    """Winograd's U = G g G^T of `weights`, computed on first use and cached until the
    array dies or forget_conv_weights is called; the array is read-only meanwhile."""
    key = id(weights)
    entry = _winograd_filters.get(key)
    if entry is not None and entry[0]() is weights:
        return entry[1]
    # training transforms a layer's filters after every update: into the array of the
    # last transform (a fresh 64 MB for a 1024x1024 layer cost its page faults each time)
    spare = _spare_filters.pop(key, None)
    reuse = spare is not None and spare[0]() is weights and \
        spare[1].size == 16 * weights.size // 9
    transformed = winograd.transform_filters(weights, out=spare[1] if reuse else None)

    def dropped(reference, key=key):
        current = _winograd_filters.get(key)
        if current is not None and current[0] is reference:
            del _winograd_filters[key]
        current = _spare_filters.get(key)
        if current is not None and current[0] is reference:
            del _spare_filters[key]
    _winograd_filters[key] = (weakref.ref(weights, dropped), transformed,
                              weights.flags.writeable)
    weights.flags.writeable = False
    return transformed


def _packed_filters(weights):
    """blocked_conv.pack_filters of `weights`, cached as _transformed_filters' U is (the
    array read-only meanwhile)."""
    key = id(weights)
    entry = _blocked_filters.get(key)
    if entry is not None and entry[0]() is weights:
        return entry[1]
    from . import blocked_conv
    packed = blocked_conv.pack_filters(weights)

    def dropped(reference, key=key):
        current = _blocked_filters.get(key)
        if current is not None and current[0] is reference:
            del _blocked_filters[key]
    _blocked_filters[key] = (weakref.ref(weights, dropped), packed, weights.flags.writeable)
    weights.flags.writeable = False
    return packed


def forget_conv_weights(weights):
    """Drop what conv2d_inference derived from `weights` and make the array writable
    again (the weights are about to change in place: a training step's SGD update)."""
    writable = False
    entry = _winograd_filters.pop(id(weights), None)
    if entry is not None and entry[0]() is weights:
        _spare_filters[id(weights)] = entry[:2]   # kept for the next transform
        writable = entry[2]
    entry = _blocked_filters.pop(id(weights), None)
    if entry is not None and entry[0]() is weights:
        writable = writable or entry[2]
    if writable:
        weights.flags.writeable = True


# ---------------------------------------------------------------- normalisation
def batchnorm_inference(x, mean, variance):
    """Darknet's normalize_cpu: subtract in float, divide by sqrt(var) + 1e-6 in double."""
    centred = (x - mean[None, :, None, None]).astype(F64)
    denominator = np.sqrt(variance.astype(F64)) + BN_EPSILON
    return (centred / denominator[None, :, None, None]).astype(F32)


def batchnorm_fold(mean, variance, scales, biases):
    """Inference batch norm, scale and bias as one multiply-add per element:
    a = scale/(sqrt(var) + 1e-6), b = bias - mean*a (per channel, in double, stored as
    float). It rounds differently from darknet's three steps (~1e-7 relative), so only the
    fast (not exact) inference path uses it."""
    factor = scales.astype(F64) / (np.sqrt(variance.astype(F64)) + BN_EPSILON)
    return factor.astype(F32), (biases.astype(F64) - mean.astype(F64) * factor).astype(F32)


def scale_shift(x, factor, shift):
    out = x * factor[None, :, None, None]
    out += shift[None, :, None, None]
    return out


def scale_shift_activate(x, factor, shift, activation):
    """Inference's tail of a conv/connected layer, in place on x (the GEMM's fresh output):
    x*factor + shift per channel (factor None: only + shift), then the activation with
    activate(fast=True)'s arithmetic. One cache-sized block of channels at a time, blocks
    spread over the cores: the values come out as the three separate steps give them."""
    batch, channels = x.shape[:2]
    rows = x.reshape(batch * channels, -1)
    factors = None if factor is None else np.tile(factor, batch)[:, None]
    shifts = np.tile(shift, batch)[:, None]

    def work(start, stop):
        block = rows[start:stop]
        if factors is not None:
            block *= factors[start:stop]
        block += shifts[start:stop]
        _activate_in_place(block, activation)

    for_blocks(rows.shape[0], rows.shape[1], work)
    return x


def _activate_in_place(block, activation):
    if activation == "linear":
        return
    if activation == "leaky":
        np.maximum(block, block * F32(0.1), out=block)
    elif activation == "logistic":   # 1 / (1 + exp(-x)), float32 as activate(fast=True)
        np.negative(block, out=block)
        np.exp(block, out=block)
        block += F32(1)
        np.divide(F32(1), block, out=block)
    else:
        block[...] = activations.ACTIVATE[activation](block)


def scale_bias(x, scales):
    return x * scales[None, :, None, None]


def add_bias(x, biases):
    return x + biases[None, :, None, None]


# ---------------------------------------------------------------- activations
def activate(x, activation, fast=False):
    """fast=True evaluates leaky and logistic in float32 (darknet: in double, then rounded;
    they differ in the last bit now and then); the other activations are the same."""
    if fast and activation == "leaky":
        return np.maximum(x, x * F32(0.1))
    if fast and activation == "logistic":
        return F32(1) / (F32(1) + np.exp(-x))
    return activations.ACTIVATE[activation](x)


def gradient(y, activation):
    return activations.GRADIENT[activation](y)


def logistic(x):
    return activations.ACTIVATE["logistic"](x)


def sequential_sum(x):
    """Sum over the last axis in float32, left to right, as a C loop does (numpy's sum is
    pairwise; a running cumsum is sequential)."""
    return np.cumsum(x, axis=-1, dtype=F32)[..., -1]


# ---------------------------------------------------------------- pooling
def maxpool(x, size, stride, pad, out_h, out_w, want_indexes=True):
    """Darknet's maxpool: window origin -pad/2, cells outside the input count as -FLT_MAX.

    Returns the output and, for the backward pass, the flat input index of each maximum
    (the first one in window order when several are equal, as darknet's strict '>' gives);
    None instead of the indexes when not wanted (inference: half the time).
    """
    batch, channels, height, width = x.shape
    top = pad // 2
    if want_indexes and _compiled() and x.dtype == F32:
        return _maxpool_indexed(x, size, stride, top, out_h, out_w)
    bottom = max(0, (out_h - 1) * stride + size - top - height)
    right = max(0, (out_w - 1) * stride + size - top - width)
    if top or bottom or right:
        padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (top, right)),
                        constant_values=-FLT_MAX)
    else:   # the usual 2x2/2 pool of an even-sized input reaches no padding
        padded = x
    if not want_indexes:
        return _maxpool_values(padded, size, stride, out_h, out_w), None
    # One strided view per window cell, in darknet's (row, column) order; a later cell wins
    # only when strictly greater. size*size whole-tensor comparisons instead of a 6-D copy
    # and an argmax, and the selection as arithmetic on a contiguous copy of each cell
    # (masked assignments cost ~5 ns an element on random data): output = max(output,
    # cell), best -= better * (best - cell). 10x faster than either, same result.
    output = _window_cell(padded, 0, size, stride, out_h, out_w).copy()
    best = np.zeros(output.shape, dtype=np.uint8 if size < 16 else np.int32)
    better = np.empty(output.shape, dtype=bool)
    cell_values = np.empty_like(output)
    for cell in range(1, size * size):
        np.copyto(cell_values, _window_cell(padded, cell, size, stride, out_h, out_w))
        np.greater(cell_values, output, out=better)
        # where not strictly greater the two are equal or output is larger: max keeps it.
        # (A NaN input differs: max propagates it where darknet's '>' skips it; training
        # with NaN activations has diverged either way.)
        np.maximum(output, cell_values, out=output)
        won = better.view(np.uint8).astype(best.dtype, copy=False)
        best -= won * (best - best.dtype.type(cell))   # = cell where won, else unchanged
    # Flat index into the unpadded input: row/col of the winning cell, clipped where the
    # whole window lies outside (darknet then keeps -1; such windows do not occur in practice).
    # (Small tables instead of // and % on the whole array: integer division is slow.)
    cells = np.arange(size * size)
    offset_table = (cells // size) * width + cells % size
    origin = ((np.arange(out_h)[:, None] * stride - top) * width
              + np.arange(out_w)[None, :] * stride - top)
    plane = (np.arange(batch)[:, None] * channels + np.arange(channels)[None, :])
    indexes = offset_table[best]
    indexes += origin
    indexes += (plane * (height * width))[:, :, None, None]
    if top or bottom or right:
        rows = np.arange(out_h)[:, None] * stride - top + (cells // size)[best]
        cols = np.arange(out_w)[None, :] * stride - top + (cells % size)[best]
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        indexes[~inside] = -1
    return output, indexes


def maxpool_inference(x, size, stride, pad, out_h, out_w, out=None):
    """maxpool's values without the indexes, for plain inference: one compiled pass
    (ops/cpu_kernels.py: darknet's window order and strict '>', so the same values bit for
    bit as maxpool(); tests/test_fast_conv.py), or maxpool() itself without numba."""
    if FAST_CONV and x.dtype == F32 and cpu_kernels.compiled():
        return cpu_kernels.maxpool(x, size, stride, pad, out_h, out_w, out)
    return maxpool(x, size, stride, pad, out_h, out_w, want_indexes=False)[0]


def _window_cell(padded, cell, size, stride, out_h, out_w):
    """What window cell `cell` (row-major within the window) covers at every output
    position: one strided view of the last two axes of the padded input."""
    ky, kx = divmod(cell, size)
    return padded[..., ky:ky + stride * (out_h - 1) + 1:stride,
                  kx:kx + stride * (out_w - 1) + 1:stride]


def _maxpool_values(padded, size, stride, out_h, out_w):
    """Inference's maxpool: the running maximum over the window cells, planes split across
    threads. From -FLT_MAX and with fmax, so that a NaN never wins, as with darknet's
    strict '>' (a window of NaNs gives -FLT_MAX, as darknet's does)."""
    batch, channels = padded.shape[:2]
    planes = padded.reshape(batch * channels, *padded.shape[2:])
    output = np.empty((batch * channels, out_h, out_w), dtype=F32)

    def work(start, stop):
        target, block = output[start:stop], planes[start:stop]
        target[...] = -FLT_MAX
        for cell in range(size * size):
            np.fmax(target, _window_cell(block, cell, size, stride, out_h, out_w),
                    out=target)

    for_blocks(batch * channels, padded.shape[2] * padded.shape[3], work)
    return output.reshape(batch, channels, out_h, out_w)


def avgpool_backward(delta, input_delta):
    """input_delta += delta / (h*w) for each plane, in place (the division in float)."""
    input_delta += delta / F32(input_delta.shape[2] * input_delta.shape[3])


def avgpool(x):
    """Global average per channel (darknet sums in float, then divides by h*w)."""
    batch, channels, height, width = x.shape
    total = sequential_sum(x.reshape(batch, channels, -1))
    return (total / F32(height * width)).reshape(batch, channels, 1, 1)


# ---------------------------------------------------------------- reorg
def reorg(x, stride, forward):
    """darknet's reorg_cpu(x, w, h, c, batch, stride, forward, out) on x of shape (B, C, H, W).

    The buffer is read as (C/stride^2, H*stride, W*stride) on one side and (C, H, W) on the
    other; forward=0 (what [reorg] calls) gathers out[b, (dy*s+dx)*C/s^2 + c2, j, i] =
    x[b, c2, j*s+dy, i*s+dx]. Returns the buffer in (B, C, H, W) order; the caller gives it
    the layer's output shape.
    """
    batch, channels, height, width = x.shape
    groups = channels // (stride * stride)
    if not forward:
        wide = x.reshape(batch, groups, height, stride, width, stride)
        return np.ascontiguousarray(wide.transpose(0, 3, 5, 1, 2, 4)).reshape(x.shape)
    narrow = x.reshape(batch, stride, stride, groups, height, width)
    return np.ascontiguousarray(narrow.transpose(0, 3, 4, 1, 5, 2)).reshape(x.shape)


# ---------------------------------------------------------------- softmax
def softmax_groups(x, offsets, temperature=1.0, gpu=False):
    """Softmax over contiguous groups of the last axis (one group = flat softmax).

    offsets: start of each group along the last axis, ascending, first 0, covering it all.
    CPU semantics (darknet's softmax()): float running max, exp in double stored as float,
    float sum. gpu=True reproduces softmax_device as darknet's GPU uses it for tree softmax:
    the running max is kept through an `int` (truncated toward zero) and expf in float.
    """
    offsets = np.asarray(offsets)
    sizes = np.diff(np.append(offsets, x.shape[-1]))
    temp = F32(temperature)
    if gpu:
        largest = np.maximum.reduceat(np.trunc(x), offsets, axis=-1)
        shifted = x / temp - np.repeat(largest, sizes, axis=-1) / temp
        exps = np.exp(shifted.astype(F32))
    else:
        largest = np.maximum.reduceat(x, offsets, axis=-1)
        shifted = (x / temp - np.repeat(largest, sizes, axis=-1) / temp).astype(F32)
        exps = np.exp(shifted.astype(F64)).astype(F32)
    return exps / np.repeat(_group_sums(exps, offsets, sizes), sizes, axis=-1)


def softmax_cross_entropy(truth, output, masked):
    """softmax_x_ent_cpu for the softmax layer: delta = truth - p, and the cost, the float
    sum of -log(p) (in double, stored as float) where the truth is set. masked (tree
    softmax): entries whose truth is SECRET_NUM (-1234), which a label does not reach in the
    tree, get no delta and no loss, as darknet's GPU path does."""
    delta = truth - output
    with np.errstate(divide="ignore"):
        loss = np.where(truth != 0, -np.log(output.astype(np.float64)), 0)
    if masked:
        delta = np.where(truth == SECRET_NUM, np.float32(0), delta)
        loss = np.where(truth == SECRET_NUM, 0, loss)
    return delta, float(sequential_sum(loss.astype(np.float32).reshape(-1)))


def region_activate(x, anchors, entries, coords, classes, background, softmax,
                    tree_offsets=None, fast=False):
    """The region layer's activations on x (batch, anchors*entries, h, w), darknet's
    entry_index layout: logistic on x, y and (unless background) the objectness; then a
    tree softmax (one softmax per WordTree group, starting at offsets tree_offsets, with
    darknet's GPU arithmetic: see softmax_groups), or darknet's CPU softmax over the classes
    (softmax=1), or nothing. w, h stay raw.

    fast (plain inference): without a tree, one compiled pass over the cells
    (cpu_kernels.region_cells: the same arithmetic, exp from the C library as darknet's,
    where NumPy's own exp may differ in the last bit of the double) instead of some
    fifteen NumPy passes, each with its temporaries: 0.25-0.6 ms of a 13x13 forward."""
    batch = x.shape[0]
    if fast and tree_offsets is None and x.dtype == F32 and x.ndim == 4 \
            and x.shape[1] == anchors * entries and cpu_kernels.compiled():
        x = np.ascontiguousarray(x)
        out = np.empty_like(x)   # C-contiguous like x: its reshape below is a view
        cpu_kernels.region_cells(x.reshape(batch, anchors, entries, -1),
                                 out.reshape(batch, anchors, entries, -1), coords, classes,
                                 int(bool(background)), int(bool(softmax)))
        return out
    grid = x.reshape(batch, anchors, entries, -1)
    out = grid.copy()
    out[:, :, 0:2] = logistic(grid[:, :, 0:2])
    if not background:
        out[:, :, coords] = logistic(grid[:, :, coords])
    if tree_offsets is not None:
        start = coords + 1
        probs = softmax_groups(grid[:, :, start:start + classes].transpose(0, 1, 3, 2),
                               tree_offsets, gpu=True)
        out[:, :, start:start + classes] = probs.transpose(0, 1, 3, 2)
    elif softmax:
        start, count = coords + (0 if background else 1), classes + background
        probs = softmax_groups(grid[:, :, start:start + count].transpose(0, 1, 3, 2), [0])
        out[:, :, start:start + count] = probs.transpose(0, 1, 3, 2)
    return out.reshape(x.shape)


def _group_sums(values, offsets, sizes):
    """Float32 sums of contiguous groups of the last axis, each left to right as darknet's
    loop adds them (np.add.reduceat may pair terms differently). One vector step per
    position within a group, across all groups at once."""
    if len(offsets) == 1:
        return sequential_sum(values)[..., None]
    sums = np.zeros(values.shape[:-1] + (len(offsets),), dtype=F32)
    for position in range(int(sizes.max())):
        groups = np.nonzero(sizes > position)[0]
        sums[..., groups] += values[..., offsets[groups] + position]
    return sums


# ================================================================ training
# Weight matrices of at least this many entries (n x k: 256 -> 512 channels at 3x3 is
# 1.2M) take their backward GEMMs in slices of the results on numba's threads
# (cpu_kernels.backward_gemm_slices), the weight gradients added into weight_updates by
# the GEMM itself (beta = 1), image after image: one image per thread (the smaller
# layers' split, below) wrote a 19-38 MB product per thread and added it afterwards,
# the two threads' GEMMs fighting over the memory bus (yolov2-tiny-voc's last 3x3
# layers: 80 ms of a 290 ms step). The sums are `+= product`'s where the GEMM keeps hw
# in one block (13x13 maps).
BACKWARD_SLICED_WEIGHTS = 1 << 20


def conv_backward_gemms(delta, cols, filters, weight_updates, input_columns, exact=False):
    """backward_convolutional_layer's GEMMs. delta (B, G, n, hw), cols (B, G, k, hw) (the
    im2col columns of the layer's input), filters (G, n, k), weight_updates (G, n, k):
    weight_updates += delta[b, g] . cols[b, g]^T, and with input_columns the columns of the
    input delta, W^T . delta: (B, G, k, hw) (else None), valid until the next call on
    this thread (it lives in a scratch array: the layer adds it into its input delta
    right away).

    exact: darknet's order, one product per image and group added onto the total in image
    order. Otherwise, with two images or more, the images' GEMMs run side by side on the
    backend's threads with OpenBLAS on one thread each: a GEMM split across both cores
    waits for its slower half (2-6x slower under load from other processes) and splits
    the thin early layers poorly. Each thread adds its images' products, and the totals
    are added in order (the float sums differ from darknet's order in the last bits)."""
    batch, groups = delta.shape[:2]
    transposed = filters.transpose(0, 2, 1)
    if exact or batch < 2:
        for image in range(batch):
            for group in range(groups):
                weight_updates[group] += matmul(delta[image, group], cols[image, group].T,
                                                exact)
        return matmul(transposed, delta, exact) if input_columns else None
    columns = _scratch("backward_columns", (batch, groups) + cols.shape[2:]) \
        if input_columns else None
    from .cpu_kernels import (backward_gemm_slices, backward_gemm_tasks,
                              blas_single_threaded, fused_gemms)
    sgemm = fused_gemms()
    ready = sgemm is not None and all(a.dtype == F32 and a.flags.c_contiguous
                                      for a in (delta, cols, filters))
    if ready and weight_updates.dtype == F32 and weight_updates.flags.c_contiguous and \
            delta.shape[2] * cols.shape[2] >= BACKWARD_SLICED_WEIGHTS:
        with blas_single_threaded() as alone:
            if alone:
                backward_gemm_slices(sgemm, delta, cols, filters, weight_updates,
                                     columns if input_columns else delta,
                                     bool(input_columns), 2 * thread_count())
                return columns
    if ready:
        # the same split and sums as below, on numba's threads (no trip through Python
        # per image): for_blocks' blocks of ceil(batch / (2 threads)) images
        per_task = -(-batch // (2 * thread_count()))
        tasks = -(-batch // per_task)
        totals = _scratch("backward_totals", (tasks,) + weight_updates.shape)
        products = _scratch("backward_products", totals.shape if per_task > 1
                            else (1,) + weight_updates.shape)
        with blas_single_threaded() as alone:
            if alone:
                backward_gemm_tasks(sgemm, delta, cols, filters, totals, products,
                                    columns if input_columns else totals, bool(input_columns),
                                    per_task)
                for total in totals:
                    weight_updates += total
                return columns
    totals = {}

    def work(start, stop):
        total = None
        for image in range(start, stop):
            product = np.matmul(delta[image], _blas_ready(cols[image]).transpose(0, 2, 1))
            if total is None:
                total = product
            else:
                total += product
            if input_columns:
                np.matmul(transposed, delta[image], out=columns[image])
        totals[start] = total

    with blas_single_threaded() as alone:
        if alone:   # as few blocks as for_blocks allows (two per thread): one product each
            for_blocks(batch, delta[0].size + cols[0].size, work, block_elements=1 << 62)
        else:   # another BLAS: its GEMMs are not run from several threads at once
            work(0, batch)
    for start in sorted(totals):
        weight_updates += totals[start]
    return columns


def conv_weight_gradient_add(delta, x, weight_updates, size, stride, pad, groups):
    """weight_updates (G, n, C/G*size*size) += sum over images of delta[b, g] (n, out_h*
    out_w) . im2col(x[b])[g]^T: the weight gradient alone, in default mode (delta (B, K,
    out_h, out_w), x the layer's input). Ungrouped kernels of size > 1 with weights below
    BACKWARD_SLICED_WEIGHTS: in bands whose columns stay in cache (weight_gradient.py);
    others: im2col and conv_backward_gemms."""
    batch, n_filters, out_h, out_w = delta.shape
    from .cpu_kernels import blas_single_threaded, fused_gemms
    sgemm = fused_gemms()
    if sgemm is not None and groups == 1 and size > 1 and \
            weight_updates.size < BACKWARD_SLICED_WEIGHTS and \
            all(a.dtype == F32 and a.flags.c_contiguous for a in (delta, x, weight_updates)):
        with blas_single_threaded() as alone:
            if alone:
                weight_gradient.add_weight_gradient(
                    sgemm, x, delta.reshape(batch, n_filters, -1),
                    weight_updates.reshape(n_filters, -1), size, stride, pad, out_h, out_w,
                    thread_count(), cpu_kernels.scratch)
                return
    cols = _conv_columns(x, size, stride, pad, out_h, out_w)
    per_group = n_filters // groups
    grouped = np.ascontiguousarray(delta).reshape(batch, groups, per_group, -1)
    # no input columns asked for: the filters are not read (weight_updates stands in)
    conv_backward_gemms(grouped, cols.reshape(batch, groups, -1, out_h * out_w),
                        weight_updates, weight_updates, False)


def fast_conv_adjoint(x_shape, weights_shape, size, stride, pad, groups):
    """Whether conv_input_delta_add takes Winograd for these shapes (x_shape: the layer's
    input), where it beats conv_backward_gemms' W^T . delta with col2im_add."""
    out_h, out_w = x_shape[2] + 2 * pad - size + 1, x_shape[3] + 2 * pad - size + 1
    return size == 3 and stride == 1 and _training_strategy(
        x_shape, weights_shape, size, stride, pad, groups, out_h, out_w) in \
        ("winograd", "direct")


def conv_input_delta_add(delta, weights, size, stride, pad, groups, input_delta):
    """input_delta (B, C, H, W) += the convolution's adjoint at delta (B, K, out_h, out_w):
    backward_convolutional_layer's W^T . delta then col2im, in default mode (the sums in
    another order). A 3x3 stride-1 ungrouped kernel: Winograd over the filters that
    conv2d_inference transformed for the forward (kept until sgd_step changes the
    weights), flipped and transposed on the way (winograd.conv3x3's adjoint), with
    padding 2 - pad; its 16 GEMMs do 4/9 of the FLOPs, and no columns go through
    memory. Where fast_conv_adjoint says no: the GEMM, then col2im_add."""
    batch, n_filters, out_h, out_w = delta.shape
    height, width = input_delta.shape[2:]
    if fast_conv_adjoint(input_delta.shape, weights.shape, size, stride, pad, groups) and \
            delta.dtype == F32 and \
            input_delta.dtype == F32 and (out_h, out_w) == (height + 2 * pad - 2,
                                                            width + 2 * pad - 2):
        channels = input_delta.shape[1]
        result = _scratch("conv_input_delta", input_delta.shape)
        unit, zero = np.ones(channels, dtype=F32), np.zeros(channels, dtype=F32)
        result, _ = winograd.conv3x3(delta, _transformed_filters(weights), 2 - pad, unit,
                                     zero, "linear", for_blocks, result, adjoint=True)
        _add_into(input_delta, result)
        return
    per_group = n_filters // groups
    filters = weights.reshape(groups, per_group, -1).transpose(0, 2, 1)
    columns = matmul(filters, delta.reshape(batch, groups, per_group, out_h * out_w))
    col2im_add(columns.reshape(batch, -1, out_h * out_w), input_delta, size, stride, pad,
               out_h, out_w)


def _add_into(target, values):
    """target += values (same shape, float32), split across the backend's threads."""
    if not (target.flags.c_contiguous and values.flags.c_contiguous):
        target += values
        return
    flat, add = target.reshape(-1), values.reshape(-1)

    def work(start, stop):
        np.add(flat[start:stop], add[start:stop], out=flat[start:stop])
    for_blocks(flat.size, 1, work, block_elements=1 << 18)


def col2im_add(cols, image, size, stride, pad, out_h, out_w):
    """Adjoint of im2col: add (B, C*size*size, out_h*out_w) columns into image (B, C, H, W)
    in place, as darknet's col2im_cpu does: kernel offsets in (c, ky, kx) order, each added
    straight onto what the image holds; entries that fall in the padding are dropped.
    Compiled, one pass over the columns, image planes split across threads (the same sums
    in the same order as the NumPy fallback below)."""
    batch, channels, height, width = image.shape
    if _compiled() and _loop_ready(image) and cols.dtype == F32:
        grid = np.ascontiguousarray(cols).reshape(batch, channels * size * size, -1)
        for_blocks(batch * channels, size * size * out_h * out_w,
                   lambda start, stop: _col2im_loop(grid, image, size, stride, pad, out_h,
                                                    out_w, start, stop))
        return
    padded = np.pad(image, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    grid = cols.reshape(batch, channels, size, size, out_h, out_w)
    for ky in range(size):
        for kx in range(size):
            padded[:, :, ky:ky + stride * out_h:stride, kx:kx + stride * out_w:stride] += \
                grid[:, :, ky, kx]
    image[...] = padded[:, :, pad:pad + height, pad:pad + width]


def _by_channel(x):
    """(B, C, H, W) -> (C, B*H*W) in darknet's loop order (batch, then space) per channel."""
    return x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1)


def channel_sums(x):
    """Per-channel float32 sum over batch and space, left to right as darknet's loops add
    (mean_cpu, backward_scale_cpu, mean_delta_cpu ...). A pairwise or double sum would be
    more accurate, but over 10^4..10^6 terms it differs from darknet's by up to ~1e-4."""
    return sequential_sum(_by_channel(x))


def bias_sums(x):
    """backward_bias: per image a float sum over space (sum_array), then added up image by
    image into the channel's total."""
    per_image = sequential_sum(x.reshape(x.shape[0], x.shape[1], -1))
    return sequential_sum(per_image.T)


def batchnorm_statistics(x, exact=False):
    """Batch mean and unbiased variance per channel, as darknet's mean_cpu/variance_cpu:
    float running sums in darknet's order (batch, then space), the mean scaled by
    float(1/N), the variance divided by N-1.

    darknet adds each square in double to a float total and rounds (`variance[i] +=
    pow(x - mean, 2)`); exact=True does that; otherwise the squares are rounded to float
    first, which differs in the last bit now and then. Both modes keep darknet's order here
    (docs/QUIRKS.md: the oracle's training cases are ill-conditioned in these means); the
    compiled loop runs eight channels' running sums side by side, so the order costs
    little."""
    batch, channels = x.shape[:2]
    count = x.size // channels
    inv_count1 = F32(1.0 / (count - 1)) if count > 1 else F32(np.inf)   # C's 1./0
    if _compiled() and _loop_ready(x):
        rows = x.reshape(batch, channels, -1)
        mean, variance = np.empty(channels, dtype=F32), np.empty(channels, dtype=F32)
        groups = -(-channels // _STAT_LANES)

        def work(start, stop):
            _statistics_loop(rows, F32(1.0 / count), inv_count1, exact, mean, variance,
                             start * _STAT_LANES, min(channels, stop * _STAT_LANES))
        for_blocks(groups, _STAT_LANES * count, work)
        return mean, variance
    mean = channel_sums(x) * F32(1.0 / count)
    centred = (x - mean[None, :, None, None]).astype(F64)
    squares = _by_channel(centred * centred)
    if exact:
        total = np.zeros(x.shape[1], dtype=F32)
        for column in squares.T:
            total = (total + column).astype(F32)
    else:
        total = sequential_sum(squares.astype(F32))
    return mean, total * inv_count1


def update_rolling(rolling, batch_value):
    """rolling = .99*rolling + .01*batch (scal_cpu then axpy_cpu, in float)."""
    rolling *= F32(0.99)
    rolling += F32(0.01) * batch_value


def batchnorm_backward(delta, x, mean, variance, scales):
    """darknet's backward_batchnorm_layer after the bias/scale updates: delta (w.r.t. the
    BN output) -> delta w.r.t. the BN input. Note darknet's backward uses sqrt(var + 1e-5)
    while its CPU forward divided by sqrt(var) + 1e-6."""
    count = x.shape[0] * x.shape[2] * x.shape[3]
    delta = delta * scales[None, :, None, None]
    var_eps = (variance + BN_BACKWARD_EPSILON).astype(F64)
    mean_delta = (channel_sums(delta).astype(F64) * (-1.0 / np.sqrt(var_eps))).astype(F32)
    centred = x - mean[None, :, None, None]
    variance_delta = channel_sums(delta * centred).astype(F64)
    variance_delta = (variance_delta * (-0.5 * np.power(var_eps, F64(F32(-1.5))))).astype(F32)
    out = (delta.astype(F64) / np.sqrt(var_eps)[None, :, None, None]
           + variance_delta.astype(F64)[None, :, None, None] * 2.0 * centred / count
           + (mean_delta / F32(count)).astype(F64)[None, :, None, None])
    return out.astype(F32)


def normalize_scale_activate(x, mean, variance, scales, biases, activation):
    """Training's batch norm after the statistics, on a new array (x, the layer's l.x, is
    kept): normalize_cpu ((x - mean) / (sqrt(var) + 1e-6) in double), scale_bias, add_bias
    (float), then activate_array (leaky's .1*x in double). The values of those four steps,
    in one compiled pass per channel; activations other than linear/leaky/relu are applied
    after it in NumPy."""
    if not (_compiled() and _loop_ready(x)):
        out = add_bias(scale_bias(batchnorm_inference(x, mean, variance), scales), biases)
        return activate(out, activation)
    batch, channels = x.shape[:2]
    rows = x.reshape(batch, channels, -1)
    out = np.empty_like(rows)
    code = _FORWARD_CODES.get(activation, 0)
    denominator = np.sqrt(variance.astype(F64)) + BN_EPSILON
    mean, scales, biases = (np.ascontiguousarray(v, dtype=F32) for v in (mean, scales, biases))
    for_blocks(channels, rows.shape[0] * rows.shape[2],
               lambda start, stop: _normalize_loop(rows, mean, denominator, scales, biases,
                                                   code, out, start, stop))
    out = out.reshape(x.shape)
    return out if activation in _FORWARD_CODES else activate(out, activation)


def batchnorm_train_backward(delta, output, x, mean, variance, scales, bias_updates,
                             scale_updates, activation, exact=False):
    """backward_convolutional_layer's part before the GEMMs, for a batch-normalised layer:
    gradient_array (delta *= activation'(output)), backward_bias and backward_scale_cpu
    (added into bias_updates and scale_updates in place), then backward_batchnorm_layer.
    Returns the delta w.r.t. the batch norm's input x, in delta's own memory.

    exact=True: darknet's float running sums in its order (bit-identical to darknet).
    Otherwise the four per-channel sums accumulate in double (vectorised, reassociated):
    accurate to ~1e-7 where darknet's float sums over 10^4..10^6 terms are off by up to
    ~1e-4 (docs/QUIRKS.md). Both run as two compiled passes per channel (sums, then the
    normalised delta), channels split across threads."""
    if not (_compiled() and _loop_ready(delta) and _loop_ready(output) and _loop_ready(x)):
        if activation != "linear":
            delta = delta * gradient(output, activation)
        bias_updates += bias_sums(delta)
        scale_updates += channel_sums(delta * batchnorm_inference(x, mean, variance))
        return batchnorm_backward(delta, x, mean, variance, scales)
    if activation not in _GRADIENT_CODES:
        np.multiply(delta, gradient(output, activation), out=delta)
    code = _GRADIENT_CODES.get(activation, 0)
    batch, channels = x.shape[:2]
    rows = [a.reshape(batch, channels, -1) for a in (delta, output, x)]
    var_eps = (variance + BN_BACKWARD_EPSILON).astype(F64)
    constants = (np.sqrt(variance.astype(F64)) + BN_EPSILON, np.sqrt(var_eps),
                 -1.0 / np.sqrt(var_eps), -0.5 * np.power(var_eps, F64(F32(-1.5))))
    mean, scales = (np.ascontiguousarray(v, dtype=F32) for v in (mean, scales))
    loop = _batchnorm_backward_exact_loop if exact else _batchnorm_backward_loop
    for_blocks(channels, rows[0].shape[0] * rows[0].shape[2],
               lambda start, stop: loop(*rows, mean, scales, *constants, code, bias_updates,
                                        scale_updates, start, stop))
    return delta


def _maxpool_indexed(x, size, stride, top, out_h, out_w):
    """maxpool with indexes as forward_maxpool_layer computes them, compiled: per output
    the window's cells in row-major order, a cell outside the input counting as -FLT_MAX,
    a cell winning only when strictly greater (index -1 when none does). The planes are
    split across the pool's threads."""
    batch, channels, height, width = x.shape
    planes = batch * channels
    source = np.ascontiguousarray(x).reshape(planes, height, width)
    output = np.empty((planes, out_h, out_w), dtype=F32)
    indexes = np.empty((planes, out_h, out_w), dtype=np.int64)
    for_blocks(planes, height * width,
               lambda start, stop: _maxpool_indexed_loop(source, output, indexes, size,
                                                         stride, top, start, stop))
    return (output.reshape(batch, channels, out_h, out_w),
            indexes.reshape(batch, channels, out_h, out_w))


def maxpool_backward(delta, indexes, input_shape, size, stride, pad):
    """Each output's delta goes to the input cell that won the max (accumulating).
    size, stride, pad: the window geometry (the GPU backend gathers with it; the indexes
    say everything here)."""
    grad = np.zeros(int(np.prod(input_shape)), dtype=F32)
    valid = indexes >= 0
    np.add.at(grad, indexes[valid], delta[valid])
    return grad.reshape(input_shape)


def maxpool_backward_add(delta, indexes, input_delta, size, stride, pad):
    """backward_maxpool_layer: input_delta[index] += delta for each output in order, in
    place (darknet's order of float additions). Compiled: one pass, planes split across
    threads (a plane's winners lie in that plane)."""
    if _compiled() and _loop_ready(input_delta) and delta.dtype == F32:
        planes = delta.shape[0] * delta.shape[1]
        flat_delta = np.ascontiguousarray(delta).reshape(planes, -1)
        flat_indexes = np.ascontiguousarray(indexes).reshape(planes, -1)
        target = input_delta.reshape(-1)
        for_blocks(planes, flat_delta.shape[1],
                   lambda start, stop: _maxpool_backward_loop(flat_delta, flat_indexes,
                                                              target, start, stop))
        return
    input_delta += maxpool_backward(delta, indexes, input_delta.shape, size, stride, pad)


def dropout_mask(rand, probability, scale):
    """Dropout's multiplier from uniform draws: 0 where rand < probability, else scale."""
    return np.where(rand < probability, F32(0), F32(scale))


def sgd_step(param, update, rate, momentum, decay_term=None):
    """darknet's update for one parameter array, in place, in float32:
    decay (weights only): update += (-decay*B) * param; then param += (lr/B) * update;
    update *= momentum. `rate` = lr/B and `decay_term` = -decay*B, rounded as darknet does.
    What conv2d_inference derived from `param` (its Winograd filters) is dropped first:
    the weights change here, and nowhere else in training."""
    forget_conv_weights(param)
    if _compiled() and param.dtype == update.dtype == F32 and param.flags.c_contiguous \
            and update.flags.c_contiguous:
        flat_param, flat_update = param.reshape(-1), update.reshape(-1)
        decay = decay_term is not None
        factor = F32(decay_term if decay else 0)
        for_blocks(flat_param.size, 1,
                   lambda start, stop: _sgd_loop(flat_param, flat_update, F32(rate),
                                                 F32(momentum), factor, decay, start, stop),
                   block_elements=1 << 18)
        return
    if decay_term is not None:
        update += F32(decay_term) * param
    param += F32(rate) * update
    update *= F32(momentum)


# ================================================================ compiled training loops
# The training passes over whole activations (batch statistics, batch norm with its
# activation, their backward, col2im, maxpool's backward) as loops compiled by numba (a
# dependency; compiled on first use and cached beside this file, as jpeg.py's kernels).
# NumPy cannot fuse them: each of its steps is a pass over memory, most of them over float64
# copies, and a float running sum in darknet's order is a cumsum (a serial, written pass).
# The loops do darknet's arithmetic operation by operation, so exact mode stays
# bit-identical; without numba the NumPy code above runs instead.
_STAT_LANES = 8   # channels whose running sums batchnorm_statistics advances side by side
# activations the loops evaluate themselves (codes shared by _activated / _gradient_factor)
_FORWARD_CODES = {"linear": 0, "leaky": 1, "relu": 2}
_GRADIENT_CODES = {"linear": 0, "leaky": 1, "relu": 2, "logistic": 3}
# default-mode backward: sums may be reassociated (vectorised) and a*b+c fused; no
# assumption that values are finite, so NaN and inf still come through for the trainer
_ACCURATE_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
_LOOPS = {}   # name -> (fastmath, inline): what _compiled() hands numba


def _loop(fastmath=False, inline=False):
    """Marks a function for numba.njit (compiled by _compiled(), found as a global)."""
    def register(function):
        _LOOPS[function.__name__] = (fastmath, inline)
        return function
    return register


@functools.lru_cache(maxsize=None)
def _compiled():
    """Whether the loops below run compiled: numba is imported and they are compiled (or
    loaded from numba's cache) on the first training call, not when this module loads."""
    try:
        numba = import_numba()
    except ImportError:
        return False
    for name, (fastmath, inline) in _LOOPS.items():   # helpers first: the loops call them
        globals()[name] = numba.njit(cache=True, nogil=True, fastmath=fastmath,
                                     inline="always" if inline else "never")(globals()[name])
    return True


def _loop_ready(array):
    """Whether a loop may read or write `array` as its flat float32 memory."""
    return array.dtype == F32 and array.flags.c_contiguous and array.ndim >= 2


@_loop(inline=True)
def _square_added(total, difference, exact):
    """variance_cpu's step: darknet adds pow(x - mean, 2) in double to a float total."""
    if exact:
        return np.float32(np.float64(total) + np.float64(difference) * np.float64(difference))
    return total + difference * difference


@_loop(inline=True)
def _activated(value, code):
    """activate(): leaky .1*x in double stored as float, relu x*(x>0) (-0.0 kept)."""
    if code == 1:
        return value if value > 0 else np.float32(0.1 * np.float64(value))
    if code == 2:
        return value if value > 0 else value * np.float32(0)
    return value


@_loop(inline=True)
def _gradient_factor(output, code):
    """gradient(): leaky 1 or .1f, relu 1 or 0, logistic (1 - y) * y, all in float."""
    if code == 1:
        return np.float32(1) if output > 0 else np.float32(0.1)
    if code == 2:
        return np.float32(1) if output > 0 else np.float32(0)
    if code == 3:
        return (np.float32(1) - output) * output
    return np.float32(1)


@_loop()
def _statistics_loop(x, inv_count, inv_count1, exact, mean, variance, start, stop):
    """mean_cpu and variance_cpu for channels [start, stop) of x (batch, channels, n):
    each channel's float running sum over batch then space, eight channels at a time so
    that eight independent sums are in flight (one alone waits on each add's latency)."""
    batch, _, n = x.shape
    c = start
    while c + 8 <= stop:
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = np.float32(0)
        for b in range(batch):
            r0, r1, r2, r3 = x[b, c], x[b, c + 1], x[b, c + 2], x[b, c + 3]
            r4, r5, r6, r7 = x[b, c + 4], x[b, c + 5], x[b, c + 6], x[b, c + 7]
            for i in range(n):
                s0 += r0[i]
                s1 += r1[i]
                s2 += r2[i]
                s3 += r3[i]
                s4 += r4[i]
                s5 += r5[i]
                s6 += r6[i]
                s7 += r7[i]
        m0, m1, m2, m3 = s0 * inv_count, s1 * inv_count, s2 * inv_count, s3 * inv_count
        m4, m5, m6, m7 = s4 * inv_count, s5 * inv_count, s6 * inv_count, s7 * inv_count
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = np.float32(0)
        for b in range(batch):
            r0, r1, r2, r3 = x[b, c], x[b, c + 1], x[b, c + 2], x[b, c + 3]
            r4, r5, r6, r7 = x[b, c + 4], x[b, c + 5], x[b, c + 6], x[b, c + 7]
            for i in range(n):
                s0 = _square_added(s0, r0[i] - m0, exact)
                s1 = _square_added(s1, r1[i] - m1, exact)
                s2 = _square_added(s2, r2[i] - m2, exact)
                s3 = _square_added(s3, r3[i] - m3, exact)
                s4 = _square_added(s4, r4[i] - m4, exact)
                s5 = _square_added(s5, r5[i] - m5, exact)
                s6 = _square_added(s6, r6[i] - m6, exact)
                s7 = _square_added(s7, r7[i] - m7, exact)
        mean[c], mean[c + 1], mean[c + 2], mean[c + 3] = m0, m1, m2, m3
        mean[c + 4], mean[c + 5], mean[c + 6], mean[c + 7] = m4, m5, m6, m7
        variance[c], variance[c + 1] = s0 * inv_count1, s1 * inv_count1
        variance[c + 2], variance[c + 3] = s2 * inv_count1, s3 * inv_count1
        variance[c + 4], variance[c + 5] = s4 * inv_count1, s5 * inv_count1
        variance[c + 6], variance[c + 7] = s6 * inv_count1, s7 * inv_count1
        c += 8
    while c < stop:   # the last channels one at a time
        total = np.float32(0)
        for b in range(batch):
            row = x[b, c]
            for i in range(n):
                total += row[i]
        m = total * inv_count
        total = np.float32(0)
        for b in range(batch):
            row = x[b, c]
            for i in range(n):
                total = _square_added(total, row[i] - m, exact)
        mean[c] = m
        variance[c] = total * inv_count1
        c += 1


@_loop()
def _normalize_loop(x, mean, denominator, scales, biases, code, out, start, stop):
    """normalize_cpu, scale_bias, add_bias and activate for channels [start, stop)."""
    batch, _, n = x.shape
    for c in range(start, stop):
        m, d, s, b_ = mean[c], denominator[c], scales[c], biases[c]
        for b in range(batch):
            source, target = x[b, c], out[b, c]
            for i in range(n):
                value = np.float32(np.float64(source[i] - m) / d) * s + b_
                target[i] = _activated(value, code)


@_loop()
def _batchnorm_backward_exact_loop(delta, output, x, mean, scales, denominator, root,
                                   mean_factor, variance_factor, code, bias_updates,
                                   scale_updates, start, stop):
    """batchnorm_train_backward(exact=True) for channels [start, stop): gradient_array,
    then backward_bias (a float sum per image, added image by image), backward_scale_cpu,
    mean_delta_cpu and variance_delta_cpu (float running sums over batch then space; four
    independent sums in one pass), then normalize_delta_cpu."""
    batch, _, n = x.shape
    for c in range(start, stop):
        m, s = mean[c], scales[c]
        bias_total = scale_total = mean_total = variance_total = np.float32(0)
        for b in range(batch):
            d_row, y_row, x_row = delta[b, c], output[b, c], x[b, c]
            image_total = np.float32(0)
            for i in range(n):
                d = d_row[i] * _gradient_factor(y_row[i], code)
                d_row[i] = d
                image_total += d
                centred = x_row[i] - m
                scale_total += d * np.float32(np.float64(centred) / denominator[c])
                scaled = d * s
                mean_total += scaled
                variance_total += scaled * centred
            bias_total += image_total
        bias_updates[c] += bias_total
        scale_updates[c] += scale_total
        mean_delta = np.float32(np.float64(mean_total) * mean_factor[c])
        variance_delta = np.float32(np.float64(variance_total) * variance_factor[c])
        mean_term = np.float64(mean_delta / np.float32(batch * n))
        twice_variance_delta = np.float64(variance_delta) * 2.0
        for b in range(batch):
            d_row, x_row = delta[b, c], x[b, c]
            for i in range(n):
                d_row[i] = np.float32(np.float64(d_row[i] * s) / root[c]
                                      + twice_variance_delta * np.float64(x_row[i] - m)
                                      / (batch * n) + mean_term)


@_loop(fastmath=_ACCURATE_FASTMATH)
def _batchnorm_backward_loop(delta, output, x, mean, scales, denominator, root, mean_factor,
                             variance_factor, code, bias_updates, scale_updates, start, stop):
    """batchnorm_train_backward's default mode for channels [start, stop): the same
    quantities with double accumulators (sum of deltas; sum of delta * (x - mean), from
    which the scale gradient and the variance delta follow) and the normalised delta in
    double."""
    batch, _, n = x.shape
    count = batch * n
    for c in range(start, stop):
        m, s = np.float64(mean[c]), np.float64(scales[c])
        total = 0.0
        centred_total = 0.0
        for b in range(batch):
            d_row, y_row, x_row = delta[b, c], output[b, c], x[b, c]
            for i in range(n):
                d = d_row[i] * _gradient_factor(y_row[i], code)
                d_row[i] = d
                total += d
                centred_total += np.float64(d) * (np.float64(x_row[i]) - m)
        bias_updates[c] += np.float32(total)
        scale_updates[c] += np.float32(centred_total / denominator[c])
        delta_factor = s / root[c]
        centred_factor = 2.0 * s * centred_total * variance_factor[c] / count
        offset = s * total * mean_factor[c] / count
        for b in range(batch):
            d_row, x_row = delta[b, c], x[b, c]
            for i in range(n):
                d_row[i] = np.float32(np.float64(d_row[i]) * delta_factor + offset
                                      + (np.float64(x_row[i]) - m) * centred_factor)


@_loop()
def _col2im_loop(cols, image, size, stride, pad, out_h, out_w, start, stop):
    """col2im_cpu for image planes [start, stop) of the (batch * channels) planes: each
    kernel offset's row of columns added onto the plane, in (ky, kx) order."""
    _, channels, height, width = image.shape
    for plane in range(start, stop):
        b = plane // channels
        c = plane - b * channels
        target = image[b, c]
        for ky in range(size):
            # output rows/columns whose input position lies inside the image
            row_lo = max(0, (pad - ky + stride - 1) // stride)
            row_hi = min(out_h, max(0, (height + pad - ky + stride - 1) // stride))
            for kx in range(size):
                col_lo = max(0, (pad - kx + stride - 1) // stride)
                col_hi = min(out_w, max(0, (width + pad - kx + stride - 1) // stride))
                source = cols[b, (c * size + ky) * size + kx]
                for oh in range(row_lo, row_hi):
                    line = target[oh * stride + ky - pad]
                    base = oh * out_w
                    offset = kx - pad
                    for ow in range(col_lo, col_hi):
                        line[ow * stride + offset] += source[base + ow]


@_loop()
def _maxpool_indexed_loop(x, output, indexes, size, stride, top, start, stop):
    """forward_maxpool_layer over planes [start, stop) of x (planes, h, w); the index is
    the cell's flat position in the whole input (plane * h*w + row * w + column)."""
    height, width = x.shape[1], x.shape[2]
    out_h, out_w = output.shape[1], output.shape[2]
    lowest = F32(-FLT_MAX)
    if size == 2 and stride == 2 and top == 0 and 2 * out_h <= height \
            and 2 * out_w <= width:
        # the usual 2x2/2 pool, every window inside: no bounds checks
        for plane in range(start, stop):
            base = plane * height * width
            for i in range(out_h):
                upper = x[plane, 2 * i]
                lower = x[plane, 2 * i + 1]
                out_row = output[plane, i]
                index_row = indexes[plane, i]
                first = base + 2 * i * width
                for j in range(out_w):
                    best = lowest
                    best_index = -1
                    value = upper[2 * j]
                    if value > best:
                        best = value
                        best_index = first + 2 * j
                    value = upper[2 * j + 1]
                    if value > best:
                        best = value
                        best_index = first + 2 * j + 1
                    value = lower[2 * j]
                    if value > best:
                        best = value
                        best_index = first + width + 2 * j
                    value = lower[2 * j + 1]
                    if value > best:
                        best = value
                        best_index = first + width + 2 * j + 1
                    out_row[j] = best
                    index_row[j] = best_index
        return
    for plane in range(start, stop):
        base = plane * height * width
        for i in range(out_h):
            for j in range(out_w):
                best = lowest
                best_index = -1
                for n in range(size):
                    row = i * stride - top + n
                    for m in range(size):
                        col = j * stride - top + m
                        if 0 <= row < height and 0 <= col < width:
                            value = x[plane, row, col]
                            if value > best:
                                best = value
                                best_index = base + row * width + col
                output[plane, i, j] = best
                indexes[plane, i, j] = best_index


@_loop()
def _sgd_loop(param, update, rate, momentum, decay_term, decay, start, stop):
    """sgd_step over elements [start, stop) of flat float32 arrays, each operation rounded
    to float32 as NumPy's whole-array steps round them (the same values bit for bit)."""
    for i in range(start, stop):
        if decay:
            update[i] += decay_term * param[i]
        param[i] += rate * update[i]
        update[i] *= momentum


@_loop()
def _maxpool_backward_loop(delta, indexes, target, start, stop):
    """backward_maxpool_layer for planes [start, stop): target[index] += delta in order."""
    for plane in range(start, stop):
        d_row, i_row = delta[plane], indexes[plane]
        for j in range(d_row.shape[0]):
            index = i_row[j]
            if index >= 0:
                target[index] += d_row[j]
