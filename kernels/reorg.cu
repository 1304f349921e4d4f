// darknet's reorg_cpu / reorg_kernel mapping (reorg_layer.c, blas_kernels.cu).
//
// x has shape (batch, c, h, w) as one side of the shuffle; the other side reads the same
// buffer as (c/stride^2, h*stride, w*stride). For each element (b, k, j, i) of the first:
//   c2 = k % (c/s^2), offset = k / (c/s^2), w2 = i*s + offset % s, h2 = j*s + offset / s
//   out_index = w2 + w*s*(h2 + h*s*(c2 + (c/s^2)*b)),  in_index = i + w*(j + h*(k + c*b))
// forward != 0: out[out_index] = x[in_index]; forward == 0: out[in_index] = x[out_index].
// ([reorg] layers call it with forward = 0, which is not space-to-depth: docs/QUIRKS.md.)
#include "common.cuh"

extern "C" __global__ void reorg(const float* __restrict__ x, int batch, int c, int h, int w,
                                 int stride, int forward, float* __restrict__ out)
{
    const long long n = (long long)batch * c * h * w;
    const int out_c = c / (stride * stride);
    DN_GRID_LOOP(in_index, n) {
        const int i = (int)(in_index % w);
        const int j = (int)((in_index / w) % h);
        const int k = (int)((in_index / ((long long)w * h)) % c);
        const long long b = in_index / ((long long)w * h * c);
        const int c2 = k % out_c;
        const int offset = k / out_c;
        const int w2 = i * stride + offset % stride;
        const int h2 = j * stride + offset / stride;
        const long long out_index =
            w2 + (long long)w * stride * (h2 + (long long)h * stride * (c2 + out_c * b));
        if (forward) out[out_index] = x[in_index];
        else out[in_index] = x[out_index];
    }
}
