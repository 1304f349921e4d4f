// im2col and its adjoint col2im (darknet's im2col_gpu / col2im_gpu), NCHW float32.
#include "common.cuh"

// cols[b, (c*size + ky)*size + kx, oy*out_w + ox]
//     = x[b, c, oy*stride - pad + ky, ox*stride - pad + kx], 0 where that falls outside. One thread per element of cols, so consecutive
// threads write consecutive output positions (coalesced stores).
extern "C" __global__ void im2col(const float* __restrict__ x, int batch, int channels,
                                  int height, int width, int size, int stride, int pad,
                                  int out_h, int out_w, float* __restrict__ cols)
{
    const long long spatial = (long long)out_h * out_w;
    const long long rows = (long long)channels * size * size;
    const long long n = (long long)batch * rows * spatial;
    DN_GRID_LOOP(i, n) {
        const long long p = i % spatial;
        const long long r = (i / spatial) % rows;
        const long long b = i / (spatial * rows);
        const int ox = (int)(p % out_w), oy = (int)(p / out_w);
        const int kx = (int)(r % size), ky = (int)((r / size) % size);
        const long long c = r / ((long long)size * size);
        const int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
        const bool inside = iy >= 0 && iy < height && ix >= 0 && ix < width;
        cols[i] = inside ? x[((b * channels + c) * height + iy) * width + ix] : 0.0f;
    }
}

// image += col2im(cols): every image cell gathers the column entries that im2col copied
// from it, in (ky, kx) order, onto the value the image already holds: the same additions
// in the same order as darknet_py's NumPy col2im_add (so results are bit-identical), and
// no atomics. Entries that im2col took from the padding are dropped.
extern "C" __global__ void col2im_add(const float* __restrict__ cols, int batch, int channels,
                                      int height, int width, int size, int stride, int pad,
                                      int out_h, int out_w, float* __restrict__ image)
{
    const long long spatial = (long long)out_h * out_w;
    const long long n = (long long)batch * channels * height * width;
    DN_GRID_LOOP(i, n) {
        const int x = (int)(i % width);
        const int y = (int)((i / width) % height);
        const long long plane = i / ((long long)width * height);   // b*channels + c
        const float* base = cols + plane * size * size * spatial;
        float value = image[i];
        for (int ky = 0; ky < size; ++ky) {
            const int ty = y + pad - ky;          // = oy*stride for the window that covers y
            if (ty < 0 || ty % stride) continue;
            const int oy = ty / stride;
            if (oy >= out_h) continue;
            for (int kx = 0; kx < size; ++kx) {
                const int tx = x + pad - kx;
                if (tx < 0 || tx % stride) continue;
                const int ox = tx / stride;
                if (ox >= out_w) continue;
                value = __fadd_rn(value, base[(ky * size + kx) * spatial + oy * out_w + ox]);
            }
        }
        image[i] = value;
    }
}
