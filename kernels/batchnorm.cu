// Batch normalisation, biases and scales, and the per-channel reductions that training needs
// (darknet's normalize_gpu, scale_bias_gpu, add_bias_gpu, fast_mean/fast_variance,
// backward_bias, backward_scale, mean_delta, variance_delta, normalize_delta).
//
// Layout: x is (batch, channels, spatial) contiguous, spatial = h*w (1 for connected layers).
// Reductions run one block of DN_THREADS threads per channel and accumulate in double, so
// their result is the exactly rounded sum up to the last bit or so; darknet (and the NumPy
// backend) add floats left to right, which differs from it by ~1e-7 relative.
#include "common.cuh"

// Inference normalisation with darknet's CPU rule: (x - mean) / (sqrt(var) + 1e-6), the
// subtraction in float, the square root, addition and division in double (docs/QUIRKS.md).
extern "C" __global__ void normalize(const float* __restrict__ x, const float* __restrict__ mean,
                                     const float* __restrict__ variance, int channels,
                                     long long spatial, long long n, float* __restrict__ out)
{
    DN_GRID_LOOP(i, n) {
        const int c = (int)((i / spatial) % channels);
        const float centred = x[i] - mean[c];
        const double denominator = sqrt((double)variance[c]) + (double)1e-6f;
        out[i] = (float)((double)centred / denominator);
    }
}

// out = x * scales[c] (darknet's scale_bias).
extern "C" __global__ void scale_channels(const float* __restrict__ x,
                                          const float* __restrict__ scales, int channels, long long spatial, long long n,
                                          float* __restrict__ out)
{
    DN_GRID_LOOP(i, n) {
        out[i] = __fmul_rn(x[i], scales[(i / spatial) % channels]);
    }
}

// out = x + biases[c] (darknet's add_bias).
extern "C" __global__ void add_bias(const float* __restrict__ x, const float* __restrict__ biases,
                                    int channels, long long spatial, long long n,
                                    float* __restrict__ out)
{
    DN_GRID_LOOP(i, n) {
        out[i] = __fadd_rn(x[i], biases[(i / spatial) % channels]);
    }
}

// out[c] = sum over batch and space of x[b, c, :] (backward_bias, backward_scale's sum).
// Grid: one block per channel.
extern "C" __global__ void channel_sums(const float* __restrict__ x, int batch, int channels,
                                        long long spatial, float* __restrict__ out)
{
    __shared__ double shared[DN_THREADS];
    const int c = blockIdx.x;
    const long long count = (long long)batch * spatial;
    double sum = 0.0;
    for (long long j = threadIdx.x; j < count; j += blockDim.x) {
        const long long b = j / spatial, p = j % spatial;
        sum += (double)x[(b * channels + c) * spatial + p];
    }
    sum = dn_block_sum(sum, shared);
    if (threadIdx.x == 0) out[c] = (float)sum;
}

// Batch mean and unbiased variance per channel (training forward): mean = sum * mean_scale
// in float (mean_scale = float(1/N)); variance = sum((x - mean)^2) * var_scale (float(1/(N-1))),
// each x - mean rounded to float and squared exactly in double. One block per channel.
extern "C" __global__ void channel_statistics(const float* __restrict__ x, int batch, int channels,
                                              long long spatial, float mean_scale, float var_scale,
                                              float* __restrict__ mean_out,
                                              float* __restrict__ variance_out)
{
    __shared__ double shared[DN_THREADS];
    const int c = blockIdx.x;
    const long long count = (long long)batch * spatial;
    double sum = 0.0;
    for (long long j = threadIdx.x; j < count; j += blockDim.x) {
        const long long b = j / spatial, p = j % spatial;
        sum += (double)x[(b * channels + c) * spatial + p];
    }
    const float mean = __fmul_rn((float)dn_block_sum(sum, shared), mean_scale);
    double squares = 0.0;
    for (long long j = threadIdx.x; j < count; j += blockDim.x) {
        const long long b = j / spatial, p = j % spatial;
        const double centred = (double)(x[(b * channels + c) * spatial + p] - mean);
        squares += centred * centred;
    }
    squares = dn_block_sum(squares, shared);
    if (threadIdx.x == 0) {
        mean_out[c] = mean;
        variance_out[c] = __fmul_rn((float)squares, var_scale);
    }
}

// The same statistics in darknet's own order (exact mode): one thread per channel walks the
// batch, then space; the mean is a float running sum, and each square is added in double to
// a float total that is rounded back to float (darknet's `variance[i] += pow(x - mean, 2)`).
// Bit-identical to darknet's mean_cpu/variance_cpu, and slow.
extern "C" __global__ void channel_statistics_ordered(const float* __restrict__ x, int batch,
                                                      int channels, long long spatial,
                                                      float mean_scale, float var_scale,
                                                      float* __restrict__ mean_out,
                                                      float* __restrict__ variance_out)
{
    DN_GRID_LOOP(c, (long long)channels) {
        float sum = 0.0f;
        for (int b = 0; b < batch; ++b)
            for (long long p = 0; p < spatial; ++p)
                sum = __fadd_rn(sum, x[((long long)b * channels + c) * spatial + p]);
        const float mean = __fmul_rn(sum, mean_scale);
        float total = 0.0f;
        for (int b = 0; b < batch; ++b)
            for (long long p = 0; p < spatial; ++p) {
                const long long i = ((long long)b * channels + c) * spatial + p;
                const double centred = (double)(x[i] - mean);
                total = (float)((double)total + centred * centred);
            }
        mean_out[c] = mean;
        variance_out[c] = __fmul_rn(total, var_scale);
    }
}

// rolling = .99*rolling + .01*value, as darknet's scal_gpu then axpy_gpu (float each step).
extern "C" __global__ void update_rolling(float* __restrict__ rolling,
                                          const float* __restrict__ value, long long n)
{
    DN_GRID_LOOP(i, n) {
        const float kept = __fmul_rn(rolling[i], 0.99f);
        rolling[i] = __fadd_rn(kept, __fmul_rn(0.01f, value[i]));
    }
}

// Batch-norm backward, first pass (darknet's mean_delta and variance_delta), one block per
// channel, with d = delta * scale (float):
//   mean_delta[c]     = float(sum(d)) * (-1 / sqrt(var + 1e-5))
//   variance_delta[c] = float(sum(d * (x - mean))) * (-.5 * (var + 1e-5)^(-1.5))
// (the sums rounded to float, then the factors in double, as the NumPy backend does).
extern "C" __global__ void batchnorm_backward_reduce(const float* __restrict__ delta,
                                                     const float* __restrict__ x,
                                                     const float* __restrict__ mean,
                                                     const float* __restrict__ variance,
                                                     const float* __restrict__ scales,
                                                     int batch, int channels, long long spatial,
                                                     float* __restrict__ mean_delta,
                                                     float* __restrict__ variance_delta)
{
    __shared__ double shared[DN_THREADS];
    const int c = blockIdx.x;
    const long long count = (long long)batch * spatial;
    const float m = mean[c], s = scales[c];
    double sum_d = 0.0, sum_dx = 0.0;
    for (long long j = threadIdx.x; j < count; j += blockDim.x) {
        const long long b = j / spatial, p = j % spatial;
        const long long i = (b * channels + c) * spatial + p;
        const float d = __fmul_rn(delta[i], s);
        sum_d += (double)d;
        sum_dx += (double)__fmul_rn(d, x[i] - m);
    }
    sum_d = dn_block_sum(sum_d, shared);
    sum_dx = dn_block_sum(sum_dx, shared);
    if (threadIdx.x == 0) {
        const double var_eps = (double)(variance[c] + 1e-5f);
        mean_delta[c] = (float)((double)(float)sum_d * (-1.0 / sqrt(var_eps)));
        variance_delta[c] = (float)((double)(float)sum_dx * (-0.5 * pow(var_eps, -1.5)));
    }
}

// Batch-norm backward, second pass (darknet's normalize_delta), element-wise:
//   out = d / sqrt(var + 1e-5) + variance_delta * 2 * (x - mean) / N + mean_delta / N
// with d = delta * scale in float and the sum in double, then stored as float.
extern "C" __global__ void batchnorm_backward_apply(const float* __restrict__ delta,
                                                    const float* __restrict__ x,
                                                    const float* __restrict__ mean,
                                                    const float* __restrict__ variance,
                                                    const float* __restrict__ scales,
                                                    const float* __restrict__ mean_delta,
                                                    const float* __restrict__ variance_delta,
                                                    int channels, long long spatial, long long n,
                                                    long long count, float* __restrict__ out)
{
    DN_GRID_LOOP(i, n) {
        const int c = (int)((i / spatial) % channels);
        const float d = __fmul_rn(delta[i], scales[c]);
        const double var_eps = (double)(variance[c] + 1e-5f);
        const float centred = x[i] - mean[c];
        const double value = (double)d / sqrt(var_eps)
                             + (double)variance_delta[c] * 2.0 * (double)centred / (double)count
                             + (double)(mean_delta[c] / (float)count);
        out[i] = (float)value;
    }
}

// out[r] = sum of row r of a (rows, length) array (darknet's sum_array / the cost sums).
// Grid: blocks stride over the rows.
extern "C" __global__ void row_sums(const float* __restrict__ x, long long rows, long long length,
                                    float* __restrict__ out)
{
    __shared__ double shared[DN_THREADS];
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        double sum = 0.0;
        for (long long j = threadIdx.x; j < length; j += blockDim.x)
            sum += (double)x[r * length + j];
        sum = dn_block_sum(sum, shared);
        if (threadIdx.x == 0) out[r] = (float)sum;
    }
}
