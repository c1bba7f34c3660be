// Attention kernels: a portable reference and an AVX-512 path selected at run time (the function carries
// its own target attribute, so the rest of the binary stays baseline x86-64).
#include "model/attention.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "tensor/kernels.h"

namespace hearth {

void attend_ref(const float* q, int n_q, const KvSeqView& kv, int64_t kv_head, int n_kv, int head_dim, float scale,
                float* out, float* work) {
    const int bs = kv.block_size;
    float* scores = work;  // bs floats
    for (int h = 0; h < n_q; ++h) {
        const float* qh = q + static_cast<int64_t>(h) * head_dim;
        float* acc = out + static_cast<int64_t>(h) * head_dim;
        std::fill(acc, acc + head_dim, 0.0f);
        float m = -INFINITY, l = 0;
        for (int p0 = 0; p0 < n_kv; p0 += bs) {
            const float* kt = kv.k_blocks[p0 / bs] + kv_head * head_dim * bs;
            const float* vb = kv.v_blocks[p0 / bs] + kv_head * head_dim;
            const int n = std::min(bs, n_kv - p0);
            float bm = -INFINITY;
            for (int i = 0; i < n; ++i) {
                float d = 0;
                for (int j = 0; j < head_dim; ++j) d += qh[j] * kt[static_cast<int64_t>(j) * bs + i];
                scores[i] = d * scale;
                bm = std::max(bm, scores[i]);
            }
            const float m_new = std::max(m, bm);
            const float corr = std::exp(m - m_new);
            l *= corr;
            for (int j = 0; j < head_dim; ++j) acc[j] *= corr;
            for (int i = 0; i < n; ++i) {
                const float p = std::exp(scores[i] - m_new);
                l += p;
                const float* v = vb + static_cast<int64_t>(i) * kv.kv_dim;
                for (int j = 0; j < head_dim; ++j) acc[j] += p * v[j];
            }
            m = m_new;
        }
        const float inv = 1.0f / l;
        for (int j = 0; j < head_dim; ++j) acc[j] *= inv;
    }
}

namespace {

#define HEARTH_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,fma")))

// e^x for x <= 0 (and -inf -> 0): range reduction to 2^n * e^r, |r| <= ln2/2, degree-6 polynomial
// (relative error ~2e-7, as good as float expf for softmax weights).
HEARTH_AVX512 inline __m512 exp_nonpos(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

constexpr int kMaxGroup = 8;

// Block size 16 (one zmm of cells), head_dim a multiple of 16, at most kMaxGroup query heads.
HEARTH_AVX512 void attend_avx512(const float* q, int n_q, const KvSeqView& kv, int64_t kv_head, int n_kv,
                                 int head_dim, float scale, float* out) {
    constexpr int bs = 16;
    float m[kMaxGroup], l[kMaxGroup];
    for (int h = 0; h < n_q; ++h) m[h] = -INFINITY, l[h] = 0;
    std::memset(out, 0, sizeof(float) * static_cast<size_t>(n_q) * head_dim);
    alignas(64) float p[kMaxGroup][bs];
    for (int p0 = 0; p0 < n_kv; p0 += bs) {
        const float* kt = kv.k_blocks[p0 / bs] + kv_head * head_dim * bs;
        const float* vb = kv.v_blocks[p0 / bs] + kv_head * head_dim;
        const int n = std::min(bs, n_kv - p0);
        const __mmask16 valid = static_cast<__mmask16>(n == bs ? 0xFFFF : (1u << n) - 1);
        __m512 s[kMaxGroup];
        for (int h = 0; h < n_q; ++h) s[h] = _mm512_setzero_ps();
        for (int j = 0; j < head_dim; ++j) {
            const __m512 k = _mm512_loadu_ps(kt + j * bs);
            for (int h = 0; h < n_q; ++h) s[h] = _mm512_fmadd_ps(_mm512_set1_ps(q[h * head_dim + j]), k, s[h]);
        }
        for (int h = 0; h < n_q; ++h) {
            const __m512 sc = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), valid,
                                                 _mm512_mul_ps(s[h], _mm512_set1_ps(scale)));
            const float m_new = std::max(m[h], _mm512_reduce_max_ps(sc));
            const float corr = std::exp(m[h] - m_new);
            const __m512 e = exp_nonpos(_mm512_sub_ps(sc, _mm512_set1_ps(m_new)));
            const __m512 ez = _mm512_maskz_mov_ps(valid, e);
            l[h] = l[h] * corr + _mm512_reduce_add_ps(ez);
            _mm512_store_ps(p[h], ez);
            m[h] = m_new;
            if (corr != 1.0f) {
                float* acc = out + h * head_dim;
                const __m512 c = _mm512_set1_ps(corr);
                for (int j = 0; j < head_dim; j += 16) _mm512_storeu_ps(acc + j, _mm512_mul_ps(c, _mm512_loadu_ps(acc + j)));
            }
        }
        for (int j = 0; j < head_dim; j += 16) {
            __m512 acc[kMaxGroup];
            for (int h = 0; h < n_q; ++h) acc[h] = _mm512_loadu_ps(out + h * head_dim + j);
            for (int i = 0; i < n; ++i) {
                const __m512 v = _mm512_loadu_ps(vb + i * kv.kv_dim + j);
                for (int h = 0; h < n_q; ++h) acc[h] = _mm512_fmadd_ps(_mm512_set1_ps(p[h][i]), v, acc[h]);
            }
            for (int h = 0; h < n_q; ++h) _mm512_storeu_ps(out + h * head_dim + j, acc[h]);
        }
    }
    for (int h = 0; h < n_q; ++h) {
        const __m512 inv = _mm512_set1_ps(1.0f / l[h]);
        for (int j = 0; j < head_dim; j += 16)
            _mm512_storeu_ps(out + h * head_dim + j, _mm512_mul_ps(inv, _mm512_loadu_ps(out + h * head_dim + j)));
    }
}

// Follows the kernel dispatch, so HEARTH_ISA=ref forces the reference here too.
bool has_avx512() { return kernels::active().isa == kernels::Isa::Avx512; }

}  // namespace

void attend(const float* q, int n_q, const KvSeqView& kv, int64_t kv_head, int n_kv, int head_dim, float scale,
            float* out, float* work) {
    if (kv.block_size == 16 && head_dim % 16 == 0 && n_q <= kMaxGroup && has_avx512()) {
        attend_avx512(q, n_q, kv, kv_head, n_kv, head_dim, scale, out);
        return;
    }
    attend_ref(q, n_q, kv, kv_head, n_kv, head_dim, scale, out, work);
}

}  // namespace hearth
