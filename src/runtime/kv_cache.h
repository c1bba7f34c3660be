// Paged KV cache: fixed-size blocks of cells from one pool, and one block table per sequence, so sequences
// grow without copying and share prefix blocks. Cell i of a sequence holds position i. Cells hold K and V as
// f16 (the default, as llama.cpp's) or f32 (KvType): attention reads the stored type directly.
//
// Prefix cache (why it lives here): the KV of position p depends only on tokens [0, p], so a FULL block is
// reusable by any sequence whose tokens up to the end of that block are the same. Blocks are reference
// counted; a full block can be published into a prefix index keyed by (parent block's key, the block's
// tokens), which takes a reference of its own, so the block outlives the sequence that computed it. A new
// sequence attaches the longest chain of indexed blocks matching its tokens instead of recomputing them.
// Indexed blocks that no sequence uses are still counted as free: when the pool needs a block, the least
// recently used of them is evicted (its index entry dropped). Keeping the index in the cache, not in the
// scheduler, means free_blocks() and reserve() stay the whole truth about what can be allocated.
// Shared blocks are never written: attaching stops short of the last token (whose logits the caller needs),
// and the forward pass refuses a batch that would rewrite a shared cell (see is_shared()).
#pragma once
#include <cstddef>
#include <cstdint>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/huge_buffer.h"

namespace hearth {

// How K and V values are stored (`--kv-type`).
enum class KvType : uint8_t { F32, F16 };
const char* kv_type_name(KvType t);
// "f32" or "f16"; throws hearth::Error naming the accepted names otherwise.
KvType parse_kv_type(std::string_view name);
size_t kv_type_bytes(KvType t);  // bytes per value

struct KvCacheConfig {
    int n_layer = 0;
    int kv_dim = 0;          // n_head_kv * head_dim (K and V have the same width here)
    int block_size = 16;     // cells per block
    int64_t n_blocks = 0;    // blocks in the pool
    KvType type = KvType::F16;
};

class KvCache {
public:
    explicit KvCache(const KvCacheConfig& cfg);

    const KvCacheConfig& config() const { return cfg_; }
    // Makes sure sequence `seq` has cells for positions [0, n_pos); throws hearth::Error when the pool is full
    // (evicting unused prefix-index blocks first).
    void reserve(int32_t seq, int32_t n_pos);
    // Positions of `seq` currently held (one past the highest reserved position).
    int32_t seq_len(int32_t seq) const;
    // Drops positions >= pos of `seq` (pos 0 removes the sequence), releasing its references to whole blocks.
    void truncate(int32_t seq, int32_t pos);
    // Empties every sequence and the prefix index.
    void clear();
    // Blocks that reserve() can hand out: never used, or held only by the prefix index (evictable).
    int64_t free_blocks() const { return static_cast<int64_t>(free_.size() + evictable_.size()); }
    // The pool's K and V storage.
    size_t bytes() const {
        return 2 * static_cast<size_t>(cfg_.n_layer) * cfg_.n_blocks * cfg_.block_size * cfg_.kv_dim * kv_type_bytes(cfg_.type);
    }

    // Stores dimensions [d0, d1) (default: all) of the K and V vectors (kv_dim floats each) of (seq, pos) in
    // layer il; the sequence must have reserved pos, and the cell must not be shared.
    void write(int il, int32_t seq, int32_t pos, const float* k, const float* v, int d0 = 0, int d1 = -1);
    // True when the cell of (seq, pos) lies in a block another sequence or the prefix index also holds.
    bool is_shared(int32_t seq, int32_t pos) const;
    // The block table of a sequence, for kernels that walk a sequence block by block.
    const std::vector<int32_t>& blocks(int32_t seq) const;
    // K blocks are stored transposed, [kv_dim][block_size]: one dimension of all cells is contiguous, so a
    // query's scores against a whole block are block_size-wide FMAs. V blocks are [block_size][kv_dim]. Values
    // are of config().type.
    const void* k_block(int il, int32_t block) const { return base(k_) + block_offset(il, block) * elem_; }
    const void* v_block(int il, int32_t block) const { return base(v_) + block_offset(il, block) * elem_; }

    // --- Prefix cache ---
    // Attaches to the EMPTY sequence `seq` the longest chain of indexed blocks whose tokens equal
    // tokens[0, k * block_size), with k * block_size <= max_tokens, and returns the positions attached (the
    // sequence then holds them, as if computed). 0 when nothing matches.
    int32_t attach_prefix(int32_t seq, const int32_t* tokens, int32_t max_tokens);
    // Publishes the full blocks of `seq` holding tokens[0, n_tokens) (their KV must be computed) into the index,
    // so that later sequences can attach them. Blocks published before are skipped; so is a block whose
    // content another block already holds in the index (the sequence's copy is freed with the sequence).
    void publish(int32_t seq, const int32_t* tokens, int32_t n_tokens);
    int64_t cached_blocks() const { return static_cast<int64_t>(nodes_.size()); }      // indexed blocks
    int64_t evictable_blocks() const { return static_cast<int64_t>(evictable_.size()); }  // indexed, unused
    int64_t evictions() const { return n_evictions_; }

private:
    static const char* base(const HugeBuffer& b) { return reinterpret_cast<const char*>(b.data()); }
    size_t block_offset(int il, int32_t block) const {  // in values
        return (static_cast<size_t>(il) * cfg_.n_blocks + block) * cfg_.block_size * cfg_.kv_dim;
    }
    struct Seq {
        std::vector<int32_t> table;
        int32_t len = 0;
        std::vector<uint64_t> chain;  // index node id of the content of each of its first chain.size() blocks
    };
    // One indexed block. Node ids are never reused, so a child whose parent was evicted can no longer be
    // reached (its key names a parent id that will not come back) and ages out of the index by itself.
    struct Node {
        uint64_t parent = 0;  // 0: first block of a sequence
        uint64_t key = 0;
        std::vector<int32_t> tokens;
        int32_t block = -1;
        uint64_t last_used = 0;
    };

    int32_t alloc_block();
    void retain(int32_t block);
    void release(int32_t block);
    uint64_t find(uint64_t parent, const int32_t* tokens) const;  // node id, 0 when absent
    void evict_one();

    KvCacheConfig cfg_;
    size_t elem_ = 0;   // bytes per value
    HugeBuffer k_, v_;  // huge pages: attention reads blocks scattered over the whole pool
    std::vector<int32_t> free_;  // unreferenced blocks
    std::vector<int32_t> ref_;   // per block: references from sequence tables and the index
    std::vector<uint64_t> block_node_;  // per block: the index node holding it, 0 when not indexed
    std::unordered_map<int32_t, Seq> seqs_;
    std::unordered_map<uint64_t, Node> nodes_;
    std::unordered_multimap<uint64_t, uint64_t> by_key_;    // hash of (parent, tokens) -> node ids
    std::set<std::pair<uint64_t, int32_t>> evictable_;      // (last used, block) of indexed blocks with ref 1
    uint64_t next_node_ = 1, clock_ = 0;
    int64_t n_evictions_ = 0;
};

}  // namespace hearth
