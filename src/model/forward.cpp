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
};

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
    kv_ = std::make_unique<KvCache>(kc);
}

Context::~Context() = default;

const std::vector<float>& Context::decode(const Batch& batch) {
    const HParams& hp = model_.hp;
    const int n_out = batch.n_logits();
    logits_.resize(static_cast<size_t>(n_out) * hp.n_vocab);  // every row is written below
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
        next_pos[e.seq] = std::max(limit, e.pos + 1);
    }
    for (const auto& [seq, n] : next_pos) kv_->reserve(seq, n);

    float* out = logits_.data();
    const auto& E = batch.entries;
    for (size_t i = 0; i < E.size(); i += static_cast<size_t>(params_.n_ubatch)) {
        const int n = static_cast<int>(std::min(E.size() - i, static_cast<size_t>(params_.n_ubatch)));
        run_ubatch(E.data() + i, n, out);
        for (int j = 0; j < n; ++j) out += E[i + j].logits ? hp.n_vocab : 0;
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
        const int64_t maxc = std::max({E, QD, F});
        s.act.resize(static_cast<size_t>(T) * kernels::act_row_bytes(DType::Q8_0, (maxc + 31) / 32 * 32) + 64);
        s.rope_cos.resize(T * hp.rope_dim / 2);
        s.rope_sin.resize(T * hp.rope_dim / 2);
    }
    s.per_thread_tile.resize(nt);
    s.per_thread_act.resize(nt);
    s.per_thread_att.resize(nt);
    s.per_thread_scores.resize(nt);
    for (auto& sc : s.per_thread_scores) sc.resize(static_cast<size_t>(attend_work_floats(static_cast<int>(HD))));

    // Embeddings.
    for (int t = 0; t < T; ++t)
        kernels::dequantize_row(m.tok_embd.type, m.tok_embd.data + m.tok_embd.row_bytes * entries[t].token,
                                s.x.data() + t * E, E);

    // Rope angles per token: theta_i = pos * freq_scale * base^(-2i/d) / factor_i, built by repeated
    // multiplication in float as ggml does, so that we round like the reference.
    const int64_t half = hp.rope_dim / 2;
    const float theta_scale = std::pow(hp.rope_base, -2.0f / static_cast<float>(hp.rope_dim));
    const float* freq_factors = m.rope_freqs.empty() ? nullptr : reinterpret_cast<const float*>(m.rope_freqs[0].data);
    for (int t = 0; t < T; ++t) {
        float theta = static_cast<float>(entries[t].pos);
        for (int64_t i = 0; i < half; ++i) {
            const float th = hp.rope_freq_scale * theta / (freq_factors ? freq_factors[i] : 1.0f);
            s.rope_cos[t * half + i] = std::cos(th);
            s.rope_sin[t * half + i] = std::sin(th);
            theta *= theta_scale;
        }
    }

    // Output rows wanted.
    std::vector<int> out_rows;
    for (int t = 0; t < T; ++t)
        if (entries[t].logits) out_rows.push_back(t);
    const int n_out = static_cast<int>(out_rows.size());

    // Resolve the KV cell of every entry once.
    std::vector<const std::vector<int32_t>*> tables(T);
    for (int t = 0; t < T; ++t) tables[t] = &kv_->blocks(entries[t].seq);
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
    const float attn_scale = 1.0f / std::sqrt(static_cast<float>(HD));
    const int64_t n_attn_items = static_cast<int64_t>(tiles.size()) * hp.n_head_kv * head_chunks;
    // Decode with fewer attention items than the threads can share evenly: each row's cells are split into
    // parts of whole blocks so that every thread gets the same work; every thread then merges the parts
    // itself, as it converts those few rows for wo privately anyway (see prepare below).
    int kv_parts = 1;
    if (T <= kPrivateActRows) {
        int max_kv = 0;
        for (int t = 0; t < T; ++t) max_kv = std::max(max_kv, entries[t].pos + 1);
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
        std::vector<const float*> kblocks, vblocks;

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
            // Prefill: per block of tokens, one gemm over all of this thread's rows (the kernel packs the
            // activations once and tiles internally), then scatter the [rows][tokens] tile into Y[tokens][rows].
            constexpr int kTokBlock = 64;
            const int64_t nr = r1 - r0;
            if (nr <= 0) return;
            tile.resize(static_cast<size_t>(nr) * kTokBlock);
            for (int t0 = 0; t0 < rows_in; t0 += kTokBlock) {
                const int nc = std::min(kTokBlock, rows_in - t0);
                const uint8_t* a = static_cast<const uint8_t*>(act.first) + t0 * act.second;
                gemm(w.cols, w.data + r0 * w.row_bytes, w.row_bytes, a, act.second, tile.data(), nc,
                     static_cast<int>(nr), nc);
                for (int c = 0; c < nc; ++c) {
                    float* y = Y + (t0 + c) * w.rows + r0;
                    for (int64_t i = 0; i < nr; ++i) y[i] = tile[i * nc + c];
                }
            }
        };

        // The residual stream lives in two buffers: x_next = x + y is written to the other one, so that with
        // few tokens every thread can read whole rows of x (for the norm) while others write their slices.
        float* x_cur = s.x.data();
        float* x_other = s.x2.data();
        // x_next = x + y (y may be null: no residual), xn_out[j] = rms_norm(x_next[row j]) * w. With at least
        // as many rows as threads, whole rows per thread; otherwise (decode) every thread computes the norm
        // of each row and writes its slice of it. No barrier at the end.
        auto add_norm = [&](const float* y, const float* w, const int* row_of, int n_rows, float* xn_out) {
            const bool by_rows = n_rows >= nth;
            int64_t e0 = 0, e1 = E;
            if (!by_rows) split(E, ith, nth, 16, e0, e1);
            for (int j = by_rows ? ith : 0; j < n_rows; j += by_rows ? nth : 1) {
                const int64_t t = row_of ? row_of[j] : j;
                const float* x = x_cur + t * E;
                const float* yt = y ? y + t * E : nullptr;
                double sum = 0.0;
                for (int64_t i = 0; i < E; ++i) {
                    const float v = yt ? x[i] + yt[i] : x[i];
                    sum += static_cast<double>(v) * v;
                }
                const float scale = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(E)) + hp.rms_eps);
                float* xo = x_other + t * E;
                float* out = xn_out + static_cast<int64_t>(j) * E;
                for (int64_t i = e0; i < e1; ++i) {
                    const float v = yt ? x[i] + yt[i] : x[i];
                    if (yt) xo[i] = v;
                    out[i] = v * scale * w[i];
                }
            }
            if (y) std::swap(x_cur, x_other);
        };
        const int64_t n_rope_items = static_cast<int64_t>(T) * (hp.n_head + hp.n_head_kv);

        for (int64_t il = 0; il < hp.n_layer; ++il) {
            const LayerWeights& L = m.layers[il];
            // The previous layer's FFN residual, then this layer's attention norm.
            add_norm(il > 0 ? s.y.data() : nullptr, reinterpret_cast<const float*>(L.attn_norm.data), nullptr, T,
                     s.xn.data());
            barrier->wait();
            matmul(L.wq, prepare(L.wq, s.xn.data(), T, true), T, s.q.data());
            matmul(L.wk, prepare(L.wk, s.xn.data(), T, false), T, s.k.data());
            matmul(L.wv, prepare(L.wv, s.xn.data(), T, false), T, s.v.data());
            barrier->wait();
            // Rope, one (token, head) item at a time over the query and key heads; a key head's K and V go
            // into the cache right after.
            for (int64_t item = ith; item < n_rope_items; item += nth) {
                const int t = static_cast<int>(item / (hp.n_head + hp.n_head_kv));
                const int64_t h = item % (hp.n_head + hp.n_head_kv);
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
                const float* cs = s.rope_cos.data() + t * half;
                const float* sn = s.rope_sin.data() + t * half;
                if (hp.rope_type == RopeType::Norm) {
                    for (int64_t i = 0; i < half; ++i) {
                        const float a = x[2 * i], b = x[2 * i + 1];
                        x[2 * i] = a * cs[i] - b * sn[i];
                        x[2 * i + 1] = a * sn[i] + b * cs[i];
                    }
                } else {
                    for (int64_t i = 0; i < half; ++i) {
                        const float a = x[i], b = x[i + half];
                        x[i] = a * cs[i] - b * sn[i];
                        x[i + half] = a * sn[i] + b * cs[i];
                    }
                }
                if (is_k)
                    kv_->write(static_cast<int>(il), entries[t].seq, entries[t].pos, s.k.data() + t * KVD,
                               s.v.data() + t * KVD, static_cast<int>(hk * HD), static_cast<int>((hk + 1) * HD));
            }
            barrier->wait();
            // Attention: items of (tile of tokens of one sequence, kv head, chunk of that head's query heads,
            // part of the cells), dealt round-robin because later tokens of a prompt cost more (causal).
            {
                const int64_t n_items = n_attn_items * kv_parts;
                int last_t = -1;
                KvSeqView view{nullptr, nullptr, bs, KVD};
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
                        last_t = t0;
                    }
                    // This part's whole blocks of the tile's longest row.
                    int cell_begin = 0, cell_end = INT32_MAX;
                    if (kv_parts > 1) {
                        int n_max = 0;
                        for (int t = t0; t < t0 + tn; ++t) n_max = std::max(n_max, entries[t].pos + 1);
                        const int nb = (n_max + bs - 1) / bs;
                        cell_begin = nb * part / kv_parts * bs;
                        cell_end = nb * (part + 1) / kv_parts * bs;
                    }
                    int n_rows = 0;
                    for (int t = t0; t < t0 + tn; ++t)
                        for (int64_t h = h0; h < h1; ++h) {
                            AttnRow& row = rows[n_rows++];
                            row.q = s.q.data() + t * QD + h * HD;
                            row.n_kv = std::max(cell_begin, std::min(entries[t].pos + 1, cell_end));
                            row.cell_begin = cell_begin;
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
            add_norm(s.y.data(), reinterpret_cast<const float*>(L.ffn_norm.data), nullptr, T, s.xn.data());
            barrier->wait();
            // Gate and up split their rows the same way, so each thread applies SwiGLU to its own rows.
            matmul(L.ffn_gate, prepare(L.ffn_gate, s.xn.data(), T, true), T, s.gate.data());
            matmul(L.ffn_up, prepare(L.ffn_up, s.xn.data(), T, false), T, s.up.data());
            {
                int64_t r0, r1;
                split(F, ith, nth, kRowGrain, r0, r1);
                for (int t = 0; t < T; ++t) {
                    float* g = s.gate.data() + t * F;
                    const float* u = s.up.data() + t * F;
                    for (int64_t i = r0; i < r1; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
                }
            }
            barrier->wait();
            matmul(L.ffn_down, prepare(L.ffn_down, s.gate.data(), T, true), T, s.y.data());
            barrier->wait();
        }

        // The last FFN residual and the final norm, for the rows that want logits; then the output projection.
        if (n_out > 0) {
            add_norm(s.y.data(), reinterpret_cast<const float*>(m.output_norm.data), out_rows.data(), n_out,
                     s.xn.data());
            barrier->wait();
            matmul(m.output, prepare(m.output, s.xn.data(), n_out, true), n_out, logits_out);
        }
    }
}

}  // namespace hearth
