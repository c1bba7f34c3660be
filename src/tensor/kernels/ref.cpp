// Scalar reference kernels for every supported tensor type: dequantization (bit-exact with ggml: the same
// float operations in the same order), the Q8A activation quantizer, and dot products of one weight row with
// one activation row. The SIMD kernels are tested against these, so they favour plainness over speed: every
// block is first decoded into small integers by the codecs of tensor/quantize.h (which document the bit
// layouts), then the arithmetic is written out element by element.
//
// Dot products against quantized weights use integer arithmetic inside each 32-element activation block (or
// 16-element half of one) and apply the float scales afterwards; block results are accumulated in double.
// Quantization (quantize_row) lives in tensor/quantize.cpp.
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "tensor/kernels.h"
#include "tensor/kernels/train.h"
#include "tensor/quantize.h"

namespace hearth::kernels {
namespace {

using quant::kIQ4NL;

inline float h2f(f16_t h) { return f16_to_f32(h); }

// Sum of w[i] * a[i] over one 32-element run (or a 16-element half) of int8 activations.
template <typename W>
inline int32_t idot(const W* w, const int8_t* a, int n) {
    int32_t s = 0;
    for (int i = 0; i < n; ++i) s += int32_t(w[i]) * int32_t(a[i]);
    return s;
}

// =========================================================================================================
// Dequantization. Each function converts nb blocks.
// =========================================================================================================

// Q8_0: f16 d, 32 int8 values. x = q * d.
void dequant_q8_0(const BlockQ8_0* b, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d);
        for (int e = 0; e < 32; ++e) y[32 * i + e] = float(b[i].qs[e]) * d;
    }
}

// Q4_0: f16 d, 32 nibbles (byte j: element j low, element j+16 high). x = (code - 8) * d.
void dequant_q4_0(const BlockQ4_0* b, float* y, int64_t nb) {
    uint8_t q[32];
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d);
        quant::unpack_nibbles32(b[i].qs, q);
        for (int e = 0; e < 32; ++e) y[32 * i + e] = float(int(q[e]) - 8) * d;
    }
}

// Q4_1: f16 d, f16 m, 32 nibbles as Q4_0. x = code * d + m.
void dequant_q4_1(const BlockQ4_1* b, float* y, int64_t nb) {
    uint8_t q[32];
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d), m = h2f(b[i].m);
        quant::unpack_nibbles32(b[i].qs, q);
        for (int e = 0; e < 32; ++e) y[32 * i + e] = float(q[e]) * d + m;
    }
}

// Q5_0: f16 d, 32 fifth bits (qh as a little-endian uint32, bit e for element e), 32 nibbles as Q4_0.
// x = (code - 16) * d.
void dequant_q5_0(const BlockQ5_0* b, float* y, int64_t nb) {
    uint8_t q[32];
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d);
        quant::unpack_q5(b[i].qh, b[i].qs, q);
        for (int e = 0; e < 32; ++e) y[32 * i + e] = float(int(q[e]) - 16) * d;
    }
}

// Q5_1: f16 d, f16 m, fifth bits and nibbles as Q5_0. x = code * d + m.
void dequant_q5_1(const BlockQ5_1* b, float* y, int64_t nb) {
    uint8_t q[32];
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d), m = h2f(b[i].m);
        quant::unpack_q5(b[i].qh, b[i].qs, q);
        for (int e = 0; e < 32; ++e) y[32 * i + e] = float(q[e]) * d + m;
    }
}

// IQ4_NL: f16 d, 32 nibbles as Q4_0 indexing the non-linear table kIQ4NL. x = d * kIQ4NL[code].
void dequant_iq4_nl(const BlockIQ4_NL* b, float* y, int64_t nb) {
    uint8_t q[32];
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d);
        quant::unpack_nibbles32(b[i].qs, q);
        for (int e = 0; e < 32; ++e) y[32 * i + e] = d * float(kIQ4NL[q[e]]);
    }
}

// Q2_K: super-block of 256 = 16 sub-blocks of 16, each with a 4-bit scale and 4-bit min; 2-bit codes.
// x = (d * scale) * q - (dmin * min).
void dequant_q2_k(const BlockQ2_K* b, float* y, int64_t nb) {
    uint8_t q[256], sc[16], mn[16];
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
        quant::unpack_q2_k(b[i], q, sc, mn);
        for (int s = 0; s < 16; ++s) {
            const float dl = d * float(sc[s]), ml = dmin * float(mn[s]);
            for (int l = 0; l < 16; ++l) y[256 * i + 16 * s + l] = dl * float(q[16 * s + l]) - ml;
        }
    }
}

// Q3_K: super-block of 256 = 16 sub-blocks of 16 with 6-bit signed scales; 3-bit codes (2 low bits in qs,
// high bit in hmask), value -4..3. x = (d * scale) * q.
void dequant_q3_k(const BlockQ3_K* b, float* y, int64_t nb) {
    int8_t q[256], sc[16];
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d);
        quant::unpack_q3_k(b[i], q, sc);
        for (int s = 0; s < 16; ++s) {
            const float dl = d * float(sc[s]);
            for (int l = 0; l < 16; ++l) y[256 * i + 16 * s + l] = dl * float(q[16 * s + l]);
        }
    }
}

// Q4_K: super-block of 256 = 8 sub-blocks of 32 with 6-bit scale and min (12 packed bytes); 4-bit codes.
// x = (d * scale) * q - (dmin * min).
void dequant_q4_k(const BlockQ4_K* b, float* y, int64_t nb) {
    uint8_t q[256], sc[8], mn[8];
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
        quant::unpack_q4_k(b[i], q, sc, mn);
        for (int s = 0; s < 8; ++s) {
            const float dl = d * float(sc[s]), ml = dmin * float(mn[s]);
            for (int l = 0; l < 32; ++l) y[256 * i + 32 * s + l] = dl * float(q[32 * s + l]) - ml;
        }
    }
}

// Q5_K: as Q4_K with a fifth bit per code from qh. x = (d * scale) * q - (dmin * min).
void dequant_q5_k(const BlockQ5_K* b, float* y, int64_t nb) {
    uint8_t q[256], sc[8], mn[8];
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
        quant::unpack_q5_k(b[i], q, sc, mn);
        for (int s = 0; s < 8; ++s) {
            const float dl = d * float(sc[s]), ml = dmin * float(mn[s]);
            for (int l = 0; l < 32; ++l) y[256 * i + 32 * s + l] = dl * float(q[32 * s + l]) - ml;
        }
    }
}

// Q6_K: super-block of 256 = 16 sub-blocks of 16 with int8 scales; 6-bit codes (ql nibbles + qh pairs),
// value -32..31. x = (d * scale) * q.
void dequant_q6_k(const BlockQ6_K* b, float* y, int64_t nb) {
    int8_t q[256];
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d);
        quant::unpack_q6_k(b[i], q);
        for (int s = 0; s < 16; ++s)
            for (int l = 0; l < 16; ++l)
                y[256 * i + 16 * s + l] = d * float(b[i].scales[s]) * float(q[16 * s + l]);
    }
}

// =========================================================================================================
// Dot products. F32/F16/BF16 weights take a float activation row; quantized weights a row of BlockQ8A.
// =========================================================================================================

float dot_f32(const void* w, const void* act, int64_t n) {
    const float* x = static_cast<const float*>(w);
    const float* a = static_cast<const float*>(act);
    double acc = 0;
    for (int64_t i = 0; i < n; ++i) acc += double(x[i]) * double(a[i]);
    return float(acc);
}

float dot_f16(const void* w, const void* act, int64_t n) {
    const f16_t* x = static_cast<const f16_t*>(w);
    const float* a = static_cast<const float*>(act);
    double acc = 0;
    for (int64_t i = 0; i < n; ++i) acc += double(f16_to_f32(x[i])) * double(a[i]);
    return float(acc);
}

float dot_bf16(const void* w, const void* act, int64_t n) {
    const bf16_t* x = static_cast<const bf16_t*>(w);
    const float* a = static_cast<const float*>(act);
    double acc = 0;
    for (int64_t i = 0; i < n; ++i) acc += double(bf16_to_f32(x[i])) * double(a[i]);
    return float(acc);
}

// Sum of all 32 activation codes of a block.
inline int32_t act_sum(const BlockQ8A& a) { return int32_t(a.sum[0]) + int32_t(a.sum[1]); }

float dot_q8_0(const void* w, const void* act, int64_t n) {
    const BlockQ8_0* x = static_cast<const BlockQ8_0*>(w);
    const BlockQ8A* a = static_cast<const BlockQ8A*>(act);
    double acc = 0;
    for (int64_t i = 0; i < n / 32; ++i) {
        const int32_t s = idot(x[i].qs, a[i].qs, 32);
        acc += double(h2f(x[i].d) * a[i].d) * double(s);
    }
    return float(acc);
}

float dot_q4_0(const void* w, const void* act, int64_t n) {
    const BlockQ4_0* x = static_cast<const BlockQ4_0*>(w);
    const BlockQ8A* a = static_cast<const BlockQ8A*>(act);
    uint8_t q[32];
    double acc = 0;
    for (int64_t i = 0; i < n / 32; ++i) {
        quant::unpack_nibbles32(x[i].qs, q);
        // sum (code - 8) * a = sum code * a - 8 * sum a
        const int32_t s = idot(q, a[i].qs, 32) - 8 * act_sum(a[i]);
        acc += double(h2f(x[i].d) * a[i].d) * double(s);
    }
    return float(acc);
}

float dot_q4_1(const void* w, const void* act, int64_t n) {
    const BlockQ4_1* x = static_cast<const BlockQ4_1*>(w);
    const BlockQ8A* a = static_cast<const BlockQ8A*>(act);
    uint8_t q[32];
    double acc = 0;
    for (int64_t i = 0; i < n / 32; ++i) {
        quant::unpack_nibbles32(x[i].qs, q);
        // sum (d * code + m) * (da * a) = d * da * sum code * a + m * da * sum a
        const int32_t s = idot(q, a[i].qs, 32);
        acc +=
            double(h2f(x[i].d) * a[i].d) * double(s) + double(h2f(x[i].m) * a[i].d) * double(act_sum(a[i]));
    }
    return float(acc);
}

float dot_q5_0(const void* w, const void* act, int64_t n) {
    const BlockQ5_0* x = static_cast<const BlockQ5_0*>(w);
    const BlockQ8A* a = static_cast<const BlockQ8A*>(act);
    uint8_t q[32];
    double acc = 0;
    for (int64_t i = 0; i < n / 32; ++i) {
        quant::unpack_q5(x[i].qh, x[i].qs, q);
        const int32_t s = idot(q, a[i].qs, 32) - 16 * act_sum(a[i]);
        acc += double(h2f(x[i].d) * a[i].d) * double(s);
    }
    return float(acc);
}

float dot_q5_1(const void* w, const void* act, int64_t n) {
    const BlockQ5_1* x = static_cast<const BlockQ5_1*>(w);
    const BlockQ8A* a = static_cast<const BlockQ8A*>(act);
    uint8_t q[32];
    double acc = 0;
    for (int64_t i = 0; i < n / 32; ++i) {
        quant::unpack_q5(x[i].qh, x[i].qs, q);
        const int32_t s = idot(q, a[i].qs, 32);
        acc +=
            double(h2f(x[i].d) * a[i].d) * double(s) + double(h2f(x[i].m) * a[i].d) * double(act_sum(a[i]));
    }
    return float(acc);
}

float dot_iq4_nl(const void* w, const void* act, int64_t n) {
    const BlockIQ4_NL* x = static_cast<const BlockIQ4_NL*>(w);
    const BlockQ8A* a = static_cast<const BlockQ8A*>(act);
    uint8_t q[32];
    int8_t v[32];
    double acc = 0;
    for (int64_t i = 0; i < n / 32; ++i) {
        quant::unpack_nibbles32(x[i].qs, q);
        for (int e = 0; e < 32; ++e) v[e] = kIQ4NL[q[e]];
        const int32_t s = idot(v, a[i].qs, 32);
        acc += double(h2f(x[i].d) * a[i].d) * double(s);
    }
    return float(acc);
}

// K-quants: super-block i spans activation blocks 8i .. 8i+7. A 16-element sub-block s lies in half s % 2
// of activation block s / 2; a 32-element sub-block s is activation block s.

float dot_q2_k(const void* w, const void* act, int64_t n) {
    const BlockQ2_K* x = static_cast<const BlockQ2_K*>(w);
    const BlockQ8A* a = static_cast<const BlockQ8A*>(act);
    uint8_t q[256], sc[16], mn[16];
    double acc = 0;
    for (int64_t i = 0; i < n / 256; ++i) {
        quant::unpack_q2_k(x[i], q, sc, mn);
        const float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
        for (int j = 0; j < 8; ++j) {
            const BlockQ8A& ab = a[8 * i + j];
            int32_t sq = 0, sm = 0;  // sum of scale * (q . a) and of min * (sum a) over the two halves
            for (int h = 0; h < 2; ++h) {
                const int s = 2 * j + h;
                sq += int32_t(sc[s]) * idot(q + 16 * s, ab.qs + 16 * h, 16);
                sm += int32_t(mn[s]) * int32_t(ab.sum[h]);
            }
            acc += double(ab.d) * (double(d) * double(sq) - double(dmin) * double(sm));
        }
    }
    return float(acc);
}

float dot_q3_k(const void* w, const void* act, int64_t n) {
    const BlockQ3_K* x = static_cast<const BlockQ3_K*>(w);
    const BlockQ8A* a = static_cast<const BlockQ8A*>(act);
    int8_t q[256], sc[16];
    double acc = 0;
    for (int64_t i = 0; i < n / 256; ++i) {
        quant::unpack_q3_k(x[i], q, sc);
        const float d = h2f(x[i].d);
        for (int j = 0; j < 8; ++j) {
            const BlockQ8A& ab = a[8 * i + j];
            int32_t sq = 0;
            for (int h = 0; h < 2; ++h) {
                const int s = 2 * j + h;
                sq += int32_t(sc[s]) * idot(q + 16 * s, ab.qs + 16 * h, 16);
            }
            acc += double(d * ab.d) * double(sq);
        }
    }
    return float(acc);
}

float dot_q4_k(const void* w, const void* act, int64_t n) {
    const BlockQ4_K* x = static_cast<const BlockQ4_K*>(w);
    const BlockQ8A* a = static_cast<const BlockQ8A*>(act);
    uint8_t q[256], sc[8], mn[8];
    double acc = 0;
    for (int64_t i = 0; i < n / 256; ++i) {
        quant::unpack_q4_k(x[i], q, sc, mn);
        const float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
        for (int s = 0; s < 8; ++s) {
            const BlockQ8A& ab = a[8 * i + s];
            const int32_t sq = int32_t(sc[s]) * idot(q + 32 * s, ab.qs, 32);
            const int32_t sm = int32_t(mn[s]) * act_sum(ab);
            acc += double(ab.d) * (double(d) * double(sq) - double(dmin) * double(sm));
        }
    }
    return float(acc);
}

float dot_q5_k(const void* w, const void* act, int64_t n) {
    const BlockQ5_K* x = static_cast<const BlockQ5_K*>(w);
    const BlockQ8A* a = static_cast<const BlockQ8A*>(act);
    uint8_t q[256], sc[8], mn[8];
    double acc = 0;
    for (int64_t i = 0; i < n / 256; ++i) {
        quant::unpack_q5_k(x[i], q, sc, mn);
        const float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
        for (int s = 0; s < 8; ++s) {
            const BlockQ8A& ab = a[8 * i + s];
            const int32_t sq = int32_t(sc[s]) * idot(q + 32 * s, ab.qs, 32);
            const int32_t sm = int32_t(mn[s]) * act_sum(ab);
            acc += double(ab.d) * (double(d) * double(sq) - double(dmin) * double(sm));
        }
    }
    return float(acc);
}

float dot_q6_k(const void* w, const void* act, int64_t n) {
    const BlockQ6_K* x = static_cast<const BlockQ6_K*>(w);
    const BlockQ8A* a = static_cast<const BlockQ8A*>(act);
    int8_t q[256];
    double acc = 0;
    for (int64_t i = 0; i < n / 256; ++i) {
        quant::unpack_q6_k(x[i], q);
        const float d = h2f(x[i].d);
        for (int j = 0; j < 8; ++j) {
            const BlockQ8A& ab = a[8 * i + j];
            int32_t sq = 0;
            for (int h = 0; h < 2; ++h) {
                const int s = 2 * j + h;
                sq += int32_t(x[i].scales[s]) * idot(q + 16 * s, ab.qs + 16 * h, 16);
            }
            acc += double(d * ab.d) * double(sq);
        }
    }
    return float(acc);
}

DotFn dot_fn(DType t) {
    switch (t) {
        case DType::F32: return dot_f32;
        case DType::F16: return dot_f16;
        case DType::BF16: return dot_bf16;
        case DType::Q8_0: return dot_q8_0;
        case DType::Q4_0: return dot_q4_0;
        case DType::Q4_1: return dot_q4_1;
        case DType::Q5_0: return dot_q5_0;
        case DType::Q5_1: return dot_q5_1;
        case DType::IQ4_NL: return dot_iq4_nl;
        case DType::Q2_K: return dot_q2_k;
        case DType::Q3_K: return dot_q3_k;
        case DType::Q4_K: return dot_q4_k;
        case DType::Q5_K: return dot_q5_k;
        case DType::Q6_K: return dot_q6_k;
        default: return nullptr;
    }
}

// Reference gemm: the dot of every (weight row, activation row) pair.
template <DotFn Dot>
void gemm_ref(int64_t n, const void* w, size_t w_stride, const void* act, size_t act_stride, float* out,
              size_t out_stride, int nr, int nc) {
    const auto* wb = static_cast<const uint8_t*>(w);
    const auto* ab = static_cast<const uint8_t*>(act);
    for (int r = 0; r < nr; ++r)
        for (int c = 0; c < nc; ++c)
            out[size_t(r) * out_stride + size_t(c)] = Dot(wb + r * w_stride, ab + c * act_stride, n);
}

KernelTable make_ref_table() {
    KernelTable t{};
    t.isa = Isa::Ref;
    t.name = "ref";
    t.quantize_act = quantize_act_ref;
    t.swiglu = swiglu_ref;
    t.f32_to_f16_row = f32_to_f16_row_ref;
    t.sgemm = {kSgemmRefMr, kSgemmRefNr, sgemm_tile_ref};
    set_reference_train_rows(t);
    const auto set = [&t](DType type, DotFn dot, GemmFn gemm) {
        t.dot[static_cast<uint32_t>(type)] = dot;
        t.gemm[static_cast<uint32_t>(type)] = gemm;
    };
    set(DType::F32, dot_f32, gemm_ref<dot_f32>);
    set(DType::F16, dot_f16, gemm_ref<dot_f16>);
    set(DType::BF16, dot_bf16, gemm_ref<dot_bf16>);
    set(DType::Q8_0, dot_q8_0, gemm_ref<dot_q8_0>);
    set(DType::Q4_0, dot_q4_0, gemm_ref<dot_q4_0>);
    set(DType::Q4_1, dot_q4_1, gemm_ref<dot_q4_1>);
    set(DType::Q5_0, dot_q5_0, gemm_ref<dot_q5_0>);
    set(DType::Q5_1, dot_q5_1, gemm_ref<dot_q5_1>);
    set(DType::IQ4_NL, dot_iq4_nl, gemm_ref<dot_iq4_nl>);
    set(DType::Q2_K, dot_q2_k, gemm_ref<dot_q2_k>);
    set(DType::Q3_K, dot_q3_k, gemm_ref<dot_q3_k>);
    set(DType::Q4_K, dot_q4_k, gemm_ref<dot_q4_k>);
    set(DType::Q5_K, dot_q5_k, gemm_ref<dot_q5_k>);
    set(DType::Q6_K, dot_q6_k, gemm_ref<dot_q6_k>);
    return t;
}

}  // namespace

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
    const int64_t nb = n / dtype_info(t).block_elems;
    switch (t) {
        case DType::F32: std::memcpy(dst, src, size_t(n) * sizeof(float)); return;
        case DType::F16: {
            const f16_t* x = static_cast<const f16_t*>(src);
            for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(x[i]);
            return;
        }
        case DType::BF16: {
            const bf16_t* x = static_cast<const bf16_t*>(src);
            for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(x[i]);
            return;
        }
        case DType::Q8_0: return dequant_q8_0(static_cast<const BlockQ8_0*>(src), dst, nb);
        case DType::Q4_0: return dequant_q4_0(static_cast<const BlockQ4_0*>(src), dst, nb);
        case DType::Q4_1: return dequant_q4_1(static_cast<const BlockQ4_1*>(src), dst, nb);
        case DType::Q5_0: return dequant_q5_0(static_cast<const BlockQ5_0*>(src), dst, nb);
        case DType::Q5_1: return dequant_q5_1(static_cast<const BlockQ5_1*>(src), dst, nb);
        case DType::IQ4_NL: return dequant_iq4_nl(static_cast<const BlockIQ4_NL*>(src), dst, nb);
        case DType::Q2_K: return dequant_q2_k(static_cast<const BlockQ2_K*>(src), dst, nb);
        case DType::Q3_K: return dequant_q3_k(static_cast<const BlockQ3_K*>(src), dst, nb);
        case DType::Q4_K: return dequant_q4_k(static_cast<const BlockQ4_K*>(src), dst, nb);
        case DType::Q5_K: return dequant_q5_k(static_cast<const BlockQ5_K*>(src), dst, nb);
        case DType::Q6_K: return dequant_q6_k(static_cast<const BlockQ6_K*>(src), dst, nb);
        default: fail("dequantize_row: unsupported tensor type {}", dtype_name(t));
    }
}

ActKind act_kind(DType weight_type) {
    switch (weight_type) {
        case DType::F32:
        case DType::F16:
        case DType::BF16: return ActKind::F32;
        default: return ActKind::Q8A;
    }
}

size_t act_row_bytes(DType weight_type, int64_t n) {
    if (act_kind(weight_type) == ActKind::F32) return size_t(n) * sizeof(float);
    return size_t(n / 32) * sizeof(BlockQ8A);
}

// Q8A: per 32 values, d = amax / 127 and qs = round(x / d); sum[h] = sum of qs over half h.
void swiglu_ref(float* g, const float* u, int64_t n) {
    for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void quantize_act_ref(const float* x, BlockQ8A* y, int64_t n) {
    for (int64_t i = 0; i < n / 32; ++i) {
        const float* xb = x + 32 * i;
        float amax = 0;
        for (int e = 0; e < 32; ++e) amax = std::fmax(amax, std::fabs(xb[e]));
        const float d = amax / 127.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[i].d = d;
        int sums[2] = {0, 0};
        for (int e = 0; e < 32; ++e) {
            const int v = int(std::lround(xb[e] * id));
            y[i].qs[e] = int8_t(v);
            sums[e / 16] += v;
        }
        y[i].sum[0] = int16_t(sums[0]);
        y[i].sum[1] = int16_t(sums[1]);
    }
}

float vec_dot_ref(DType t, const void* w, const void* act, int64_t n) {
    const DotFn f = dot_fn(t);
    if (!f) fail("vec_dot_ref: unsupported tensor type {}", dtype_name(t));
    return f(w, act, n);
}

const KernelTable& ref_table() {
    static const KernelTable table = make_ref_table();
    return table;
}

void f32_to_f16_row_ref(const float* x, f16_t* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_f16(x[i]);
}

}  // namespace hearth::kernels
