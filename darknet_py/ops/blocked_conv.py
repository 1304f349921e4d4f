"""The 3x3 stride-1 convolution computed directly, register-blocked on 16-float vectors
(simd.py): the inference path's choice for the thin layers of large maps (16-128 channels
at 52x52 and beyond), where Winograd's transforms cost more than its saved
multiplications (Winograd: the input and output transforms were two thirds of
yolov2-tiny-voc's 16->32 layer at 208x208).

The layout. Each channel of the input is copied once, zero-padded, into a plane `pitch`
= out_w + 2 floats wide. Read flat, the plane makes every output position (y, x) the
point p = y*pitch + x, and its nine taps the points p + ky*pitch + kx: one convolution
over a 1-D signal, whose 2 extra columns per row are computed and thrown away (4% at
52x52). So the vectors run along p whatever the map's width, with no edge cases.

The block. 8 filters x 3 vectors (48 consecutive points) of accumulators, 24 of the 32
512-bit registers, stay in registers over every channel and tap; each tap loads 3 input
vectors and broadcasts 8 weights for 24 multiply-adds. The filters are packed once per
weights array (block, channel, tap, filter) so that the 8 broadcasts of a tap are
consecutive floats. A task is one band of output rows of one image for one block of
filters, its 8 x band accumulator rows written to a scratch buffer that stays in cache;
its tail then scales, shifts and activates each row (darknet's folded batch norm, as
every inference path) into the output, or pools row pairs by darknet's 2x2/2 maxpool
(cpu_kernels.pool_rows, the same values bit for bit as maxpool_inference).

Arithmetic. Each output is the sum over channels, rows and columns of the taps in that
order, one fused multiply-add per tap: as accurate as the GEMM of im2col
(tests/test_fast_conv.py compares both with the float64 convolution). Default mode
only: exact mode never comes here.

Imported by numpy_ops once numba is known to be installed (simd imports numba)."""
import functools

import numpy as np

from .cpu_kernels import (activated, compiled, kernel, numba_threads, output_array,
                          parallel_tasks, pool_rows, task_elements, zero_bordered)
from .simd import LANES, vbroadcast, vclean, vfma, vload, vstore, vzero
from .threads import for_blocks

prange = range   # numba.prange once compiled (cpu_kernels._jitted)

FILTERS = 8    # filters per block
VECTORS = 3    # vectors of output points per block
SPAN = VECTORS * LANES   # output points per block
BAND_POINTS = 1536   # about this many output points per task (8 x 6 KB of accumulators)


@kernel
def _block(flat, plane, pitch, packed, channels, start, count, buf):
    """buf[f, j] for j < count (a multiple of SPAN) = the convolution at output point
    start + j of the filter-block whose packed taps are `packed` (channel, tap, filter),
    from `flat`, one image's padded channels `plane` floats apart."""
    for first in range(0, count, SPAN):
        a00 = vzero(); a01 = vzero(); a02 = vzero()   # noqa: E702 (filter 0, vectors 0..2)
        a10 = vzero(); a11 = vzero(); a12 = vzero()   # noqa: E702
        a20 = vzero(); a21 = vzero(); a22 = vzero()   # noqa: E702
        a30 = vzero(); a31 = vzero(); a32 = vzero()   # noqa: E702
        a40 = vzero(); a41 = vzero(); a42 = vzero()   # noqa: E702
        a50 = vzero(); a51 = vzero(); a52 = vzero()   # noqa: E702
        a60 = vzero(); a61 = vzero(); a62 = vzero()   # noqa: E702
        a70 = vzero(); a71 = vzero(); a72 = vzero()   # noqa: E702
        tap = 0
        for channel in range(channels):
            for ky in range(3):
                for kx in range(3):
                    at = channel * plane + start + first + ky * pitch + kx
                    x0 = vload(flat, at)
                    x1 = vload(flat, at + LANES)
                    x2 = vload(flat, at + 2 * LANES)
                    w = vbroadcast(packed, tap)
                    a00 = vfma(w, x0, a00); a01 = vfma(w, x1, a01); a02 = vfma(w, x2, a02)  # noqa: E702,E501
                    w = vbroadcast(packed, tap + 1)
                    a10 = vfma(w, x0, a10); a11 = vfma(w, x1, a11); a12 = vfma(w, x2, a12)  # noqa: E702,E501
                    w = vbroadcast(packed, tap + 2)
                    a20 = vfma(w, x0, a20); a21 = vfma(w, x1, a21); a22 = vfma(w, x2, a22)  # noqa: E702,E501
                    w = vbroadcast(packed, tap + 3)
                    a30 = vfma(w, x0, a30); a31 = vfma(w, x1, a31); a32 = vfma(w, x2, a32)  # noqa: E702,E501
                    w = vbroadcast(packed, tap + 4)
                    a40 = vfma(w, x0, a40); a41 = vfma(w, x1, a41); a42 = vfma(w, x2, a42)  # noqa: E702,E501
                    w = vbroadcast(packed, tap + 5)
                    a50 = vfma(w, x0, a50); a51 = vfma(w, x1, a51); a52 = vfma(w, x2, a52)  # noqa: E702,E501
                    w = vbroadcast(packed, tap + 6)
                    a60 = vfma(w, x0, a60); a61 = vfma(w, x1, a61); a62 = vfma(w, x2, a62)  # noqa: E702,E501
                    w = vbroadcast(packed, tap + 7)
                    a70 = vfma(w, x0, a70); a71 = vfma(w, x1, a71); a72 = vfma(w, x2, a72)  # noqa: E702,E501
                    tap += FILTERS
        _store3(buf[0], first, a00, a01, a02)
        _store3(buf[1], first, a10, a11, a12)
        _store3(buf[2], first, a20, a21, a22)
        _store3(buf[3], first, a30, a31, a32)
        _store3(buf[4], first, a40, a41, a42)
        _store3(buf[5], first, a50, a51, a52)
        _store3(buf[6], first, a60, a61, a62)
        _store3(buf[7], first, a70, a71, a72)


@kernel(inline=True)
def _store3(row, at, v0, v1, v2):
    vstore(row, at, v0)
    vstore(row, at + LANES, v1)
    vstore(row, at + 2 * LANES, v2)


@kernel(inline=True)
def _tail_row_loop(source, target, factor, shift, code, count):
    for j in range(count):
        target[j] = activated(source[j] * factor + shift, code)


@kernel(inline=True)
def _tail_row(source, target, factor, shift, code, count):
    """target[:count] = the activation of source*factor + shift: one loop per activation
    code, a constant there, so that LLVM vectorises it (cpu_kernels' note)."""
    if code == 1:
        _tail_row_loop(source, target, factor, shift, 1, count)
    elif code == 0:
        _tail_row_loop(source, target, factor, shift, 0, count)
    elif code == 2:
        _tail_row_loop(source, target, factor, shift, 2, count)
    else:
        _tail_row_loop(source, target, factor, shift, code, count)


@kernel
def _bands(flat, packed, factors, shifts, code, out, pool, conv_h, conv_w, pitch, band,
           item0, item1):
    """Items item0..item1 of the job, item = (image * n_bands + band) * n_blocks + block:
    output rows [band*b, band*b + band) of that image for that block of filters, into
    out (the map) or with pool its pooled rows."""
    n_filters = out.shape[1]
    n_blocks = packed.shape[0]
    n_bands = -(-conv_h // band)
    channels = packed.shape[1] // (9 * FILTERS)
    plane = flat.shape[1] // channels
    buf = np.empty((FILTERS, -(-band * pitch // SPAN) * SPAN), dtype=np.float32)
    for item in range(item0, item1):
        block = item % n_blocks
        image = item // (n_blocks * n_bands)
        y0 = (item // n_blocks) % n_bands * band
        y1 = min(conv_h, y0 + band)
        count = -(-(y1 - y0) * pitch // SPAN) * SPAN
        _block(flat[image], plane, pitch, packed[block], channels, y0 * pitch, count, buf)
        for f in range(min(FILTERS, n_filters - block * FILTERS)):
            k = block * FILTERS + f
            row = buf[f]
            if pool:
                for y in range(y0, y1, 2):
                    upper = row[(y - y0) * pitch:(y - y0) * pitch + conv_w]
                    _tail_row(upper, upper, factors[k], shifts[k], code, conv_w)
                    lower_in = y + 1 < conv_h
                    lower = upper
                    if lower_in:
                        lower = row[(y + 1 - y0) * pitch:(y + 1 - y0) * pitch + conv_w]
                        _tail_row(lower, lower, factors[k], shifts[k], code, conv_w)
                    pool_rows(upper, lower, out[image, k, y // 2], conv_w, lower_in)
            else:
                for y in range(y0, y1):
                    _tail_row(row[(y - y0) * pitch:], out[image, k, y], factors[k],
                              shifts[k], code, conv_w)
    vclean()


@kernel(parallel=True)
def _band_tasks(flat, packed, factors, shifts, code, out, pool, conv_h, conv_w, pitch, band,
                items, tasks):
    """_bands over all items, split into `tasks` ranges on numba's threads."""
    for task in prange(tasks):
        _bands(flat, packed, factors, shifts, code, out, pool, conv_h, conv_w, pitch, band,
               task * items // tasks, (task + 1) * items // tasks)


@kernel
def _copy_planes(source, target, pad, inner_h, inner_w, p0, p1):
    """The window of planes p0..p1 of source into target at (pad, pad)."""
    for p in range(p0, p1):
        for y in range(inner_h):
            row = target[p, pad + y, pad:pad + inner_w]
            line = source[p, y]
            for j in range(inner_w):
                row[j] = line[j]


@kernel(parallel=True)
def _copy_tasks(source, target, pad, inner_h, inner_w, planes, tasks):
    """_copy_planes over all planes on numba's threads: NumPy's copy into the padded
    array, on one thread, took 0.5-0.9 ms of a 4-5 ms layer."""
    for task in prange(tasks):
        _copy_planes(source, target, pad, inner_h, inner_w, task * planes // tasks,
                     (task + 1) * planes // tasks)


def pack_filters(weights):
    """(K, C, 3, 3) filters as (ceil(K/8), C*9*8): block, channel, tap, filter, the
    filters past K zero."""
    n_filters, channels = weights.shape[:2]
    blocks = -(-n_filters // FILTERS)
    packed = np.zeros((blocks * FILTERS, channels, 9), dtype=np.float32)
    packed[:n_filters] = weights.reshape(n_filters, channels, 9)
    return np.ascontiguousarray(
        packed.reshape(blocks, FILTERS, channels, 9).transpose(0, 2, 3, 1)).reshape(
            blocks, channels * 9 * FILTERS)


def conv3x3(x, packed, n_filters, pad, factors, shifts, code, out=None, pool=False):
    """The 3x3 stride-1 convolution of x (B, C, H, W) with the filters pack_filters
    made of (n_filters, C, 3, 3) weights, then y*factors + shifts and activation `code`
    (cpu_kernels.FUSED_ACTIVATIONS); pool: darknet's 2x2/2 maxpool of that instead,
    (B, K, ceil(out_h/2), ceil(out_w/2))."""
    compiled()
    batch, channels, height, width = x.shape
    conv_h, conv_w = height + 2 * pad - 2, width + 2 * pad - 2
    pitch = conv_w + 2
    # rows below the map so that the last block's overrun (up to SPAN points) reads zeros
    rows = conv_h + 2 + -(-(SPAN + 2) // pitch)
    inner_h, inner_w = min(height, conv_h + 2 - pad), min(width, conv_w + 2 - pad)
    padded = zero_bordered((batch, channels, rows, pitch), pad, inner_h, inner_w)
    planes = batch * channels
    source = x.reshape(planes, height, width) if x.flags.c_contiguous else \
        np.ascontiguousarray(x).reshape(planes, height, width)
    target = padded.reshape(planes, rows, pitch)
    if numba_threads():
        _copy_tasks(source, target, pad, inner_h, inner_w, planes,
                    parallel_tasks(planes, inner_h * inner_w))
    else:
        for_blocks(planes, inner_h * inner_w,
                   lambda p0, p1: _copy_planes(source, target, pad, inner_h, inner_w, p0, p1),
                   block_elements=task_elements(planes, inner_h * inner_w))
    flat = padded.reshape(batch, channels * rows * pitch)
    out_h, out_w = ((conv_h + 1) // 2, (conv_w + 1) // 2) if pool else (conv_h, conv_w)
    out = output_array(out, (batch, n_filters, out_h, out_w), x)
    band = max(2, BAND_POINTS // pitch // 2 * 2)   # even: a band holds whole row pairs
    items = batch * -(-conv_h // band) * packed.shape[0]
    per_item = band * pitch * channels * 9 * FILTERS
    if numba_threads():
        _band_tasks(flat, packed, factors, shifts, code, out, pool, conv_h, conv_w, pitch,
                    band, items, parallel_tasks(items, per_item))
    else:
        work = functools.partial(_bands, flat, packed, factors, shifts, code, out, pool,
                                 conv_h, conv_w, pitch, band)
        for_blocks(items, per_item, work, block_elements=task_elements(items, per_item))
    return out
