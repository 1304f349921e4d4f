"""The CuPy backend: numpy_ops's names and semantics on an NVIDIA GPU.

Every numeric primitive runs in a hand-written CUDA kernel from `kernels/*.cu` (plain CUDA
C, loaded with `cupy.RawModule`, compiled once per process and device and cached); GEMMs go
through cuBLAS (`cupy.matmul`) in float32 with TF32 off unless asked for. The kernels do the
NumPy backend's arithmetic operation by operation (float where it stores float, double where
it computes in double, no fused multiply-add), so results agree with it to the last bits;
they differ where the order of a sum does: cuBLAS blocks GEMM sums as any BLAS does, and the
per-channel reductions add in double in a tree where darknet adds floats left to right.

Arrays are `cupy.ndarray`s, float32, NCHW, contiguous where a kernel reads them. Maxpool
indexes are int32 (the NumPy backend's are int64). `to_host` / `to_device` move arrays
across; the region layer's loss runs on the host through them (as darknet's GPU path
pulls the region output to the CPU for its loss).

CuPy is imported only when a backend is made (`CupyOps(...)`), so darknet_py imports and runs
on machines without it. A backend instance holds one device; `get_ops(i)` in `ops/__init__.py`
makes and caches them.
"""
import os

import numpy as np

from .. import activations, settings

name = "cupy"
F32 = np.float32
F64 = np.float64

# kernels/ beside the package (an editable install or a checkout); DARKNET_PY_KERNELS overrides
KERNEL_DIR = settings.kernel_dir()
KERNEL_FILES = ("activations.cu", "batchnorm.cu", "gemm.cu", "im2col.cu", "pooling.cu",
                "region.cu", "reorg.cu", "sgd.cu", "softmax.cu")
# --fmad=false: no a*b+c contracted into an FMA, so products round as the NumPy backend's do
COMPILE_OPTIONS = ("--fmad=false",)
THREADS = 256            # DN_THREADS in kernels/common.cuh
MAX_BLOCKS = 1 << 19     # the kernels loop over the grid, so any cap covers every element
ACTIVATION_CODES = {activation: code for code, activation in enumerate(activations.NAMES)}

# cuBLAS compute types as cupy numbers them (cupy/_core/_routines_linalg.pyx)
_COMPUTE_TYPE_DEFAULT, _COMPUTE_TYPE_TF32 = 1, 7
_MODULES = {}            # (id(cupy), device, file) -> RawModule: compiled once per process


def kernel_source(file_name):
    """A kernel file's text with `#include "common.cuh"` replaced by that header, so NVRTC
    needs no include path."""
    text = (KERNEL_DIR / file_name).read_text()
    common = (KERNEL_DIR / "common.cuh").read_text()
    return text.replace('#include "common.cuh"', common)


def import_cupy():
    """Import cupy with TF32 off unless the environment already says otherwise."""
    os.environ.setdefault("CUPY_TF32", "0")
    import cupy
    return cupy


class CupyOps:
    """numpy_ops's interface on GPU `device`. `cupy_module` lets tests hand in a stand-in
    with CuPy's API (tests/cuda_emulator.py runs the kernels on the CPU)."""

    name = name

    def __init__(self, device=0, cupy_module=None, tf32=None):
        self.cp = cupy_module if cupy_module is not None else import_cupy()
        self.xp = self.cp
        self.device = int(device)
        self.cp.cuda.Device(self.device).use()
        self._kernels = {}
        self._int_arrays = {}
        if tf32 is None:
            tf32 = settings.tf32_enabled()
        self.set_tf32(tf32)

    # -------------------------------------------------------------- plumbing
    def set_tf32(self, enabled):
        """TF32 tensor-core GEMMs (10-bit mantissa products: ~1e-3 relative) on or off."""
        self.tf32 = bool(enabled)
        try:
            from cupy._core import _routines_linalg as linalg
            linalg.set_compute_type(np.float32, _COMPUTE_TYPE_TF32 if self.tf32
                                    else _COMPUTE_TYPE_DEFAULT)
        except Exception:   # a stand-in, or a cupy without this hook: the environment decides
            os.environ["CUPY_TF32"] = "1" if self.tf32 else "0"

    def kernel(self, file_name, kernel_name):
        """A compiled kernel (the module is compiled once per process and device)."""
        key = (file_name, kernel_name)
        found = self._kernels.get(key)
        if found is None:
            module_key = (id(self.cp), self.device, file_name)
            module = _MODULES.get(module_key)
            if module is None:
                module = self.cp.RawModule(code=kernel_source(file_name),
                                           options=COMPILE_OPTIONS)
                _MODULES[module_key] = module
            found = self._kernels[key] = module.get_function(kernel_name)
        return found

    def _launch(self, file_name, kernel_name, count, args):
        """Run a grid-stride kernel over `count` elements (nothing to do when it is 0)."""
        if count <= 0:
            return
        blocks = min((count + THREADS - 1) // THREADS, MAX_BLOCKS)
        self.kernel(file_name, kernel_name)((blocks,), (THREADS,), args)

    def _blocks(self, file_name, kernel_name, blocks, args):
        """Run a kernel with one block of THREADS threads per channel/row."""
        if blocks <= 0:
            return
        self.kernel(file_name, kernel_name)((int(blocks),), (THREADS,), args)

    def _c(self, array):
        """A contiguous float32 device array (no copy when it already is one)."""
        return self.cp.ascontiguousarray(array, dtype=F32)

    def _ints(self, values):
        """A small int32 device array of constants (tree offsets...), uploaded once."""
        host = np.asarray(values, dtype=np.int64)
        key = host.tobytes()
        found = self._int_arrays.get(key)
        if found is None:
            found = self._int_arrays[key] = self.cp.asarray(host.astype(np.int32))
        return found

    def _empty(self, shape, dtype=F32):
        """Every output buffer comes from here (the kernel tests poison it with NaN)."""
        return self.cp.empty(shape, dtype=dtype)

    @staticmethod
    def _i32(value):
        return np.int32(value)

    @staticmethod
    def _i64(value):
        return np.int64(value)

    def synchronize(self):
        """Wait for the device's queued work (timings: darknet_py.bench, scripts/gpu_check.py)."""
        self.cp.cuda.Device(self.device).synchronize()

    def gemm_library(self):
        """cuBLAS, with the CUDA runtime's version as CuPy reports it."""
        return f"cuBLAS (CUDA runtime {self.cp.cuda.runtime.runtimeGetVersion()})"

    def peak_device_bytes(self):
        """Device memory held by CuPy's pool (it keeps what it once needed: about the peak)."""
        return self.cp.get_default_memory_pool().total_bytes()

    def count_non_finite(self, x):
        """As numpy_ops: one sum on the device, a count only when it is not finite."""
        cp = self.cp
        if bool(cp.isfinite(x.sum(dtype=cp.float64))):
            return 0
        return int(x.size - int(cp.count_nonzero(cp.isfinite(x))))

    # -------------------------------------------------------------- memory
    def to_device(self, array):
        return self.cp.ascontiguousarray(self.cp.asarray(array, dtype=F32))

    def to_host(self, array):
        return self.cp.asnumpy(array)

    def zeros(self, shape):
        return self.cp.zeros(shape, dtype=F32)

    # -------------------------------------------------------------- convolution
    def im2col(self, x, size, stride, pad, out_h, out_w):
        x = self._c(x)
        batch, channels, height, width = x.shape
        cols = self._empty((batch, channels * size * size, out_h * out_w))
        i32 = self._i32
        self._launch("im2col.cu", "im2col", cols.size,
                     (x, i32(batch), i32(channels), i32(height), i32(width), i32(size),
                      i32(stride), i32(pad), i32(out_h), i32(out_w), cols))
        return cols

    def matmul(self, a, b, ordered=False):
        """float32 (..., M, K) @ (..., K, N): cuBLAS, or darknet's gemm_nn order (ordered)."""
        if not ordered:
            return self.cp.matmul(a, b)
        cp = self.cp
        batch_shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
        a = cp.ascontiguousarray(cp.broadcast_to(a, batch_shape + (m, k)), dtype=F32)
        b = cp.ascontiguousarray(cp.broadcast_to(b, batch_shape + (k, n)), dtype=F32)
        batch = int(np.prod(batch_shape, dtype=np.int64))
        out = self._empty(batch_shape + (m, n))
        i32 = self._i32
        self._launch("gemm.cu", "gemm_ordered", out.size,
                     (a, b, i32(batch), i32(m), i32(n), i32(k), out))
        return out

    def conv2d_inference(self, x, weights, size, stride, pad, groups, out_h, out_w, factor,
                         shift, activation, out=None, pool=False):
        """im2col + cuBLAS GEMM, then scale_shift_activate: the layer's training/exact
        forward with the fast tail (numpy_ops.conv2d_inference's values; no Winograd on
        the GPU). darknet skips im2col for every 1x1 kernel. `out` is not used: CuPy's
        memory pool hands back the blocks freed by the last forward without a fault."""
        out = self.conv2d(x, weights, size, stride, pad, groups, out_h, out_w)
        out = self.scale_shift_activate(out, factor, shift, activation)
        if pool:   # a fused maxpool after it (numpy_ops.conv2d_inference): its kernel here
            return self.maxpool_inference(out, 2, 2, 1, (out_h + 1) // 2, (out_w + 1) // 2)
        return out

    def _conv_columns(self, x, size, stride, pad, out_h, out_w):
        """The GEMM's right operand (B, C*size*size, out_h*out_w): im2col's, or for a 1x1
        kernel the first C*out_h*out_w floats of each image, as darknet skips im2col."""
        if size == 1:
            batch, channels = x.shape[:2]
            return x.reshape(batch, -1)[:, :channels * out_h * out_w].reshape(
                batch, channels, out_h * out_w)
        return self.im2col(x, size, stride, pad, out_h, out_w)

    def conv2d(self, x, weights, size, stride, pad, groups, out_h, out_w):
        """im2col (darknet skips it for every 1x1 kernel) + one cuBLAS GEMM."""
        batch, hw = x.shape[0], out_h * out_w
        cols = self._conv_columns(x, size, stride, pad, out_h, out_w)
        filters = weights.reshape(groups, weights.shape[0] // groups, -1)
        out = self.matmul(filters, cols.reshape(batch, groups, -1, hw))
        return out.reshape(batch, weights.shape[0], out_h, out_w)

    def forget_conv_weights(self, weights):
        """conv2d_inference keeps nothing on the GPU."""

    # -------------------------------------------------------------- normalisation
    @staticmethod
    def _geometry(x):
        """(channels, spatial) of an (B, C, ...) array."""
        spatial = int(np.prod(x.shape[2:], dtype=np.int64))
        return x.shape[1], spatial

    def _per_channel(self, kernel_name, x, values):
        x = self._c(x)
        channels, spatial = self._geometry(x)
        out = self._empty(x.shape)
        self._launch("batchnorm.cu", kernel_name, x.size,
                     (x, self._c(values), self._i32(channels), self._i64(spatial),
                      self._i64(x.size), out))
        return out

    def batchnorm_inference(self, x, mean, variance):
        x = self._c(x)
        channels, spatial = self._geometry(x)
        out = self._empty(x.shape)
        self._launch("batchnorm.cu", "normalize", x.size,
                     (x, self._c(mean), self._c(variance), self._i32(channels),
                      self._i64(spatial), self._i64(x.size), out))
        return out

    def batchnorm_fold(self, mean, variance, scales, biases):
        """numpy_ops.batchnorm_fold on the host (per-channel vectors: a few kB each way).
        TODO(speed, issue #7): cache the folded vectors per layer instead of per forward."""
        from . import numpy_ops
        factor, shift = numpy_ops.batchnorm_fold(*(self.to_host(v) for v in
                                                   (mean, variance, scales, biases)))
        return self.to_device(factor), self.to_device(shift)

    def scale_shift(self, x, factor, shift):
        return self.add_bias(self.scale_bias(x, factor), shift)

    def scale_shift_activate(self, x, factor, shift, activation):
        """numpy_ops.scale_shift_activate's values from the separate kernels (not in place).
        TODO(speed, issue #7): one fused kernel, once a GPU can check it."""
        out = self.add_bias(x if factor is None else self.scale_bias(x, factor), shift)
        return self.activate(out, activation, fast=True)

    def scale_bias(self, x, scales):
        return self._per_channel("scale_channels", x, scales)

    def add_bias(self, x, biases):
        return self._per_channel("add_bias", x, biases)

    # -------------------------------------------------------------- activations
    def activate(self, x, activation, fast=False):
        if activation == "linear":
            return x   # numpy_ops returns the same array
        return self._elementwise("activate", x, activation)

    def gradient(self, y, activation):
        return self._elementwise("gradient", y, activation)

    def logistic(self, x):
        return self._elementwise("activate", x, "logistic")

    def _elementwise(self, kernel_name, x, activation):
        x = self._c(x)
        out = self._empty(x.shape)
        self._launch("activations.cu", kernel_name, x.size,
                     (x, self._i64(x.size), self._i32(ACTIVATION_CODES[activation]), out))
        return out

    def sequential_sum(self, x):
        """Sum over the last axis (a double tree sum rounded to float on the GPU)."""
        x = self._c(x)
        length = x.shape[-1] if x.ndim else 1
        rows = x.size // length if length else 0
        if not (rows and length):
            return self.cp.zeros(x.shape[:-1], dtype=F32)
        out = self._empty(x.shape[:-1])
        self._blocks("batchnorm.cu", "row_sums", min(rows, MAX_BLOCKS),
                     (x, self._i64(rows), self._i64(length), out))
        return out

    # -------------------------------------------------------------- pooling
    def maxpool(self, x, size, stride, pad, out_h, out_w, want_indexes=True):
        """The kernel always writes the winners' indexes (it costs little on the GPU);
        they are returned only when wanted, as the NumPy backend does."""
        x = self._c(x)
        batch, channels, height, width = x.shape
        out = self._empty((batch, channels, out_h, out_w))
        indexes = self._empty((batch, channels, out_h, out_w), dtype=np.int32)
        i32 = self._i32
        self._launch("pooling.cu", "maxpool_forward", out.size,
                     (x, i32(batch), i32(channels), i32(height), i32(width), i32(size),
                      i32(stride), i32(pad), i32(out_h), i32(out_w), out, indexes))
        return out, (indexes if want_indexes else None)

    def maxpool_inference(self, x, size, stride, pad, out_h, out_w, out=None):
        return self.maxpool(x, size, stride, pad, out_h, out_w, want_indexes=False)[0]

    def maxpool_backward(self, delta, indexes, input_shape, size, stride, pad):
        """The window geometry (size, stride, pad) lets each input cell gather its deltas."""
        delta = self._c(delta)
        indexes = self.cp.ascontiguousarray(indexes, dtype=np.int32)
        batch, channels, height, width = input_shape
        out_h, out_w = delta.shape[2], delta.shape[3]
        grad = self._empty(tuple(input_shape))
        i32 = self._i32
        self._launch("pooling.cu", "maxpool_backward", grad.size,
                     (delta, indexes, i32(batch), i32(channels), i32(height), i32(width),
                      i32(size), i32(stride), i32(pad), i32(out_h), i32(out_w), grad))
        return grad

    def avgpool(self, x):
        x = self._c(x)
        batch, channels, height, width = x.shape
        out = self._empty((batch, channels, 1, 1))
        self._launch("pooling.cu", "avgpool_forward", batch * channels,
                     (x, self._i64(batch * channels), self._i64(height * width), out))
        return out

    def avgpool_backward(self, delta, input_delta):
        """input_delta += delta / (h*w), broadcast over each plane (in place)."""
        target = input_delta if input_delta.flags.c_contiguous else self._c(input_delta)
        spatial = input_delta.shape[2] * input_delta.shape[3]
        self._launch("pooling.cu", "avgpool_backward", target.size,
                     (self._c(delta), self._i64(spatial), self._i64(target.size), target))
        if target is not input_delta:
            input_delta[...] = target

    # -------------------------------------------------------------- reorg
    def reorg(self, x, stride, forward):
        x = self._c(x)
        batch, channels, height, width = x.shape
        out = self._empty(x.shape)
        i32 = self._i32
        self._launch("reorg.cu", "reorg", x.size,
                     (x, i32(batch), i32(channels), i32(height), i32(width), i32(stride),
                      i32(1 if forward else 0), out))
        return out

    # -------------------------------------------------------------- softmax
    def softmax_groups(self, x, offsets, temperature=1.0, gpu=False):
        x = self._c(x)
        n = x.shape[-1]
        offsets = np.asarray(offsets, dtype=np.int64)
        sizes = np.diff(np.append(offsets, n))
        rows = x.size // n if n else 0
        out = self._empty(x.shape)
        self._launch("softmax.cu", "softmax_groups", rows * len(offsets),
                     (x, self._i64(rows), self._i32(n), self._ints(offsets), self._ints(sizes),
                      self._i32(len(offsets)), F32(temperature), self._i32(1 if gpu else 0),
                      out))
        return out

    def softmax_cross_entropy(self, truth, output, masked):
        """The softmax layer's delta (truth - p) and cost (sum of -log p where truth != 0)."""
        truth, output = self._c(truth), self._c(output)
        delta, loss = self._empty(output.shape), self._empty(output.shape)
        self._launch("softmax.cu", "softmax_cross_entropy", output.size,
                     (truth, output, self._i64(output.size), self._i32(1 if masked else 0),
                      delta, loss))
        return delta, float(self.sequential_sum(loss.reshape(-1)))

    def region_activate(self, x, anchors, entries, coords, classes, background, softmax,
                        tree_offsets=None, fast=False):
        """The region layer's activations in one fused kernel (see numpy_ops); every mode
        runs it, so `fast` changes nothing here."""
        x = self._c(x)
        batch, spatial = x.shape[0], x.shape[2] * x.shape[3]
        out = self._empty(x.shape)
        if tree_offsets is not None:
            offsets = np.asarray(tree_offsets, dtype=np.int64)
            mode, start, count = 2, coords + 1, classes
            groups = (self._ints(offsets), self._ints(np.diff(np.append(offsets, classes))))
        else:
            mode = 1 if softmax else 0
            start, count = coords + (0 if background else 1), classes + background
            groups = (self._ints([0]), self._ints([count]))
            offsets = [0]
        i32 = self._i32
        self._launch("region.cu", "region_activate", batch * anchors * spatial,
                     (x, i32(batch), i32(anchors), i32(entries), self._i64(spatial),
                      i32(coords), i32(1 if background else 0), i32(mode), i32(start),
                      i32(count), groups[0], groups[1], i32(len(offsets)), out))
        return out

    # ============================================================ training
    def col2im_add(self, cols, image, size, stride, pad, out_h, out_w):
        target = image if image.flags.c_contiguous and image.dtype == F32 else self._c(image)
        batch, channels, height, width = image.shape
        i32 = self._i32
        self._launch("im2col.cu", "col2im_add", target.size,
                     (self._c(cols), i32(batch), i32(channels), i32(height), i32(width),
                      i32(size), i32(stride), i32(pad), i32(out_h), i32(out_w), target))
        if target is not image:
            image[...] = target

    def conv_weight_gradient_add(self, delta, x, weight_updates, size, stride, pad, groups):
        """im2col (1x1: the input as it is), then conv_backward_gemms' weight GEMMs."""
        batch, n_filters, out_h, out_w = delta.shape
        hw = out_h * out_w
        cols = self._conv_columns(x, size, stride, pad, out_h, out_w)
        self.conv_backward_gemms(delta.reshape(batch, groups, n_filters // groups, hw),
                                 cols.reshape(batch, groups, -1, hw), weight_updates,
                                 weight_updates, False)

    def fast_conv_adjoint(self, x_shape, weights_shape, size, stride, pad, groups):
        """No: conv_backward_gemms' batched GEMM and col2im_add are the GPU's way."""
        return False

    def conv_input_delta_add(self, delta, weights, size, stride, pad, groups, input_delta):
        """W^T . delta as one batched cuBLAS GEMM, then col2im_add (no Winograd here)."""
        batch, n_filters, out_h, out_w = delta.shape
        per_group = n_filters // groups
        filters = weights.reshape(groups, per_group, -1).transpose(0, 2, 1)
        columns = self.matmul(filters, delta.reshape(batch, groups, per_group, out_h * out_w))
        self.col2im_add(columns.reshape(batch, -1, out_h * out_w), input_delta, size, stride,
                        pad, out_h, out_w)

    def conv_backward_gemms(self, delta, cols, filters, weight_updates, input_columns,
                            exact=False):
        """One cuBLAS (or ordered) GEMM per image and group for the weight gradient, added
        in image order; the input delta's columns as one batched GEMM."""
        batch, groups = delta.shape[:2]
        for image in range(batch):
            for group in range(groups):
                weight_updates[group] += self.matmul(delta[image, group],
                                                     cols[image, group].T, exact)
        if not input_columns:
            return None
        return self.matmul(filters.transpose(0, 2, 1), delta, exact)

    def channel_sums(self, x):
        x = self._c(x)
        channels, spatial = self._geometry(x)
        out = self._empty((channels,))
        self._blocks("batchnorm.cu", "channel_sums", channels,
                     (x, self._i32(x.shape[0]), self._i32(channels), self._i64(spatial), out))
        return out

    def bias_sums(self, x):
        return self.channel_sums(x)

    def batchnorm_statistics(self, x, exact=False):
        x = self._c(x)
        channels, spatial = self._geometry(x)
        count = x.shape[0] * spatial
        mean, variance = self._empty((channels,)), self._empty((channels,))
        args = (x, self._i32(x.shape[0]), self._i32(channels), self._i64(spatial),
                F32(1.0 / count), F32(1.0 / (count - 1)) if count > 1 else F32(np.inf),
                mean, variance)
        if exact:
            self._launch("batchnorm.cu", "channel_statistics_ordered", channels, args)
        else:
            self._blocks("batchnorm.cu", "channel_statistics", channels, args)
        return mean, variance

    def update_rolling(self, rolling, batch_value):
        self._launch("batchnorm.cu", "update_rolling", rolling.size,
                     (rolling, self._c(batch_value), self._i64(rolling.size)))

    def batchnorm_backward(self, delta, x, mean, variance, scales):
        delta, x = self._c(delta), self._c(x)
        mean, variance, scales = self._c(mean), self._c(variance), self._c(scales)
        channels, spatial = self._geometry(x)
        batch = x.shape[0]
        mean_delta, variance_delta = self._empty((channels,)), self._empty((channels,))
        self._blocks("batchnorm.cu", "batchnorm_backward_reduce", channels,
                     (delta, x, mean, variance, scales, self._i32(batch), self._i32(channels),
                      self._i64(spatial), mean_delta, variance_delta))
        out = self._empty(x.shape)
        self._launch("batchnorm.cu", "batchnorm_backward_apply", x.size,
                     (delta, x, mean, variance, scales, mean_delta, variance_delta,
                      self._i32(channels), self._i64(spatial), self._i64(x.size),
                      self._i64(batch * spatial), out))
        return out

    def normalize_scale_activate(self, x, mean, variance, scales, biases, activation):
        """numpy_ops.normalize_scale_activate from the separate kernels (the same values)."""
        out = self.add_bias(self.scale_bias(self.batchnorm_inference(x, mean, variance),
                                            scales), biases)
        return self.activate(out, activation)

    def batchnorm_train_backward(self, delta, output, x, mean, variance, scales,
                                 bias_updates, scale_updates, activation, exact=False):
        """numpy_ops.batchnorm_train_backward from the existing kernels: the reductions
        add in double on the GPU in either mode (as channel_sums does)."""
        if activation != "linear":
            delta = delta * self.gradient(output, activation)
        bias_updates += self.bias_sums(delta)
        scale_updates += self.channel_sums(delta * self.batchnorm_inference(x, mean, variance))
        return self.batchnorm_backward(delta, x, mean, variance, scales)

    def maxpool_backward_add(self, delta, indexes, input_delta, size, stride, pad):
        """input_delta += the gathered maxpool gradient (in place)."""
        input_delta += self.maxpool_backward(delta, indexes, input_delta.shape, size, stride,
                                             pad)

    def sgd_step(self, param, update, rate, momentum, decay_term=None):
        self._launch("sgd.cu", "sgd_step", param.size,
                     (param, update, self._i64(param.size), F32(rate), F32(momentum),
                      F32(0 if decay_term is None else decay_term),
                      self._i32(0 if decay_term is None else 1)))

    def dropout_mask(self, rand, probability, scale):
        rand = self._c(self.cp.asarray(rand))
        out = self._empty(rand.shape)
        self._launch("activations.cu", "dropout_mask", rand.size,
                     (rand, self._i64(rand.size), F32(probability), F32(scale), out))
        return out
