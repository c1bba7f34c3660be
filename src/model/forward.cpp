// The transformer forward pass for decoder-only models, over a batch of (token, pos, seq, logits) entries.
// Written by hand (the core of the engine): one OpenMP team runs the whole micro-batch, splitting each
// operation across threads and meeting at a barrier between operations, so a decoded token pays for one
// fork/join instead of one per matrix.
#include "model/forward.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <climits>
#include <cstring>
#include <numeric>
#include <unordered_map>

#include "base/barrier.h"
#include "base/error.h"
#include "model/attention.h"
#include "model/layer_ops.h"
#include "tensor/kernels.h"

namespace hearth {
namespace {

constexpr int64_t kRowGrain = 16;
// Up to this many tokens (decode), every thread converts the activations for a matrix by itself.
constexpr int kPrivateActRows = 4;  // weight rows are split between threads in multiples of this

// Contiguous share [begin, end) of n items for thread ith of nth, in multiples of `grain`.
inline void split(int64_t n, int ith, int nth, int64_t grain, int64_t& begin, int64_t& end) {
    const int64_t chunks = (n + grain - 1) / grain;
    const int64_t c0 = chunks * ith / nth, c1 = chunks * (ith + 1) / nth;
    begin = std::min(n, c0 * grain);
    end = std::min(n, c1 * grain);
}

}  // namespace

struct Context::Scratch {
    int64_t cap = 0;  // tokens the buffers hold
    std::vector<float> x, x2, xn, q, k, v, att, gate, up, y;
    std::vector<uint8_t> act;  // quantized activations (shared, built cooperatively)
    std::vector<std::vector<uint8_t>> per_thread_act;  // quantized activations of a few rows, per thread
    std::vector<float> att_parts, att_stats;           // decode attention split over cell ranges
    std::vector<std::vector<float>> per_thread_att;    // merged attention rows, per thread
    std::vector<std::vector<float>> per_thread_tile;    // gemm output tiles
    std::vector<std::vector<float>> per_thread_scores;  // attention scores
    std::vector<float> rope_cos, rope_sin;              // [T][rope_dim/2]
    std::vector<float> rope_cos_sliding, rope_sin_sliding;  // the same for sliding-window layers (gemma3)
    // Mixture of experts: router logits, the token rows gathered by expert (activations in the experts'
    // format), the experts' hidden rows and their outputs, one row per (token, chosen expert).
    std::vector<float> router, moe_h, moe_y;
    std::vector<uint8_t> moe_act;
};

namespace {
// Per sequence of the entries, its lowest position.
std::unordered_map<int32_t, int32_t> first_positions(const BatchEntry* entries, int n) {
    std::unordered_map<int32_t, int32_t> first;
    for (int t = 0; t < n; ++t) {
        auto [it, fresh] = first.emplace(entries[t].seq, entries[t].pos);
        if (!fresh) it->second = std::min(it->second, entries[t].pos);
    }
    return first;
}
}  // namespace

Context::Context(const Model& model, const ContextParams& params)
    : model_(model), params_(params), s_(std::make_unique<Scratch>()) {
    if (params.n_threads < 0) fail("threads must be positive (got {})", params.n_threads);
    if (params.n_ctx <= 0) fail("context size must be positive (got {})", params.n_ctx);
    if (params.n_ubatch <= 0) fail("micro-batch size must be positive (got {})", params.n_ubatch);
    n_threads_ = params.n_threads > 0 ? params.n_threads : omp_get_num_procs();
    const HParams& hp = model.hp;
    KvCacheConfig kc;
    kc.n_layer = static_cast<int>(hp.n_layer);
    kc.kv_dim = static_cast<int>(hp.kv_dim());
    kc.block_size = params.kv_block_size;
    kc.n_blocks = (params.n_ctx + params.kv_block_size - 1) / params.kv_block_size;
    kc.type = params.kv_type;
    kc.head_dim = static_cast<int>(hp.head_dim);
    kc.residual = params.kv_residual;
    kv_ = std::make_unique<KvCache>(kc);
}

Context::~Context() = default;

void Context::observe_queries(int32_t seq, int32_t first_pos, int32_t n) {
    if (first_pos < 0 || n <= 0) fail("queries to observe: positions [{}, {}) are empty or negative", first_pos, first_pos + n);
    ObservedQueries& o = observed_[seq];
    o.first_pos = first_pos;
    o.n = n;
    o.q.assign(static_cast<size_t>(model_.hp.n_layer) * n * model_.hp.q_dim(), 0.0f);
}

const Context::ObservedQueries* Context::observed_queries(int32_t seq) const {
    auto it = observed_.find(seq);
    return it == observed_.end() ? nullptr : &it->second;
}

const std::vector<float>& Context::decode(const Batch& batch) {
    const HParams& hp = model_.hp;
    const int n_out = batch.n_logits();
    if (!hp.causal) fail("{} is an encoder model: use hearth embed (the Encoder), not the decoder", hp.arch);
    logits_.resize(static_cast<size_t>(n_out) * out_dim());  // every row is written below
    // Validate everything before touching the cache.
    std::unordered_map<int32_t, int32_t> next_pos;  // per sequence: the position the batch may write next
    for (const auto& e : batch.entries) {
        if (e.token < 0 || e.token >= hp.n_vocab) fail("token id {} is out of range [0, {})", e.token, hp.n_vocab);
        if (e.seq < 0) fail("sequence id {} is negative", e.seq);
        auto it = next_pos.find(e.seq);
        const int32_t limit = it == next_pos.end() ? kv_->seq_len(e.seq) : it->second;
        if (e.pos < 0 || e.pos > limit)
            fail("position {} of sequence {} does not continue it (its next position is {})", e.pos, e.seq, limit);
        if (e.pos >= params_.n_ctx)
            fail("position {} is beyond the context size {}", e.pos, params_.n_ctx);
        if (kv_->is_shared(e.seq, e.pos))
            fail("position {} of sequence {} is in a KV block shared through the prefix cache: it cannot be rewritten",
                 e.pos, e.seq);
        next_pos[e.seq] = std::max(limit, e.pos + 1);
    }
    for (const auto& [seq, n] : next_pos) kv_->reserve(seq, n);
    // Compressed caches: the cells this batch writes must be in f16 blocks (a truncated sequence may rewrite
    // cells of a quantized one).
    for (const auto& [seq, pos] : first_positions(batch.entries.data(), static_cast<int>(batch.entries.size())))
        kv_->prepare_write(seq, pos);

    float* out = logits_.data();
    const auto& E = batch.entries;
    for (size_t i = 0; i < E.size(); i += static_cast<size_t>(params_.n_ubatch)) {
        const int n = static_cast<int>(std::min(E.size() - i, static_cast<size_t>(params_.n_ubatch)));
        run_ubatch(E.data() + i, n, out);
        for (int j = 0; j < n; ++j) out += E[i + j].logits ? out_dim() : 0;
    }
    return logits_;
}

void Context::run_ubatch(const BatchEntry* entries, int T, float* logits_out) {
    const Model& m = model_;
    const HParams& hp = m.hp;
    Scratch& s = *s_;
    const int64_t E = hp.n_embd, QD = hp.q_dim(), KVD = hp.kv_dim(), F = hp.n_ff, HD = hp.head_dim;
    const int64_t V = hp.n_vocab;
    const int nt = n_threads_;
    const kernels::KernelTable& K = kernels::active();

    if (s.cap < T) {
        s.cap = T;
        s.x.resize(T * E);
        s.x2.resize(T * E);
        s.xn.resize(T * E);
        s.q.resize(T * QD);
        s.k.resize(T * KVD);
        s.v.resize(T * KVD);
        s.att.resize(T * QD);
        s.gate.resize(T * F);
        s.up.resize(T * F);
        s.y.resize(T * std::max(E, V));
        const int64_t maxc = std::max({E, QD, F, hp.n_ff_exp});
        // MoE rows: one per (token, chosen expert).
        const int64_t act_rows = T * std::max<int64_t>(1, hp.n_expert_used);
        s.act.resize(static_cast<size_t>(act_rows) * kernels::act_row_bytes(DType::Q8_0, (maxc + 31) / 32 * 32) + 64);
        s.rope_cos.resize(T * hp.rope_dim / 2);
        s.rope_sin.resize(T * hp.rope_dim / 2);
        if (hp.sliding_window > 0) {
            s.rope_cos_sliding.resize(T * hp.rope_dim / 2);
            s.rope_sin_sliding.resize(T * hp.rope_dim / 2);
        }
        if (hp.n_expert > 0) {
            s.router.resize(T * hp.n_expert);
            s.moe_h.resize(act_rows * hp.n_ff_exp);
            s.moe_y.resize(act_rows * std::max(E, hp.n_ff_exp));  // also holds the up rows before the down rows
            s.moe_act.resize(static_cast<size_t>(act_rows) * std::max(E * sizeof(float), kernels::act_row_bytes(DType::Q8_0, (E + 31) / 32 * 32)) + 64);
        }
    }
    s.per_thread_tile.resize(nt);
    s.per_thread_act.resize(nt);
    s.per_thread_att.resize(nt);
    s.per_thread_scores.resize(nt);
    for (auto& sc : s.per_thread_scores) sc.resize(static_cast<size_t>(attend_work_floats(static_cast<int>(HD))));

    // Embeddings.
    for (int t = 0; t < T; ++t) {
        float* x = s.x.data() + t * E;
        kernels::dequantize_row(m.tok_embd.type, m.tok_embd.data + m.tok_embd.row_bytes * entries[t].token, x, E);
        if (hp.embd_scale != 1.0f)
            for (int64_t i = 0; i < E; ++i) x[i] *= hp.embd_scale;
    }

    // Rope angles per token (ops::rope_angles), for the global layers and the sliding-window ones (gemma3).
    const int64_t half = hp.rope_dim / 2;
    ops::RopeSpec rope{hp.rope_type, hp.rope_dim, hp.rope_base, hp.rope_freq_scale, nullptr, hp.rope_attn_factor};
    if (!m.rope_freqs.empty()) rope.factors = reinterpret_cast<const float*>(m.rope_freqs[0].data);
    if (m.rope_factors_long)  // longrope: the long factors once the context outgrows the original one
        rope.factors = reinterpret_cast<const float*>(
            (params_.n_ctx > hp.n_ctx_orig ? m.rope_factors_long : m.rope_factors_short).data);
    ops::RopeSpec rope_sliding{hp.rope_type, hp.rope_dim, hp.rope_base_sliding, hp.rope_freq_scale_sliding, nullptr,
                               hp.rope_attn_factor};
    for (int t = 0; t < T; ++t) {
        ops::rope_angles(rope, entries[t].pos, s.rope_cos.data() + t * half, s.rope_sin.data() + t * half);
        if (hp.sliding_window > 0)
            ops::rope_angles(rope_sliding, entries[t].pos, s.rope_cos_sliding.data() + t * half,
                             s.rope_sin_sliding.data() + t * half);
    }

    // Output rows wanted.
    std::vector<int> out_rows;
    for (int t = 0; t < T; ++t)
        if (entries[t].logits) out_rows.push_back(t);
    const int n_out = static_cast<int>(out_rows.size());

    // Compressed caches: blocks old enough are quantized now; per entry, how many blocks of its sequence are.
    std::vector<int32_t> quant_blocks(T, 0);
    if (kv_type_quantized(kv_->config().type)) {
        const std::unordered_map<int32_t, int32_t> first_pos = first_positions(entries, T);
        std::unordered_map<int32_t, int32_t> n_quant;
        for (const auto& [seq, pos] : first_pos) kv_->age(seq, pos);
        for (const auto& [seq, pos] : first_pos) n_quant[seq] = kv_->age(seq, pos);  // after every sequence aged
        for (int t = 0; t < T; ++t) quant_blocks[t] = n_quant[entries[t].seq];
    }
    // Resolve the KV block table and cell of every entry once (cells differ from positions after an eviction),
    // and where it saves its queries, if it is observed.
    std::vector<const std::vector<int32_t>*> tables(T);
    std::vector<int32_t> cells(T);
    std::vector<float*> observe(T, nullptr);
    std::vector<int64_t> observe_layer_stride(T, 0);
    for (int t = 0; t < T; ++t) {
        tables[t] = &kv_->blocks(entries[t].seq);
        cells[t] = kv_->cell(entries[t].seq, entries[t].pos);
        if (observed_.empty()) continue;
        auto it = observed_.find(entries[t].seq);
        if (it == observed_.end()) continue;
        ObservedQueries& o = it->second;
        const int32_t i = entries[t].pos - o.first_pos;
        if (i >= 0 && i < o.n) {
            observe[t] = o.q.data() + static_cast<int64_t>(i) * QD;
            observe_layer_stride[t] = static_cast<int64_t>(o.n) * QD;
        }
    }
    const int bs = kv_->config().block_size;

    // Attention tiles: runs of entries of one sequence, as many tokens as fill kAttnMaxRows query rows with
    // one kv head's query heads (a group larger than that is cut into head chunks).
    const int64_t group = hp.n_head / hp.n_head_kv;
    const int64_t head_chunks = (group + kAttnMaxRows - 1) / kAttnMaxRows;
    const int64_t heads_per_chunk = (group + head_chunks - 1) / head_chunks;
    const int tile_tokens = static_cast<int>(std::max<int64_t>(1, kAttnMaxRows / heads_per_chunk));
    std::vector<std::pair<int, int>> tiles;  // (first entry, entries)
    for (int t = 0; t < T;) {
        int n = 1;
        while (t + n < T && n < tile_tokens && entries[t + n].seq == entries[t].seq) ++n;
        tiles.emplace_back(t, n);
        t += n;
    }
    const float attn_scale = hp.attn_scale > 0 ? hp.attn_scale : 1.0f / std::sqrt(static_cast<float>(HD));
    const int64_t n_attn_items = static_cast<int64_t>(tiles.size()) * hp.n_head_kv * head_chunks;
    // Decode with fewer attention items than the threads can share evenly: each row's cells are split into
    // parts of whole blocks so that every thread gets the same work; every thread then merges the parts
    // itself, as it converts those few rows for wo privately anyway (see prepare below).
    int kv_parts = 1;
    if (T <= kPrivateActRows) {
        int max_kv = 0;
        for (int t = 0; t < T; ++t) max_kv = std::max(max_kv, cells[t] + 1);
        const int64_t even = nt / std::gcd(n_attn_items, static_cast<int64_t>(nt));
        kv_parts = static_cast<int>(std::min<int64_t>(even, (max_kv + bs - 1) / bs));
    }
    if (kv_parts > 1) {
        s.att_parts.resize(static_cast<size_t>(T * hp.n_head * kv_parts * HD));
        s.att_stats.resize(static_cast<size_t>(T * hp.n_head * kv_parts * 2));
    }

    std::unique_ptr<SpinBarrier> barrier;
#pragma omp parallel num_threads(nt)
    {
        const int ith = omp_get_thread_num();
        const int nth = omp_get_num_threads();
#pragma omp single
        barrier = std::make_unique<SpinBarrier>(nth);  // the team may be smaller than asked; implicit barrier here
        auto& tile = s.per_thread_tile[ith];
        auto& scores = s.per_thread_scores[ith];
        int64_t generation = 0, cached_generation = -1;
        const void* cached_src = nullptr;
        kernels::ActKind cached_kind = kernels::ActKind::F32;
        std::vector<const void*> kblocks, vblocks;

        // Prepares the activations X[T][cols] in the format weight w wants. A few rows (decode) every thread
        // converts by itself into its own buffer, which costs less than meeting at a barrier; more rows are
        // converted cooperatively, then a barrier. `fresh` says X was rewritten since the last call, so a
        // cached conversion of it is stale. Every thread makes the same decisions from its own copy of the
        // cache state, so one barrier suffices (the callers reach here right after a barrier, when nobody
        // reads the shared activation buffer any more).
        auto prepare = [&](const Weight& w, const float* X, int rows_in,
                           bool fresh) -> std::pair<const void*, size_t> {
            if (fresh) ++generation;
            const kernels::ActKind kind = kernels::act_kind(w.type);
            if (kind == kernels::ActKind::F32) return {X, static_cast<size_t>(w.cols) * sizeof(float)};
            const size_t stride = kernels::act_row_bytes(w.type, w.cols);
            const bool private_act = rows_in <= kPrivateActRows;
            auto& mine = s.per_thread_act[ith];
            if (private_act && mine.size() < rows_in * stride) mine.resize(rows_in * stride);
            uint8_t* buf = private_act ? mine.data() : s.act.data();
            if (cached_generation != generation || cached_src != X || cached_kind != kind) {
                if (private_act) {
                    for (int t = 0; t < rows_in; ++t)
                        K.quantize_act(X + t * w.cols, reinterpret_cast<BlockQ8A*>(buf + t * stride), w.cols);
                } else {
                    for (int t = ith; t < rows_in; t += nth)
                        K.quantize_act(X + t * w.cols, reinterpret_cast<BlockQ8A*>(buf + t * stride), w.cols);
                    barrier->wait();
                }
                cached_src = X;
                cached_kind = kind;
                cached_generation = generation;
            }
            return {buf, stride};
        };

        // Y[T][w.rows] = X[T][w.cols] * W^T, this thread's share of the rows. No barrier at the end.
        auto matmul = [&](const Weight& w, std::pair<const void*, size_t> act, int rows_in, float* Y) {
            const kernels::GemmFn gemm = K.gemm[static_cast<int>(w.type)];
            int64_t r0, r1;
            split(w.rows, ith, nth, kRowGrain, r0, r1);
            if (rows_in == 1) {
                if (r1 > r0) gemm(w.cols, w.data + r0 * w.row_bytes, w.row_bytes, act.first, act.second, Y + r0, 1,
                                  static_cast<int>(r1 - r0), 1);
                return;
            }
            if (const kernels::GemmFn gemm_t = K.gemm_t[static_cast<int>(w.type)]) {  // Y[tokens][rows] directly
                if (r1 > r0)
                    gemm_t(w.cols, w.data + r0 * w.row_bytes, w.row_bytes, act.first, act.second, Y + r0,
                           static_cast<size_t>(w.rows), static_cast<int>(r1 - r0), rows_in);
                return;
            }
            // Prefill: per block of tokens, one gemm over a strip of this thread's rows (the kernel packs the
            // activations once and tiles internally), then scatter the [rows][tokens] tile into Y[tokens][rows].
            // Strips keep the tile in L2 (the output projection's rows would not fit).
            constexpr int kTokBlock = 64;
            constexpr int64_t kTileFloats = 64 * 1024;
            if (r1 <= r0) return;
            if (tile.size() < static_cast<size_t>(kTileFloats)) tile.resize(kTileFloats);  // grown once, not re-zeroed
            for (int t0 = 0; t0 < rows_in; t0 += kTokBlock) {
                const int nc = std::min(kTokBlock, rows_in - t0);
                const uint8_t* a = static_cast<const uint8_t*>(act.first) + t0 * act.second;
                const int64_t rows_per_strip = std::max<int64_t>(kRowGrain, kTileFloats / nc / kRowGrain * kRowGrain);
                for (int64_t s0 = r0; s0 < r1; s0 += rows_per_strip) {
                    const int64_t nr = std::min(rows_per_strip, r1 - s0);
                    gemm(w.cols, w.data + s0 * w.row_bytes, w.row_bytes, a, act.second, tile.data(), nc,
                         static_cast<int>(nr), nc);
                    // In row blocks that stay in L1 (a column at a time over all rows re-read the tile from L2).
                    constexpr int64_t kRowBlock = 64;
                    for (int64_t i0 = 0; i0 < nr; i0 += kRowBlock) {
                        const int64_t i1 = std::min(nr, i0 + kRowBlock);
                        for (int c = 0; c < nc; ++c) {
                            float* y = Y + (t0 + c) * w.rows + s0;
                            for (int64_t i = i0; i < i1; ++i) y[i] = tile[i * nc + c];
                        }
                    }
                }
            }
        };

        // The residual stream lives in two buffers: x_next = x + y is written to the other one, so that with
        // few tokens every thread can read whole rows of x (for the norm) while others write their slices.
        float* x_cur = s.x.data();
        float* x_other = s.x2.data();
        // x_next = x + residual_scale · y' (y may be null: no residual) with y' = y, or rms_norm(y) * post_w
        // when the architecture norms its block outputs (gemma); xn_out[j] = rms_norm(x_next[row j]) * w. With
        // at least as many rows as threads, whole rows per thread; otherwise (decode) every thread computes
        // the norm of each row in its own buffers and writes its slice of it. No barrier at the end.
        std::vector<float> own_next(E), own_out(E);
        auto add_norm = [&](const float* y, const float* post_w, const float* w, const int* row_of, int n_rows,
                            float* xn_out) {
            const bool by_rows = n_rows >= nth;
            int64_t e0 = 0, e1 = E;
            if (!by_rows) split(E, ith, nth, 16, e0, e1);
            for (int j = by_rows ? ith : 0; j < n_rows; j += by_rows ? nth : 1) {
                const int64_t t = row_of ? row_of[j] : j;
                const float* x = x_cur + t * E;
                const float* yt = y ? y + t * E : nullptr;
                float* next = by_rows ? x_other + t * E : own_next.data();
                float* out = by_rows ? xn_out + static_cast<int64_t>(j) * E : own_out.data();
                const float* normed = x;
                if (yt) {
                    float ys = hp.residual_scale;
                    if (post_w) {
                        ys *= ops::rms_inv(yt, E, hp.rms_eps);
                        for (int64_t i = 0; i < E; ++i) next[i] = x[i] + ys * (yt[i] * post_w[i]);
                    } else {
                        for (int64_t i = 0; i < E; ++i) next[i] = x[i] + ys * yt[i];
                    }
                    normed = next;
                }
                K.rms_norm_row(normed, w, out, E, hp.rms_eps);
                if (!by_rows) {
                    if (yt) std::copy(next + e0, next + e1, x_other + t * E + e0);
                    std::copy(out + e0, out + e1, xn_out + static_cast<int64_t>(j) * E + e0);
                }
            }
            if (y) std::swap(x_cur, x_other);
        };
        const int64_t n_rope_items = static_cast<int64_t>(T) * (hp.n_head + hp.n_head_kv);
        auto f32 = [](const Weight& w) { return w ? reinterpret_cast<const float*>(w.data) : nullptr; };
        const float* post_ffn = nullptr;  // the previous layer's post-FFN norm, applied with its residual

        // g[i] = act(g[i]) * u[i] for i in [r0, r1).
        auto gated_act = [&](float* g, const float* u, int64_t r0, int64_t r1) {
            ops::gated_act(hp.ffn_act, K, g + r0, u + r0, r1 - r0);
        };

        // Mixture of experts. Every thread routes every token (a few dozen operations per token, cheaper than
        // a barrier), grouping the (token, expert) pairs by expert into slots; then all experts' gate/up rows
        // and, after one barrier, all down rows are shared between threads as in a dense FFN, each expert
        // running once over just its tokens, so its weights are read once per micro-batch.
        std::vector<int> slot_token, token_slot, expert_begin, chosen, fill, order;  // this thread's, reused per layer
        std::vector<float> slot_weight, probs, chosen_w;
        auto moe_ffn = [&](const LayerWeights& L) {
            const int64_t NE = hp.n_expert, KU = hp.n_expert_used, FE = hp.n_ff_exp;
            matmul(L.ffn_gate_inp, prepare(L.ffn_gate_inp, s.xn.data(), T, true), T, s.router.data());
            barrier->wait();
            slot_token.resize(T * KU);
            slot_weight.resize(T * KU);
            token_slot.resize(T * KU);
            expert_begin.assign(NE + 1, 0);
            probs.resize(NE);
            chosen.resize(T * KU);
            chosen_w.resize(T * KU);
            for (int t = 0; t < T; ++t) {
                const float* lg = s.router.data() + t * NE;
                const float mx = *std::max_element(lg, lg + NE);
                float sum = 0;
                for (int64_t e = 0; e < NE; ++e) sum += (probs[e] = std::exp(lg[e] - mx));
                for (int64_t e = 0; e < NE; ++e) probs[e] /= sum;
                int* c = chosen.data() + t * KU;
                // Top-k by probability, ties to the lower expert id.
                order.resize(NE);
                std::iota(order.begin(), order.end(), 0);
                std::partial_sort(order.begin(), order.begin() + KU, order.end(),
                                  [&](int a, int b) { return probs[a] > probs[b] || (probs[a] == probs[b] && a < b); });
                std::copy(order.begin(), order.begin() + KU, c);
                float wsum = 0;
                for (int64_t j = 0; j < KU; ++j) wsum += chosen_w[t * KU + j] = probs[c[j]];
                if (hp.expert_weights_norm)
                    for (int64_t j = 0; j < KU; ++j) chosen_w[t * KU + j] /= wsum;
                for (int64_t j = 0; j < KU; ++j) ++expert_begin[c[j] + 1];
            }
            for (int64_t e = 0; e < NE; ++e) expert_begin[e + 1] += expert_begin[e];
            fill.assign(expert_begin.begin(), expert_begin.end() - 1);
            for (int t = 0; t < T; ++t)
                for (int64_t j = 0; j < KU; ++j) {
                    const int slot = fill[chosen[t * KU + j]]++;
                    slot_token[slot] = t;
                    slot_weight[slot] = chosen_w[t * KU + j];
                    token_slot[t * KU + j] = slot;
                }
            const int n_slots = static_cast<int>(T * KU);
            // The slots' input rows, in the experts' activation format, gathered cooperatively.
            const auto act = prepare(L.gate_exps[0], s.xn.data(), T, false);
            for (int slot = ith; slot < n_slots; slot += nth)
                std::memcpy(s.moe_act.data() + slot * act.second,
                            static_cast<const uint8_t*>(act.first) + slot_token[slot] * act.second, act.second);
            barrier->wait();
            float* up = s.moe_y.data();  // [slots][FE]: free until the down projections write their rows
            for (int64_t e = 0; e < NE; ++e) {
                const int b = expert_begin[e], n = expert_begin[e + 1] - b;
                if (n == 0) continue;
                const std::pair<const void*, size_t> a{s.moe_act.data() + b * act.second, act.second};
                matmul(L.gate_exps[e], a, n, s.moe_h.data() + b * FE);
                matmul(L.up_exps[e], a, n, up + b * FE);
            }
            {
                int64_t r0, r1;
                split(FE, ith, nth, kRowGrain, r0, r1);
                for (int slot = 0; slot < n_slots; ++slot) gated_act(s.moe_h.data() + slot * FE, up + slot * FE, r0, r1);
            }
            barrier->wait();
            const auto hact = prepare(L.down_exps[0], s.moe_h.data(), n_slots, true);
            for (int64_t e = 0; e < NE; ++e) {
                const int b = expert_begin[e], n = expert_begin[e + 1] - b;
                if (n == 0) continue;
                matmul(L.down_exps[e], {static_cast<const uint8_t*>(hact.first) + b * hact.second, hact.second}, n,
                       s.moe_y.data() + b * E);
            }
            // y = the weighted sum of each token's experts, on this thread's rows (those it just computed).
            int64_t r0, r1;
            split(E, ith, nth, kRowGrain, r0, r1);
            for (int t = 0; t < T; ++t) {
                float* y = s.y.data() + t * E;
                for (int64_t i = r0; i < r1; ++i) y[i] = 0.0f;
                for (int64_t j = 0; j < KU; ++j) {
                    const int slot = token_slot[t * KU + j];
                    const float w = slot_weight[slot];
                    const float* ye = s.moe_y.data() + slot * E;
                    for (int64_t i = r0; i < r1; ++i) y[i] += w * ye[i];
                }
            }
        };

        for (int64_t il = 0; il < hp.n_layer; ++il) {
            const LayerWeights& L = m.layers[il];
            // The previous layer's FFN residual, then this layer's attention norm.
            add_norm(il > 0 ? s.y.data() : nullptr, post_ffn, f32(L.attn_norm), nullptr, T, s.xn.data());
            barrier->wait();
            matmul(L.wq, prepare(L.wq, s.xn.data(), T, true), T, s.q.data());
            matmul(L.wk, prepare(L.wk, s.xn.data(), T, false), T, s.k.data());
            matmul(L.wv, prepare(L.wv, s.xn.data(), T, false), T, s.v.data());
            barrier->wait();
            // Rope, one (token, head) item at a time, the query heads' items first, then the key heads' (which
            // cost more: their K and V go into the cache right after), so that each kind is dealt evenly.
            const int64_t n_q_items = static_cast<int64_t>(T) * hp.n_head;
            for (int64_t item = ith; item < n_rope_items; item += nth) {
                const bool q_item = item < n_q_items;
                const int64_t kv_item = item - n_q_items;
                const int t = static_cast<int>(q_item ? item / hp.n_head : kv_item / hp.n_head_kv);
                const int64_t h = q_item ? item % hp.n_head : hp.n_head + kv_item % hp.n_head_kv;
                const bool is_k = h >= hp.n_head;
                const int64_t hk = h - hp.n_head;
                float* x = is_k ? s.k.data() + t * KVD + hk * HD : s.q.data() + t * QD + h * HD;
                // Projection biases (qwen2) go in before rope; V's with its K head.
                if (const Weight& b = is_k ? L.bk : L.bq; b) {
                    const float* bias = reinterpret_cast<const float*>(b.data) + (is_k ? hk : h) * HD;
                    for (int64_t i = 0; i < HD; ++i) x[i] += bias[i];
                }
                if (is_k && L.bv) {
                    float* v = s.v.data() + t * KVD + hk * HD;
                    const float* bias = reinterpret_cast<const float*>(L.bv.data) + hk * HD;
                    for (int64_t i = 0; i < HD; ++i) v[i] += bias[i];
                }
                // Per-head RMSNorm of q and k (qwen3, gemma3).
                if (const Weight& nw = is_k ? L.attn_k_norm : L.attn_q_norm; nw)
                    ops::rms_norm(x, reinterpret_cast<const float*>(nw.data), x, HD, hp.rms_eps);
                const bool sliding = hp.is_sliding(il);
                const float* cs = (sliding ? s.rope_cos_sliding : s.rope_cos).data() + t * half;
                const float* sn = (sliding ? s.rope_sin_sliding : s.rope_sin).data() + t * half;
                ops::rope_rotate(K, x, cs, sn, sliding ? rope_sliding : rope);
                if (!is_k && observe[t]) std::copy(x, x + HD, observe[t] + il * observe_layer_stride[t] + h * HD);
                if (is_k)
                    kv_->write(static_cast<int>(il), entries[t].seq, entries[t].pos, s.k.data() + t * KVD,
                               s.v.data() + t * KVD, static_cast<int>(hk * HD), static_cast<int>((hk + 1) * HD));
            }
            barrier->wait();
            // Attention: items of (tile of tokens of one sequence, kv head, chunk of that head's query heads,
            // part of the cells), dealt round-robin because later tokens of a prompt cost more (causal).
            {
                const bool sliding = hp.is_sliding(il);
                const int window = static_cast<int>(hp.sliding_window);
                const int64_t n_items = n_attn_items * kv_parts;
                int last_t = -1;
                KvSeqView view{nullptr, nullptr, bs, KVD, kv_->config().type};
                const KvLayout& layout = kv_->layout();
                view.layout = &layout;
                AttnRow rows[kAttnMaxRows];
                for (int64_t item = ith; item < n_items; item += nth) {
                    const int64_t base = item / kv_parts;
                    const int part = static_cast<int>(item % kv_parts);
                    const auto [t0, tn] = tiles[base / (hp.n_head_kv * head_chunks)];
                    const int64_t g = base / head_chunks % hp.n_head_kv;
                    const int64_t h0 = g * group + base % head_chunks * heads_per_chunk;
                    const int64_t h1 = std::min(h0 + heads_per_chunk, (g + 1) * group);
                    if (t0 != last_t) {  // block pointers of this tile's sequence, for this layer
                        const auto& table = *tables[t0];
                        kblocks.resize(table.size());
                        vblocks.resize(table.size());
                        for (size_t b = 0; b < table.size(); ++b) {
                            kblocks[b] = kv_->k_block(static_cast<int>(il), table[b]);
                            vblocks[b] = kv_->v_block(static_cast<int>(il), table[b]);
                        }
                        view.k_blocks = kblocks.data();
                        view.v_blocks = vblocks.data();
                        view.n_quant_blocks = quant_blocks[t0];
                        view.key_mean = kv_->key_mean(static_cast<int>(il));
                        last_t = t0;
                    }
                    // The tile's cells: from the block holding the earliest visible cell (0, or the start of
                    // the first row's window) to the longest row's end; with parts, this part's whole blocks.
                    int first0 = 0;
                    if (sliding) {
                        first0 = INT32_MAX;
                        for (int t = t0; t < t0 + tn; ++t) first0 = std::min(first0, std::max(0, cells[t] + 1 - window));
                    }
                    int cell_begin = first0 / bs * bs, cell_end = INT32_MAX;
                    if (kv_parts > 1) {
                        int n_max = 0;
                        for (int t = t0; t < t0 + tn; ++t) n_max = std::max(n_max, cells[t] + 1);
                        const int b0 = first0 / bs, nb = (n_max + bs - 1) / bs - b0;
                        cell_begin = (b0 + nb * part / kv_parts) * bs;
                        cell_end = (b0 + nb * (part + 1) / kv_parts) * bs;
                    }
                    int n_rows = 0;
                    for (int t = t0; t < t0 + tn; ++t)
                        for (int64_t h = h0; h < h1; ++h) {
                            AttnRow& row = rows[n_rows++];
                            row.q = s.q.data() + t * QD + h * HD;
                            row.n_kv = std::max(cell_begin, std::min(cells[t] + 1, cell_end));
                            row.cell_begin = cell_begin;
                            row.cell_first = sliding ? std::max(0, cells[t] + 1 - window) : 0;
                            if (kv_parts > 1) {
                                const int64_t slot = (t * hp.n_head + h) * kv_parts + part;
                                row.out = s.att_parts.data() + slot * HD;
                                row.partial = s.att_stats.data() + slot * 2;
                            } else {
                                row.out = s.att.data() + t * QD + h * HD;
                                row.partial = nullptr;
                            }
                        }
                    attend(rows, n_rows, view, g, static_cast<int>(HD), attn_scale, scores.data());
                }
            }
            barrier->wait();
            const float* att = s.att.data();
            if (kv_parts > 1) {  // every thread merges the parts into its own copy (few rows: decode)
                auto& mine = s.per_thread_att[ith];
                mine.resize(static_cast<size_t>(T * QD));
                for (int64_t row = 0; row < T * hp.n_head; ++row)
                    merge_partials(s.att_parts.data() + row * kv_parts * HD, HD, s.att_stats.data() + row * kv_parts * 2,
                                   kv_parts, static_cast<int>(HD), mine.data() + row * HD);
                att = mine.data();
            }
            matmul(L.wo, prepare(L.wo, att, T, true), T, s.y.data());
            barrier->wait();
            add_norm(s.y.data(), f32(L.post_attn_norm), f32(L.ffn_norm), nullptr, T, s.xn.data());
            barrier->wait();
            if (!L.gate_exps.empty()) {
                moe_ffn(L);
            } else {
                // Gate and up split their rows the same way, so each thread applies the gate to its own rows.
                matmul(L.ffn_gate, prepare(L.ffn_gate, s.xn.data(), T, true), T, s.gate.data());
                matmul(L.ffn_up, prepare(L.ffn_up, s.xn.data(), T, false), T, s.up.data());
                int64_t r0, r1;
                split(F, ith, nth, kRowGrain, r0, r1);
                for (int t = 0; t < T; ++t) gated_act(s.gate.data() + t * F, s.up.data() + t * F, r0, r1);
                barrier->wait();
                matmul(L.ffn_down, prepare(L.ffn_down, s.gate.data(), T, true), T, s.y.data());
            }
            barrier->wait();
            post_ffn = f32(L.post_ffn_norm);
        }

        // The last FFN residual and the final norm, for the rows that want logits; then the output projection.
        if (n_out > 0) {
            add_norm(s.y.data(), post_ffn, f32(m.output_norm), out_rows.data(), n_out, s.xn.data());
            barrier->wait();
            if (params_.embeddings) {
#pragma omp single
                std::memcpy(logits_out, s.xn.data(), sizeof(float) * static_cast<size_t>(n_out * E));
            } else {
                matmul(m.output, prepare(m.output, s.xn.data(), n_out, true), n_out, logits_out);
                // Granite's logit divisor and Gemma-style soft-capping, on this thread's columns.
                const float scale = hp.logit_scale, cap = hp.final_logit_softcap;
                if (scale != 1.0f || cap > 0) {
                    int64_t r0, r1;
                    split(V, ith, nth, kRowGrain, r0, r1);
                    for (int j = 0; j < n_out; ++j) {
                        float* lg = logits_out + j * V;
                        for (int64_t i = r0; i < r1; ++i) {
                            float v = lg[i] * scale;
                            if (cap > 0) v = cap * std::tanh(v / cap);
                            lg[i] = v;
                        }
                    }
                }
            }
        }
    }
}

}  // namespace hearth
