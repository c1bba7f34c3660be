#include "model/kv_evict.h"

#include <omp.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "base/error.h"

namespace hearth {

KvEvictParams parse_kv_evict(std::string_view spec) {
    KvEvictParams p;
    const auto bad = [&] {
        fail("--kv-evict: '{}' is not snapkv:BUDGET or recent:BUDGET (BUDGET: KV cells each head keeps, more than "
             "the {} of the observation window)", spec, p.window);
    };
    const size_t colon = spec.find(':');
    if (colon == std::string_view::npos) bad();
    const std::string_view method = spec.substr(0, colon), n = spec.substr(colon + 1);
    if (method == "snapkv")
        p.method = KvEvictMethod::SnapKv;
    else if (method == "recent")
        p.method = KvEvictMethod::Recent;
    else
        bad();
    const auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), p.budget);
    if (n.empty() || ec != std::errc() || end != n.data() + n.size() || p.budget <= p.window) bad();
    return p;
}

void check_kv_evict(const KvEvictParams& p, int n_ctx) {
    if (p.budget >= n_ctx)
        fail("--kv-evict {}:{}: the budget is not below the context size {}, so nothing would be evicted",
             p.method == KvEvictMethod::SnapKv ? "snapkv" : "recent", p.budget, n_ctx);
}

void kv_evict_observe(Context& ctx, int32_t seq, int32_t n_prompt, const KvEvictParams& p) {
    if (p.method != KvEvictMethod::SnapKv || n_prompt <= p.budget) return;
    ctx.observe_queries(seq, n_prompt - p.window, p.window);
}

KvEvictResult kv_evict(Context& ctx, int32_t seq, const KvEvictParams& p) {
    KvCache& kv = ctx.kv();
    const HParams& hp = ctx.model().hp;
    KvEvictResult res;
    res.cells_before = res.cells_after = kv.seq_cells(seq);
    const int32_t n = res.cells_before;
    if (n <= p.budget) {
        ctx.forget_queries(seq);
        return res;
    }
    if (hp.sliding_window > 0)
        fail("KV eviction: {} has sliding-window layers, which find their cells by position; it is not supported there",
             hp.arch);
    if (kv.is_compacted(seq)) fail("KV eviction: sequence {} was compacted already", seq);
    std::vector<int32_t> keep(static_cast<size_t>(hp.n_layer * hp.n_head_kv * p.budget));
    if (p.method == KvEvictMethod::Recent) {
        const int sinks = std::min(p.sinks, p.budget);
        for (size_t r = 0; r < keep.size() / p.budget; ++r) {
            int32_t* row = keep.data() + r * p.budget;
            std::iota(row, row + sinks, 0);
            std::iota(row + sinks, row + p.budget, n - (p.budget - sinks));
        }
        kv.compact(seq, p.budget, keep.data());
        res.cells_after = kv.seq_cells(seq);
        return res;
    }
    const Context::ObservedQueries* obs = ctx.observed_queries(seq);
    if (!obs || obs->first_pos != n - p.window || obs->n != p.window)
        fail("KV eviction: the queries of positions [{}, {}) of sequence {} were not observed while the prompt was "
             "computed (kv_evict_observe before it)", n - p.window, n, seq);

    const int W = p.window, n_prefix = n - W, n_pick = p.budget - W, radius = p.pool / 2;
    const int64_t HD = hp.head_dim, KVD = hp.kv_dim(), QD = hp.q_dim();
    const int64_t n_head_kv = hp.n_head_kv, group = hp.n_head / hp.n_head_kv;
    const float scale = hp.attn_scale > 0 ? hp.attn_scale : 1.0f / std::sqrt(static_cast<float>(HD));

#pragma omp parallel num_threads(ctx.n_threads())
    {
        std::vector<float> K(static_cast<size_t>(n) * KVD), V(static_cast<size_t>(KVD)), scores(n), votes(n_prefix),
            pooled(n_prefix);
        std::vector<int32_t> order(n_prefix);
#pragma omp for schedule(dynamic, 1)
        for (int64_t il = 0; il < hp.n_layer; ++il) {
            for (int32_t c = 0; c < n; ++c) kv.read(static_cast<int>(il), seq, c, K.data() + c * KVD, V.data());
            for (int64_t g = 0; g < n_head_kv; ++g) {
                // Votes: the softmax weights each window query (of the group's query heads) gives the prefix.
                std::fill(votes.begin(), votes.end(), 0.0f);
                for (int w = 0; w < W; ++w)
                    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
                        const float* q = obs->q.data() + (il * W + w) * QD + h * HD;
                        const int32_t n_see = n_prefix + w + 1;  // causal
                        float mx = -INFINITY;
                        for (int32_t c = 0; c < n_see; ++c) {
                            const float* k = K.data() + c * KVD + g * HD;
                            float dot = 0.0f;
                            for (int64_t i = 0; i < HD; ++i) dot += q[i] * k[i];
                            scores[c] = dot * scale;
                            mx = std::max(mx, scores[c]);
                        }
                        double sum = 0.0;
                        for (int32_t c = 0; c < n_see; ++c) sum += scores[c] = std::exp(scores[c] - mx);
                        const float inv = static_cast<float>(1.0 / sum);
                        for (int32_t c = 0; c < n_prefix; ++c) votes[c] += scores[c] * inv;
                    }
                // Max-pooling: a position also counts with the votes of its neighbours, so kept positions come
                // with their context (a fact is several tokens).
                for (int32_t c = 0; c < n_prefix; ++c) {
                    float m = votes[c];
                    for (int32_t d = std::max(0, c - radius); d <= std::min(n_prefix - 1, c + radius); ++d)
                        m = std::max(m, votes[d]);
                    pooled[c] = m;
                }
                std::iota(order.begin(), order.end(), 0);
                std::partial_sort(order.begin(), order.begin() + n_pick, order.end(), [&](int32_t a, int32_t b) {
                    return pooled[a] > pooled[b] || (pooled[a] == pooled[b] && a < b);
                });
                int32_t* row = keep.data() + (il * n_head_kv + g) * p.budget;
                std::copy(order.begin(), order.begin() + n_pick, row);
                std::sort(row, row + n_pick);
                for (int w = 0; w < W; ++w) row[n_pick + w] = n_prefix + w;
            }
        }
    }
    kv.compact(seq, p.budget, keep.data());
    ctx.forget_queries(seq);
    res.cells_after = kv.seq_cells(seq);
    return res;
}

}  // namespace hearth
