#include "runtime/kv_cache.h"

#include "base/error.h"

namespace hearth {

KvCache::KvCache(const KvCacheConfig& cfg) : cfg_(cfg) {
    if (cfg.n_layer <= 0 || cfg.kv_dim <= 0 || cfg.block_size <= 0 || cfg.n_blocks <= 0)
        fail("kv cache: invalid configuration (layers {}, kv_dim {}, block {}, blocks {})", cfg.n_layer, cfg.kv_dim,
             cfg.block_size, cfg.n_blocks);
    const size_t n = static_cast<size_t>(cfg.n_layer) * cfg.n_blocks * cfg.block_size * cfg.kv_dim;
    k_.assign(n, 0.0f);
    v_.assign(n, 0.0f);
    clear();
}

void KvCache::clear() {
    tables_.clear();
    lengths_.clear();
    free_.clear();
    for (int64_t b = cfg_.n_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

void KvCache::reserve(int32_t seq, int32_t n_pos) {
    auto& table = tables_[seq];
    const int64_t need = (static_cast<int64_t>(n_pos) + cfg_.block_size - 1) / cfg_.block_size;
    if (need - static_cast<int64_t>(table.size()) > static_cast<int64_t>(free_.size()))
        fail("kv cache full: sequence {} needs {} positions, {} free of {} cells", seq, n_pos,
             free_.size() * cfg_.block_size, cfg_.n_blocks * cfg_.block_size);
    while (static_cast<int64_t>(table.size()) < need) {
        table.push_back(free_.back());
        free_.pop_back();
    }
    auto& len = lengths_[seq];
    if (n_pos > len) len = n_pos;
}

int32_t KvCache::seq_len(int32_t seq) const {
    auto it = lengths_.find(seq);
    return it == lengths_.end() ? 0 : it->second;
}

void KvCache::truncate(int32_t seq, int32_t pos) {
    auto it = tables_.find(seq);
    if (it == tables_.end()) return;
    auto& table = it->second;
    const size_t keep = (static_cast<size_t>(pos) + cfg_.block_size - 1) / cfg_.block_size;
    while (table.size() > keep) {
        free_.push_back(table.back());
        table.pop_back();
    }
    if (pos <= 0) {
        tables_.erase(it);
        lengths_.erase(seq);
    } else if (lengths_[seq] > pos) {
        lengths_[seq] = pos;
    }
}

const std::vector<int32_t>& KvCache::blocks(int32_t seq) const {
    static const std::vector<int32_t> empty;
    auto it = tables_.find(seq);
    return it == tables_.end() ? empty : it->second;
}

void KvCache::write(int il, int32_t seq, int32_t pos, const float* k, const float* v, int d0, int d1) {
    if (d1 < 0) d1 = cfg_.kv_dim;
    const auto& table = tables_.at(seq);
    const int32_t block = table.at(static_cast<size_t>(pos / cfg_.block_size));
    const int cell = pos % cfg_.block_size;
    float* kb = k_.data() + block_offset(il, block);
    float* vb = v_.data() + block_offset(il, block) + static_cast<size_t>(cell) * cfg_.kv_dim;
    for (int d = d0; d < d1; ++d) {
        kb[static_cast<size_t>(d) * cfg_.block_size + cell] = k[d];
        vb[d] = v[d];
    }
}

}  // namespace hearth
