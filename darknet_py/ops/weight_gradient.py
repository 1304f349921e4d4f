"""A convolution's weight gradient in bands, for default-mode training on the CPU.

backward_convolutional_layer adds delta . im2col(x)^T per image into the weight updates:
im2col writes the whole (C*k*k, out_h*out_w) column matrix to memory (37-50 MB for
yolov2-tiny's first layers at batch 2) and the GEMM reads it back. Here each task takes
bands of output rows: it writes the band's columns into a buffer that stays in its
core's cache (BAND_BYTES) and adds delta_band . columns_band^T into its own total with
OpenBLAS's beta = 1, so the columns never go through memory. The caller adds the
tasks' totals in task order. The sums run in another order than darknet's (one GEMM
per band, added by the GEMM): default mode only; `-exact` keeps darknet's per-image
GEMMs.
"""
import numpy as np

from .cpu_kernels import kernel

prange = range   # numba.prange in the kernels marked parallel, once compiled

# A band's columns: well within a core's L2 (2 MB on the machines measured here),
# beside the GEMM's packed copies of them and of the delta band.
BAND_BYTES = 512 << 10


def band_rows(channels, size, out_h, out_w):
    """Output rows per band: its columns within BAND_BYTES, at least one row."""
    per_row = channels * size * size * out_w * 4
    return max(1, min(out_h, BAND_BYTES // per_row))


@kernel(inline=True)
def _band_columns(x, image, cols, size, stride, pad, row0, row1, out_w):
    """The band's (C*size*size, count) column matrix in the flat buffer cols, count =
    (row1 - row0)*out_w: entry [(c*size + ky)*size + kx, (oy - row0)*out_w + ox] is
    x[image, c, oy*stride + ky - pad, ox*stride + kx - pad], zero outside the input
    (im2col_cpu's layout, for output rows row0..row1)."""
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    count = (row1 - row0) * out_w
    for c in range(channels):
        for ky in range(size):
            for kx in range(size):
                start = ((c * size + ky) * size + kx) * count
                row = cols[start:start + count]
                # output columns whose input column lies inside: [lo, hi)
                lo = max(0, -((kx - pad) // stride)) if kx < pad else 0
                hi = min(out_w, (width - 1 + pad - kx) // stride + 1)
                hi = max(hi, lo)
                for oy in range(row0, row1):
                    target = row[(oy - row0) * out_w:(oy - row0 + 1) * out_w]
                    iy = oy * stride + ky - pad
                    if iy < 0 or iy >= height:
                        target[:] = 0
                        continue
                    source = x[image, c, iy]
                    target[:lo] = 0
                    first = lo * stride + kx - pad
                    if stride == 1:
                        inner = target[lo:hi]
                        segment = source[first:first + hi - lo]
                        for j in range(hi - lo):
                            inner[j] = segment[j]
                    else:
                        for j in range(lo, hi):
                            target[j] = source[first + (j - lo) * stride]
                    target[hi:] = 0


@kernel(parallel=True)
def _bands_kernel(sgemm, x, delta, totals, buffers, size, stride, pad, out_h, out_w,
                  rows_per_band):
    """totals[t] = sum over task t's bands of delta[b, :, band] . cols(b, band)^T."""
    batch, n_filters = delta.shape[0], delta.shape[1]
    depth = totals.shape[2]
    hw = out_h * out_w
    bands = (out_h + rows_per_band - 1) // rows_per_band
    items = batch * bands
    tasks = totals.shape[0]
    for task in prange(tasks):
        cols = buffers[task]
        beta = np.float32(0)
        for item in range(task * items // tasks, (task + 1) * items // tasks):
            image, band = item // bands, item % bands
            row0 = band * rows_per_band
            row1 = min(out_h, row0 + rows_per_band)
            count = (row1 - row0) * out_w
            _band_columns(x, image, cols, size, stride, pad, row0, row1, out_w)
            sgemm(101, 111, 112, n_filters, depth, count, np.float32(1),
                  delta[image].ctypes.data + 4 * row0 * out_w, hw, cols.ctypes.data, count,
                  beta, totals[task].ctypes.data, depth)
            beta = np.float32(1)
        if beta == 0:   # a task without bands (more tasks than bands)
            totals[task][:] = 0


def add_weight_gradient(sgemm, x, delta, weight_updates, size, stride, pad, out_h, out_w,
                        tasks, scratch):
    """weight_updates (K, C*size*size) += sum_b delta[b] (K, out_h*out_w) . im2col(x[b])^T
    for x (B, C, H, W) and delta (B, K, out_h*out_w), C-contiguous float32, on numba's
    threads with OpenBLAS single-threaded (the caller holds blas_single_threaded).
    scratch(name, count) gives the workspaces."""
    channels = x.shape[1]
    depth = channels * size * size
    rows = band_rows(channels, size, out_h, out_w)
    n_filters = delta.shape[1]
    totals = scratch("weight_gradient totals", tasks * n_filters * depth).reshape(
        tasks, n_filters, depth)
    buffers = scratch("weight_gradient columns", tasks * depth * rows * out_w).reshape(
        tasks, depth * rows * out_w)
    _bands_kernel(sgemm, x, delta, totals, buffers, size, stride, pad, out_h, out_w, rows)
    for total in totals:
        weight_updates += total
