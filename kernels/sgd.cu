// darknet's update for one parameter array in one pass (update_convolutional_layer_gpu's
// axpy/scal sequence): with decay (weights only) update += decay_term * param; then
// param += rate * update; update *= momentum. rate = lr/B and decay_term = -decay*B are
// rounded to float by the caller as darknet does; every step is rounded to float here.
#include "common.cuh"

extern "C" __global__ void sgd_step(float* __restrict__ param, float* __restrict__ update,
                                    long long n, float rate, float momentum, float decay_term,
                                    int has_decay)
{
    DN_GRID_LOOP(i, n) {
        float u = update[i];
        if (has_decay) u = __fadd_rn(u, __fmul_rn(decay_term, param[i]));
        param[i] = __fadd_rn(param[i], __fmul_rn(rate, u));
        update[i] = __fmul_rn(u, momentum);
    }
}
