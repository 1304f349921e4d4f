"""The NumPy backend: every numeric primitive the layers need, on the CPU.

This is the reference implementation. Each function reproduces darknet's CPU arithmetic
(float32 storage, the few places darknet computes in double) closely enough that outputs
agree with darknet to about 1e-6 relative; the comments say where the order of summation
differs (BLAS GEMM, pairwise sums) and so the last bits may.

Arrays are NCHW float32. A layer never calls numpy directly for numerics: it calls these,
and the CuPy backend provides the same names.
"""
import threading

import numpy as np

from .. import activations
from ..settings import BN_BACKWARD_EPSILON, BN_EPSILON, FLT_MAX, SECRET_NUM
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
_local = threading.local()


def _workspace(shape):
    """A float32 array of `shape` valid until the calling thread's next _workspace() call."""
    count = int(np.prod(shape, dtype=np.int64))
    if count * 4 > WORKSPACE_LIMIT_BYTES:
        return np.empty(shape, dtype=F32)
    buffer = getattr(_local, "workspace", None)
    if buffer is None or buffer.size < count:
        buffer = _local.workspace = np.empty(count, dtype=F32)
    return buffer[:count].reshape(shape)


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
    _workspace()): use it before the next im2col on this thread.

    No padded copy of the input: for each kernel offset the valid rectangle is copied with
    one strided assignment and the border strips are zeroed. Planes are split across threads."""
    batch, channels, height, width = x.shape
    cols = _workspace((batch, channels * size * size, out_h * out_w))
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


def _window_cell(padded, cell, size, stride, out_h, out_w):
    """What window cell `cell` (row-major within the window) covers at every output
    position: one strided view of the last two axes of the padded input."""
    ky, kx = divmod(cell, size)
    return padded[..., ky:ky + stride * (out_h - 1) + 1:stride,
                  kx:kx + stride * (out_w - 1) + 1:stride]


def _maxpool_values(padded, size, stride, out_h, out_w):
    """Inference's maxpool: the running maximum over the window cells, planes split across
    threads. fmax, so that a NaN never wins, as with darknet's strict '>'."""
    batch, channels = padded.shape[:2]
    planes = padded.reshape(batch * channels, *padded.shape[2:])
    output = np.empty((batch * channels, out_h, out_w), dtype=F32)

    def work(start, stop):
        target, block = output[start:stop], planes[start:stop]
        target[...] = _window_cell(block, 0, size, stride, out_h, out_w)
        for cell in range(1, size * size):
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
                    tree_offsets=None):
    """The region layer's activations on x (batch, anchors*entries, h, w), darknet's
    entry_index layout: logistic on x, y and (unless background) the objectness; then a
    tree softmax (one softmax per WordTree group, starting at offsets tree_offsets, with
    darknet's GPU arithmetic: see softmax_groups), or darknet's CPU softmax over the classes
    (softmax=1), or nothing. w, h stay raw."""
    batch = x.shape[0]
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
def col2im_add(cols, image, size, stride, pad, out_h, out_w):
    """Adjoint of im2col: add (B, C*size*size, out_h*out_w) columns into image (B, C, H, W)
    in place, as darknet's col2im_cpu does: kernel offsets in (c, ky, kx) order, each added
    straight onto what the image holds; entries that fall in the padding are dropped."""
    batch, channels, height, width = image.shape
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
    float running sums, the mean scaled by float(1/N), the variance divided by N-1.

    darknet adds each square in double to a float total and rounds (`variance[i] +=
    pow(x - mean, 2)`); exact=True does that, one step per element (slow); otherwise the
    squares are rounded to float first, which differs in the last bit now and then."""
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = channel_sums(x) * F32(1.0 / count)
    centred = (x - mean[None, :, None, None]).astype(F64)
    squares = _by_channel(centred * centred)
    if exact:
        total = np.zeros(x.shape[1], dtype=F32)
        for column in squares.T:
            total = (total + column).astype(F32)
    else:
        total = sequential_sum(squares.astype(F32))
    return mean, total * F32(1.0 / (count - 1))


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


def maxpool_backward(delta, indexes, input_shape, size, stride, pad):
    """Each output's delta goes to the input cell that won the max (accumulating).
    size, stride, pad: the window geometry (the GPU backend gathers with it; the indexes
    say everything here)."""
    grad = np.zeros(int(np.prod(input_shape)), dtype=F32)
    valid = indexes >= 0
    np.add.at(grad, indexes[valid], delta[valid])
    return grad.reshape(input_shape)


def dropout_mask(rand, probability, scale):
    """Dropout's multiplier from uniform draws: 0 where rand < probability, else scale."""
    return np.where(rand < probability, F32(0), F32(scale))


def sgd_step(param, update, rate, momentum, decay_term=None):
    """darknet's update for one parameter array, in place, in float32:
    decay (weights only): update += (-decay*B) * param; then param += (lr/B) * update;
    update *= momentum. `rate` = lr/B and `decay_term` = -decay*B, rounded as darknet does."""
    if decay_term is not None:
        update += F32(decay_term) * param
    param += F32(rate) * update
    update *= F32(momentum)
