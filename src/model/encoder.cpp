// The encoder forward pass (bert). Written by hand, like the decoder's (forward.cpp), for the same reasons:
// the weights are in GGUF block formats that only hearth's kernel table computes on (F16, BF16, Q8_0, K-quants,
// ...), and one OpenMP team runs the whole micro-batch, splitting each operation across threads and meeting
// at a spin barrier between operations, instead of a fork/join per matrix. What differs from the decoder:
// post-norm LayerNorm blocks with biases, learned positions and token types, exact GELU, and bidirectional
// attention within each sequence of the micro-batch with no KV cache: each layer's K is laid out once per
// sequence in the transposed 16-cell blocks of the attention kernel (model/attention.h), and V is read in
// place (16 consecutive token rows of a sequence are exactly a V block).
#include "model/encoder.h"

#include <immintrin.h>
// GCC 12's _mm512_undefined_*() self-initialise, which -Wmaybe-uninitialized reports at every inlined use
// (GCC bug 105593); the values are never read.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/barrier.h"
#include "base/error.h"
#include "model/attention.h"
#include "tensor/kernels.h"

namespace hearth {
namespace {

constexpr int64_t kRowGrain = 16;
constexpr int kBlock = 16;  // cells per K/V block, the block size the attention kernel is fastest with

// Contiguous share [begin, end) of n items for thread ith of nth, in multiples of `grain`.
inline void split(int64_t n, int ith, int nth, int64_t grain, int64_t& begin, int64_t& end) {
    const int64_t chunks = (n + grain - 1) / grain;
    const int64_t c0 = chunks * ith / nth, c1 = chunks * (ith + 1) / nth;
    begin = std::min(n, c0 * grain);
    end = std::min(n, c1 * grain);
}

// GELU with the tanh approximation ("gelu_new", ggml_gelu).
inline float gelu_tanh(float x) {
    const float c = 0.7978845608028654f;  // sqrt(2 / pi)
    return 0.5f * x * (1.0f + std::tanh(c * (x + 0.044715f * x * x * x)));
}

// Exact GELU (HF BERT's "gelu"): 0.5 x (1 + erf(x / sqrt 2)), with erf as a rational function of x on
// [-4, 4] (beyond, erf is +-1 in float): Eigen's / XLA's float erf, max |error| 4.2e-7 against erf in
// double (GELU: 1.4e-6 absolute, at large negative x where GELU is ~1e-6). It is computed four or sixteen
// lanes at a time, mul and add as separate roundings in every path, so that each element gets the same bits
// whichever path (vector or tail) it lands in. A libm erff call per element cost ~10 % of bge-small's time.
constexpr float kErfP[7] = {-2.72614225801306e-10f, 2.77068142495902e-08f, -2.10102402082508e-06f,
                            -5.69250639462346e-05f, -7.34990630326855e-04f, -2.95459980854025e-03f,
                            -1.60960333262415e-02f};
constexpr float kErfQ[5] = {-1.45660718464996e-05f, -2.13374055278905e-04f, -1.68282697438203e-03f,
                            -7.37332916720468e-03f, -1.42647390514189e-02f};
constexpr float kRsqrt2 = 0.7071067811865476f;

inline float gelu_erf(float v) {
    const float x = std::max(-4.0f, std::min(v * kRsqrt2, 4.0f));
    const float x2 = x * x;
    float p = kErfP[0];
    for (int i = 1; i < 7; ++i) p = p * x2 + kErfP[i];
    float q = kErfQ[0];
    for (int i = 1; i < 5; ++i) q = q * x2 + kErfQ[i];
    return 0.5f * v * (1.0f + x * p / q);
}

// SSE2 (baseline x86-64): four lanes, the rest one at a time with the same operations.
void gelu_erf_sse(float* v, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m128 a = _mm_loadu_ps(v + i);
        const __m128 x = _mm_max_ps(_mm_set1_ps(-4.0f), _mm_min_ps(_mm_mul_ps(a, _mm_set1_ps(kRsqrt2)),
                                                                   _mm_set1_ps(4.0f)));
        const __m128 x2 = _mm_mul_ps(x, x);
        __m128 p = _mm_set1_ps(kErfP[0]);
        for (int k = 1; k < 7; ++k) p = _mm_add_ps(_mm_mul_ps(p, x2), _mm_set1_ps(kErfP[k]));
        __m128 q = _mm_set1_ps(kErfQ[0]);
        for (int k = 1; k < 5; ++k) q = _mm_add_ps(_mm_mul_ps(q, x2), _mm_set1_ps(kErfQ[k]));
        const __m128 erf = _mm_div_ps(_mm_mul_ps(x, p), q);
        const __m128 half_v = _mm_mul_ps(_mm_set1_ps(0.5f), a);
        _mm_storeu_ps(v + i, _mm_mul_ps(half_v, _mm_add_ps(_mm_set1_ps(1.0f), erf)));
    }
    for (; i < n; ++i) v[i] = gelu_erf(v[i]);
}

// AVX-512: sixteen lanes, the tail masked (the same operations for every element).
__attribute__((target("avx512f"))) void gelu_erf_avx512(float* v, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xffff)
                                        : static_cast<__mmask16>((1u << (n - i)) - 1);
        const __m512 a = _mm512_maskz_loadu_ps(m, v + i);
        const __m512 x = _mm512_max_ps(_mm512_set1_ps(-4.0f), _mm512_min_ps(_mm512_mul_ps(a, _mm512_set1_ps(kRsqrt2)),
                                                                            _mm512_set1_ps(4.0f)));
        const __m512 x2 = _mm512_mul_ps(x, x);
        __m512 p = _mm512_set1_ps(kErfP[0]);
        for (int k = 1; k < 7; ++k) p = _mm512_add_ps(_mm512_mul_ps(p, x2), _mm512_set1_ps(kErfP[k]));
        __m512 q = _mm512_set1_ps(kErfQ[0]);
        for (int k = 1; k < 5; ++k) q = _mm512_add_ps(_mm512_mul_ps(q, x2), _mm512_set1_ps(kErfQ[k]));
        const __m512 erf = _mm512_div_ps(_mm512_mul_ps(x, p), q);
        const __m512 half_v = _mm512_mul_ps(_mm512_set1_ps(0.5f), a);
        _mm512_mask_storeu_ps(v + i, m, _mm512_mul_ps(half_v, _mm512_add_ps(_mm512_set1_ps(1.0f), erf)));
    }
}

const float* f32(const Weight& w) { return reinterpret_cast<const float*>(w.data); }

}  // namespace

struct Encoder::Scratch {
    int64_t cap = 0;         // tokens the buffers hold
    int64_t cap_blocks = 0;  // K blocks the buffer holds
    std::vector<float> x, q, k, v, att, y, up;
    std::vector<float> kt;     // per sequence, ceil(n / 16) K blocks of [n_embd][16]
    std::vector<uint8_t> act;  // quantized activations (shared, built cooperatively)
    std::vector<std::vector<float>> per_thread_tile;    // gemm output tiles
    std::vector<std::vector<float>> per_thread_scores;  // attention work
    std::vector<std::vector<float>> per_thread_row;     // embedding rows
};

Encoder::Encoder(const Model& model, const EncoderParams& params)
    : model_(model), params_(params), s_(std::make_unique<Scratch>()) {
    const HParams& hp = model.hp;
    if (hp.causal || hp.norm_type != NormType::Layer || !model.pos_embd)
        fail("{} is not an encoder model (bert): it has no encoder forward pass", hp.arch);
    if (params.n_threads < 0) fail("threads must be positive (got {})", params.n_threads);
    if (params.n_ubatch <= 0) fail("micro-batch size must be positive (got {})", params.n_ubatch);
    n_threads_ = params.n_threads > 0 ? params.n_threads : omp_get_num_procs();
}

Encoder::~Encoder() = default;

std::vector<float> Encoder::encode(const std::vector<std::vector<int32_t>>& seqs, Pooling pooling,
                                   const std::vector<std::vector<int32_t>>& types) {
    const HParams& hp = model_.hp;
    if (!types.empty() && types.size() != seqs.size())
        fail("{} token-type lists for {} sequences", types.size(), seqs.size());
    int64_t total = 0;
    for (size_t i = 0; i < seqs.size(); ++i) {
        const auto& s = seqs[i];
        if (s.empty()) fail("sequence {} is empty", i);
        if (static_cast<int64_t>(s.size()) > hp.n_ctx_train)
            fail("sequence {} has {} tokens, more than the model's context of {}", i, s.size(), hp.n_ctx_train);
        for (int32_t t : s)
            if (t < 0 || t >= hp.n_vocab) fail("sequence {}: token id {} is out of range [0, {})", i, t, hp.n_vocab);
        if (!types.empty()) {
            if (types[i].size() != s.size())
                fail("sequence {}: {} token types for {} tokens", i, types[i].size(), s.size());
            for (int32_t t : types[i])
                if (t < 0 || t >= hp.n_token_types)
                    fail("sequence {}: token type {} is out of range [0, {})", i, t, hp.n_token_types);
        }
        total += static_cast<int64_t>(s.size());
    }
    const int64_t rows = pooling == Pooling::None ? total : static_cast<int64_t>(seqs.size());
    std::vector<float> out(static_cast<size_t>(rows * hp.n_embd));
    float* o = out.data();
    for (size_t s0 = 0; s0 < seqs.size();) {
        size_t s1 = s0 + 1;
        int64_t n = static_cast<int64_t>(seqs[s0].size());
        while (s1 < seqs.size() && n + static_cast<int64_t>(seqs[s1].size()) <= params_.n_ubatch)
            n += static_cast<int64_t>(seqs[s1++].size());
        run_ubatch(seqs, types, s0, s1, pooling, o);
        o += (pooling == Pooling::None ? n : static_cast<int64_t>(s1 - s0)) * hp.n_embd;
        s0 = s1;
    }
    return out;
}

void Encoder::run_ubatch(const std::vector<std::vector<int32_t>>& seqs,
                         const std::vector<std::vector<int32_t>>& types, size_t s0, size_t s1, Pooling pooling,
                         float* out) {
    const Model& m = model_;
    const HParams& hp = m.hp;
    Scratch& s = *s_;
    const int64_t E = hp.n_embd, F = hp.n_ff, HD = hp.head_dim, NH = hp.n_head;
    const int nt = n_threads_;
    const kernels::KernelTable& K = kernels::active();
    const bool avx512 = K.isa == kernels::Isa::Avx512;  // follows the kernel dispatch (HEARTH_ISA)

    // The micro-batch: its sequences, every token's sequence and position, K blocks per sequence.
    const int n_seq = static_cast<int>(s1 - s0);
    std::vector<int64_t> seq_start(n_seq + 1), blk_start(n_seq + 1);
    for (int i = 0; i < n_seq; ++i) {
        const int64_t n = static_cast<int64_t>(seqs[s0 + i].size());
        seq_start[i + 1] = seq_start[i] + n;
        blk_start[i + 1] = blk_start[i] + (n + kBlock - 1) / kBlock;
    }
    const int64_t T = seq_start[n_seq], NB = blk_start[n_seq];
    std::vector<int32_t> tok(T), typ(T, 0), pos(T);
    std::vector<int> seq_of(T);
    for (int i = 0; i < n_seq; ++i) {
        const auto& sq = seqs[s0 + i];
        for (size_t j = 0; j < sq.size(); ++j) {
            const int64_t t = seq_start[i] + static_cast<int64_t>(j);
            tok[t] = sq[j];
            pos[t] = static_cast<int32_t>(j);
            seq_of[t] = i;
            if (!types.empty()) typ[t] = types[s0 + i][j];
        }
    }

    if (s.cap < T) {
        s.cap = T;
        for (auto* b : {&s.x, &s.q, &s.k, &s.v, &s.att, &s.y}) b->resize(static_cast<size_t>(T * E));
        s.up.resize(static_cast<size_t>(T * F));
        size_t act_row = 0;
        for (const auto& L : m.layers)
            for (const Weight* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_up, &L.ffn_down})
                if (kernels::act_kind(w->type) != kernels::ActKind::F32)
                    act_row = std::max(act_row, kernels::act_row_bytes(w->type, w->cols));
        s.act.resize(static_cast<size_t>(T) * act_row + 64);
    }
    if (s.cap_blocks < NB) {
        s.cap_blocks = NB;
        s.kt.resize(static_cast<size_t>(NB * kBlock * E));
    }
    s.per_thread_tile.resize(nt);
    s.per_thread_scores.resize(nt);
    s.per_thread_row.resize(nt);
    for (auto& sc : s.per_thread_scores) sc.resize(static_cast<size_t>(attend_work_floats(static_cast<int>(HD))));
    for (auto& r : s.per_thread_row) r.resize(static_cast<size_t>(E));

    // Block pointers: K blocks in kt; V blocks are the sequence's own rows of v, 16 tokens at a time.
    std::vector<const void*> kblocks(NB), vblocks(NB);
    for (int i = 0; i < n_seq; ++i)
        for (int64_t b = blk_start[i]; b < blk_start[i + 1]; ++b) {
            kblocks[b] = s.kt.data() + b * kBlock * E;
            vblocks[b] = s.v.data() + (seq_start[i] + (b - blk_start[i]) * kBlock) * E;
        }
    // Attention tiles: up to kAttnMaxRows consecutive tokens of one sequence (one head per call).
    struct Tile {
        int seq;
        int64_t t0;
        int n;
    };
    std::vector<Tile> tiles;
    for (int i = 0; i < n_seq; ++i)
        for (int64_t t = seq_start[i]; t < seq_start[i + 1]; t += kAttnMaxRows)
            tiles.push_back({i, t, static_cast<int>(std::min<int64_t>(kAttnMaxRows, seq_start[i + 1] - t))});
    const int64_t n_attn_items = static_cast<int64_t>(tiles.size()) * NH;
    const float attn_scale = hp.attn_scale > 0 ? hp.attn_scale : 1.0f / std::sqrt(static_cast<float>(HD));
    const float eps = hp.rms_eps;

    std::unique_ptr<SpinBarrier> barrier;
#pragma omp parallel num_threads(nt)
    {
        const int ith = omp_get_thread_num();
        const int nth = omp_get_num_threads();
#pragma omp single
        barrier = std::make_unique<SpinBarrier>(nth);  // the team may be smaller than asked; implicit barrier here
        auto& tile = s.per_thread_tile[ith];
        float* row = s.per_thread_row[ith].data();
        const float* cached_src = nullptr;
        kernels::ActKind cached_kind = kernels::ActKind::F32;

        // The activations X[T][cols] in the format weight w wants: X itself for float weights, else Q8A rows
        // built cooperatively (then a barrier). `fresh`: X was rewritten since the last call. Every caller comes
        // right after a barrier, when nobody reads the shared activation buffer any more.
        auto prepare = [&](const Weight& w, const float* X, bool fresh) -> std::pair<const void*, size_t> {
            const kernels::ActKind kind = kernels::act_kind(w.type);
            if (kind == kernels::ActKind::F32) return {X, static_cast<size_t>(w.cols) * sizeof(float)};
            const size_t stride = kernels::act_row_bytes(w.type, w.cols);
            if (fresh || cached_src != X || cached_kind != kind) {
                for (int64_t t = ith; t < T; t += nth)
                    K.quantize_act(X + t * w.cols, reinterpret_cast<BlockQ8A*>(s.act.data() + t * stride), w.cols);
                barrier->wait();
                cached_src = X;
                cached_kind = kind;
            }
            return {s.act.data(), stride};
        };

        // Y[T][w.rows] = X W^T + bias, then GELU when `act`, on this thread's share of the rows. No barrier.
        auto matmul = [&](const Weight& w, std::pair<const void*, size_t> a, const Weight& bias, bool act,
                          float* Y) {
            const kernels::GemmFn gemm = K.gemm[static_cast<int>(w.type)];
            int64_t r0, r1;
            split(w.rows, ith, nth, kRowGrain, r0, r1);
            const int64_t nr = r1 - r0;
            if (nr <= 0) return;
            constexpr int kTokBlock = 64;
            tile.resize(static_cast<size_t>(nr) * kTokBlock);
            const float* b = bias ? f32(bias) : nullptr;
            for (int64_t t0 = 0; t0 < T; t0 += kTokBlock) {
                const int nc = static_cast<int>(std::min<int64_t>(kTokBlock, T - t0));
                const uint8_t* ap = static_cast<const uint8_t*>(a.first) + t0 * a.second;
                gemm(w.cols, w.data + r0 * w.row_bytes, w.row_bytes, ap, a.second, tile.data(), nc,
                     static_cast<int>(nr), nc);
                // Bias and activation on the [rows][tokens] tile (contiguous), then the transposed write into
                // Y[tokens][rows] in blocks of 16 rows, so that the tile's lines stay in L1.
                if (b)
                    for (int64_t i = 0; i < nr; ++i) {
                        float* tr = tile.data() + i * nc;
                        for (int c = 0; c < nc; ++c) tr[c] += b[r0 + i];
                    }
                if (act) {
                    float* tp = tile.data();
                    if (hp.ffn_act == FfnAct::GeluTanh) {
                        for (int64_t i = 0; i < nr * nc; ++i) tp[i] = gelu_tanh(tp[i]);
                    } else if (avx512) {
                        gelu_erf_avx512(tp, nr * nc);
                    } else {
                        gelu_erf_sse(tp, nr * nc);
                    }
                }
                for (int64_t i0 = 0; i0 < nr; i0 += 16) {
                    const int64_t i1 = std::min<int64_t>(nr, i0 + 16);
                    for (int c = 0; c < nc; ++c) {
                        float* y = Y + (t0 + c) * w.rows + r0;
                        for (int64_t i = i0; i < i1; ++i) y[i] = tile[i * nc + c];
                    }
                }
            }
        };

        // x[t] = LayerNorm(x[t] + y[t]) * w + b for this thread's tokens (y may be null). No barrier.
        auto add_layer_norm = [&](const float* y, const Weight& w, const Weight& b) {
            const float* wn = f32(w);
            const float* bn = f32(b);
            for (int64_t t = ith; t < T; t += nth) {
                float* x = s.x.data() + t * E;
                if (y)
                    for (int64_t i = 0; i < E; ++i) x[i] += y[t * E + i];
                double sum = 0;
                for (int64_t i = 0; i < E; ++i) sum += x[i];
                const float mean = static_cast<float>(sum / static_cast<double>(E));
                double var = 0;
                for (int64_t i = 0; i < E; ++i) var += static_cast<double>(x[i] - mean) * (x[i] - mean);
                const float scale = 1.0f / std::sqrt(static_cast<float>(var / static_cast<double>(E)) + eps);
                for (int64_t i = 0; i < E; ++i) x[i] = (x[i] - mean) * scale * wn[i] + bn[i];
            }
        };

        // Embeddings: token + position + token type, then LayerNorm.
        for (int64_t t = ith; t < T; t += nth) {
            float* x = s.x.data() + t * E;
            kernels::dequantize_row(m.tok_embd.type, m.tok_embd.data + m.tok_embd.row_bytes * tok[t], x, E);
            kernels::dequantize_row(m.pos_embd.type, m.pos_embd.data + m.pos_embd.row_bytes * pos[t], row, E);
            for (int64_t i = 0; i < E; ++i) x[i] += row[i];
            kernels::dequantize_row(m.tok_types.type, m.tok_types.data + m.tok_types.row_bytes * typ[t], row, E);
            for (int64_t i = 0; i < E; ++i) x[i] += row[i];
        }
        add_layer_norm(nullptr, m.tok_embd_norm, m.tok_embd_norm_b);
        barrier->wait();

        for (const LayerWeights& L : m.layers) {
            matmul(L.wq, prepare(L.wq, s.x.data(), true), L.bq, false, s.q.data());
            matmul(L.wk, prepare(L.wk, s.x.data(), false), L.bk, false, s.k.data());
            matmul(L.wv, prepare(L.wv, s.x.data(), false), L.bv, false, s.v.data());
            barrier->wait();
            // K into its sequence's transposed blocks: [n_embd][16] per block of 16 positions.
            for (int64_t t = ith; t < T; t += nth) {
                const int i = seq_of[t];
                float* kb = s.kt.data() + (blk_start[i] + pos[t] / kBlock) * kBlock * E + pos[t] % kBlock;
                const float* k = s.k.data() + t * E;
                for (int64_t d = 0; d < E; ++d) kb[d * kBlock] = k[d];
            }
            barrier->wait();
            // Attention per (tile, head): every query row sees all cells of its sequence.
            {
                AttnRow rows[kAttnMaxRows];
                float* work = s.per_thread_scores[ith].data();
                for (int64_t item = ith; item < n_attn_items; item += nth) {
                    const Tile& tl = tiles[item / NH];
                    const int64_t h = item % NH;
                    const int64_t n_kv = seq_start[tl.seq + 1] - seq_start[tl.seq];
                    const KvSeqView view{kblocks.data() + blk_start[tl.seq], vblocks.data() + blk_start[tl.seq],
                                         kBlock, E};
                    for (int r = 0; r < tl.n; ++r) {
                        rows[r] = AttnRow{};
                        rows[r].q = s.q.data() + (tl.t0 + r) * E + h * HD;
                        rows[r].out = s.att.data() + (tl.t0 + r) * E + h * HD;
                        rows[r].n_kv = static_cast<int>(n_kv);
                    }
                    attend(rows, tl.n, view, h, static_cast<int>(HD), attn_scale, work);
                }
            }
            barrier->wait();
            matmul(L.wo, prepare(L.wo, s.att.data(), true), L.bo, false, s.y.data());
            barrier->wait();
            add_layer_norm(s.y.data(), L.attn_out_norm, L.attn_out_norm_b);
            barrier->wait();
            matmul(L.ffn_up, prepare(L.ffn_up, s.x.data(), true), L.ffn_up_b, true, s.up.data());
            barrier->wait();
            matmul(L.ffn_down, prepare(L.ffn_down, s.up.data(), true), L.ffn_down_b, false, s.y.data());
            barrier->wait();
            add_layer_norm(s.y.data(), L.layer_out_norm, L.layer_out_norm_b);
            barrier->wait();
        }

        // Pooling, one sequence per thread at a time.
        if (pooling == Pooling::None) {
            for (int64_t t = ith; t < T; t += nth) std::memcpy(out + t * E, s.x.data() + t * E, sizeof(float) * E);
        } else {
            for (int i = ith; i < n_seq; i += nth) {
                float* o = out + static_cast<int64_t>(i) * E;
                const int64_t a = seq_start[i], b = seq_start[i + 1];
                if (pooling == Pooling::Mean) {
                    for (int64_t d = 0; d < E; ++d) {
                        double sum = 0;
                        for (int64_t t = a; t < b; ++t) sum += s.x[t * E + d];
                        o[d] = static_cast<float>(sum / static_cast<double>(b - a));
                    }
                } else {
                    const int64_t t = pooling == Pooling::Cls ? a : b - 1;
                    std::memcpy(o, s.x.data() + t * E, sizeof(float) * E);
                }
            }
        }
    }
}

}  // namespace hearth
