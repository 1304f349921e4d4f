// Flat, grouped and tree softmax (darknet's softmax / softmax_device, softmax_tree), and the
// softmax layer's cross-entropy delta (softmax_x_ent).
#include "common.cuh"

// x: (rows, n) contiguous; each row holds `groups` groups starting at offsets[g] with
// sizes[g] values. One thread per (row, group) computes that group's softmax sequentially
// (as darknet's kernels do); gpu_mode selects softmax_device's arithmetic (see common.cuh).
extern "C" __global__ void softmax_groups(const float* __restrict__ x, long long rows, int n,
                                          const int* __restrict__ offsets,
                                          const int* __restrict__ sizes, int groups,
                                          float temperature, int gpu_mode, float* __restrict__ out)
{
    DN_GRID_LOOP(i, rows * groups) {
        const long long row = i / groups;
        const int g = (int)(i % groups);
        const long long base = row * n + offsets[g];
        dn_softmax(x + base, out + base, sizes[g], 1, temperature, gpu_mode);
    }
}

// softmax_x_ent: delta = truth - p; loss = -log(p) (in double, stored as float) where the
// truth is non-zero, else 0. masked != 0 (tree softmax): entries whose truth is SECRET_NUM
// (-1234) get neither delta nor loss, as darknet's GPU path does.
extern "C" __global__ void softmax_cross_entropy(const float* __restrict__ truth,
                                                 const float* __restrict__ p, long long n,
                                                 int masked, float* __restrict__ delta,
                                                 float* __restrict__ loss)
{
    DN_GRID_LOOP(i, n) {
        const float t = truth[i];
        float d = t - p[i];
        float l = t != 0.0f ? (float)(-log((double)p[i])) : 0.0f;
        if (masked && t == -1234.0f) {
            d = 0.0f;
            l = 0.0f;
        }
        delta[i] = d;
        loss[i] = l;
    }
}
