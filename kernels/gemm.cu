// darknet's gemm_nn summation order, for exact mode (net.exact / -exact) on the GPU.
// Ordinary GEMMs go through cuBLAS (cupy.matmul); this one exists to reproduce darknet's CPU
// results bit for bit: C = 0, then for k = 0, 1, ...: C += A[:, k] * B[k, :], the product and
// the sum each rounded to float (no fused multiply-add). One thread per element of C.
#include "common.cuh"

// a: (batch, m, k), b: (batch, k, n), c: (batch, m, n), all contiguous.
extern "C" __global__ void gemm_ordered(const float* __restrict__ a, const float* __restrict__ b,
                                        int batch, int m, int n, int k, float* __restrict__ c)
{
    const long long total = (long long)batch * m * n;
    DN_GRID_LOOP(i, total) {
        const long long col = i % n;
        const long long row = (i / n) % m;
        const long long image = i / ((long long)m * n);
        const float* arow = a + (image * m + row) * k;
        const float* bcol = b + image * k * n + col;
        float acc = 0.0f;
        for (int t = 0; t < k; ++t)
            acc = __fadd_rn(acc, __fmul_rn(arow[t], bcol[(long long)t * n]));
        c[i] = acc;
    }
}
