// Every darknet activation, forward and gradient (activations.c / activation_kernels.cu),
// with the arithmetic of darknet_py/activations.py: where darknet's C computes in double
// (`.1*x`, exp) so does this, and the result is stored as float.
//
// Activation codes are the positions in darknet_py.activations.NAMES:
#include "common.cuh"

#define ACT_LINEAR 0
#define ACT_LOGISTIC 1
#define ACT_LOGGY 2
#define ACT_RELU 3
#define ACT_ELU 4
#define ACT_SELU 5
#define ACT_RELIE 6
#define ACT_RAMP 7
#define ACT_LEAKY 8
#define ACT_TANH 9
#define ACT_PLSE 10
#define ACT_STAIR 11
#define ACT_HARDTAN 12
#define ACT_LHTAN 13

static __device__ float dn_activate(float x, int activation)
{
    const double d = (double)x;
    switch (activation) {
    case ACT_LINEAR: return x;
    case ACT_LOGISTIC: return (float)(1.0 / (1.0 + exp(-d)));
    case ACT_LOGGY: return (float)(2.0 / (1.0 + exp(-d)) - 1.0);
    case ACT_RELU: return __fmul_rn(x, (float)(x > 0.0f));
    case ACT_ELU: return x >= 0.0f ? x : (float)(exp(d) - 1.0);
    case ACT_SELU:
        return x >= 0.0f ? (float)(1.0507 * d) : (float)(1.0507 * 1.6732 * (exp(d) - 1.0));
    case ACT_RELIE: return x > 0.0f ? x : (float)(0.01 * d);
    case ACT_RAMP: return (float)((double)__fmul_rn(x, (float)(x > 0.0f)) + 0.1 * d);
    case ACT_LEAKY: return x > 0.0f ? x : (float)(0.1 * d);
    case ACT_TANH: {
        const double e = exp(2.0 * d);
        return isinf(e) ? 1.0f : (float)((e - 1.0) / (e + 1.0));
    }
    case ACT_PLSE:
        if (x < -4.0f) return (float)(0.01 * (d + 4.0));
        if (x > 4.0f) return (float)(0.01 * (d - 4.0) + 1.0);
        return (float)(0.125 * d + 0.5);
    case ACT_STAIR: {
        const double n = floor(d);
        const double half = floor(d / 2.0);
        return fmod(n, 2.0) == 0.0 ? (float)half : (float)((d - n) + half);
    }
    case ACT_HARDTAN: return x < -1.0f ? -1.0f : (x > 1.0f ? 1.0f : x);
    case ACT_LHTAN:
        if (x < 0.0f) return (float)(0.001 * d);
        if (x > 1.0f) return (float)(0.001 * (d - 1.0) + 1.0);
        return x;
    }
    return x;
}

// d(activation)/dx written in terms of the output y, as darknet's gradient_array takes it.
static __device__ float dn_gradient(float y, int activation)
{
    switch (activation) {
    case ACT_LINEAR: return 1.0f;
    case ACT_LOGISTIC: return __fmul_rn(1.0f - y, y);
    case ACT_LOGGY: {
        const float a = (y + 1.0f) / 2.0f;
        return __fmul_rn(__fmul_rn(2.0f, 1.0f - a), a);
    }
    case ACT_RELU: return y > 0.0f ? 1.0f : 0.0f;
    case ACT_ELU: return y >= 0.0f ? 1.0f : y + 1.0f;
    case ACT_SELU: return y >= 0.0f ? (float)1.0507 : (float)((double)y + 1.0507 * 1.6732);
    case ACT_RELIE: return y > 0.0f ? 1.0f : (float)0.01;
    case ACT_RAMP: return y > 0.0f ? (float)1.1 : (float)0.1;
    case ACT_LEAKY: return y > 0.0f ? 1.0f : (float)0.1;
    case ACT_TANH: return 1.0f - __fmul_rn(y, y);
    case ACT_PLSE: return (y < 0.0f || y > 1.0f) ? (float)0.01 : 0.125f;
    case ACT_STAIR: return floorf(y) == y ? 0.0f : 1.0f;
    case ACT_HARDTAN: return (y > -1.0f && y < 1.0f) ? 1.0f : 0.0f;
    case ACT_LHTAN: return (y > 0.0f && y < 1.0f) ? 1.0f : (float)0.001;
    }
    return 1.0f;
}

// out = activation(x), element-wise.
extern "C" __global__ void activate(const float* __restrict__ x, long long n, int activation,
                                    float* __restrict__ out)
{
    DN_GRID_LOOP(i, n) out[i] = dn_activate(x[i], activation);
}

// out = activation'(y) for the layer output y, element-wise.
extern "C" __global__ void gradient(const float* __restrict__ y, long long n, int activation,
                                    float* __restrict__ out)
{
    DN_GRID_LOOP(i, n) out[i] = dn_gradient(y[i], activation);
}

// Dropout's mask from uniform draws (drawn on the host, so both backends drop the same
// cells): 0 where rand < probability, else scale = 1/(1-probability).
extern "C" __global__ void dropout_mask(const float* __restrict__ rand, long long n,
                                        float probability, float scale, float* __restrict__ out)
{
    DN_GRID_LOOP(i, n) out[i] = rand[i] < probability ? 0.0f : scale;
}
