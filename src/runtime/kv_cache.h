// Paged KV cache: fixed-size blocks of cells from one pool, and one block table per sequence, so sequences
// grow without copying and share prefix blocks. Cell i of a sequence holds position i, until compact() (KV
// eviction, model/snapkv.h) keeps a chosen subset of a sequence's cells per KV head: then cells [0, n_keep)
// hold the kept positions, each head its own, and position p >= the compacted length lives in cell
// p - (positions evicted). Every method here takes positions and maps them. Cells hold K and V in
// one of the formats of runtime/kv_quant.h (KvType): attention reads the stored format directly.
//
// Compressed types (q8, q4, rot4, rot3) keep KIVI's full-precision residual: a new block gets an f16 slot (from
// a second pool that grows on demand) and is written there; once `residual` positions of its sequence follow
// it, age() quantizes it into the main pool and frees the slot. So a sequence's blocks are quantized from its
// start up to some block and f16 after it, and attention reads the two runs with two kernels. Aging happens
// when a batch starts (quantized blocks are never written: a batch that rewrites a cell of one, after a
// truncation, first turns it back into f16).
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
#include <memory>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/huge_buffer.h"
#include "runtime/kv_quant.h"

namespace hearth {

struct KvCacheConfig {
    int n_layer = 0;
    int kv_dim = 0;          // n_head_kv * head_dim (K and V have the same width here)
    int block_size = 16;     // cells per block
    int64_t n_blocks = 0;    // blocks in the pool
    KvType type = KvType::F16;
    int head_dim = 0;        // the rotation's unit (rot types); 0: kv_dim
    int residual = 32;       // compressed types: positions that follow a block before it is quantized
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
    // The cell holding position pos of `seq` (pos itself unless the sequence was compacted); seq_cells() is the
    // cells a sequence holds, which attention reads.
    int32_t cell(int32_t seq, int32_t pos) const;
    int32_t seq_cells(int32_t seq) const { return cell(seq, seq_len(seq)); }
    // Drops positions >= pos of `seq` (pos 0 removes the sequence), releasing its references to whole blocks.
    // A compacted sequence can lose positions after its compacted length only (or all of them).
    void truncate(int32_t seq, int32_t pos);
    // Empties every sequence and the prefix index.
    void clear();
    // Blocks that reserve() can hand out: never used, or held only by the prefix index (evictable).
    int64_t free_blocks() const { return static_cast<int64_t>(free_.size() + evictable_.size()); }
    // The pool's K and V storage, with the f16 residual slots allocated so far.
    size_t bytes() const;
    // The byte geometry of a block of config().type (kv_quant.h).
    const KvLayout& layout() const { return layout_; }

    // Stores dimensions [d0, d1) (default: all) of the K and V vectors (kv_dim floats each) of (seq, pos) in
    // layer il; the sequence must have reserved pos, and the cell must not be shared.
    void write(int il, int32_t seq, int32_t pos, const float* k, const float* v, int d0 = 0, int d1 = -1);
    // True when the cell of (seq, pos) lies in a block another sequence or the prefix index also holds.
    bool is_shared(int32_t seq, int32_t pos) const;
    // The block table of a sequence, for kernels that walk a sequence block by block.
    const std::vector<int32_t>& blocks(int32_t seq) const;
    // K blocks are stored transposed, [kv_dim][block_size]: one dimension of all cells is contiguous, so a
    // query's scores against a whole block are block_size-wide FMAs. V blocks are [block_size][kv_dim]. A
    // block is in config().type's format when is_quantized() or the type is f16 / f32, else in f16.
    const void* k_block(int il, int32_t block) const;
    const void* v_block(int il, int32_t block) const;
    bool is_quantized(int32_t block) const { return kv_type_quantized(cfg_.type) && slot_[block] < 0; }
    // Rot types: the key mean of layer il that quantized keys are stored without (kv_quant.h), kv_dim floats in
    // the rotated basis: the channel means of the first block quantized in that layer since clear(), kept
    // for every later one (all blocks of a layer share it, so scores shift alike). Null before that, and for
    // the other types.
    const float* key_mean(int il) const {
        return kv_type_rotated(cfg_.type) && key_mean_set_[il] ? key_mean_.data() + static_cast<size_t>(il) * cfg_.kv_dim : nullptr;
    }

    // --- Eviction ---
    // Keeps n_keep cells of `seq` and drops the others: keep[(il * n_head + h) * n_keep + j] is the cell that KV
    // head h of layer il keeps as its j-th, ascending for each head (n_head = kv_dim / head_dim). The sequence's
    // length in positions stays; its next position goes to cell n_keep. Blocks shared with other sequences or
    // the prefix index are copied first (so they need free blocks), and the sequence is never published again
    // (its blocks no longer hold a token prefix). Throws hearth::Error for a bad keep list.
    void compact(int32_t seq, int32_t n_keep, const int32_t* keep);
    bool is_compacted(int32_t seq) const;
    // K and V of one cell of `seq` in layer il, kv_dim floats each, as attention sees them (dequantized,
    // rotated back, the key mean added).
    void read(int il, int32_t seq, int32_t cell, float* k, float* v) const;

    // --- Compressed types (no-ops for f16 / f32) ---
    // Before a batch whose first position of `seq` is first_pos: quantizes the blocks of `seq` that end at least
    // `residual` positions before it, and returns how many blocks, from the sequence's start, are quantized
    // (the rest are f16; a quantized block found after an f16 one is turned back into f16 to keep that shape).
    int32_t age(int32_t seq, int32_t first_pos);
    // Before a batch writes positions >= pos of `seq`: turns the quantized blocks holding them back into f16.
    void prepare_write(int32_t seq, int32_t pos);
    int64_t residual_slots() const { return static_cast<int64_t>(slot_chunks_.size()) * kSlotsPerChunk - static_cast<int64_t>(slot_free_.size()); }

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
    static constexpr int kSlotsPerChunk = 64;
    size_t block_index(int il, int32_t block) const { return static_cast<size_t>(il) * cfg_.n_blocks + block; }
    uint8_t* k_main(int il, int32_t block) const {
        return reinterpret_cast<uint8_t*>(const_cast<float*>(k_.data())) + block_index(il, block) * layout_.k_bytes;
    }
    uint8_t* v_main(int il, int32_t block) const {
        return reinterpret_cast<uint8_t*>(const_cast<float*>(v_.data())) + block_index(il, block) * layout_.v_bytes;
    }
    // Layer il's K (V: + one block) of an f16 slot.
    f16_t* slot_k(int32_t slot, int il) const {
        return slot_chunks_[static_cast<size_t>(slot / kSlotsPerChunk)].get() +
               (static_cast<size_t>(slot % kSlotsPerChunk) * cfg_.n_layer + il) * 2 * slot_block_values_;
    }
    int32_t alloc_slot();
    void quantize(int32_t block);
    void unquantize(int32_t block);
    int32_t copy_block(int32_t block);  // a private copy of a block, in f16 for compressed types
    struct Seq {
        std::vector<int32_t> table;
        int32_t len = 0;
        int32_t evicted = 0;        // positions dropped by compact(): position p >= compacted is in cell p - evicted
        int32_t compacted = 0;      // the length at the last compact(); 0 when never compacted
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
    void free_block(int32_t block);
    void retain(int32_t block);
    void release(int32_t block);
    uint64_t find(uint64_t parent, const int32_t* tokens) const;  // node id, 0 when absent
    void evict_one();

    KvCacheConfig cfg_;
    KvLayout layout_;
    HugeBuffer k_, v_;  // huge pages: attention reads blocks scattered over the whole pool
    // Compressed types: per block its f16 slot (-1: quantized, or not in use); slots live in chunks that never
    // move (attention holds pointers while a batch runs).
    std::vector<int32_t> slot_;
    std::vector<std::unique_ptr<f16_t[]>> slot_chunks_;
    std::vector<int32_t> slot_free_;
    size_t slot_block_values_ = 0;  // values of one layer's K (or V) block in a slot
    std::vector<float> key_mean_;      // [n_layer][kv_dim]
    std::vector<uint8_t> key_mean_set_;  // per layer
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
