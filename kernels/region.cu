// The region layer's activations in one launch (forward_region_layer_gpu's activate_array
// and softmax / softmax_tree calls fused): x and out are (batch, anchors*entries, h, w) in
// darknet's entry_index layout, entries = coords + classes + 1, each entry an (h, w) plane.
#include "common.cuh"

// One thread per (image, anchor, cell). It copies the cell's entries, then applies the
// logistic to x, y and (unless background) the objectness, and then
//   mode 1: darknet's CPU softmax over the class_count entries from class_start;
//   mode 2: the tree softmax, one softmax per WordTree group (group_offsets/group_sizes,
//           relative to class_start) with softmax_device's arithmetic (int max, expf);
//   mode 0: classes left raw.
extern "C" __global__ void region_activate(const float* __restrict__ x, int batch, int anchors,
                                           int entries, long long spatial, int coords,
                                           int background, int mode, int class_start,
                                           int class_count, const int* __restrict__ group_offsets,
                                           const int* __restrict__ group_sizes, int groups,
                                           float* __restrict__ out)
{
    const long long n = (long long)batch * anchors * spatial;
    DN_GRID_LOOP(i, n) {
        const long long cell = i % spatial;
        const long long anchor = i / spatial;   // b*anchors + a
        const long long base = anchor * entries * spatial + cell;
        for (int e = 0; e < entries; ++e) out[base + e * spatial] = x[base + e * spatial];
        out[base] = dn_logistic(x[base]);
        out[base + spatial] = dn_logistic(x[base + spatial]);
        if (!background) out[base + coords * spatial] = dn_logistic(x[base + coords * spatial]);
        const long long first = base + class_start * spatial;
        if (mode == 1) {
            dn_softmax(x + first, out + first, class_count, spatial, 1.0f, 0);
        } else if (mode == 2) {
            for (int g = 0; g < groups; ++g) {
                const long long start = first + (long long)group_offsets[g] * spatial;
                dn_softmax(x + start, out + start, group_sizes[g], spatial, 1.0f, 1);
            }
        }
    }
}
