// AVX-512 training kernels: the matrix-product register tile, softmax's exponentials and SwiGLU's backward.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
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

namespace {
// The sum of x[i]^2 (or of a[i] * b[i]) in double, 16 floats a step.
// The low and high eight floats of a register, as doubles.
inline __m512d low_pd(__m512 x) { return _mm512_cvtps_pd(_mm512_castps512_ps256(x)); }
inline __m512d high_pd(__m512 x) { return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1))); }
inline __m512d square_sum_pd(__m512d acc, __m512 x) {
    const __m512d lo = low_pd(x), hi = high_pd(x);
    return _mm512_fmadd_pd(hi, hi, _mm512_fmadd_pd(lo, lo, acc));
}
inline __m512d product_sum_pd(__m512d acc, __m512 a, __m512 b) {
    return _mm512_fmadd_pd(high_pd(a), high_pd(b), _mm512_fmadd_pd(low_pd(a), low_pd(b), acc));
}
}  // namespace

float rms_norm_row_avx512(const float* x, const float* w, float* out, int64_t n, float eps) {
    __m512d acc = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) acc = square_sum_pd(acc, _mm512_maskz_loadu_ps(low_mask(n - i), x + i));
    const float r = 1.0f / std::sqrt(static_cast<float>(_mm512_reduce_add_pd(acc) / static_cast<double>(n)) + eps);
    const __m512 vr = _mm512_set1_ps(r);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = low_mask(n - i);
        _mm512_mask_storeu_ps(out + i, m,
                              _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vr), _mm512_maskz_loadu_ps(m, w + i)));
    }
    return r;
}

void rms_norm_backward_avx512(const float* x, float r, const float* w, const float* dy, float* dx, int64_t n,
                              bool accumulate) {
    __m512d acc = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = low_mask(n - i);
        const __m512 wdy = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + i), _mm512_maskz_loadu_ps(m, dy + i));
        acc = product_sum_pd(acc, wdy, _mm512_maskz_loadu_ps(m, x + i));
    }
    const float c = static_cast<float>(_mm512_reduce_add_pd(acc) / static_cast<double>(n)) * r * r * r;
    const __m512 vr = _mm512_set1_ps(r), vc = _mm512_set1_ps(c);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = low_mask(n - i);
        const __m512 rw_dy = _mm512_mul_ps(_mm512_mul_ps(vr, _mm512_maskz_loadu_ps(m, w + i)), _mm512_maskz_loadu_ps(m, dy + i));
        __m512 g = _mm512_sub_ps(rw_dy, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vc));
        if (accumulate) g = _mm512_add_ps(_mm512_maskz_loadu_ps(m, dx + i), g);
        _mm512_mask_storeu_ps(dx + i, m, g);
    }
}

void norm_weight_grad_avx512(const float* x, const float* rstd, const float* dy, int64_t rows, int64_t ld,
                             int64_t cols, double* acc) {
    // 32 columns at a time in four registers of doubles; each column's sum runs over the rows in order.
    for (int64_t j0 = 0; j0 < cols; j0 += 32) {
        const __mmask16 m0 = low_mask(cols - j0), m1 = low_mask(cols - j0 - 16);
        const __mmask8 d[4] = {static_cast<__mmask8>(m0), static_cast<__mmask8>(m0 >> 8), static_cast<__mmask8>(m1),
                               static_cast<__mmask8>(m1 >> 8)};
        __m512d a[4];
        for (int q = 0; q < 4; ++q) a[q] = _mm512_maskz_loadu_pd(d[q], acc + j0 + 8 * q);
        for (int64_t t = 0; t < rows; ++t) {
            const __m512d r = _mm512_set1_pd(static_cast<double>(rstd[t]));
            const float* xr = x + t * ld + j0;
            const float* dr = dy + t * ld + j0;
            for (int h = 0; h < 2; ++h) {
                const __mmask16 m = h ? m1 : m0;
                const __m512 xv = _mm512_maskz_loadu_ps(m, xr + 16 * h), dv = _mm512_maskz_loadu_ps(m, dr + 16 * h);
                a[2 * h] = _mm512_add_pd(a[2 * h], _mm512_mul_pd(_mm512_mul_pd(low_pd(dv), low_pd(xv)), r));
                a[2 * h + 1] = _mm512_add_pd(a[2 * h + 1], _mm512_mul_pd(_mm512_mul_pd(high_pd(dv), high_pd(xv)), r));
            }
        }
        for (int q = 0; q < 4; ++q) _mm512_mask_storeu_pd(acc + j0 + 8 * q, d[q], a[q]);
    }
}

void adamw_avx512(float* p, const float* g, float* m, float* v, int64_t n, const AdamWScalars& s) {
    const __m512 b1 = _mm512_set1_ps(s.b1), c1 = _mm512_set1_ps(1.0f - s.b1), b2 = _mm512_set1_ps(s.b2);
    const __m512 c2 = _mm512_set1_ps(1.0f - s.b2), eps = _mm512_set1_ps(s.eps), step = _mm512_set1_ps(s.step_size);
    const __m512 ibc2 = _mm512_set1_ps(s.inv_sqrt_bc2), decay = _mm512_set1_ps(s.decay);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = low_mask(n - i);
        const __m512 gv = _mm512_maskz_loadu_ps(k, g + i);
        const __m512 mv = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_maskz_loadu_ps(k, m + i)), _mm512_mul_ps(c1, gv));
        const __m512 vv = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_maskz_loadu_ps(k, v + i)), _mm512_mul_ps(_mm512_mul_ps(c2, gv), gv));
        const __m512 denom = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vv), ibc2), eps);
        const __m512 pv = _mm512_sub_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + i), decay),
                                        _mm512_div_ps(_mm512_mul_ps(step, mv), denom));
        _mm512_mask_storeu_ps(m + i, k, mv);
        _mm512_mask_storeu_ps(v + i, k, vv);
        _mm512_mask_storeu_ps(p + i, k, pv);
    }
}

void softmax_backward_avx512(const float* p, float* dp, float d, float scale, int64_t n) {
    const __m512 vd = _mm512_set1_ps(d), vs = _mm512_set1_ps(scale);
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 k = low_mask(n - j);
        const __m512 g = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, dp + j), vd);
        _mm512_mask_storeu_ps(dp + j, k, _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + j), g), vs));
    }
}

float dot_f32_avx512(const float* a, const float* b, int64_t n) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = low_mask(n - i);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

float max_f32_avx512(const float* x, int64_t n) {
    __m512 m = _mm512_set1_ps(x[0]);
    for (int64_t i = 0; i < n; i += 16) m = _mm512_mask_max_ps(m, low_mask(n - i), m, _mm512_maskz_loadu_ps(low_mask(n - i), x + i));
    return _mm512_reduce_max_ps(m);
}

void scale_f32_avx512(float* x, float c, int64_t n) {
    const __m512 vc = _mm512_set1_ps(c);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = low_mask(n - i);
        _mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vc));
    }
}

void rope_pairs_avx512(float* x, const float* cs, const float* sn, int64_t half, float sign) {
    // Eight pairs a step: cos and sin spread to both members of each pair, sin negated for the first member,
    // so that x' = x * cos + swap(x) * sin with swap exchanging each pair's members.
    const __m512i spread = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    const __m512 signs = _mm512_mul_ps(_mm512_set1_ps(sign), _mm512_setr_ps(-1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1));
    for (int64_t i = 0; i < half; i += 8) {
        const int64_t left = half - i;
        const __mmask8 k8 = left >= 8 ? __mmask8(0xFF) : static_cast<__mmask8>((1u << left) - 1);
        const __mmask16 k = low_mask(2 * left);
        const __m512 c = _mm512_permutexvar_ps(spread, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(k8, cs + i)));
        const __m512 s = _mm512_mul_ps(_mm512_permutexvar_ps(spread, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(k8, sn + i))), signs);
        const __m512 v = _mm512_maskz_loadu_ps(k, x + 2 * i);
        const __m512 swapped = _mm512_permute_ps(v, 0xB1);
        _mm512_mask_storeu_ps(x + 2 * i, k, _mm512_add_ps(_mm512_mul_ps(v, c), _mm512_mul_ps(swapped, s)));
    }
}

}  // namespace hearth::kernels
