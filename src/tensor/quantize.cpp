// quantize_row: float -> every supported tensor type (used by `hearth quantize` and the tests).
//
// Simple 32-element formats use round-to-nearest with the scale ggml's reference quantizer picks (so that
// re-quantizing a dequantized ggml tensor reproduces it). K-quants and IQ4_NL search: every sub-block is
// fitted by trying a few candidate scales, each followed by a least-squares refit of scale (and min), and the
// sub-block scales are then themselves quantized (6, 4 or 8 bits) against the super-block d / dmin by the
// same kind of fit (for the affine K-quants, each sub-block then keeps the best of the neighbouring integer
// scale/min pairs). The codes are finally re-derived from the scales exactly as stored (f16 d, integer
// sub-block scales), so each element gets the code nearest to its value under the stored parameters.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "base/error.h"
#include "tensor/kernels.h"
#include "tensor/quantize.h"

namespace hearth::kernels {
namespace {

using quant::kIQ4NL;

inline float h2f(f16_t h) { return f16_to_f32(h); }

// Clamps v to [lo, hi], NaN to lo. Plain comparisons (minss/maxss), not the libm fmin/fmax calls.
inline float clampf(float v, float lo, float hi) {
    v = v > lo ? v : lo;
    return v < hi ? v : hi;
}

// Round half away from zero (like roundf), clamped to [lo, hi]; NaN goes to lo. For stored codes.
inline int round_clamp(float v, int lo, int hi) {
    v = clampf(v, float(lo), float(hi));
    int r = int(v);  // truncation toward zero; v - r is exact for |v| < 2^23
    const float frac = v - float(r);
    r += (frac >= 0.5f) - (frac <= -0.5f);
    return r;
}

// Nearest integer (ties to even) as a float, for |v| < 2^22: adding 1.5 * 2^23 leaves no fraction bits.
// Used in the candidate searches, where it is much cheaper than a float -> int -> float round trip.
inline float round_fast(float v) { return (v + 12582912.0f) - 12582912.0f; }

// The element of largest magnitude (with its sign); 0 for an all-zero run.
inline float max_magnitude(const float* x, int n) {
    float v = 0, a = 0;
    for (int i = 0; i < n; ++i)
        if (std::fabs(x[i]) > a) {
            a = std::fabs(x[i]);
            v = x[i];
        }
    return v;
}

// ---- sub-block fits ------------------------------------------------------------------------------------

// Least-squares fit x ~= s * q with integer q in [qmin, qmax] (qmin <= 0 < qmax), n a multiple of 4.
// Candidate inverse scales map the largest-magnitude element v onto (qmin - k*step) or (qmax + k*step) for
// k = -ntry..ntry; for each, the codes are rounded and s is refitted (s = sum xq / sum qq); the candidate
// with the smallest squared error wins. Returns its s (0 for an all-zero input).
float fit_linear(const float* x, int n, int qmin, int qmax, int ntry, float step) {
    const float v = max_magnitude(x, n);
    if (v == 0) return 0;
    float best_s = 0;
    double best_score = -1;  // maximise (sum xq)^2 / sum qq  <=>  minimise the squared error
    for (int end = 0; end < 2; ++end) {
        const int target = end == 0 ? qmin : qmax;
        if (target == 0) continue;
        const float dir = target < 0 ? -1.0f : 1.0f;
        for (int k = -ntry; k <= ntry; ++k) {
            const float iscale = (float(target) + dir * step * float(k)) / v;
            float sqx[4] = {}, sqq[4] = {};  // 4 independent partial sums: shorter dependency chains
            for (int i = 0; i < n; i += 4)
                for (int u = 0; u < 4; ++u) {
                    const float c = round_fast(clampf(x[i + u] * iscale, float(qmin), float(qmax)));
                    sqx[u] += c * x[i + u];
                    sqq[u] += c * c;
                }
            const double tqx = double(sqx[0] + sqx[1]) + double(sqx[2] + sqx[3]);
            const double tqq = double(sqq[0] + sqq[1]) + double(sqq[2] + sqq[3]);
            if (tqq <= 0) continue;
            const double score = tqx * tqx / tqq;
            if (score > best_score) {
                best_score = score;
                best_s = float(tqx / tqq);
            }
        }
    }
    return best_s;
}

// Least-squares fit x ~= s * q - m with integer q in [0, nmax], s >= 0 and m >= 0 (the formats store the
// min as a non-negative amount subtracted). Candidate inverse scales map [min(0, min x), max x] onto
// [0, nmax + k*step]; each is followed by a least-squares refit of (s, m), keeping m >= 0. n is a multiple
// of 4.
void fit_affine(const float* x, int n, int nmax, int ntry, float step, float& s_out, float& m_out) {
    float lo = 0, hi = x[0];
    double sx = 0, sxx = 0;
    for (int i = 0; i < n; ++i) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
        sx += x[i];
        sxx += double(x[i]) * x[i];
    }
    s_out = (hi - lo) / float(nmax);
    m_out = -lo;
    if (!(hi > lo)) {  // constant run at or below zero (or NaN): only the min matters
        s_out = 0;
        return;
    }
    double best_err = std::numeric_limits<double>::infinity();
    for (int k = -ntry; k <= ntry; ++k) {
        const float iscale = (float(nmax) + step * float(k)) / (hi - lo);
        float fsq[4] = {}, fsqq[4] = {}, fsqx[4] = {};  // 4 independent partial sums
        for (int i = 0; i < n; i += 4)
            for (int u = 0; u < 4; ++u) {
                const float c = round_fast(clampf((x[i + u] - lo) * iscale, 0.0f, float(nmax)));
                fsq[u] += c;
                fsqq[u] += c * c;
                fsqx[u] += c * x[i + u];
            }
        const double sq = double(fsq[0] + fsq[1]) + double(fsq[2] + fsq[3]);
        const double sqq = double(fsqq[0] + fsqq[1]) + double(fsqq[2] + fsqq[3]);
        const double sqx = double(fsqx[0] + fsqx[1]) + double(fsqx[2] + fsqx[3]);
        // x ~= s*q + b with b = -m <= 0: unconstrained least squares, else b = 0.
        double s, b;
        const double det = n * sqq - sq * sq;
        if (det > 0) {
            s = (n * sqx - sq * sx) / det;
            b = (sqq * sx - sq * sqx) / det;
        } else {
            s = 0;
            b = 1;  // forces the b = 0 branch
        }
        if (b > 0) {
            b = 0;
            s = sqq > 0 ? sqx / sqq : 0;
        }
        if (s <= 0) continue;
        const double err = sxx + s * s * sqq + n * b * b + 2 * s * b * sq - 2 * s * sqx - 2 * b * sx;
        if (err < best_err) {
            best_err = err;
            s_out = float(s);
            m_out = float(-b);
        }
    }
}

// ---- simple 32-element formats (ggml's reference rules) ------------------------------------------------

// Q8_0: d = amax / 127, q = round(x / d).
void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += 32) {
        float amax = 0;
        for (int e = 0; e < 32; ++e) amax = std::fabs(x[e]) > amax ? std::fabs(x[e]) : amax;
        const float d = amax / 127.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[i].d = f32_to_f16(d);
        for (int e = 0; e < 32; ++e) y[i].qs[e] = int8_t(round_clamp(x[e] * id, -127, 127));
    }
}

// Q4_0 / Q5_0: d = v / -2^(bits-1) where v is the largest-magnitude element (so v maps to code 0), then
// code = floor(x / d + 2^(bits-1) + 0.5) clamped to the top code.
template <int Bits>
void quantize_sym_codes(const float* x, float& d, uint8_t q[32]) {
    constexpr int half = 1 << (Bits - 1), top = (1 << Bits) - 1;
    const float v = max_magnitude(x, 32);
    d = v / float(-half);
    const float id = d != 0 ? 1.0f / d : 0.0f;
    for (int e = 0; e < 32; ++e) {
        const float t = clampf(x[e] * id + float(half) + 0.5f, 0.0f, float(top));
        q[e] = uint8_t(t);  // truncation of a non-negative value: floor
    }
}

// Q4_1 / Q5_1: m = min x, d = (max - min) / (2^bits - 1), code = floor((x - m) / d + 0.5).
template <int Bits>
void quantize_minmax_codes(const float* x, float& d, float& m, uint8_t q[32]) {
    constexpr int top = (1 << Bits) - 1;
    float lo = x[0], hi = x[0];
    for (int e = 1; e < 32; ++e) {
        lo = x[e] < lo ? x[e] : lo;
        hi = x[e] > hi ? x[e] : hi;
    }
    d = (hi - lo) / float(top);
    m = lo;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    for (int e = 0; e < 32; ++e) {
        const float t = clampf((x[e] - lo) * id + 0.5f, 0.0f, float(top));
        q[e] = uint8_t(t);
    }
}

void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t nb) {
    uint8_t q[32];
    for (int64_t i = 0; i < nb; ++i, x += 32) {
        float d;
        quantize_sym_codes<4>(x, d, q);
        y[i].d = f32_to_f16(d);
        quant::pack_nibbles32(q, y[i].qs);
    }
}

void quantize_q5_0(const float* x, BlockQ5_0* y, int64_t nb) {
    uint8_t q[32];
    for (int64_t i = 0; i < nb; ++i, x += 32) {
        float d;
        quantize_sym_codes<5>(x, d, q);
        y[i].d = f32_to_f16(d);
        quant::pack_q5(q, y[i].qh, y[i].qs);
    }
}

void quantize_q4_1(const float* x, BlockQ4_1* y, int64_t nb) {
    uint8_t q[32];
    for (int64_t i = 0; i < nb; ++i, x += 32) {
        float d, m;
        quantize_minmax_codes<4>(x, d, m, q);
        y[i].d = f32_to_f16(d);
        y[i].m = f32_to_f16(m);
        quant::pack_nibbles32(q, y[i].qs);
    }
}

void quantize_q5_1(const float* x, BlockQ5_1* y, int64_t nb) {
    uint8_t q[32];
    for (int64_t i = 0; i < nb; ++i, x += 32) {
        float d, m;
        quantize_minmax_codes<5>(x, d, m, q);
        y[i].d = f32_to_f16(d);
        y[i].m = f32_to_f16(m);
        quant::pack_q5(q, y[i].qh, y[i].qs);
    }
}

// ---- IQ4_NL ----------------------------------------------------------------------------------------------

// Index of the table level nearest to t (ties go to the upper level). The midpoints between neighbouring
// levels are all multiples of 0.5, so the answer depends only on floor(2t): a 512-entry table covers
// t in [-128, 128), and everything outside is past an end level.
struct IQ4NLNearest {
    uint8_t idx[512] = {};
    constexpr IQ4NLNearest() {
        for (int k = 0; k < 512; ++k) {
            const float t = float(k - 256) * 0.5f;  // any t with floor(2t) == k - 256 has the same answer
            int best = 0;
            for (int i = 1; i < 16; ++i)
                if (2.0f * t >= float(kIQ4NL[i - 1] + kIQ4NL[i])) best = i;
            idx[k] = uint8_t(best);
        }
    }
    int operator()(float t) const {
        const float f = std::min(511.0f, std::max(0.0f, 2.0f * t + 256.0f));  // NaN -> 0
        return idx[int(f)];  // truncation of a non-negative value: floor(2t) + 256
    }
};
constexpr IQ4NLNearest iq4nl_nearest;

// Sums over a block of x * t and t * t, t being the level nearest to x * id. Out of line so that it is
// compiled as a tight loop of its own.
[[gnu::noinline]] void iq4nl_candidate(const float* x, float id, double& sxt, double& stt) {
    float xt0 = 0, xt1 = 0, tt0 = 0, tt1 = 0;  // 2 independent partial sums: shorter dependency chains
    for (int e = 0; e < 32; e += 2) {
        const float t0 = kIQ4NL[iq4nl_nearest(x[e] * id)];
        const float t1 = kIQ4NL[iq4nl_nearest(x[e + 1] * id)];
        xt0 += x[e] * t0;
        xt1 += x[e + 1] * t1;
        tt0 += t0 * t0;
        tt1 += t1 * t1;
    }
    sxt = double(xt0) + double(xt1);
    stt = double(tt0) + double(tt1);
}

// IQ4_NL: x ~= d * kIQ4NL[code]. Candidate inverse scales map the largest-magnitude element onto the table's
// ends (-127 or 113), nudged by -8..8 levels in steps of 2; each is refitted by least squares; the best d is
// stored and the codes are re-picked as the level nearest to x / d(f16).
void quantize_iq4_nl(const float* x, BlockIQ4_NL* y, int64_t nb) {
    uint8_t q[32];
    for (int64_t i = 0; i < nb; ++i, x += 32) {
        const float v = max_magnitude(x, 32);
        float best_d = 0;
        if (v != 0) {
            double best_score = -1;
            for (const float target : {-127.0f, 113.0f}) {
                for (int k = -4; k <= 4; ++k) {
                    const float id = (target + 2.0f * float(k)) / v;
                    double sxt, stt;
                    iq4nl_candidate(x, id, sxt, stt);
                    const double score = sxt * sxt / stt;
                    if (score > best_score) {
                        best_score = score;
                        best_d = float(sxt / stt);
                    }
                }
            }
        }
        y[i].d = f32_to_f16(best_d);
        const float d = h2f(y[i].d);
        const float id = d != 0 ? 1.0f / d : 0.0f;
        for (int e = 0; e < 32; ++e) q[e] = uint8_t(d != 0 ? iq4nl_nearest(x[e] * id) : 8);
        quant::pack_nibbles32(q, y[i].qs);
    }
}

// ---- K-quants
// ----------------------------------------------------------------------------------------------

// Quantizes the non-negative sub-block parameters p[0..n) to integers in [0, qmax] against one scale, which
// is rounded to f16 (the stored form) before the integers are picked. Returns the f16 scale.
f16_t quantize_params(const float* p, int n, int qmax, int* out) {
    const float s = fit_linear(p, n, 0, qmax, 4, 0.25f);
    const f16_t sh = f32_to_f16(s);
    const float sf = h2f(sh);
    const float inv = sf > 0 ? 1.0f / sf : 0.0f;
    for (int j = 0; j < n; ++j) out[j] = sf > 0 ? round_clamp(p[j] * inv, 0, qmax) : 0;
    return sh;
}

// Codes of an affine sub-block under the stored parameters: nearest q to (x + ml) / dl in [0, nmax].
inline void affine_codes(const float* x, int n, float dl, float ml, int nmax, uint8_t* q) {
    const float inv = dl > 0 ? 1.0f / dl : 0.0f;
    for (int l = 0; l < n; ++l) q[l] = uint8_t(dl > 0 ? round_clamp((x[l] + ml) * inv, 0, nmax) : 0);
}

// Squared error of an affine sub-block under (dl, ml) with the nearest codes. Kept out of line: compiled on
// its own, the 4-lane loop becomes SSE code; inlined into the super-block loop it does not.
[[gnu::noinline]] float affine_error(const float* x, int n, float dl, float ml, int nmax) {
    const float inv = dl > 0 ? 1.0f / dl : 0.0f;
    float err[4] = {};
    for (int l = 0; l < n; l += 4)
        for (int u = 0; u < 4; ++u) {
            const float c = round_fast(clampf((x[l + u] + ml) * inv, 0.0f, float(nmax)));
            const float e = dl * c - ml - x[l + u];
            err[u] += e * e;
        }
    return (err[0] + err[1]) + (err[2] + err[3]);
}

// The affine K-quants (Q2_K: 16 sub-blocks of 16, 4-bit params, 2-bit codes; Q4_K / Q5_K: 8 sub-blocks of
// 32, 6-bit params, 4- / 5-bit codes). Produces d, dmin, the integer params and the codes of one super-block.
template <int NSub, int ParamMax, int CodeMax>
void quantize_affine_superblock(const float* x, f16_t& dh, f16_t& dminh, uint8_t sc[NSub], uint8_t mn[NSub],
                                uint8_t q[256]) {
    constexpr int len = 256 / NSub;
    float s[NSub], m[NSub];
    for (int j = 0; j < NSub; ++j) fit_affine(x + len * j, len, CodeMax, 5, 0.2f, s[j], m[j]);
    int isc[NSub], imn[NSub];
    dh = quantize_params(s, NSub, ParamMax, isc);
    dminh = quantize_params(m, NSub, ParamMax, imn);
    const float d = h2f(dh), dmin = h2f(dminh);
    for (int j = 0; j < NSub; ++j) {
        // The params were rounded independently of each other: keep the neighbour pair (scale +-1, min +-1)
        // with the smallest actual error, then pick the codes under it.
        const float* xs = x + len * j;
        int bs = isc[j], bm = imn[j];
        float best = affine_error(xs, len, d * float(bs), dmin * float(bm), CodeMax);
        for (int a = isc[j] - 1; a <= isc[j] + 1; ++a)
            for (int b = imn[j] - 1; b <= imn[j] + 1; ++b) {
                if (a < 0 || a > ParamMax || b < 0 || b > ParamMax || (a == isc[j] && b == imn[j])) continue;
                const float e = affine_error(xs, len, d * float(a), dmin * float(b), CodeMax);
                if (e < best) {
                    best = e;
                    bs = a;
                    bm = b;
                }
            }
        sc[j] = uint8_t(bs);
        mn[j] = uint8_t(bm);
        affine_codes(xs, len, d * float(bs), dmin * float(bm), CodeMax, q + len * j);
    }
}

// The symmetric K-quants (Q3_K: 6-bit signed scales, codes -4..3; Q6_K: int8 scales, codes -32..31), both
// with 16 sub-blocks of 16. Produces d, the integer scales and the codes of one super-block.
template <int ScaleMin, int ScaleMax, int CodeMin, int CodeMax, int Tries, float Step>
void quantize_sym_superblock(const float* x, f16_t& dh, int sc[16], int8_t q[256]) {
    float s[16];
    for (int j = 0; j < 16; ++j) s[j] = fit_linear(x + 16 * j, 16, CodeMin, CodeMax, Tries, Step);
    const float d0 = fit_linear(s, 16, ScaleMin, ScaleMax, 4, 0.25f);
    dh = f32_to_f16(d0);
    const float d = h2f(dh);
    const float id = d != 0 ? 1.0f / d : 0.0f;
    for (int j = 0; j < 16; ++j) {
        sc[j] = d != 0 ? round_clamp(s[j] * id, ScaleMin, ScaleMax) : 0;
        const float dl = d * float(sc[j]);
        const float inv = dl != 0 ? 1.0f / dl : 0.0f;
        for (int l = 0; l < 16; ++l)
            q[16 * j + l] = int8_t(dl != 0 ? round_clamp(x[16 * j + l] * inv, CodeMin, CodeMax) : 0);
    }
}

void quantize_q2_k(const float* x, BlockQ2_K* y, int64_t nb) {
    uint8_t q[256], sc[16], mn[16];
    for (int64_t i = 0; i < nb; ++i, x += 256) {
        quantize_affine_superblock<16, 15, 3>(x, y[i].d, y[i].dmin, sc, mn, q);
        quant::pack_q2_k(q, sc, mn, y[i]);
    }
}

void quantize_q4_k(const float* x, BlockQ4_K* y, int64_t nb) {
    uint8_t q[256], sc[8], mn[8];
    for (int64_t i = 0; i < nb; ++i, x += 256) {
        quantize_affine_superblock<8, 63, 15>(x, y[i].d, y[i].dmin, sc, mn, q);
        quant::pack_q4_k(q, sc, mn, y[i]);
    }
}

void quantize_q5_k(const float* x, BlockQ5_K* y, int64_t nb) {
    uint8_t q[256], sc[8], mn[8];
    for (int64_t i = 0; i < nb; ++i, x += 256) {
        quantize_affine_superblock<8, 63, 31>(x, y[i].d, y[i].dmin, sc, mn, q);
        quant::pack_q5_k(q, sc, mn, y[i]);
    }
}

void quantize_q3_k(const float* x, BlockQ3_K* y, int64_t nb) {
    int8_t q[256], sc8[16];
    int sc[16];
    for (int64_t i = 0; i < nb; ++i, x += 256) {
        quantize_sym_superblock<-32, 31, -4, 3, 3, 0.3f>(x, y[i].d, sc, q);
        for (int j = 0; j < 16; ++j) sc8[j] = int8_t(sc[j]);
        quant::pack_q3_k(q, sc8, y[i]);
    }
}

void quantize_q6_k(const float* x, BlockQ6_K* y, int64_t nb) {
    int8_t q[256];
    int sc[16];
    for (int64_t i = 0; i < nb; ++i, x += 256) {
        quantize_sym_superblock<-128, 127, -32, 31, 3, 1.0f>(x, y[i].d, sc, q);
        for (int j = 0; j < 16; ++j) y[i].scales[j] = int8_t(sc[j]);
        quant::pack_q6_k(q, y[i]);
    }
}

}  // namespace

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
    const int64_t nb = n / dtype_info(t).block_elems;
    switch (t) {
        case DType::F32: std::memcpy(dst, src, size_t(n) * sizeof(float)); return;
        case DType::F16: {
            f16_t* y = static_cast<f16_t*>(dst);
            for (int64_t i = 0; i < n; ++i) y[i] = f32_to_f16(src[i]);
            return;
        }
        case DType::BF16: {
            bf16_t* y = static_cast<bf16_t*>(dst);
            for (int64_t i = 0; i < n; ++i) y[i] = f32_to_bf16(src[i]);
            return;
        }
        case DType::Q8_0: return quantize_q8_0(src, static_cast<BlockQ8_0*>(dst), nb);
        case DType::Q4_0: return quantize_q4_0(src, static_cast<BlockQ4_0*>(dst), nb);
        case DType::Q4_1: return quantize_q4_1(src, static_cast<BlockQ4_1*>(dst), nb);
        case DType::Q5_0: return quantize_q5_0(src, static_cast<BlockQ5_0*>(dst), nb);
        case DType::Q5_1: return quantize_q5_1(src, static_cast<BlockQ5_1*>(dst), nb);
        case DType::IQ4_NL: return quantize_iq4_nl(src, static_cast<BlockIQ4_NL*>(dst), nb);
        case DType::Q2_K: return quantize_q2_k(src, static_cast<BlockQ2_K*>(dst), nb);
        case DType::Q3_K: return quantize_q3_k(src, static_cast<BlockQ3_K*>(dst), nb);
        case DType::Q4_K: return quantize_q4_k(src, static_cast<BlockQ4_K*>(dst), nb);
        case DType::Q5_K: return quantize_q5_k(src, static_cast<BlockQ5_K*>(dst), nb);
        case DType::Q6_K: return quantize_q6_k(src, static_cast<BlockQ6_K*>(dst), nb);
        default: fail("quantize_row: unsupported tensor type {}", dtype_name(t));
    }
}

}  // namespace hearth::kernels
