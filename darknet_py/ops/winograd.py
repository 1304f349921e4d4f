"""Winograd F(2x2, 3x3) convolution for inference on the CPU (Lavin & Gray, 2015).

A 3x3 stride-1 convolution computes each 2x2 block of outputs from a 4x4 input tile d as
A^T [ (G g G^T) . (B^T d B) ] A: 16 multiplications per channel pair where the direct
form needs 36, so the GEMMs do 2.25x fewer FLOPs. Per layer:

- the filters g (K, C, 3, 3) become U = G g G^T, (16, K, C), once (in float64, rounded
  once): `transform_filters`, cached by the backend while the weights do not change;
- the input transform B^T d B of every 4x4 tile (stride 2, zeros outside the input) writes
  V (16, C, tiles): adds and subtractions only;
- 16 GEMMs M[xi] = U[xi] @ V[xi] (16, K, tiles) through np.matmul (OpenBLAS);
- the output transform A^T m A writes each 2x2 block, with darknet's folded batch norm
  (x*factor + shift, numpy_ops.batchnorm_fold) and the activation applied on the way, so
  the layer's output is written once.

Accuracy: the transforms' coefficients are 0, +-1 and +-1/2, exact in float32, so the
error is the GEMMs' (as for im2col + GEMM: about 1e-7 relative against float64;
tests/test_fast_conv.py). Only the default (not exact) inference path uses it.

The work is cut into tasks small enough that what one step writes the next reads from
cache (see conv3x3), and the backend's thread pool takes them from one queue.
"""
import numpy as np

from .cpu_kernels import (FUSED_ACTIVATIONS, activated, blas_single_threaded, compiled,
                          fused_gemms, gemm_slab, kernel, pooled_window, output_array, parallel_tasks,
                          scratch, task_elements)
from ..settings import thread_count

prange = range   # numba.prange in the kernels marked parallel, once compiled

F32 = np.float32
# A band task's V and M together: about a core's L2 (what the input transform writes the
# GEMMs read, and their output the output transform, from cache), yet >= BAND_MIN_TILES
# columns per GEMM (narrower ones lose more to OpenBLAS's packing than misses cost).
BAND_BYTES = 1 << 20
BAND_MIN_TILES = 128
# Bands only while U (16 x K x C floats) is this small: it is read by every band.
BAND_FILTER_BYTES = 512 << 10
# _by_steps' V and M of one chunk of images: within the last-level cache (32 MB here).
STEP_BYTES = 24 << 20
# Rows of at least this many tiles go through _output_row's vectorised loop.
ROW_TILES = 32
# ... and pooled rows of at least this many (one store per tile, not four)
POOLED_ROW_TILES = 16
# Which U slab each of the 16 GEMMs uses: the same one, or for the adjoint (flipped
# filters) xi = 4a + b -> 4p(a) + p(b) with p exchanging 0 and 3.
FORWARD_SLABS = np.arange(16, dtype=np.int64)
ADJOINT_SLABS = np.array([4 * (3 - a if a in (0, 3) else a) + (3 - b if b in (0, 3) else b)
                          for a in range(4) for b in range(4)], dtype=np.int64)
CBLAS_NO_TRANS, CBLAS_TRANS = 111, 112


def transform_filters(weights, out=None):
    """(K, C, 3, 3) float32 filters -> U = G g G^T as (16, K, C) float32, xi = 4*row+col
    of the 4x4 transformed filter; computed in float64 and rounded once. out: a float32
    array of U's size to write into (the array of a layer's previous transform). The
    convolution's adjoint needs no transform of its own (conv3x3's adjoint)."""
    compiled()   # the kernels below run compiled (the caller checked numba is there)
    filters = np.ascontiguousarray(weights, dtype=F32)
    n_filters, channels = filters.shape[:2]
    if out is None:
        out = np.empty((16, n_filters, channels), dtype=F32)
    transformed = out.reshape(16, n_filters, channels)
    _filter_transform(filters.reshape(n_filters, channels, 9), transformed,
                      _slab_stride(channels), max(1, min(n_filters, 2 * thread_count())))
    return transformed


@kernel(parallel=True)
def _filter_transform(filters, out, stride, tasks):
    """out[4*a + b, k, c] = sum_ij G[a, i] g[k, c, i, j] G[b, j] in double, where G's rows
    are (1, 0, 0), (1/2, 1/2, 1/2), (1/2, -1/2, 1/2), (0, 0, 1). A filter k (all 16
    slabs of out's row k) at a time: its taps gathered into `taps` (9, C), transformed
    into `rows` (16, C), copied out. Both buffers' rows are _slab_stride apart: 16 or 25
    streams 4 KB apart (1024 channels) map to the same L1 sets, which made the
    arithmetic 5x slower; and writing out's slabs entry by entry, 4 MB apart, took
    110 ms for yolov2's 1024x1024 layer."""
    n_filters, channels = filters.shape[0], filters.shape[1]
    for task in prange(tasks):
        taps = np.empty((9, stride), dtype=np.float32)
        rows = np.empty((16, stride), dtype=np.float32)
        for k in range(task * n_filters // tasks, (task + 1) * n_filters // tasks):
            for c in range(channels):
                for t in range(9):
                    taps[t, c] = filters[k, c, t]
            _transform_row(taps, rows, channels)
            for xi in range(16):
                out[xi, k, :] = rows[xi, :channels]


@kernel(inline=True)
def _transform_row(taps, rows, columns):
    """rows[:, n] = the 16 entries of G g G^T for the 3x3 g in taps[:, n] (row-major)."""
    for n in range(columns):
        # G g: the three columns of g, each combined as (top, sum/2, alternating/2, bottom)
        t0, t1, t2 = np.float64(taps[0, n]), np.float64(taps[1, n]), np.float64(taps[2, n])
        m0, m1, m2 = np.float64(taps[3, n]), np.float64(taps[4, n]), np.float64(taps[5, n])
        b0, b1, b2 = np.float64(taps[6, n]), np.float64(taps[7, n]), np.float64(taps[8, n])
        s0, s1, s2 = 0.5 * (t0 + m0 + b0), 0.5 * (t1 + m1 + b1), 0.5 * (t2 + m2 + b2)
        d0, d1, d2 = 0.5 * (t0 - m0 + b0), 0.5 * (t1 - m1 + b1), 0.5 * (t2 - m2 + b2)
        # (G g) G^T: each of the four rows combined likewise
        rows[0, n], rows[1, n] = t0, 0.5 * (t0 + t1 + t2)
        rows[2, n], rows[3, n] = 0.5 * (t0 - t1 + t2), t2
        rows[4, n], rows[5, n] = s0, 0.5 * (s0 + s1 + s2)
        rows[6, n], rows[7, n] = 0.5 * (s0 - s1 + s2), s2
        rows[8, n], rows[9, n] = d0, 0.5 * (d0 + d1 + d2)
        rows[10, n], rows[11, n] = 0.5 * (d0 - d1 + d2), d2
        rows[12, n], rows[13, n] = b0, 0.5 * (b0 + b1 + b2)
        rows[14, n], rows[15, n] = 0.5 * (b0 - b1 + b2), b2


def _slab_stride(count):
    """Elements between two of the 16 slabs of V or M: at least `count`, and an odd
    multiple of 16 floats (64 bytes). The transforms touch all 16 slabs at once; slabs a
    multiple of 4 KB apart would map to the same cache sets and evict each other (the
    output transform ran 2.5x slower with M's slabs 4 KB-aligned)."""
    stride = -(-count // 32) * 32
    return stride + 16


@kernel
def _input_transform(x, v, pad, tiles_h, tiles_w, row0, row1, c0, c1):
    """V[xi, c, n] = (B^T d B)[xi] for the 4x4 tile d of tile row r (image r // tiles_h,
    tile row r % tiles_h) and column t, n = (r - row0)*tiles_w + t, for channels c0..c1.
    v is (16, slab): channel c's tiles start at c*tiles. Input rows/columns outside the
    image are zeros (the convolution's padding). Scalar code: variants that LLVM
    vectorises (even/odd columns split first, rows read with stride 2) measured slower."""
    height, width = x.shape[2], x.shape[3]
    tiles = (row1 - row0) * tiles_w
    span = 2 * tiles_w + 2
    rows = np.zeros((4, span), dtype=np.float32)
    # padded columns j in [lo, hi) are input columns j - pad: no checks needed there
    lo = min(span, pad)
    hi = max(lo, min(span, width + pad))
    for c in range(c0, c1):
        for r in range(row0, row1):
            image = r // tiles_h
            top = 2 * (r - image * tiles_h) - pad
            # the tile row's 4 input rows with the padding written out: no bounds checks
            # in the loop over tiles
            for k in range(4):
                y = top + k
                target = rows[k]
                if y < 0 or y >= height:
                    target[:] = 0
                    continue
                source = x[image, c, y]
                target[:lo] = 0
                inner = target[lo:hi]
                for j in range(hi - lo):
                    inner[j] = source[j]
                target[hi:] = 0
            n0 = c * tiles + (r - row0) * tiles_w
            for t in range(tiles_w):
                j = 2 * t
                d00 = rows[0, j]
                d01 = rows[0, j + 1]
                d02 = rows[0, j + 2]
                d03 = rows[0, j + 3]
                d10 = rows[1, j]
                d11 = rows[1, j + 1]
                d12 = rows[1, j + 2]
                d13 = rows[1, j + 3]
                d20 = rows[2, j]
                d21 = rows[2, j + 1]
                d22 = rows[2, j + 2]
                d23 = rows[2, j + 3]
                d30 = rows[3, j]
                d31 = rows[3, j + 1]
                d32 = rows[3, j + 2]
                d33 = rows[3, j + 3]
                # B^T d: rows (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
                e00 = d00 - d20
                e01 = d01 - d21
                e02 = d02 - d22
                e03 = d03 - d23
                e10 = d10 + d20
                e11 = d11 + d21
                e12 = d12 + d22
                e13 = d13 + d23
                e20 = d20 - d10
                e21 = d21 - d11
                e22 = d22 - d12
                e23 = d23 - d13
                e30 = d10 - d30
                e31 = d11 - d31
                e32 = d12 - d32
                e33 = d13 - d33
                # (B^T d) B: the same combination of columns
                n = n0 + t
                v[0, n] = e00 - e02
                v[1, n] = e01 + e02
                v[2, n] = e02 - e01
                v[3, n] = e01 - e03
                v[4, n] = e10 - e12
                v[5, n] = e11 + e12
                v[6, n] = e12 - e11
                v[7, n] = e11 - e13
                v[8, n] = e20 - e22
                v[9, n] = e21 + e22
                v[10, n] = e22 - e21
                v[11, n] = e21 - e23
                v[12, n] = e30 - e32
                v[13, n] = e31 + e32
                v[14, n] = e32 - e31
                v[15, n] = e31 - e33


@kernel(inline=True)
def _tile_outputs(m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15,
                  factor, shift, code):
    """A^T m A for one tile's 16 transformed values: its 2x2 outputs (y00, y01, y10, y11),
    each times factor plus shift, activated."""
    # A^T m: rows (m0 + m1 + m2, m1 - m2 - m3)
    a0 = m0 + m4 + m8
    a1 = m1 + m5 + m9
    a2 = m2 + m6 + m10
    a3 = m3 + m7 + m11
    b0 = m4 - m8 - m12
    b1 = m5 - m9 - m13
    b2 = m6 - m10 - m14
    b3 = m7 - m11 - m15
    return (activated((a0 + a1 + a2) * factor + shift, code),
            activated((a1 - a2 - a3) * factor + shift, code),
            activated((b0 + b1 + b2) * factor + shift, code),
            activated((b1 - b2 - b3) * factor + shift, code))


@kernel(inline=True)
def _block(m, n, factor, shift, code):
    """The 2x2 outputs A^T m A of the transformed tile at column n of m, each times
    factor plus shift, activated."""
    return _tile_outputs(m[0, n], m[1, n], m[2, n], m[3, n], m[4, n], m[5, n], m[6, n],
                         m[7, n], m[8, n], m[9, n], m[10, n], m[11, n], m[12, n], m[13, n],
                         m[14, n], m[15, n], factor, shift, code)


@kernel(inline=True)
def _output_row_loop(m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15,
                     upper, lower, factor, shift, code, count):
    for t in range(count):
        y00, y01, y10, y11 = _tile_outputs(m0[t], m1[t], m2[t], m3[t], m4[t], m5[t], m6[t],
                                           m7[t], m8[t], m9[t], m10[t], m11[t], m12[t],
                                           m13[t], m14[t], m15[t], factor, shift, code)
        upper[2 * t] = y00
        upper[2 * t + 1] = y01
        lower[2 * t] = y10
        lower[2 * t + 1] = y11


@kernel(inline=True)
def _pooled_row_loop(m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15,
                     target, factor, shift, code, count, lower):
    for t in range(count):
        y00, y01, y10, y11 = _tile_outputs(m0[t], m1[t], m2[t], m3[t], m4[t], m5[t], m6[t],
                                           m7[t], m8[t], m9[t], m10[t], m11[t], m12[t],
                                           m13[t], m14[t], m15[t], factor, shift, code)
        target[t] = pooled_window(y00, y01, y10, y11, True, lower)


@kernel
def _output_row(m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15, upper,
                lower, factor, shift, code, count):
    """_block for tiles 0..count of one tile row, given each slab's row of M as 1-D
    arrays indexed from 0 (numba then knows no index is negative) and one loop per
    activation code (a constant there): LLVM vectorises these loops, 3-4x faster than
    _block's scalar code on rows of 32 tiles or more."""
    if code == 1:
        _output_row_loop(m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14,
                         m15, upper, lower, factor, shift, 1, count)
    elif code == 0:
        _output_row_loop(m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14,
                         m15, upper, lower, factor, shift, 0, count)
    elif code == 2:
        _output_row_loop(m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14,
                         m15, upper, lower, factor, shift, 2, count)
    else:
        _output_row_loop(m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14,
                         m15, upper, lower, factor, shift, code, count)


@kernel
def _pooled_row(m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15, target,
                factor, shift, code, count, lower):
    """_output_row for a pooled output row: each tile's 2x2 outputs pooled into one
    value (lower: whether the tile's second row lies in the map)."""
    if code == 1:
        _pooled_row_loop(m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14,
                         m15, target, factor, shift, 1, count, lower)
    elif code == 0:
        _pooled_row_loop(m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14,
                         m15, target, factor, shift, 0, count, lower)
    elif code == 2:
        _pooled_row_loop(m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14,
                         m15, target, factor, shift, 2, count, lower)
    else:
        _pooled_row_loop(m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14,
                         m15, target, factor, shift, code, count, lower)


@kernel
def _output_transform(m, out, factors, shifts, code, tiles_h, tiles_w, row0, row1, k0, k1,
                      m_first, pool, conv_h, conv_w):
    """out[image, k, 2*ty + i, 2*tx + j] from M[xi, k, n] (m is (16, slab), filter k's
    tiles starting at (k - m_first)*tiles) for tile rows row0..row1 and filters k0..k1; a
    last odd row or column of tiles writes only the outputs inside the (conv_h, conv_w)
    map. pool: out[image, k, ty, tx] = the maximum of the tile's outputs instead
    (cpu_kernels.pooled_window: darknet's 2x2/2 maxpool, fused)."""
    tiles = (row1 - row0) * tiles_w
    half = conv_w // 2
    spare = np.empty(conv_w + 1, dtype=np.float32)   # the row below the last, if odd
    for k in range(k0, k1):
        factor = factors[k]
        shift = shifts[k]
        for r in range(row0, row1):
            image = r // tiles_h
            ty = r - image * tiles_h
            y = 2 * ty
            n0 = (k - m_first) * tiles + (r - row0) * tiles_w
            n1 = n0 + half
            if pool:
                target = out[image, k, ty]
                lower_in = y + 1 < conv_h
                if half >= POOLED_ROW_TILES:
                    _pooled_row(m[0, n0:n1], m[1, n0:n1], m[2, n0:n1], m[3, n0:n1],
                                m[4, n0:n1], m[5, n0:n1], m[6, n0:n1], m[7, n0:n1],
                                m[8, n0:n1], m[9, n0:n1], m[10, n0:n1], m[11, n0:n1],
                                m[12, n0:n1], m[13, n0:n1], m[14, n0:n1], m[15, n0:n1],
                                target, factor, shift, code, half, lower_in)
                else:
                    for t in range(half):
                        y00, y01, y10, y11 = _block(m, n0 + t, factor, shift, code)
                        target[t] = pooled_window(y00, y01, y10, y11, True, lower_in)
                if conv_w & 1:
                    y00, y01, y10, y11 = _block(m, n1, factor, shift, code)
                    target[half] = pooled_window(y00, y01, y10, y11, False, lower_in)
                continue
            upper = out[image, k, y]
            lower = out[image, k, y + 1] if y + 1 < conv_h else spare
            if half >= ROW_TILES:
                _output_row(m[0, n0:n1], m[1, n0:n1], m[2, n0:n1], m[3, n0:n1],
                            m[4, n0:n1], m[5, n0:n1], m[6, n0:n1], m[7, n0:n1],
                            m[8, n0:n1], m[9, n0:n1], m[10, n0:n1], m[11, n0:n1],
                            m[12, n0:n1], m[13, n0:n1], m[14, n0:n1], m[15, n0:n1],
                            upper, lower, factor, shift, code, half)
            else:
                for t in range(half):
                    y00, y01, y10, y11 = _block(m, n0 + t, factor, shift, code)
                    upper[2 * t] = y00
                    upper[2 * t + 1] = y01
                    lower[2 * t] = y10
                    lower[2 * t + 1] = y11
            if conv_w & 1:
                y00, y01, y10, y11 = _block(m, n1, factor, shift, code)
                upper[conv_w - 1] = y00
                lower[conv_w - 1] = y10


def conv3x3(x, filters, pad, factors, shifts, activation, for_blocks, out=None,
            adjoint=False, pool=False):
    """The 3x3 stride-1 convolution of x (B, C, H, W) float32 with U = filters (16, K, C)
    (transform_filters), padding `pad`, then y*factors + shifts per filter and the
    activation when it is in FUSED_ACTIVATIONS (otherwise the caller activates: the
    second value returned is False). for_blocks(length, per_item, work, block_elements)
    runs work(start, stop) over ranges of items on the backend's thread pool. The result
    goes into `out` where it suits (cpu_kernels.output_array).

    Two ways to split the work between threads, both taking tasks from one queue:
    - large maps with small filters (U within BAND_FILTER_BYTES, 16-64 -> 32-128
      channels): a task is a band of tile rows, done start to end by one thread (input
      transform, 16 GEMMs, output transform), its V and M small enough to stay in that
      core's cache while U stays there too;
    - the rest (13x13 to 52x52 maps, 128-1024 channels): three steps, each split into
      tasks (_by_steps), so that each of the 16 GEMMs is one call that keeps its U[xi] in
      cache (bands streamed all of a 2 MB+ U through the cache for every band: 10-15%
      slower at 128 -> 256 channels, 52x52).
    Each thread runs its GEMMs with OpenBLAS on one thread (blas_single_threaded). Where
    cpu_kernels.fused_gemms gives OpenBLAS's sgemm, both ways run as one parallel kernel
    on numba's threads (_fused_bands, _fused_steps: the same tasks and the same serial
    code per task, without a trip through Python between the steps); otherwise their
    tasks go to the Python pool (for_blocks).

    adjoint: the convolution's adjoint instead, with the same U (16, K, C): x has K
    channels and the result C, each GEMM U[ADJOINT_SLABS[xi]]^T @ V[xi]. That is the
    convolution with the filters flipped and K, C swapped, whose transform is U with
    rows and columns 0 and 3 of each 4x4 tile exchanged (G J = P G for the reversal J
    and that exchange P), transposed: training's input delta, padding 2 - pad, without
    transforming the filters again.

    pool: the 2x2/2 maxpool of the (activated) result instead of the result, (B, K,
    ceil(out_h/2), ceil(out_w/2)), each window at (2i, 2j) as darknet's size=2 stride=2
    maxpool places it (padding 0 or 1): each tile's four outputs pooled in the output
    transform, so the full map is never written (activations it cannot fuse are
    refused: they would be applied after the pool)."""
    compiled()
    x = np.ascontiguousarray(x, dtype=F32)
    batch, channels, height, width = x.shape
    n_filters = filters.shape[2] if adjoint else filters.shape[1]
    if filters.shape[1 if adjoint else 2] != channels:
        raise ValueError(f"winograd.conv3x3: filters {filters.shape} do not fit an input "
                         f"of {channels} channels")
    shape = _Shape(batch, channels, n_filters, height + 2 * pad - 2, width + 2 * pad - 2,
                   pad, adjoint, pool)
    code = FUSED_ACTIVATIONS.get(activation, 0)
    if pool and activation not in FUSED_ACTIVATIONS:
        raise ValueError(f"winograd.conv3x3: cannot pool after a '{activation}' activation")
    out = output_array(out, (batch, n_filters, shape.tiles_h, shape.tiles_w) if pool
                       else (batch, n_filters, shape.out_h, shape.out_w), x)
    sgemm = fused_gemms()
    with blas_single_threaded() as own_gemms:
        banded = own_gemms and shape.tiles >= BAND_MIN_TILES * 4 \
            and filters.nbytes <= BAND_FILTER_BYTES
        if own_gemms and sgemm is not None:
            if banded:
                _fused_bands(sgemm, x, filters, shape, factors, shifts, code, out)
            else:
                _fused_steps(sgemm, x, filters, shape, factors, shifts, code, out)
        elif banded:
            _by_bands(x, filters, shape, factors, shifts, code, out, for_blocks)
        else:
            _by_steps(x, filters, shape, factors, shifts, code, out, for_blocks, own_gemms)
    return out, activation in FUSED_ACTIVATIONS


class _Shape:
    """A layer's tiling: 2x2 output blocks, tiles_h x tiles_w per image."""

    def __init__(self, batch, channels, n_filters, out_h, out_w, pad, adjoint=False,
                 pool=False):
        self.batch, self.channels, self.n_filters = batch, channels, n_filters
        self.out_h, self.out_w, self.pad = out_h, out_w, pad
        # the GEMMs' slab order and their A operand: U[xi] as it is, or U[slab]^T
        self.slabs = ADJOINT_SLABS if adjoint else FORWARD_SLABS
        self.transpose_a = CBLAS_TRANS if adjoint else CBLAS_NO_TRANS
        self.adjoint = adjoint
        self.pool = pool   # the output transform writes the 2x2/2 maxpool
        self.tiles_h, self.tiles_w = (out_h + 1) // 2, (out_w + 1) // 2
        self.tile_rows = batch * self.tiles_h
        self.tiles = self.tile_rows * self.tiles_w


def _slabs(name, rows, tiles):
    """A (16, slab) scratch array holding `rows` rows of `tiles` tiles per slab."""
    stride = _slab_stride(rows * tiles)
    return scratch("winograd " + name, 16 * stride).reshape(16, stride)


def _gemms(filters, v, rows, tiles, m, n_rows, errors, first=0, last=16, adjoint=False):
    """m[xi] (n_rows, tiles) = filters[xi] (n_rows, rows) @ v[xi] (rows, tiles) for the
    slabs first..last (adjoint: filters[ADJOINT_SLABS[xi]]^T), under the caller's
    np.errstate `errors` (a pool thread does not inherit it: the network's forward
    silences the inf/NaN warnings that its own check reports instead)."""
    if adjoint:
        a = filters[ADJOINT_SLABS[first:last]].transpose(0, 2, 1)
    else:
        a = filters[first:last]
    count = last - first
    with np.errstate(**errors):
        np.matmul(a, v[first:last, :rows * tiles].reshape(count, rows, tiles),
                  out=m[first:last, :n_rows * tiles].reshape(count, n_rows, tiles))


def _band_rows(shape):
    """Tile rows per band: V and M of a band within BAND_BYTES, >= BAND_MIN_TILES tiles."""
    per_row = 16 * (shape.channels + shape.n_filters) * shape.tiles_w
    return max(1, BAND_BYTES // (4 * per_row), -(-BAND_MIN_TILES // shape.tiles_w))


def _fused_bands(sgemm, x, filters, shape, factors, shifts, code, out):
    """_by_bands as one parallel kernel: each of numba's threads takes a share of the
    bands with its own V and M, and runs their GEMMs itself (cblas_sgemm)."""
    band_rows = _band_rows(shape)
    bands = -(-shape.tile_rows // band_rows)
    tasks = max(1, min(bands, thread_count()))
    tiles = band_rows * shape.tiles_w
    v = scratch("winograd fused_v", tasks * 16 * _slab_stride(shape.channels * tiles)).reshape(
        tasks, 16, -1)
    m = scratch("winograd fused_m", tasks * 16 * _slab_stride(shape.n_filters * tiles)).reshape(
        tasks, 16, -1)
    _bands_kernel(sgemm, x, filters, shape.slabs, shape.transpose_a, shape.n_filters, v, m,
                  out, factors, shifts, code, shape.pad, shape.tiles_h, shape.tiles_w,
                  shape.tile_rows, band_rows, tasks, shape.pool, shape.out_h, shape.out_w)


@kernel(parallel=True)
def _bands_kernel(sgemm, x, filters, slabs, transpose_a, n_filters, v_all, m_all, out,
                  factors, shifts, code, pad, tiles_h, tiles_w, tile_rows, band_rows, tasks,
                  pool, conv_h, conv_w):
    channels, lda = x.shape[1], filters.shape[2]
    bands = (tile_rows + band_rows - 1) // band_rows
    for task in prange(tasks):
        v = v_all[task]
        m = m_all[task]
        for band in range(task * bands // tasks, (task + 1) * bands // tasks):
            row0 = band * band_rows
            row1 = min(tile_rows, row0 + band_rows)
            tiles = (row1 - row0) * tiles_w
            _input_transform(x, v, pad, tiles_h, tiles_w, row0, row1, 0, channels)
            for xi in range(16):
                gemm_slab(sgemm, transpose_a, n_filters, tiles, channels,
                          filters[slabs[xi]].ctypes.data, lda, v[xi].ctypes.data, tiles,
                          m[xi].ctypes.data, tiles)
            _output_transform(m, out, factors, shifts, code, tiles_h, tiles_w, row0, row1,
                              0, n_filters, 0, pool, conv_h, conv_w)


def _fused_steps(sgemm, x, filters, shape, factors, shifts, code, out):
    """_by_steps as one parallel kernel per chunk of images: the input transform split by
    channels, the 16 GEMMs (one OpenBLAS call each, on numba's threads), the output
    transform split by filters; numba's threads wait for each other between the steps
    without going back to Python."""
    channels, n_filters, tiles_w = shape.channels, shape.n_filters, shape.tiles_w
    per_row = 16 * (channels + n_filters) * tiles_w * 4
    chunk_rows = max(1, min(shape.tile_rows, STEP_BYTES // per_row))
    for row0 in range(0, shape.tile_rows, chunk_rows):
        row1 = min(shape.tile_rows, row0 + chunk_rows)
        tiles = (row1 - row0) * tiles_w
        v = _slabs("v_all", channels, tiles)
        m = _slabs("m_all", n_filters, tiles)
        _steps_kernel(sgemm, x, filters, shape.slabs, shape.transpose_a, n_filters, v, m,
                      out, factors, shifts, code, shape.pad, shape.tiles_h, tiles_w, row0,
                      row1,
                      parallel_tasks(channels, 16 * tiles),
                      parallel_tasks(n_filters, 16 * tiles), shape.pool, shape.out_h,
                      shape.out_w)


@kernel(parallel=True)
def _steps_kernel(sgemm, x, filters, slabs, transpose_a, n_filters, v, m, out, factors,
                  shifts, code, pad, tiles_h, tiles_w, row0, row1, in_tasks, out_tasks, pool,
                  conv_h, conv_w):
    channels, lda = x.shape[1], filters.shape[2]
    tiles = (row1 - row0) * tiles_w
    for task in prange(in_tasks):
        _input_transform(x, v, pad, tiles_h, tiles_w, row0, row1,
                         task * channels // in_tasks, (task + 1) * channels // in_tasks)
    for xi in prange(16):
        gemm_slab(sgemm, transpose_a, n_filters, tiles, channels,
                  filters[slabs[xi]].ctypes.data, lda, v[xi].ctypes.data, tiles,
                  m[xi].ctypes.data, tiles)
    for task in prange(out_tasks):
        _output_transform(m, out, factors, shifts, code, tiles_h, tiles_w, row0, row1,
                          task * n_filters // out_tasks, (task + 1) * n_filters // out_tasks,
                          0, pool, conv_h, conv_w)


def _by_bands(x, filters, shape, factors, shifts, code, out, for_blocks):
    channels, n_filters, tiles_w = shape.channels, shape.n_filters, shape.tiles_w
    errors = np.geterr()
    per_row = 16 * (channels + n_filters) * tiles_w   # floats of V and M per tile row
    band_rows = max(1, BAND_BYTES // (4 * per_row), -(-BAND_MIN_TILES // tiles_w))

    def bands(first, last):
        for row0 in range(first, last, band_rows):
            row1 = min(last, row0 + band_rows)
            tiles = (row1 - row0) * tiles_w
            v = _slabs("v", channels, tiles)
            m = _slabs("m", n_filters, tiles)
            _input_transform(x, v, shape.pad, shape.tiles_h, tiles_w, row0, row1, 0,
                             channels)
            _gemms(filters, v, channels, tiles, m, n_filters, errors,
                   adjoint=shape.adjoint)
            _output_transform(m, out, factors, shifts, code, shape.tiles_h, tiles_w, row0,
                              row1, 0, n_filters, 0, shape.pool, shape.out_h, shape.out_w)

    # a task is one band or several (cpu_kernels.TASKS_PER_THREAD)
    for_blocks(shape.tile_rows, per_row, bands,
               block_elements=max(per_row * band_rows,
                                  task_elements(shape.tile_rows, per_row)))


def _by_steps(x, filters, shape, factors, shifts, code, out, for_blocks, own_gemms):
    """Three steps, each split into tasks: the input transform by channels, the 16 GEMMs
    (one task each: a whole GEMM, so that OpenBLAS packs each operand once; splitting
    a GEMM by filters repacked its V for every block, 5x the traffic at batch 8), the
    output transform by filters. M goes through memory, which costs little beside these
    GEMMs; a large batch goes through in chunks of images whose V and M fit STEP_BYTES."""
    channels, n_filters, tiles_w = shape.channels, shape.n_filters, shape.tiles_w
    per_row = 16 * (channels + n_filters) * tiles_w * 4    # bytes of V and M per tile row
    chunk_rows = max(1, min(shape.tile_rows, STEP_BYTES // per_row))
    errors = np.geterr()
    for row0 in range(0, shape.tile_rows, chunk_rows):
        row1 = min(shape.tile_rows, row0 + chunk_rows)
        tiles = (row1 - row0) * tiles_w
        v = _slabs("v_all", channels, tiles)
        m = _slabs("m_all", n_filters, tiles)

        def gemms(first, last, v=v, m=m, tiles=tiles):
            _gemms(filters, v, channels, tiles, m, n_filters, errors, first, last,
                   shape.adjoint)

        def inputs(c0, c1, v=v, row0=row0, row1=row1):
            _input_transform(x, v, shape.pad, shape.tiles_h, tiles_w, row0, row1, c0, c1)

        def outputs(k0, k1, m=m, row0=row0, row1=row1):
            _output_transform(m, out, factors, shifts, code, shape.tiles_h, tiles_w, row0,
                              row1, k0, k1, 0, shape.pool, shape.out_h, shape.out_w)

        for_blocks(channels, 16 * tiles, inputs,
                   block_elements=task_elements(channels, 16 * tiles))
        if own_gemms:
            for_blocks(16, n_filters * channels * tiles, gemms, block_elements=1)
        else:   # BLAS threads each GEMM itself: one call for all 16
            gemms(0, 16)
        for_blocks(n_filters, 16 * tiles, outputs,
                   block_elements=task_elements(n_filters, 16 * tiles))
