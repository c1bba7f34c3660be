// Attention over a sequence's cells in the paged KV cache (layout in runtime/kv_cache.h). One call handles a
// tile of query rows that share one KV head: the query heads of a grouped-query group, for one token
// (decode) or for several consecutive tokens of a prompt (prefill), so each K and V block is read once per
// tile and the kernel has enough independent rows to keep the FMA pipes busy. Each row has its own causal
// limit. Softmax is exact: scores of a chunk of cells are computed for all rows, then exponentiated against
// the running maximum (online rescaling only between chunks).
#pragma once
#include <cstdint>

#include "runtime/kv_cache.h"

namespace hearth {

struct KvSeqView {
    const void* const* k_blocks;  // per block of the sequence: this layer's K block ([kv_dim][block_size])
    const void* const* v_blocks;  // per block: this layer's V block ([block_size][kv_dim])
    int block_size;
    int64_t kv_dim;
    KvType type = KvType::F32;  // of the values in the blocks (dequantized in registers)
    // Compressed types (kv_type_quantized): blocks [0, n_quant_blocks) are in `type`'s layout (which `layout`
    // describes), the later ones in f16; for rot types all of them hold rotated vectors, and attend() rotates
    // the queries and rotates the outputs back.
    const KvLayout* layout = nullptr;
    int n_quant_blocks = 0;
    const float* key_mean = nullptr;  // rot types: added to the quantized blocks' keys (KvCache::key_mean)
};

// One query row: head_dim floats in, head_dim floats out, attending cells [max(cell_begin, cell_first), n_kv).
// With `partial` null the range is not empty and `out` is the attention output. With `partial` set, the call
// computes one part of a row split over cell ranges (several threads share a long context at decode): `out`
// gets the unnormalised sum of exp(score - max) * V and partial[0] = max, partial[1] = sum of exp(score - max)
// (max = -inf, sum = 0, out = 0 for an empty range); merge_partials() combines the parts.
struct AttnRow {
    const float* q;
    float* out;
    int n_kv;
    int cell_begin = 0;  // a multiple of the block size, the same for every row of one call
    float* partial = nullptr;
    int cell_first = 0;  // the row's own first visible cell (sliding-window attention), any cell
};

// Most rows one call takes (the AVX-512 kernel keeps one accumulator register per row).
constexpr int kAttnMaxRows = 16;
// Floats of `work` that attend() needs.
int64_t attend_work_floats(int head_dim);

// rows: 1..kAttnMaxRows query rows, all attending KV head `kv_head` of `kv`.
void attend(const AttnRow* rows, int n_rows, const KvSeqView& kv, int64_t kv_head, int head_dim, float scale,
            float* work);
// out = the attention output of a row split into n_parts parts: part p's unnormalised output at
// parts + p * part_stride (head_dim floats) and its {max, sum} at stats + 2 * p.
void merge_partials(const float* parts, int64_t part_stride, const float* stats, int n_parts, int head_dim, float* out);
// The portable reference of the same computation (the tests compare the two).
void attend_ref(const AttnRow* rows, int n_rows, const KvSeqView& kv, int64_t kv_head, int head_dim, float scale,
                float* work);

}  // namespace hearth
