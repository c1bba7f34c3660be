#include "runtime/kv_cache.h"

#include <algorithm>

#include "base/error.h"
#include "tensor/dtype.h"

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
    elem_ = kv_type_bytes(cfg.type);
    const size_t n = static_cast<size_t>(cfg.n_layer) * cfg.n_blocks * cfg.block_size * cfg.kv_dim;
    const size_t floats = (n * elem_ + sizeof(float) - 1) / sizeof(float);
    k_ = HugeBuffer(floats);
    v_ = HugeBuffer(floats);
    clear();
}

const char* kv_type_name(KvType t) { return t == KvType::F32 ? "f32" : "f16"; }

KvType parse_kv_type(std::string_view name) {
    if (name == "f32") return KvType::F32;
    if (name == "f16") return KvType::F16;
    fail("unknown KV cache type '{}' (known: f16, f32)", name);
}

size_t kv_type_bytes(KvType t) { return t == KvType::F32 ? sizeof(float) : sizeof(f16_t); }

void KvCache::clear() {
    seqs_.clear();
    nodes_.clear();
    by_key_.clear();
    evictable_.clear();
    ref_.assign(static_cast<size_t>(cfg_.n_blocks), 0);
    block_node_.assign(static_cast<size_t>(cfg_.n_blocks), 0);
    free_.clear();
    for (int64_t b = cfg_.n_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
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
    free_.push_back(block);
    ++n_evictions_;
}

int32_t KvCache::alloc_block() {
    if (free_.empty()) evict_one();  // callers checked free_blocks()
    const int32_t b = free_.back();
    free_.pop_back();
    ref_[b] = 1;
    return b;
}

void KvCache::retain(int32_t block) {
    if (ref_[block] == 1 && block_node_[block] != 0) evictable_.erase({nodes_.at(block_node_[block]).last_used, block});
    ++ref_[block];
}

void KvCache::release(int32_t block) {
    if (--ref_[block] == 0) {
        free_.push_back(block);
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
    const int64_t need = (static_cast<int64_t>(n_pos) + cfg_.block_size - 1) / cfg_.block_size;
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

void KvCache::truncate(int32_t seq, int32_t pos) {
    auto it = seqs_.find(seq);
    if (it == seqs_.end()) return;
    Seq& s = it->second;
    const size_t keep = (static_cast<size_t>(std::max(pos, 0)) + cfg_.block_size - 1) / cfg_.block_size;
    while (s.table.size() > keep) {
        release(s.table.back());
        s.table.pop_back();
    }
    const size_t full = static_cast<size_t>(std::max(pos, 0)) / cfg_.block_size;
    if (s.chain.size() > full) s.chain.resize(full);
    if (pos <= 0) {
        seqs_.erase(it);
    } else if (s.len > pos) {
        s.len = pos;
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
    const size_t b = static_cast<size_t>(pos / cfg_.block_size);
    return b < it->second.table.size() && ref_[it->second.table[b]] > 1;
}

void KvCache::write(int il, int32_t seq, int32_t pos, const float* k, const float* v, int d0, int d1) {
    if (d1 < 0) d1 = cfg_.kv_dim;
    const auto& table = seqs_.at(seq).table;
    const int32_t block = table.at(static_cast<size_t>(pos / cfg_.block_size));
    const int cell = pos % cfg_.block_size;
    const size_t k_at = block_offset(il, block) + cell, v_at = block_offset(il, block) + static_cast<size_t>(cell) * cfg_.kv_dim;
    if (cfg_.type == KvType::F32) {
        float* kb = k_.data() + k_at;
        float* vb = v_.data() + v_at;
        for (int d = d0; d < d1; ++d) {
            kb[static_cast<size_t>(d) * cfg_.block_size] = k[d];
            vb[d] = v[d];
        }
        return;
    }
    f16_t* kb = reinterpret_cast<f16_t*>(k_.data()) + k_at;
    f16_t* vb = reinterpret_cast<f16_t*>(v_.data()) + v_at;
    for (int d = d0; d < d1; ++d) {
        kb[static_cast<size_t>(d) * cfg_.block_size] = f32_to_f16(k[d]);
        vb[d] = f32_to_f16(v[d]);
    }
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
