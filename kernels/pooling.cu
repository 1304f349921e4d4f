// Max pooling with darknet's geometry (window origin -pad/2, cells outside the input count
// as -FLT_MAX) and global average pooling (maxpool_layer_kernels.cu, avgpool_layer_kernels.cu).
#include "common.cuh"

// One thread per output cell. Keeps the first maximum in window order (strict '>', as
// darknet) and its flat input index, -1 when the winner lies outside the input.
extern "C" __global__ void maxpool_forward(const float* __restrict__ x, int batch, int channels,
                                           int height, int width, int size, int stride, int pad,
                                           int out_h, int out_w, float* __restrict__ out,
                                           int* __restrict__ indexes)
{
    const long long n = (long long)batch * channels * out_h * out_w;
    const int top = pad / 2;
    DN_GRID_LOOP(i, n) {
        const int ox = (int)(i % out_w);
        const int oy = (int)((i / out_w) % out_h);
        const long long plane = i / ((long long)out_w * out_h);
        float best = -DN_FLT_MAX;
        long long best_index = -1;
        bool first = true;
        for (int ky = 0; ky < size; ++ky) {
            const int iy = oy * stride - top + ky;
            for (int kx = 0; kx < size; ++kx) {
                const int ix = ox * stride - top + kx;
                const bool inside = iy >= 0 && iy < height && ix >= 0 && ix < width;
                const long long index = ix + (long long)width * (iy + (long long)height * plane);
                const float value = inside ? x[index] : -DN_FLT_MAX;
                if (first || value > best) {
                    best = value;
                    best_index = inside ? index : -1;
                    first = false;
                }
            }
        }
        out[i] = best;
        indexes[i] = (int)best_index;
    }
}

// grad[input cell] = sum of the deltas of the outputs whose maximum it was. One thread per
// input cell gathers over the windows that can contain it (darknet's backward kernel does
// the same; no atomics), adding in output order as the NumPy backend's np.add.at does.
extern "C" __global__ void maxpool_backward(const float* __restrict__ delta,
                                            const int* __restrict__ indexes, int batch,
                                            int channels, int height, int width, int size,
                                            int stride, int pad, int out_h, int out_w,
                                            float* __restrict__ grad)
{
    const long long n = (long long)batch * channels * height * width;
    const int top = pad / 2;
    DN_GRID_LOOP(i, n) {
        const int x = (int)(i % width);
        const int y = (int)((i / width) % height);
        const long long plane = i / ((long long)width * height);
        // output rows oy with oy*stride - top <= y <= oy*stride - top + size - 1
        const int low_y = y + top - size + 1, low_x = x + top - size + 1;
        const int oy0 = low_y <= 0 ? 0 : (low_y + stride - 1) / stride;
        const int ox0 = low_x <= 0 ? 0 : (low_x + stride - 1) / stride;
        int oy1 = (y + top) / stride, ox1 = (x + top) / stride;
        oy1 = oy1 < out_h - 1 ? oy1 : out_h - 1;
        ox1 = ox1 < out_w - 1 ? ox1 : out_w - 1;
        float sum = 0.0f;
        for (int oy = oy0; oy <= oy1; ++oy)
            for (int ox = ox0; ox <= ox1; ++ox) {
                const long long o = (plane * out_h + oy) * out_w + ox;
                if (indexes[o] == i) sum = __fadd_rn(sum, delta[o]);
            }
        grad[i] = sum;
    }
}

// Global average per (image, channel) plane: a float sum left to right, then / (h*w) in float,
// as darknet's forward_avgpool_layer_kernel (one thread per plane).
extern "C" __global__ void avgpool_forward(const float* __restrict__ x, long long planes,
                                           long long spatial, float* __restrict__ out)
{
    DN_GRID_LOOP(plane, planes) {
        const float* cell = x + plane * spatial;
        float sum = 0.0f;
        for (long long p = 0; p < spatial; ++p) sum = __fadd_rn(sum, cell[p]);
        out[plane] = sum / (float)spatial;
    }
}

// input_delta[b, c, :] += delta[b, c] / (h*w) (the division in float).
extern "C" __global__ void avgpool_backward(const float* __restrict__ delta, long long spatial,
                                            long long n, float* __restrict__ input_delta)
{
    DN_GRID_LOOP(i, n) {
        input_delta[i] = __fadd_rn(input_delta[i], delta[i / spatial] / (float)spatial);
    }
}
