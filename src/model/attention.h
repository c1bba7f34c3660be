// Attention over a sequence's cells in the paged KV cache (layout in runtime/kv_cache.h), one token and one
// KV head at a time, with all the query heads that share that KV head (grouped-query attention) computed
// together so each K and V block is read once. Online softmax (one pass, running max and sum).
#pragma once
#include <cstdint>

namespace hearth {

struct KvSeqView {
    const float* const* k_blocks;  // per block of the sequence: this layer's K block ([kv_dim][block_size])
    const float* const* v_blocks;  // per block: this layer's V block ([block_size][kv_dim])
    int block_size;
    int64_t kv_dim;
};

// q: n_q query heads of head_dim floats, contiguous; they all attend KV head `kv_head` over cells [0, n_kv).
// out: n_q × head_dim. `work` holds at least n_q * head_dim + 64 floats.
void attend(const float* q, int n_q, const KvSeqView& kv, int64_t kv_head, int n_kv, int head_dim, float scale,
            float* out, float* work);
// The portable reference of the same computation (the tests compare the two).
void attend_ref(const float* q, int n_q, const KvSeqView& kv, int64_t kv_head, int n_kv, int head_dim, float scale,
                float* out, float* work);

}  // namespace hearth
