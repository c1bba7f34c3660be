// Paged KV cache: fixed-size blocks of cells from one pool, and one block table per sequence, so sequences
// grow without copying and (later) share prefix blocks. Cell i of a sequence holds position i.
// Cells hold f32 K and V.
#pragma once
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace hearth {

struct KvCacheConfig {
    int n_layer = 0;
    int kv_dim = 0;          // n_head_kv * head_dim (K and V have the same width here)
    int block_size = 16;     // cells per block
    int64_t n_blocks = 0;    // blocks in the pool
};

class KvCache {
public:
    explicit KvCache(const KvCacheConfig& cfg);

    const KvCacheConfig& config() const { return cfg_; }
    // Makes sure sequence `seq` has cells for positions [0, n_pos); throws hearth::Error when the pool is full.
    void reserve(int32_t seq, int32_t n_pos);
    // Positions of `seq` currently held (one past the highest reserved position).
    int32_t seq_len(int32_t seq) const;
    // Drops positions >= pos of `seq` (pos 0 removes the sequence), returning whole blocks to the pool.
    void truncate(int32_t seq, int32_t pos);
    void clear();
    int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
    size_t bytes() const { return k_.size() * sizeof(float) * 2; }

    // Stores dimensions [d0, d1) (default: all) of the K and V vectors (kv_dim floats each) of (seq, pos) in
    // layer il; the sequence must have reserved pos.
    void write(int il, int32_t seq, int32_t pos, const float* k, const float* v, int d0 = 0, int d1 = -1);
    // The block table of a sequence, for kernels that walk a sequence block by block.
    const std::vector<int32_t>& blocks(int32_t seq) const;
    // K blocks are stored transposed, [kv_dim][block_size]: one dimension of all cells is contiguous, so a
    // query's scores against a whole block are block_size-wide FMAs. V blocks are [block_size][kv_dim].
    const float* k_block(int il, int32_t block) const { return k_.data() + block_offset(il, block); }
    const float* v_block(int il, int32_t block) const { return v_.data() + block_offset(il, block); }

private:
    size_t block_offset(int il, int32_t block) const {
        return (static_cast<size_t>(il) * cfg_.n_blocks + block) * cfg_.block_size * cfg_.kv_dim;
    }

    KvCacheConfig cfg_;
    std::vector<float> k_, v_;
    std::vector<int32_t> free_;
    std::unordered_map<int32_t, std::vector<int32_t>> tables_;
    std::unordered_map<int32_t, int32_t> lengths_;
};

}  // namespace hearth
