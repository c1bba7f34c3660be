#include "runtime/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "tensor/dtype.h"
#include "tensor/kernels.h"

namespace hearth {

namespace {

uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

uint64_t block_key(uint64_t parent, const int32_t* tokens, int n) {
    uint64_t h = mix(0x84222325cbf29ce4ull, parent);
    for (int i = 0; i < n; ++i) h = mix(h, static_cast<uint32_t>(tokens[i]));
    return h;
}

}  // namespace

KvCache::KvCache(const KvCacheConfig& cfg) : cfg_(cfg) {
    if (cfg.n_layer <= 0 || cfg.kv_dim <= 0 || cfg.block_size <= 0 || cfg.n_blocks <= 0)
        fail("kv cache: invalid configuration (layers {}, kv_dim {}, block {}, blocks {})", cfg.n_layer, cfg.kv_dim,
             cfg.block_size, cfg.n_blocks);
    if (cfg.residual < 0) fail("kv cache: the residual must not be negative (got {})", cfg.residual);
    if (cfg_.head_dim <= 0) cfg_.head_dim = cfg.kv_dim;
    layout_ = kv_layout(cfg.type, cfg.kv_dim, cfg_.head_dim, cfg.block_size);
    const size_t blocks = static_cast<size_t>(cfg.n_layer) * cfg.n_blocks;
    k_ = HugeBuffer((blocks * layout_.k_bytes + sizeof(float) - 1) / sizeof(float));
    v_ = HugeBuffer((blocks * layout_.v_bytes + sizeof(float) - 1) / sizeof(float));
    slot_block_values_ = static_cast<size_t>(cfg.block_size) * cfg.kv_dim;
    clear();
}

size_t KvCache::bytes() const {
    const size_t blocks = static_cast<size_t>(cfg_.n_layer) * cfg_.n_blocks;
    return blocks * (layout_.k_bytes + layout_.v_bytes) +
           slot_chunks_.size() * kSlotsPerChunk * cfg_.n_layer * 2 * slot_block_values_ * sizeof(f16_t);
}

const void* KvCache::k_block(int il, int32_t block) const {
    if (kv_type_quantized(cfg_.type) && slot_[block] >= 0) return slot_k(slot_[block], il);
    return k_main(il, block);
}

const void* KvCache::v_block(int il, int32_t block) const {
    if (kv_type_quantized(cfg_.type) && slot_[block] >= 0) return slot_k(slot_[block], il) + slot_block_values_;
    return v_main(il, block);
}

int32_t KvCache::alloc_slot() {
    if (slot_free_.empty()) {
        const int32_t first = static_cast<int32_t>(slot_chunks_.size()) * kSlotsPerChunk;
        slot_chunks_.push_back(std::make_unique<f16_t[]>(kSlotsPerChunk * static_cast<size_t>(cfg_.n_layer) * 2 *
                                                          slot_block_values_));
        for (int32_t i = kSlotsPerChunk - 1; i >= 0; --i) slot_free_.push_back(first + i);
    }
    const int32_t slot = slot_free_.back();
    slot_free_.pop_back();
    return slot;
}

void KvCache::quantize(int32_t block) {
    const int32_t slot = slot_[block];
    const int bs = cfg_.block_size, D = cfg_.kv_dim;
    for (int il = 0; il < cfg_.n_layer; ++il) {
        const f16_t* k = slot_k(slot, il);
        if (kv_type_rotated(cfg_.type) && !key_mean_set_[il]) {
            float* mean = key_mean_.data() + static_cast<size_t>(il) * D;
            // The channel means of the block's cells (measured on stories260K, 11k tokens: a per-channel median,
            // robust to the first token's outlying key, did no better).
            for (int ch = 0; ch < D; ++ch) {
                float sum = 0;
                for (int c = 0; c < bs; ++c) sum += f16_to_f32(k[ch * bs + c]);
                mean[ch] = sum / static_cast<float>(bs);
            }
            key_mean_set_[il] = 1;
        }
        kv_quantize_block(layout_, k, k + slot_block_values_, k_main(il, block), v_main(il, block), key_mean(il));
    }
    slot_free_.push_back(slot);
    slot_[block] = -1;
}

void KvCache::unquantize(int32_t block) {
    const int32_t slot = alloc_slot();
    for (int il = 0; il < cfg_.n_layer; ++il) {
        f16_t* k = slot_k(slot, il);
        kv_dequantize_block(layout_, k_main(il, block), v_main(il, block), k, k + slot_block_values_, key_mean(il));
    }
    slot_[block] = slot;
}

int32_t KvCache::age(int32_t seq, int32_t first_pos) {
    if (!kv_type_quantized(cfg_.type)) return 0;
    auto it = seqs_.find(seq);
    if (it == seqs_.end()) return 0;
    const auto& table = it->second.table;
    const int bs = cfg_.block_size;
    first_pos -= it->second.evicted;
    int32_t n_quant = 0;
    bool f16_seen = false;
    for (size_t b = 0; b < table.size(); ++b) {
        const int32_t block = table[b];
        const bool old = static_cast<int64_t>(b + 1) * bs + cfg_.residual <= first_pos;
        if (!f16_seen && old && slot_[block] >= 0) quantize(block);
        if (slot_[block] >= 0) {
            f16_seen = true;
        } else if (f16_seen) {
            unquantize(block);
        } else {
            ++n_quant;
        }
    }
    return n_quant;
}

void KvCache::prepare_write(int32_t seq, int32_t pos) {
    if (!kv_type_quantized(cfg_.type)) return;
    auto it = seqs_.find(seq);
    if (it == seqs_.end()) return;
    const auto& table = it->second.table;
    pos -= it->second.evicted;
    for (size_t b = static_cast<size_t>(std::max(pos, 0) / cfg_.block_size); b < table.size(); ++b)
        if (slot_[table[b]] < 0) unquantize(table[b]);
}

void KvCache::clear() {
    seqs_.clear();
    nodes_.clear();
    by_key_.clear();
    evictable_.clear();
    ref_.assign(static_cast<size_t>(cfg_.n_blocks), 0);
    block_node_.assign(static_cast<size_t>(cfg_.n_blocks), 0);
    free_.clear();
    for (int64_t b = cfg_.n_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
    // Slots are kept allocated (a cleared cache is usually refilled), all free.
    slot_.assign(static_cast<size_t>(cfg_.n_blocks), -1);
    // No quantized block is left, so the key means can start again.
    key_mean_.assign(static_cast<size_t>(cfg_.n_layer) * cfg_.kv_dim, 0.0f);
    key_mean_set_.assign(static_cast<size_t>(cfg_.n_layer), 0);
    slot_free_.clear();
    for (int32_t i = static_cast<int32_t>(slot_chunks_.size()) * kSlotsPerChunk - 1; i >= 0; --i) slot_free_.push_back(i);
}

void KvCache::evict_one() {
    const int32_t block = evictable_.begin()->second;
    evictable_.erase(evictable_.begin());
    const uint64_t id = block_node_[block];
    const Node& node = nodes_.at(id);
    auto [lo, hi] = by_key_.equal_range(node.key);
    for (auto it = lo; it != hi; ++it)
        if (it->second == id) {
            by_key_.erase(it);
            break;
        }
    nodes_.erase(id);
    block_node_[block] = 0;
    ref_[block] = 0;
    free_block(block);
    ++n_evictions_;
}

void KvCache::free_block(int32_t block) {
    if (slot_[block] >= 0) slot_free_.push_back(slot_[block]);
    slot_[block] = -1;
    free_.push_back(block);
}

int32_t KvCache::alloc_block() {
    if (free_.empty()) evict_one();  // callers checked free_blocks()
    const int32_t b = free_.back();
    free_.pop_back();
    ref_[b] = 1;
    if (kv_type_quantized(cfg_.type)) slot_[b] = alloc_slot();  // new cells are written in f16
    return b;
}

void KvCache::retain(int32_t block) {
    if (ref_[block] == 1 && block_node_[block] != 0) evictable_.erase({nodes_.at(block_node_[block]).last_used, block});
    ++ref_[block];
}

void KvCache::release(int32_t block) {
    if (--ref_[block] == 0) {
        free_block(block);
    } else if (ref_[block] == 1 && block_node_[block] != 0) {
        // Only the index holds it now: evictable, aged from this moment (a sequence releases its blocks last
        // to first, so a chain's deeper blocks are evicted before the blocks they extend).
        Node& node = nodes_.at(block_node_[block]);
        node.last_used = ++clock_;
        evictable_.insert({node.last_used, block});
    }
}

void KvCache::reserve(int32_t seq, int32_t n_pos) {
    auto found = seqs_.find(seq);
    const int64_t have = found == seqs_.end() ? 0 : static_cast<int64_t>(found->second.table.size());
    const int64_t need = (static_cast<int64_t>(cell(seq, n_pos)) + cfg_.block_size - 1) / cfg_.block_size;
    if (need - have > free_blocks())
        fail("kv cache full: sequence {} needs {} positions, {} free of {} cells", seq, n_pos,
             free_blocks() * cfg_.block_size, cfg_.n_blocks * cfg_.block_size);
    Seq& s = seqs_[seq];
    while (static_cast<int64_t>(s.table.size()) < need) s.table.push_back(alloc_block());
    if (n_pos > s.len) s.len = n_pos;
}

int32_t KvCache::seq_len(int32_t seq) const {
    auto it = seqs_.find(seq);
    return it == seqs_.end() ? 0 : it->second.len;
}

int32_t KvCache::cell(int32_t seq, int32_t pos) const {
    auto it = seqs_.find(seq);
    return it == seqs_.end() ? pos : pos - it->second.evicted;
}

bool KvCache::is_compacted(int32_t seq) const {
    auto it = seqs_.find(seq);
    return it != seqs_.end() && it->second.compacted > 0;
}

void KvCache::truncate(int32_t seq, int32_t pos) {
    auto it = seqs_.find(seq);
    if (it == seqs_.end()) return;
    Seq& s = it->second;
    if (pos > 0 && pos < s.compacted)
        fail("kv cache: sequence {} was compacted at {} positions (KV eviction): it cannot be cut back to {}, only "
             "emptied", seq, s.compacted, pos);
    if (pos > 0) pos -= s.evicted;  // a cell from here on
    const size_t keep = (static_cast<size_t>(std::max(pos, 0)) + cfg_.block_size - 1) / cfg_.block_size;
    while (s.table.size() > keep) {
        release(s.table.back());
        s.table.pop_back();
    }
    const size_t full = static_cast<size_t>(std::max(pos, 0)) / cfg_.block_size;
    if (s.chain.size() > full) s.chain.resize(full);
    if (pos <= 0) {
        seqs_.erase(it);
    } else if (s.len > pos + s.evicted) {
        s.len = pos + s.evicted;
    }
}

const std::vector<int32_t>& KvCache::blocks(int32_t seq) const {
    static const std::vector<int32_t> empty;
    auto it = seqs_.find(seq);
    return it == seqs_.end() ? empty : it->second.table;
}

bool KvCache::is_shared(int32_t seq, int32_t pos) const {
    auto it = seqs_.find(seq);
    if (it == seqs_.end() || pos < 0) return false;
    pos -= it->second.evicted;
    if (pos < 0) return false;
    const size_t b = static_cast<size_t>(pos / cfg_.block_size);
    return b < it->second.table.size() && ref_[it->second.table[b]] > 1;
}

void KvCache::write(int il, int32_t seq, int32_t pos, const float* k, const float* v, int d0, int d1) {
    if (d1 < 0) d1 = cfg_.kv_dim;
    const Seq& sq = seqs_.at(seq);
    const auto& table = sq.table;
    pos -= sq.evicted;
    const int32_t block = table.at(static_cast<size_t>(pos / cfg_.block_size));
    const int bs = cfg_.block_size, cell = pos % bs;
    if (cfg_.type == KvType::F32) {
        float* kb = reinterpret_cast<float*>(k_main(il, block)) + cell;
        float* vb = reinterpret_cast<float*>(v_main(il, block)) + static_cast<size_t>(cell) * cfg_.kv_dim;
        for (int d = d0; d < d1; ++d) {
            kb[static_cast<size_t>(d) * bs] = k[d];
            vb[d] = v[d];
        }
        return;
    }
    f16_t *kb, *vb;
    if (cfg_.type == KvType::F16) {
        kb = reinterpret_cast<f16_t*>(k_main(il, block));
        vb = reinterpret_cast<f16_t*>(v_main(il, block));
    } else {
        if (slot_[block] < 0)
            fail("kv cache: position {} of sequence {} is in a quantized block (prepare_write() was not called)", pos, seq);
        kb = slot_k(slot_[block], il);
        vb = kb + slot_block_values_;
    }
    kb += cell;
    vb += static_cast<size_t>(cell) * cfg_.kv_dim;
    if (kv_type_rotated(cfg_.type)) {
        // Whole heads, stored in the rotated basis.
        const int hd = cfg_.head_dim;
        if (d0 % hd != 0 || d1 % hd != 0)
            fail("kv cache: a {} write must cover whole heads of {} (got dimensions {}..{})", kv_type_name(cfg_.type), hd, d0, d1);
        float head[2][512];
        if (hd > 512) fail("kv cache: head size {} is above the {} the rotation supports", hd, 512);
        for (int h0 = d0; h0 < d1; h0 += hd) {
            std::copy(k + h0, k + h0 + hd, head[0]);
            std::copy(v + h0, v + h0 + hd, head[1]);
            kv_rotate(head[0], hd);
            kv_rotate(head[1], hd);
            for (int j = 0; j < hd; ++j) {
                kb[static_cast<size_t>(h0 + j) * bs] = f32_to_f16(head[0][j]);
                vb[h0 + j] = f32_to_f16(head[1][j]);
            }
        }
        return;
    }
    // Keys are stored channel-major (a channel's cells adjacent): converted in chunks, then spread.
    const kernels::ToF16RowFn to_f16 = kernels::active().f32_to_f16_row;
    to_f16(v + d0, vb + d0, d1 - d0);
    f16_t chunk[256];
    for (int c0 = d0; c0 < d1; c0 += 256) {
        const int n = std::min(256, d1 - c0);
        to_f16(k + c0, chunk, n);
        for (int j = 0; j < n; ++j) kb[static_cast<size_t>(c0 + j) * bs] = chunk[j];
    }
}

int32_t KvCache::copy_block(int32_t block) {
    const int32_t copy = alloc_block();
    for (int il = 0; il < cfg_.n_layer; ++il) {
        if (!kv_type_quantized(cfg_.type)) {
            std::memcpy(k_main(il, copy), k_main(il, block), layout_.k_bytes);
            std::memcpy(v_main(il, copy), v_main(il, block), layout_.v_bytes);
            continue;
        }
        f16_t* k = slot_k(slot_[copy], il);
        if (slot_[block] < 0)
            kv_dequantize_block(layout_, k_main(il, block), v_main(il, block), k, k + slot_block_values_, key_mean(il));
        else
            std::memcpy(k, slot_k(slot_[block], il), 2 * slot_block_values_ * sizeof(f16_t));
    }
    return copy;
}

namespace {
// A block's K value of (channel, cell) and V value of (cell, channel) as stored before any quantization: in the
// rotated basis for rot types, with the key mean.
float stored_k(const KvLayout& L, const void* block, bool quantized, const float* mean, int ch, int c) {
    if (!quantized)
        return L.type == KvType::F32 ? static_cast<const float*>(block)[static_cast<size_t>(ch) * L.block_size + c]
                                     : f16_to_f32(static_cast<const f16_t*>(block)[static_cast<size_t>(ch) * L.block_size + c]);
    return kv_k_value(L, block, ch, c) + (mean ? mean[ch] : 0.0f);
}
float stored_v(const KvLayout& L, const void* block, bool quantized, int c, int ch) {
    if (!quantized)
        return L.type == KvType::F32 ? static_cast<const float*>(block)[static_cast<size_t>(c) * L.kv_dim + ch]
                                     : f16_to_f32(static_cast<const f16_t*>(block)[static_cast<size_t>(c) * L.kv_dim + ch]);
    return kv_v_value(L, block, c, ch);
}
}  // namespace

void KvCache::read(int il, int32_t seq, int32_t c, float* k, float* v) const {
    const Seq& s = seqs_.at(seq);
    const int bs = cfg_.block_size, D = cfg_.kv_dim;
    if (c < 0 || c >= s.len - s.evicted) fail("kv cache: cell {} of sequence {} is not held", c, seq);
    const int32_t block = s.table[static_cast<size_t>(c / bs)];
    const bool quantized = is_quantized(block);
    const void* kb = k_block(il, block);
    const void* vb = v_block(il, block);
    for (int ch = 0; ch < D; ++ch) {
        k[ch] = stored_k(layout_, kb, quantized, key_mean(il), ch, c % bs);
        v[ch] = stored_v(layout_, vb, quantized, c % bs, ch);
    }
    if (kv_type_rotated(cfg_.type))
        for (int h = 0; h < D; h += cfg_.head_dim) {
            kv_unrotate(k + h, cfg_.head_dim);
            kv_unrotate(v + h, cfg_.head_dim);
        }
}

void KvCache::compact(int32_t seq, int32_t n_keep, const int32_t* keep) {
    auto it = seqs_.find(seq);
    if (it == seqs_.end()) fail("kv cache: sequence {} holds nothing to compact", seq);
    Seq& s = it->second;
    const int bs = cfg_.block_size, D = cfg_.kv_dim, hd = cfg_.head_dim, n_head = D / hd;
    const int32_t cells = s.len - s.evicted;
    if (n_keep <= 0 || n_keep > cells)
        fail("kv cache: sequence {} holds {} cells, it cannot keep {} of them", seq, cells, n_keep);
    for (int64_t r = 0; r < static_cast<int64_t>(cfg_.n_layer) * n_head; ++r) {
        const int32_t* row = keep + r * n_keep;
        for (int32_t j = 0; j < n_keep; ++j)
            if (row[j] < 0 || row[j] >= cells || (j > 0 && row[j] <= row[j - 1]))
                fail("kv cache: the cells to keep of layer {} head {} are not ascending in [0, {}) (entry {} is {})",
                     r / n_head, r % n_head, cells, j, row[j]);
    }
    // The blocks that receive kept cells become private and f16 (or f32); later blocks are only read.
    const size_t n_dst = static_cast<size_t>((n_keep + bs - 1) / bs);
    int64_t shared = 0;
    for (size_t b = 0; b < n_dst; ++b) shared += ref_[s.table[b]] > 1;
    if (shared > free_blocks())
        fail("kv cache full: compacting sequence {} copies {} shared blocks, {} blocks are free", seq, shared, free_blocks());
    for (size_t b = 0; b < n_dst; ++b) {
        const int32_t block = s.table[b];
        if (ref_[block] > 1) {
            s.table[b] = copy_block(block);
            release(block);
        } else if (is_quantized(block)) {
            unquantize(block);
        }
    }
    // In place, per head: kept cell j comes from cell keep[j] >= j, and every later source lies beyond j, so
    // no cell is overwritten before it is read.
    for (int il = 0; il < cfg_.n_layer; ++il) {
        const float* mean = key_mean(il);
        for (int h = 0; h < n_head; ++h) {
            const int32_t* row = keep + (static_cast<int64_t>(il) * n_head + h) * n_keep;
            for (int32_t j = 0; j < n_keep; ++j) {
                const int32_t src = row[j];
                if (src == j) continue;
                const int32_t sb = s.table[static_cast<size_t>(src / bs)], db = s.table[static_cast<size_t>(j / bs)];
                const bool quantized = is_quantized(sb);
                const void* sk = k_block(il, sb);
                const void* sv = v_block(il, sb);
                void* dk = const_cast<void*>(k_block(il, db));
                void* dv = const_cast<void*>(v_block(il, db));
                const int sc = src % bs, dc = j % bs;
                for (int ch = h * hd; ch < (h + 1) * hd; ++ch) {
                    const float kval = stored_k(layout_, sk, quantized, mean, ch, sc);
                    const float vval = stored_v(layout_, sv, quantized, sc, ch);
                    const size_t ki = static_cast<size_t>(ch) * bs + dc, vi = static_cast<size_t>(dc) * D + ch;
                    if (cfg_.type == KvType::F32) {
                        static_cast<float*>(dk)[ki] = kval;
                        static_cast<float*>(dv)[vi] = vval;
                    } else {
                        static_cast<f16_t*>(dk)[ki] = f32_to_f16(kval);
                        static_cast<f16_t*>(dv)[vi] = f32_to_f16(vval);
                    }
                }
            }
        }
    }
    while (s.table.size() > n_dst) {
        release(s.table.back());
        s.table.pop_back();
    }
    s.chain.clear();
    s.evicted = s.len - n_keep;
    s.compacted = s.len;
}

uint64_t KvCache::find(uint64_t parent, const int32_t* tokens) const {
    const int bs = cfg_.block_size;
    auto [lo, hi] = by_key_.equal_range(block_key(parent, tokens, bs));
    for (auto it = lo; it != hi; ++it) {
        const Node& n = nodes_.at(it->second);
        if (n.parent == parent && std::equal(n.tokens.begin(), n.tokens.end(), tokens)) return it->second;
    }
    return 0;
}

int32_t KvCache::attach_prefix(int32_t seq, const int32_t* tokens, int32_t max_tokens) {
    auto found = seqs_.find(seq);
    if (found != seqs_.end() && !found->second.table.empty())
        fail("kv cache: a prefix can only be attached to an empty sequence ({} holds {} positions)", seq,
             found->second.len);
    const int bs = cfg_.block_size;
    Seq* s = nullptr;
    uint64_t parent = 0;
    for (int32_t b = 0; (b + 1) * bs <= max_tokens; ++b) {
        const uint64_t id = find(parent, tokens + static_cast<size_t>(b) * bs);
        if (id == 0) break;
        if (!s) s = &seqs_[seq];
        Node& node = nodes_.at(id);
        retain(node.block);
        node.last_used = ++clock_;
        s->table.push_back(node.block);
        s->chain.push_back(id);
        s->len = (b + 1) * bs;
        parent = id;
    }
    return s ? s->len : 0;
}

void KvCache::publish(int32_t seq, const int32_t* tokens, int32_t n_tokens) {
    auto it = seqs_.find(seq);
    if (it == seqs_.end()) return;
    Seq& s = it->second;
    if (s.compacted > 0) return;  // its cells are no longer a token prefix
    const int bs = cfg_.block_size;
    const size_t full = static_cast<size_t>(std::min(n_tokens, s.len) / bs);
    while (s.chain.size() < full && s.chain.size() < s.table.size()) {
        const size_t b = s.chain.size();
        const int32_t* toks = tokens + b * bs;
        const uint64_t parent = b == 0 ? 0 : s.chain.back();
        uint64_t id = find(parent, toks);
        if (id == 0) {
            id = next_node_++;
            Node node;
            node.parent = parent;
            node.key = block_key(parent, toks, bs);
            node.tokens.assign(toks, toks + bs);
            node.block = s.table[b];
            node.last_used = ++clock_;
            by_key_.insert({node.key, id});
            nodes_.emplace(id, std::move(node));
            // The index's own reference. The block may already be indexed under another key only if a
            // caller published different tokens for it, which the scheduler never does.
            if (block_node_[s.table[b]] != 0) fail("kv cache: block {} is already in the prefix index", s.table[b]);
            block_node_[s.table[b]] = id;
            ++ref_[s.table[b]];  // the sequence holds it too, so it is not evictable yet
        }
        s.chain.push_back(id);
    }
}

}  // namespace hearth
