#include "lab/train/transformer.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "model/attention.h"
#include "model/layer_ops.h"
#include "tensor/gemm.h"
#include "tensor/kernels.h"

namespace hearth::lab {
namespace {

constexpr int kBlock = 16;           // attention's K/V block (cells), as the inference cache's
constexpr int64_t kQueryBlock = 64;  // attention backward: query rows whose scores are held at once
// Output projection + loss: rows of logits held at once. Each block packs the output matrix again for two
// products, so blocks are large (1024 rows x 8k vocabulary: 32 MB of logits).
constexpr int64_t kLossRows = 1024;

// One layer's activations, saved by the forward pass for the backward pass. With recomputation only x (the
// layer's input) is kept per layer; the rest point into one shared set, refilled during the backward pass.
struct Acts {
    float* x;      // [N][E] the residual stream entering the layer
    float* xn1;    // [N][E] attention norm output
    float* rstd1;  // [N]
    // q, k and v side by side in one [N][QD + 2 KVD] matrix (one product makes them; rows QKV() apart):
    float* q;      // [N][QD] after rope
    float* k;      // [N][KVD] after rope
    float* v;      // [N][KVD]
    float* att;    // [N][QD] attention output (heads concatenated)
    float* lse;    // [N][H] log-sum-exp of each row's scaled scores
    float* x2;     // [N][E] the residual stream after attention
    float* xn2;    // [N][E] FFN norm output
    float* rstd2;  // [N]
    float* g;      // [N][F] gate projection, rows 2F apart: g and u are one [N][2F] matrix
    float* u;      // [N][F] up projection, rows 2F apart
    float* h;      // [N][F] silu(g) * u
};

}  // namespace

struct Transformer::Impl {
    const ParamLayout& layout;
    TrainShape s;
    int nt;
    bool recompute;
    bool bf16;
    const kernels::KernelTable& K;
    ops::RopeSpec rope;

    int rows = 0, seq = 0;  // the current batch
    int64_t N = 0;
    int64_t cap_tokens = 0;
    int cap_seq = 0, cap_rows = 0;
    std::vector<float> act_buf;
    std::vector<Acts> acts;
    std::vector<float> x_final, xn_final, rstd_final;
    std::vector<int32_t> inputs, targets;
    std::vector<float> rope_cos, rope_sin;
    std::vector<float> kblk, vblk;
    std::vector<const void*> kptr, vptr;
    std::vector<std::vector<float>> attend_work;
    std::vector<float> dx, dxn, dh, dgu, datt, dqkv;  // dgu: [N][2F] as g, u; dqkv: [N][QKV] as q, k, v
    std::vector<std::vector<float>> thread_s, thread_dp;
    std::vector<float> logits, row_loss;
    Transformer::Profile prof;

    static double now() {
        return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    }

    Impl(const ParamLayout& l, int n_threads, bool rc, bool bf)
        : layout(l), s(l.shape()), nt(n_threads), recompute(rc), bf16(bf), K(kernels::active()) {
        rope.type = RopeType::Norm;
        rope.rope_dim = s.head_dim;
        rope.base = s.rope_base;
    }

    int64_t E() const { return s.n_embd; }
    int64_t QD() const { return s.q_dim(); }
    int64_t KVD() const { return s.kv_dim(); }
    int64_t F() const { return s.n_ff; }
    int64_t QKV() const { return s.q_dim() + 2 * s.kv_dim(); }

    // fn(i) for i < n on the team; `cost` is a rough count of operations per item: work too small to be worth
    // waking the other threads (microseconds; far more on a busy machine) runs on this one. Items never depend
    // on which thread runs them.
    static constexpr double kMinParallelOps = 1e5;
    template <class Fn>
    void parallel_for(int64_t n, double cost, Fn&& fn) {
        const bool team = nt > 1 && static_cast<double>(n) * cost >= kMinParallelOps;
#pragma omp parallel for num_threads(nt) schedule(static) if (team)
        for (int64_t i = 0; i < n; ++i) fn(i);
    }
    // For items of unequal cost (attention: later rows see more cells).
    template <class Fn>
    void parallel_for_dynamic(int64_t n, double cost, Fn&& fn) {
        const bool team = nt > 1 && static_cast<double>(n) * cost >= kMinParallelOps;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (team)
        for (int64_t i = 0; i < n; ++i) fn(i);
    }

    void mm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
            int64_t ldb, float* c, int64_t ldc, bool accumulate) {
        GemmArgs g;
        g.ta = ta, g.tb = tb, g.m = m, g.n = n, g.k = k, g.a = a, g.lda = lda, g.b = b, g.ldb = ldb, g.c = c;
        g.ldc = ldc, g.accumulate = accumulate, g.bf16 = bf16;
        const double t0 = now();
        sgemm(g, nt);
        prof.gemm_s += now() - t0;
        prof.gemm_flop += 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
    }
    // Y[N][out] = X[N][in] W^T (W is [out][in], as stored; Y's rows ldy apart)
    void linear(const float* x, const float* w, int64_t in, int64_t out, float* y, int64_t ldy, bool accumulate = false) {
        mm(Trans::No, Trans::Yes, N, out, in, x, in, w, in, y, ldy, accumulate);
    }
    // dX[N][in] (+)= dY[N][out] W; dW[out][in] += dY^T X (dY's rows ldy apart).
    void linear_backward(const float* x, const float* w, const float* dy, int64_t ldy, int64_t in, int64_t out,
                         float* dx, bool accumulate_dx, float* dw) {
        mm(Trans::No, Trans::No, N, in, out, dy, ldy, w, in, dx, in, accumulate_dx);
        mm(Trans::Yes, Trans::No, out, in, N, dy, ldy, x, in, dw, in, true);
    }
    // Projections of one input (q, k, v; gate, up) whose outputs sit side by side in one matrix, rows `width`
    // apart: one product when their weights lie back to back in the parameters (each tensor starts on a 64-byte
    // boundary, so they do when their sizes are multiples of 16 floats), else one each.
    struct Projections {
        size_t w[3];    // offsets of the weights in the parameters (and of their gradients)
        int64_t out[3]; // their rows
        int n = 0;
        int64_t width = 0;
        bool adjacent = true;
    };
    Projections projections(std::initializer_list<std::pair<size_t, int64_t>> parts) const {
        Projections p;
        for (const auto& [w, out] : parts) {
            if (p.n > 0 && w != p.w[p.n - 1] + static_cast<size_t>(p.out[p.n - 1] * E())) p.adjacent = false;
            p.w[p.n] = w, p.out[p.n] = out, p.width += out, ++p.n;
        }
        return p;
    }
    Projections qkv_of(const LayerOffsets& o) const { return projections({{o.wq, QD()}, {o.wk, KVD()}, {o.wv, KVD()}}); }
    Projections gate_up_of(const LayerOffsets& o) const { return projections({{o.w_gate, F()}, {o.w_up, F()}}); }
    void linear_parts(const float* P, const float* x, const Projections& p, float* y) {
        if (p.adjacent) return linear(x, P + p.w[0], E(), p.width, y, p.width);
        for (int i = 0; i < p.n; y += p.out[i], ++i) linear(x, P + p.w[i], E(), p.out[i], y, p.width);
    }
    void linear_parts_backward(const float* P, float* G, const float* x, const Projections& p, const float* dy,
                               float* dx) {
        if (p.adjacent) return linear_backward(x, P + p.w[0], dy, p.width, E(), p.width, dx, false, G + p.w[0]);
        for (int i = 0; i < p.n; dy += p.out[i], ++i)
            linear_backward(x, P + p.w[i], dy, p.width, E(), p.out[i], dx, i > 0, G + p.w[i]);
    }
    // Rope on every q and k head of the rows of a [N][QKV] matrix (q's or its gradient); sign -1 rotates back,
    // rope's backward pass.
    void rotate_qk(float* qkv, float sign) {
        const int64_t QD = this->QD(), QKV = this->QKV(), HD = s.head_dim, half = HD / 2;
        parallel_for(N, 3.0 * (QD + KVD()), [&](int64_t t) {
            const int64_t pos = t % seq;
            const float* cs = rope_cos.data() + pos * half;
            const float* sn = rope_sin.data() + pos * half;
            float* row = qkv + t * QKV;
            for (int64_t h = 0; h < s.n_head; ++h) K.rope_pairs(row + h * HD, cs, sn, half, sign);
            for (int64_t h = 0; h < s.n_head_kv; ++h) K.rope_pairs(row + QD + h * HD, cs, sn, half, sign);
        });
    }

    void reserve(int r, int sq) {
        rows = r;
        seq = sq;
        N = static_cast<int64_t>(r) * sq;
        if (N <= cap_tokens && sq <= cap_seq && r <= cap_rows) return;
        cap_tokens = std::max(cap_tokens, N);
        cap_seq = std::max(cap_seq, sq);
        cap_rows = std::max(cap_rows, r);
        const int64_t T = cap_tokens, E = this->E(), QD = this->QD(), KVD = this->KVD(), F = this->F();
        const int64_t H = s.n_head, L = s.n_layer;
        const int64_t per_layer_rest = T * (2 * E + 2 + QD + 2 * KVD + QD + H + 3 * F + E);
        const int64_t sets = recompute ? 1 : L;
        act_buf.assign(static_cast<size_t>(L * T * E + sets * per_layer_rest), 0.0f);
        acts.assign(static_cast<size_t>(L), Acts{});
        float* p = act_buf.data();
        auto take = [&p](int64_t n) {
            float* r = p;
            p += n;
            return r;
        };
        for (int64_t l = 0; l < L; ++l) acts[l].x = take(T * E);
        for (int64_t l = 0; l < sets; ++l) {
            Acts& a = acts[l];
            a.xn1 = take(T * E), a.rstd1 = take(T), a.q = take(T * (QD + 2 * KVD)), a.k = a.q + QD, a.v = a.k + KVD;
            a.att = take(T * QD), a.lse = take(T * H), a.x2 = take(T * E), a.xn2 = take(T * E), a.rstd2 = take(T);
            a.g = take(T * 2 * F), a.u = a.g + F, a.h = take(T * F);
        }
        for (int64_t l = sets; l < L; ++l) {  // recomputation: every layer shares the first one's set
            const float* x = acts[l].x;
            acts[l] = acts[0];
            acts[l].x = const_cast<float*>(x);
        }
        x_final.assign(T * E, 0), xn_final.assign(T * E, 0), rstd_final.assign(T, 0);
        inputs.assign(T, 0), targets.assign(T, 0);
        const int64_t half = s.head_dim / 2;
        rope_cos.assign(cap_seq * half, 0), rope_sin.assign(cap_seq * half, 0);
        const int64_t nb = (cap_seq + kBlock - 1) / kBlock;
        kblk.assign(cap_rows * nb * kBlock * KVD, 0), vblk.assign(cap_rows * nb * kBlock * KVD, 0);
        kptr.assign(cap_rows * nb, nullptr), vptr.assign(cap_rows * nb, nullptr);
        attend_work.assign(nt, std::vector<float>(attend_work_floats(static_cast<int>(s.head_dim))));
        for (auto* v : {&dx, &dxn}) v->assign(T * E, 0);
        dh.assign(T * F, 0), dgu.assign(T * 2 * F, 0);
        datt.assign(T * QD, 0), dqkv.assign(T * (QD + 2 * KVD), 0);
        thread_s.assign(nt, std::vector<float>(kQueryBlock * cap_seq));
        thread_dp.assign(nt, std::vector<float>(kQueryBlock * cap_seq));
        logits.assign(std::min(kLossRows, T) * s.n_vocab, 0);
        row_loss.assign(T, 0);
    }

    void begin(const float* P, const int32_t* tokens, int r, int sq) {
        if (r <= 0 || sq <= 0) fail("training batch: rows {} and sequence length {} must be positive", r, sq);
        reserve(r, sq);
        for (int b = 0; b < rows; ++b)
            for (int i = 0; i < seq; ++i) {
                const int32_t in = tokens[static_cast<int64_t>(b) * (seq + 1) + i];
                const int32_t out = tokens[static_cast<int64_t>(b) * (seq + 1) + i + 1];
                if (in < 0 || in >= s.n_vocab || out < 0 || out >= s.n_vocab)
                    fail("training batch: token id {} is out of the vocabulary [0, {})", in < 0 || in >= s.n_vocab ? in : out,
                         s.n_vocab);
                inputs[b * seq + i] = in;
                targets[b * seq + i] = out;
            }
        const int64_t half = s.head_dim / 2;
        for (int i = 0; i < seq; ++i) ops::rope_angles(rope, i, rope_cos.data() + i * half, rope_sin.data() + i * half);
        const int64_t E = this->E();
        const float* emb = P + layout.tok_embd();
        parallel_for(N, E, [&](int64_t t) { std::memcpy(acts[0].x + t * E, emb + inputs[t] * E, E * sizeof(float)); });
    }

    void rms_norm_rows(const float* x, const float* w, float* out, float* rstd) {
        const int64_t E = this->E();
        parallel_for(N, 4.0 * E, [&](int64_t t) { rstd[t] = K.rms_norm_row(x + t * E, w, out + t * E, E, s.rms_eps); });
    }

    void attention_forward(const Acts& a) {
        const int64_t QD = this->QD(), KVD = this->KVD(), QKV = this->QKV(), HD = s.head_dim, H = s.n_head;
        const int64_t HKV = s.n_head_kv, nb = (seq + kBlock - 1) / kBlock;
        // K transposed into blocks of 16 cells ([kv_dim][16]) and V into [16][kv_dim] blocks: the layout of the
        // inference cache, which the attention kernel reads. Cells past the sequence are zero.
        parallel_for(rows * nb, 2.0 * kBlock * KVD, [&](int64_t item) {
            const int64_t b = item / nb, j = item % nb;
            float* kb = kblk.data() + item * kBlock * KVD;
            float* vb = vblk.data() + item * kBlock * KVD;
            for (int c = 0; c < kBlock; ++c) {
                const int64_t t = j * kBlock + c;
                if (t >= seq) {
                    for (int64_t d = 0; d < KVD; ++d) kb[d * kBlock + c] = 0.0f;
                    std::memset(vb + c * KVD, 0, KVD * sizeof(float));
                    continue;
                }
                const float* kr = a.k + (b * seq + t) * QKV;
                for (int64_t d = 0; d < KVD; ++d) kb[d * kBlock + c] = kr[d];
                std::memcpy(vb + c * KVD, a.v + (b * seq + t) * QKV, KVD * sizeof(float));
            }
            kptr[item] = kb;
            vptr[item] = vb;
        });
        // Items of (row, kv head, chunk of that head's query heads, tile of tokens), each up to kAttnMaxRows
        // query rows that share the K/V blocks, as the inference forward tiles them.
        const int64_t group = H / HKV;
        const int64_t head_chunks = (group + kAttnMaxRows - 1) / kAttnMaxRows;
        const int64_t heads_per_chunk = (group + head_chunks - 1) / head_chunks;
        const int64_t tile = std::max<int64_t>(1, kAttnMaxRows / heads_per_chunk);
        const int64_t n_tiles = (seq + tile - 1) / tile;
        const float scale = 1.0f / std::sqrt(static_cast<float>(HD));
        parallel_for_dynamic(rows * HKV * head_chunks * n_tiles, 4.0 * seq * HD * tile * heads_per_chunk / 2, [&](int64_t item) {
            const int64_t ti = item % n_tiles, hc = item / n_tiles % head_chunks, g = item / n_tiles / head_chunks % HKV;
            const int64_t b = item / n_tiles / head_chunks / HKV;
            const int64_t h0 = g * group + hc * heads_per_chunk, h1 = std::min(h0 + heads_per_chunk, (g + 1) * group);
            const KvSeqView view{kptr.data() + b * nb, vptr.data() + b * nb, kBlock, KVD};
            AttnRow rr[kAttnMaxRows];
            float stats[2 * kAttnMaxRows];
            int n = 0;
            for (int64_t t = ti * tile; t < std::min<int64_t>(seq, (ti + 1) * tile); ++t)
                for (int64_t h = h0; h < h1; ++h) {
                    AttnRow& r = rr[n];
                    r.q = a.q + (b * seq + t) * QKV + h * HD;
                    r.out = a.att + (b * seq + t) * QD + h * HD;
                    r.n_kv = static_cast<int>(t + 1);
                    r.cell_begin = 0;
                    r.cell_first = 0;
                    r.partial = stats + 2 * n;
                    ++n;
                }
            attend(rr, n, view, g, static_cast<int>(HD), scale, attend_work[omp_get_thread_num()].data());
            // The kernel left each row unnormalised with its {max, sum}: normalise, and keep the log-sum-exp.
            n = 0;
            for (int64_t t = ti * tile; t < std::min<int64_t>(seq, (ti + 1) * tile); ++t)
                for (int64_t h = h0; h < h1; ++h, ++n) {
                    const float inv = 1.0f / stats[2 * n + 1];
                    for (int64_t j = 0; j < HD; ++j) rr[n].out[j] *= inv;
                    a.lse[(b * seq + t) * H + h] = stats[2 * n] + std::log(stats[2 * n + 1]);
                }
        });
    }

    // Recomputes P from the saved log-sum-exp (as FlashAttention's backward does) per query block, then
    // dV += P^T dO, dS = P * (dO V^T - rowsum(dO * O)) * scale, dQ = dS K, dK += dS^T Q. One item per
    // (row, kv head): the heads of a group add into the same dK / dV, in a fixed order.
    void attention_backward(const Acts& a) {
        const int64_t QD = this->QD(), KVD = this->KVD(), QKV = this->QKV(), HD = s.head_dim, H = s.n_head;
        const int64_t HKV = s.n_head_kv, group = H / HKV;
        const float scale = 1.0f / std::sqrt(static_cast<float>(HD));
        // dK and dV are sums over the group's heads and query blocks; dQ is written whole.
        parallel_for(N, 2.0 * KVD, [&](int64_t t) { std::fill_n(dqkv.data() + t * QKV + QD, 2 * KVD, 0.0f); });
        parallel_for_dynamic(rows * HKV, 8.0 * seq * seq * HD * group / 2, [&](int64_t item) {
            const int64_t b = item / HKV, g = item % HKV;
            float* S = thread_s[omp_get_thread_num()].data();
            float* dP = thread_dp[omp_get_thread_num()].data();
            const int64_t ld = seq;
            const float* Kg = a.k + b * seq * QKV + g * HD;
            const float* Vg = a.v + b * seq * QKV + g * HD;
            float* dKg = dqkv.data() + b * seq * QKV + QD + g * HD;
            float* dVg = dKg + KVD;
            auto gemm1 = [this](Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const float* A, int64_t lda,
                                const float* B, int64_t ldb, float* C, int64_t ldc, bool acc) {
                GemmArgs ga;
                ga.ta = ta, ga.tb = tb, ga.m = m, ga.n = n, ga.k = k, ga.a = A, ga.lda = lda, ga.b = B, ga.ldb = ldb;
                ga.c = C, ga.ldc = ldc, ga.accumulate = acc, ga.bf16 = bf16;
                sgemm_part(ga, 0, 1);
            };
            for (int64_t h = g * group; h < (g + 1) * group; ++h) {
                for (int64_t t0 = 0; t0 < seq; t0 += kQueryBlock) {
                    const int64_t nq = std::min<int64_t>(kQueryBlock, seq - t0), nk = t0 + nq;
                    const float* Qb = a.q + (b * seq + t0) * QKV + h * HD;
                    const float* Ob = a.att + (b * seq + t0) * QD + h * HD;
                    const float* dOb = datt.data() + (b * seq + t0) * QD + h * HD;
                    gemm1(Trans::No, Trans::Yes, nq, nk, HD, Qb, QKV, Kg, QKV, S, ld, false);
                    for (int64_t i = 0; i < nq; ++i) {
                        const int64_t t = t0 + i;
                        float* Pi = S + i * ld;
                        K.exp_shift_sum(Pi, scale, a.lse[(b * seq + t) * H + h], Pi, t + 1);
                        std::fill(Pi + t + 1, Pi + nk, 0.0f);
                    }
                    gemm1(Trans::Yes, Trans::No, nk, HD, nq, S, ld, dOb, QD, dVg, QKV, true);
                    gemm1(Trans::No, Trans::Yes, nq, nk, HD, dOb, QD, Vg, QKV, dP, ld, false);
                    for (int64_t i = 0; i < nq; ++i) {
                        const int64_t t = t0 + i;
                        const float D = K.dot_f32(Ob + i * QD, dOb + i * QD, HD);
                        const float* Pi = S + i * ld;
                        float* dSi = dP + i * ld;
                        K.softmax_backward(Pi, dSi, D, scale, t + 1);
                        std::fill(dSi + t + 1, dSi + nk, 0.0f);
                    }
                    gemm1(Trans::No, Trans::No, nq, HD, nk, dP, ld, Kg, QKV, dqkv.data() + (b * seq + t0) * QKV + h * HD,
                          QKV, false);
                    gemm1(Trans::Yes, Trans::No, nk, HD, nq, dP, ld, Qb, QKV, dKg, QKV, true);
                }
            }
        });
    }

    void layer_forward(const float* P, int64_t il, const Acts& a, float* x_out) {
        const LayerOffsets& o = layout.layer(il);
        const int64_t E = this->E(), QD = this->QD(), F = this->F();
        rms_norm_rows(a.x, P + o.attn_norm, a.xn1, a.rstd1);
        linear_parts(P, a.xn1, qkv_of(o), a.q);
        rotate_qk(a.q, 1.0f);
        const double t_att = now();
        attention_forward(a);
        prof.attention_s += now() - t_att;
        parallel_for(N, E, [&](int64_t t) { std::memcpy(a.x2 + t * E, a.x + t * E, E * sizeof(float)); });
        linear(a.att, P + o.wo, QD, E, a.x2, E, true);
        rms_norm_rows(a.x2, P + o.ffn_norm, a.xn2, a.rstd2);
        linear_parts(P, a.xn2, gate_up_of(o), a.g);
        parallel_for(N, 20.0 * F, [&](int64_t t) {
            std::memcpy(a.h + t * F, a.g + t * 2 * F, F * sizeof(float));
            K.swiglu(a.h + t * F, a.u + t * 2 * F, F);
        });
        parallel_for(N, E, [&](int64_t t) { std::memcpy(x_out + t * E, a.x2 + t * E, E * sizeof(float)); });
        linear(a.h, P + o.w_down, F, E, x_out, E, true);
    }

    float* layer_output(int64_t il) { return il + 1 < s.n_layer ? acts[il + 1].x : x_final.data(); }

    void forward(const float* P) {
        for (int64_t il = 0; il < s.n_layer; ++il) layer_forward(P, il, acts[il], layer_output(il));
        rms_norm_rows(x_final.data(), P + layout.output_norm(), xn_final.data(), rstd_final.data());
    }

    // dw[j] += sum over rows t of dy[t][j] * x[t][j] * rstd[t]: columns split between threads, rows summed in
    // order (in double) so the result does not depend on the thread count.
    void norm_weight_grad(const float* x, const float* rstd, const float* dy, float* dw) {
        const int64_t E = this->E();
        constexpr int64_t kCols = 64;
        parallel_for((E + kCols - 1) / kCols, 3.0 * kCols * N, [&](int64_t cb) {
            const int64_t j0 = cb * kCols, j1 = std::min(E, j0 + kCols);
            double acc[kCols] = {};
            K.norm_weight_grad(x + j0, rstd, dy + j0, N, E, j1 - j0, acc);
            for (int64_t j = j0; j < j1; ++j) dw[j] += static_cast<float>(acc[j - j0]);
        });
    }

    // dx (+)= RMSNorm backward of every row; dw += the weight's gradient.
    void rms_norm_backward_rows(const float* x, const float* rstd, const float* w, const float* dy, float* dx_out,
                                bool accumulate, float* dw) {
        const int64_t E = this->E();
        parallel_for(N, 6.0 * E, [&](int64_t t) {
            K.rms_norm_backward(x + t * E, rstd[t], w, dy + t * E, dx_out + t * E, E, accumulate);
        });
        norm_weight_grad(x, rstd, dy, dw);
    }

    // Output projection and cross-entropy, rows kLossRows at a time so the logits never exist for the whole
    // batch. With grads: the gradient of grad_scale * (sum of losses) flows into dxn (the final norm's output)
    // and the output matrix's gradient. Returns the loss of every row in row_loss.
    void head(const float* P, float* grads, float grad_scale, float* logits_out) {
        const int64_t E = this->E(), V = s.n_vocab;
        const float* W = P + layout.output();
        for (int64_t r0 = 0; r0 < N; r0 += kLossRows) {
            const int64_t nr = std::min(kLossRows, N - r0);
            float* lg = logits_out ? logits_out + r0 * V : logits.data();
            mm(Trans::No, Trans::Yes, nr, V, E, xn_final.data() + r0 * E, E, W, E, lg, V, false);
            if (logits_out) continue;
            parallel_for(nr, 10.0 * V, [&](int64_t i) {
                float* row = lg + i * V;
                const int32_t target = targets[r0 + i];
                const float mx = K.max_f32(row, V);
                const float target_logit = row[target];
                const float sum = K.exp_shift_sum(row, 1.0f, mx, row, V);
                row_loss[r0 + i] = std::log(sum) - (target_logit - mx);
                if (!grads) return;
                K.scale_f32(row, grad_scale / sum, V);
                row[target] -= grad_scale;
            });
            if (!grads) continue;
            mm(Trans::No, Trans::No, nr, E, V, lg, V, W, E, dxn.data() + r0 * E, E, false);
            mm(Trans::Yes, Trans::No, V, E, nr, lg, V, xn_final.data() + r0 * E, E, grads + layout.output(), E, true);
        }
    }

    void layer_backward(const float* P, float* G, int64_t il, const Acts& a) {
        // dx holds the gradient of this layer's output; on return, of its input.
        const LayerOffsets& o = layout.layer(il);
        const int64_t E = this->E(), QD = this->QD(), F = this->F();
        // FFN: out = x2 + h Wd^T, h = silu(g) * u, g = xn2 Wg^T, u = xn2 Wu^T, xn2 = norm(x2).
        linear_backward(a.h, P + o.w_down, dx.data(), E, F, E, dh.data(), false, G + o.w_down);
        parallel_for(N, 30.0 * F, [&](int64_t t) {
            float* dg = dgu.data() + t * 2 * F;
            K.swiglu_backward(a.g + t * 2 * F, a.u + t * 2 * F, dh.data() + t * F, dg, dg + F, F);
        });
        linear_parts_backward(P, G, a.xn2, gate_up_of(o), dgu.data(), dxn.data());
        // dx (the output's gradient, which reaches x2 through the residual) += the FFN norm's: x2's gradient.
        rms_norm_backward_rows(a.x2, a.rstd2, P + o.ffn_norm, dxn.data(), dx.data(), true, G + o.ffn_norm);
        // Attention: x2 = x + att Wo^T.
        linear_backward(a.att, P + o.wo, dx.data(), E, QD, E, datt.data(), false, G + o.wo);
        const double t_att = now();
        attention_backward(a);
        prof.attention_s += now() - t_att;
        rotate_qk(dqkv.data(), -1.0f);
        linear_parts_backward(P, G, a.xn1, qkv_of(o), dqkv.data(), dxn.data());
        rms_norm_backward_rows(a.x, a.rstd1, P + o.attn_norm, dxn.data(), dx.data(), true, G + o.attn_norm);
    }

    void embedding_backward(float* G) {
        const int64_t E = this->E();
        float* dE = G + layout.tok_embd();
        constexpr int64_t kCols = 64;
        // Columns split between threads, tokens added in order: a token repeated in the batch adds its rows in a
        // fixed order whatever the thread count.
        parallel_for((E + kCols - 1) / kCols, 1.0 * kCols * N, [&](int64_t cb) {
            const int64_t j0 = cb * kCols, j1 = std::min(E, j0 + kCols);
            for (int64_t t = 0; t < N; ++t) {
                float* d = dE + inputs[t] * E;
                const float* g = dx.data() + t * E;
                for (int64_t j = j0; j < j1; ++j) d[j] += g[j];
            }
        });
    }

    double sum_losses() const {
        double total = 0;
        for (int64_t t = 0; t < N; ++t) total += row_loss[t];
        return total;
    }
};

Transformer::Transformer(const ParamLayout& layout, int n_threads, bool recompute, bool bf16)
    : impl_(std::make_unique<Impl>(layout, n_threads > 0 ? n_threads : omp_get_num_procs(), recompute, bf16)),
      n_threads_(impl_->nt) {}

Transformer::~Transformer() = default;

size_t Transformer::scratch_bytes() const {
    const Impl& m = *impl_;
    size_t n = m.act_buf.size() + m.x_final.size() * 2 + m.kblk.size() * 2 + m.logits.size();
    for (const auto* v : {&m.dx, &m.dxn, &m.dh, &m.dgu, &m.datt, &m.dqkv}) n += v->size();
    for (const auto& v : m.thread_s) n += v.size() * 2;
    return n * sizeof(float);
}

const Transformer::Profile& Transformer::profile() const { return impl_->prof; }
void Transformer::reset_profile() { impl_->prof = Profile{}; }

double Transformer::forward_backward(const float* params, const int32_t* tokens, int rows, int seq, float grad_scale,
                                     float* grads) {
    Impl& m = *impl_;
    const double t_start = Impl::now();
    m.begin(params, tokens, rows, seq);
    m.forward(params);
    m.head(params, grads, grad_scale, nullptr);
    // The final norm, then the layers in reverse; with recomputation each layer's activations are rebuilt from
    // its saved input first.
    m.parallel_for(m.N, static_cast<double>(m.E()), [&](int64_t t) { std::fill_n(m.dx.data() + t * m.E(), m.E(), 0.0f); });
    m.rms_norm_backward_rows(m.x_final.data(), m.rstd_final.data(), params + m.layout.output_norm(), m.dxn.data(),
                             m.dx.data(), false, grads + m.layout.output_norm());
    for (int64_t il = m.s.n_layer - 1; il >= 0; --il) {
        // (The recomputed layer rewrites its output, the next layer's saved input, with the same bits: every
        // operation is deterministic.)
        if (m.recompute) m.layer_forward(params, il, m.acts[il], m.layer_output(il));
        m.layer_backward(params, grads, il, m.acts[il]);
    }
    m.embedding_backward(grads);
    m.prof.total_s += Impl::now() - t_start;
    return m.sum_losses();
}

void Transformer::forward_losses(const float* params, const int32_t* tokens, int rows, int seq, float* losses) {
    Impl& m = *impl_;
    m.begin(params, tokens, rows, seq);
    m.forward(params);
    m.head(params, nullptr, 0.0f, nullptr);
    std::copy(m.row_loss.begin(), m.row_loss.begin() + m.N, losses);
}

void Transformer::forward_logits(const float* params, const int32_t* tokens, int rows, int seq, float* logits) {
    Impl& m = *impl_;
    m.begin(params, tokens, rows, seq);
    m.forward(params);
    m.head(params, nullptr, 0.0f, logits);
}

}  // namespace hearth::lab
