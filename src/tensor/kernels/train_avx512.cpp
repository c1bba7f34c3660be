// AVX-512 training kernels: the matrix-product register tile, softmax's exponentials and SwiGLU's backward.
#include <immintrin.h>

#include <algorithm>
// GCC 12's _mm512_undefined_*() self-initialise, which -Wmaybe-uninitialized reports at every inlined use
// (GCC bug 105593); the values are never read.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "tensor/kernels/exp_avx512.h"
#include "tensor/kernels.h"
#include "tensor/kernels/train.h"

namespace hearth::kernels {

void sgemm_tile_avx512(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
    constexpr int MR = kSgemmAvx512Mr;
    // Fully unrolled over the rows, so that the 24 accumulators stay in registers.
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        _mm_prefetch(reinterpret_cast<const char*>(b + 8 * 32), _MM_HINT_T0);
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
            const __m512 ai = _mm512_set1_ps(a[i]);
            c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
        }
        a += MR;
        b += 32;
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
        float* ci = c + i * ldc;
        if (accumulate) {
            c0[i] = _mm512_add_ps(c0[i], _mm512_loadu_ps(ci));
            c1[i] = _mm512_add_ps(c1[i], _mm512_loadu_ps(ci + 16));
        }
        _mm512_storeu_ps(ci, c0[i]);
        _mm512_storeu_ps(ci + 16, c1[i]);
    }
}

void sgemm_bf16_tile_avx512(int64_t kc2, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, bool accumulate) {
    constexpr int MR = kSgemmAvx512Mr;
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc2; ++k) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b), b1 = (__m512bh)_mm512_loadu_si512(b + 16);
        _mm_prefetch(reinterpret_cast<const char*>(b + 8 * 32), _MM_HINT_T0);
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
            const __m512bh ai = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[i]));
            c0[i] = _mm512_dpbf16_ps(c0[i], ai, b0);
            c1[i] = _mm512_dpbf16_ps(c1[i], ai, b1);
        }
        a += MR;
        b += 32;
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
        float* ci = c + i * ldc;
        if (accumulate) {
            c0[i] = _mm512_add_ps(c0[i], _mm512_loadu_ps(ci));
            c1[i] = _mm512_add_ps(c1[i], _mm512_loadu_ps(ci + 16));
        }
        _mm512_storeu_ps(ci, c0[i]);
        _mm512_storeu_ps(ci + 16, c1[i]);
    }
}

namespace {

// r[i][j] -> r[j][i] for a 16 x 16 matrix of 32-bit words, one row a register.
inline void transpose16x16(__m512i r[16]) {
    __m512i t[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // Now, in every 128-bit lane q, t[4i + 2e'] and t[4i + 2e' + 1] hold rows 4i .. 4i+3's words 4q + e pairwise.
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
        r[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i + 0], t[4 * i + 2]);
        r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i + 0], t[4 * i + 2]);
        r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    // r[4i + e], lane q: word 4q + e of rows 4i .. 4i+3. Gather the four row groups of each lane.
#pragma GCC unroll 4
    for (int e = 0; e < 4; ++e) {
        const __m512i ab_lo = _mm512_shuffle_i32x4(r[e], r[4 + e], 0x44), ab_hi = _mm512_shuffle_i32x4(r[e], r[4 + e], 0xEE);
        const __m512i cd_lo = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0x44);
        const __m512i cd_hi = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0xEE);
        t[e] = _mm512_shuffle_i32x4(ab_lo, cd_lo, 0x88);
        t[4 + e] = _mm512_shuffle_i32x4(ab_lo, cd_lo, 0xDD);
        t[8 + e] = _mm512_shuffle_i32x4(ab_hi, cd_hi, 0x88);
        t[12 + e] = _mm512_shuffle_i32x4(ab_hi, cd_hi, 0xDD);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) r[i] = t[i];
}

constexpr int64_t kPrefetchRows = 16;

inline __mmask16 low_mask(int64_t n) {
    return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : static_cast<__mmask16>((1u << n) - 1);
}

}  // namespace

void pack_bf16_pairs_avx512(const float* src, int64_t lane_stride, int64_t k_stride, int lanes, int r, int64_t kc,
                            uint32_t* out) {
    const int64_t kc2 = (kc + 1) / 2;
    const int panels = (lanes + r - 1) / r;
    if (lane_stride == 1) {
        // Lanes side by side in memory (two K steps are two rows): convert 16 lanes of both rows, interleave.
        // Every panel's share of the two rows is done before the next rows, so the source is read in order.
        const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                                    23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        for (int64_t k2 = 0; k2 < kc2; ++k2) {
            const float* row0 = src + 2 * k2 * k_stride;
            const bool has1 = 2 * k2 + 1 < kc;
            for (int p = 0; p < panels; ++p)
                for (int l = 0; l < r; l += 16) {
                    const int lane = p * r + l;
                    const __mmask16 mv = low_mask(std::min(std::min(16, r - l), lanes - lane));
                    const __mmask16 mo = low_mask(std::min(16, r - l));
                    // The rows are far apart and only a strip of each is read: the hardware's prefetcher does not
                    // follow, so ask for the strip's rows some steps ahead.
                    _mm_prefetch(reinterpret_cast<const char*>(row0 + kPrefetchRows * k_stride + lane), _MM_HINT_T0);
                    _mm_prefetch(reinterpret_cast<const char*>(row0 + (kPrefetchRows + 1) * k_stride + lane), _MM_HINT_T0);
                    const __m512 x0 = _mm512_maskz_loadu_ps(mv, row0 + lane);
                    const __m512 x1 = has1 ? _mm512_maskz_loadu_ps(mv, row0 + k_stride + lane) : _mm512_setzero_ps();
                    const __m512i pairs = _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
                    _mm512_mask_storeu_epi32(out + p * kc2 * r + k2 * r + l, mo, pairs);
                }
        }
        return;
    }
    if (k_stride == 1) {
        // K contiguous in each lane: 32 K steps of 16 lanes convert to 16 x 16 pairs, transposed in registers so
        // that each K pair's lanes are stored together.
        for (int p = 0; p < panels; ++p)
            for (int l = 0; l < r; l += 16) {
                const int lane = p * r + l, n = std::min(16, r - l);
                const int valid = std::max(0, std::min(n, lanes - lane));
                uint32_t* o = out + p * kc2 * r + l;
                for (int64_t k = 0; k < kc; k += 32) {
                    const int64_t left = kc - k;
                    const __mmask16 m0 = low_mask(left), m1 = low_mask(left - 16);
                    __m512i w[16];
#pragma GCC unroll 16
                    for (int i = 0; i < 16; ++i) {
                        if (i < valid) {
                            const float* x = src + (lane + i) * lane_stride + k;
                            _mm_prefetch(reinterpret_cast<const char*>(x + 64), _MM_HINT_T0);
                            _mm_prefetch(reinterpret_cast<const char*>(x + 80), _MM_HINT_T0);
                            w[i] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, x + 16), _mm512_maskz_loadu_ps(m0, x));
                        } else {
                            w[i] = _mm512_setzero_si512();
                        }
                    }
                    transpose16x16(w);
                    const __mmask16 mo = low_mask(n);
                    const int64_t np = std::min<int64_t>(16, (left + 1) / 2);
                    for (int64_t j = 0; j < np; ++j) _mm512_mask_storeu_epi32(o + (k / 2 + j) * r, mo, w[j]);
                }
            }
        return;
    }
    pack_bf16_pairs_ref(src, lane_stride, k_stride, lanes, r, kc, out);
}

float exp_shift_sum_avx512(const float* x, float scale, float shift, float* y, int64_t n) {
    const __m512 vs = _mm512_set1_ps(scale), vsh = _mm512_set1_ps(shift);
    __m512 sum = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 e = exp512(_mm512_fmsub_ps(_mm512_loadu_ps(x + i), vs, vsh));
        _mm512_storeu_ps(y + i, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (i < n) {
        const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
        const __m512 e = exp512(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(m, x + i), vs, vsh));
        _mm512_mask_storeu_ps(y + i, m, e);
        sum = _mm512_mask_add_ps(sum, m, sum, e);
    }
    return _mm512_reduce_add_ps(sum);
}

void swiglu_backward_avx512(const float* g, const float* u, const float* dh, float* dg, float* du, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1);
        const __m512 x = _mm512_maskz_loadu_ps(m, g + i), up = _mm512_maskz_loadu_ps(m, u + i);
        const __m512 d = _mm512_maskz_loadu_ps(m, dh + i);
        const __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
        _mm512_mask_storeu_ps(du + i, m, _mm512_mul_ps(d, _mm512_mul_ps(x, s)));
        // silu'(g) = s * (1 + g * (1 - s))
        const __m512 dsilu = _mm512_mul_ps(s, _mm512_fmadd_ps(x, _mm512_sub_ps(one, s), one));
        _mm512_mask_storeu_ps(dg + i, m, _mm512_mul_ps(_mm512_mul_ps(d, up), dsilu));
    }
}

}  // namespace hearth::kernels
