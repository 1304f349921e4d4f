// Shared by every kernel file of darknet_py's CUDA backend.
//
// The .cu files are plain CUDA C with no system headers, so the same text compiles with
// NVRTC (cupy.RawModule, which inlines this header) and with nvcc (tests/test_kernels_compile.py).
// Arithmetic follows darknet_py's NumPy backend (darknet_py/ops/numpy_ops.py) operation by
// operation: float where it stores float, double where it computes in double. The modules are
// compiled with --fmad=false so that no a*b+c is contracted into a fused multiply-add, and
// the places where the order of rounding matters also spell it out with __fmul_rn/__fadd_rn.
#ifndef DARKNET_PY_COMMON_CUH
#define DARKNET_PY_COMMON_CUH

// float's largest value (FLT_MAX without <float.h>): darknet's maxpool pads with -FLT_MAX.
#define DN_FLT_MAX 3.402823466e+38F

// Threads per block for the element-wise kernels and the reductions (a power of two).
#define DN_THREADS 256

// A grid-stride loop over [0, n): any grid size covers every element.
#define DN_GRID_LOOP(i, n)                                                              \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);        \
         i += (long long)blockDim.x * gridDim.x)

// Sum of one double per thread over a block of DN_THREADS threads (tree reduction in
// shared memory). Every thread of the block must call it; every thread gets the total.
__device__ __forceinline__ double dn_block_sum(double value, double* shared)
{
    const int t = threadIdx.x;
    shared[t] = value;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half >>= 1) {
        if (t < half) shared[t] += shared[t + half];
        __syncthreads();
    }
    const double total = shared[0];
    __syncthreads();   // the buffer may be reused by the caller right after
    return total;
}

// darknet's logistic_activate, evaluated in double and stored as float (activations.c).
__device__ __forceinline__ float dn_logistic(float x)
{
    return (float)(1.0 / (1.0 + exp(-(double)x)));
}

// Softmax over n values spaced `stride` apart, written to out (same spacing).
//
// gpu_mode == 0: darknet's CPU softmax(): float running max, x/t - max/t in float, exp in
//   double stored as float, float sum left to right, then each value divided by the sum.
// gpu_mode != 0: darknet's softmax_device (used by its GPU tree softmax): the running max
//   is kept in an int, so each value is truncated toward zero before the comparison, and
//   the exponential is expf in float.
__device__ __forceinline__ void dn_softmax(const float* in, float* out, int n, long long stride,
                                  float temperature, int gpu_mode)
{
    float largest;
    if (gpu_mode) {
        largest = truncf(in[0]);
        for (int j = 1; j < n; ++j) {
            const float v = truncf(in[j * stride]);
            largest = v > largest ? v : largest;
        }
    } else {
        largest = in[0];
        for (int j = 1; j < n; ++j) {
            const float v = in[j * stride];
            largest = v > largest ? v : largest;
        }
    }
    const float shift = largest / temperature;
    float sum = 0.0f;
    for (int j = 0; j < n; ++j) {
        const float shifted = in[j * stride] / temperature - shift;
        const float e = gpu_mode ? expf(shifted) : (float)exp((double)shifted);
        out[j * stride] = e;
        sum = __fadd_rn(sum, e);
    }
    for (int j = 0; j < n; ++j) out[j * stride] = out[j * stride] / sum;
}

#endif
