// Attention of one query head over a sequence's KV cells, walking the paged cache block by block.
#pragma once
#include <cstdint>

namespace hearth {

struct KvHeadView {
    const float* const* k_blocks;  // per block: first cell of this layer's K block
    const float* const* v_blocks;
    int block_size;
    int64_t cell_stride;  // floats between consecutive cells (kv_dim)
    int64_t head_offset;  // floats from a cell's start to this kv head
};

// out[0..head_dim) = softmax(scale * q·K[0..n_kv)) · V[0..n_kv). `scores` has room for n_kv floats.
void attend_head(const float* q, const KvHeadView& kv, int n_kv, int head_dim, float scale, float* scores,
                 float* out);

}  // namespace hearth
