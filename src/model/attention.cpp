// Compiled for several ISAs with GCC function multi-versioning (target_clones): the loader picks the widest
// the CPU has, so one binary stays portable. `omp simd` lets the compiler reassociate the reductions.
#include "model/attention.h"

#include <cmath>

namespace hearth {

#define HEARTH_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

HEARTH_CLONES
void attend_head(const float* q, const KvHeadView& kv, int n_kv, int head_dim, float scale, float* scores,
                 float* out) {
    float mx = -INFINITY;
    for (int p0 = 0; p0 < n_kv; p0 += kv.block_size) {
        const float* kb = kv.k_blocks[p0 / kv.block_size] + kv.head_offset;
        const int n = n_kv - p0 < kv.block_size ? n_kv - p0 : kv.block_size;
        for (int i = 0; i < n; ++i) {
            const float* k = kb + i * kv.cell_stride;
            float d = 0;
#pragma omp simd reduction(+ : d)
            for (int j = 0; j < head_dim; ++j) d += q[j] * k[j];
            d *= scale;
            scores[p0 + i] = d;
            mx = d > mx ? d : mx;
        }
    }
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int p = 0; p < n_kv; ++p) {
        const float e = std::exp(scores[p] - mx);
        scores[p] = e;
        sum += e;
    }
    const float inv = 1.0f / sum;
    for (int j = 0; j < head_dim; ++j) out[j] = 0;
    for (int p0 = 0; p0 < n_kv; p0 += kv.block_size) {
        const float* vb = kv.v_blocks[p0 / kv.block_size] + kv.head_offset;
        const int n = n_kv - p0 < kv.block_size ? n_kv - p0 : kv.block_size;
        for (int i = 0; i < n; ++i) {
            const float* v = vb + i * kv.cell_stride;
            const float w = scores[p0 + i] * inv;
#pragma omp simd
            for (int j = 0; j < head_dim; ++j) out[j] += w * v[j];
        }
    }
}

}  // namespace hearth
