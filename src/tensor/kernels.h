// Compute kernels over the block formats of dtype.h: a scalar reference for every type, plus AVX2 and
// AVX-512 (VNNI, BF16) paths chosen at run time from CPUID. The reference stays beside the SIMD code and the
// tests compare them. Written by hand: no packaged library computes on GGUF's quantized formats.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"

namespace hearth::kernels {

// ---- scalar reference (kernels/ref.cpp) ------------------------------------------------------------
// n is a multiple of the type's block size; callers check it.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
// Quantizes n floats into type t (F32, F16, BF16 and every supported quantized type).
void quantize_row(DType t, const float* src, void* dst, int64_t n);
// The activation type a weight of type t is multiplied with: Q8A blocks for quantized weights, F32 for
// F32/F16/BF16 weights.
enum class ActKind { F32, Q8A };
ActKind act_kind(DType weight_type);
// Bytes needed for one activation row of n elements in the format act_kind(t) demands.
size_t act_row_bytes(DType weight_type, int64_t n);
void quantize_act_ref(const float* x, BlockQ8A* y, int64_t n);  // n multiple of 32
// g[i] = silu(g[i]) * u[i] = g[i] / (1 + e^-g[i]) * u[i]: the SwiGLU gate of the FFN.
void swiglu_ref(float* g, const float* u, int64_t n);
// Dot product of one weight row (type t) with one activation row (float* or BlockQ8A*, see act_kind).
float vec_dot_ref(DType t, const void* w, const void* act, int64_t n);

// ---- dispatched kernels ----------------------------------------------------------------------------
enum class Isa { Ref = 0, Avx2 = 1, Avx512 = 2 };

using QuantizeActFn = void (*)(const float* x, BlockQ8A* y, int64_t n);
using DotFn = float (*)(const void* w, const void* act, int64_t n);
using SwigluFn = void (*)(float* g, const float* u, int64_t n);
// Computes out[r * out_stride + c] = dot(W row r, act row c) for r < nr, c < nc.
// W rows are w_stride bytes apart, activation rows act_stride bytes apart. Lets a kernel reuse each
// decoded weight block across several activation rows (prefill) or rows across one activation (decode).
using GemmFn = void (*)(int64_t n, const void* w, size_t w_stride, const void* act, size_t act_stride,
                        float* out, size_t out_stride, int nr, int nc);

// ---- training kernels (f32) -----------------------------------------------------------------------------
// One register tile of a matrix product over packed panels (tensor/gemm.h packs them): for i < mr, j < nr,
//   c[i * ldc + j] (+)= sum over k < kc of a[k * mr + i] * b[k * nr + j],
// adding to c when `accumulate`, overwriting it otherwise. Sums run over k in order, so a product does not
// depend on how the tiles are shared between threads.
using SgemmTileFn = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate);
struct SgemmKernel {
    int mr = 0, nr = 0;
    SgemmTileFn tile = nullptr;
};
// The same tile with bfloat16 inputs and float sums (AVX512-BF16's dot products of pairs): a holds kc2 steps
// of mr pairs (a[k][i] = the bf16 values of op(A) at row i, columns 2k and 2k + 1, in one 32-bit word), b
// holds kc2 steps of nr pairs (rows 2k and 2k + 1 of column j side by side).
using SgemmBf16TileFn = void (*)(int64_t kc2, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc,
                                 bool accumulate);
// Packs `lanes` rows of op(A) or columns of op(B) over kc steps of K into micro-panels of r lanes, kc2 =
// ceil(kc / 2) pairs deep: out[(p * kc2 + k2) * r + l] = bf16(x(p r + l, 2 k2)) | bf16(x(p r + l, 2 k2 + 1)) << 16
// with x(l, k) = src[l * lane_stride + k * k_stride], rounded to nearest even; lanes past `lanes` (in the last
// panel) and the odd step past kc are zero. One call packs a whole block, so the source is read in its order.
using PackBf16Fn = void (*)(const float* src, int64_t lane_stride, int64_t k_stride, int lanes, int r, int64_t kc,
                            uint32_t* out);
void pack_bf16_pairs_ref(const float* src, int64_t lane_stride, int64_t k_stride, int lanes, int r, int64_t kc,
                         uint32_t* out);
struct SgemmBf16Kernel {
    int mr = 0, nr = 0;
    SgemmBf16TileFn tile = nullptr;  // null: the instruction set has no bf16 dot products
    PackBf16Fn pack = nullptr;
};
// y[i] = e^(x[i] * scale - shift) for i < n; returns the sum of the y[i] (in float, lane by lane, then the
// lanes added). Softmax rows (the vocabulary's in the loss, attention's in the backward pass) are built on it.
using ExpShiftSumFn = float (*)(const float* x, float scale, float shift, float* y, int64_t n);
// SwiGLU's backward: with h = silu(g) * u and dh the gradient of h, dg = dh * u * silu'(g) and du = dh * silu(g),
// where silu'(g) = s * (1 + g * (1 - s)), s = 1 / (1 + e^-g).
using SwigluBackwardFn = void (*)(const float* g, const float* u, const float* dh, float* dg, float* du, int64_t n);

// The rest of a training step's row work (lab/train), each beside its reference below:
// RMSNorm of one row: out = x * r * w with r = 1 / sqrt(mean(x^2) + eps) (the squares summed in double);
// returns r, which the backward pass keeps.
using RmsNormRowFn = float (*)(const float* x, const float* w, float* out, int64_t n, float eps);
// RMSNorm's backward for one row, given the forward's input x, its scale r and the gradient dy of its output:
// dx (+)= r * w * dy - x * r^3 * mean(w * dy * x) (the mean summed in double). The weight's gradient is
// norm_weight_grad's.
using RmsNormBackwardFn = void (*)(const float* x, float r, const float* w, const float* dy, float* dx, int64_t n,
                                   bool accumulate);
// acc[j] += sum over t < rows, in order, of dy[t ld + j] * x[t ld + j] * rstd[t] in double, for j < cols: the
// norm weight's gradient over a strip of columns (the caller splits the columns, so the sum's order, and its
// bits, do not depend on the thread count).
using NormWeightGradFn = void (*)(const float* x, const float* rstd, const float* dy, int64_t rows, int64_t ld,
                                  int64_t cols, double* acc);
// AdamW on n parameters: m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
// p = p * decay - step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps) (bias corrections folded into the scalars).
struct AdamWScalars {
    float b1, b2, eps, step_size, inv_sqrt_bc2, decay;
};
using AdamWFn = void (*)(float* p, const float* g, float* m, float* v, int64_t n, const AdamWScalars& s);
// Softmax's backward through one attention row: dp[j] = p[j] * (dp[j] - d) * scale for j < n, where d is the
// row's sum of p * dp (computed as dot(o, do)).
using SoftmaxBackwardFn = void (*)(const float* p, float* dp, float d, float scale, int64_t n);
// sum of a[i] * b[i] in float (lane by lane in the SIMD versions, then the lanes added).
using DotF32Fn = float (*)(const float* a, const float* b, int64_t n);
// The largest of x[0 .. n), n > 0; and x[i] *= c.
using MaxF32Fn = float (*)(const float* x, int64_t n);
using ScaleF32Fn = void (*)(float* x, float c, int64_t n);
// Rope on one head whose pairs are adjacent (x[2i], x[2i+1]), i < half: each pair rotated by the angle whose
// cosine and sine are cs[i] and sign * sn[i] (sign -1: the inverse rotation, rope's backward pass).
using RopePairsFn = void (*)(float* x, const float* cs, const float* sn, int64_t half, float sign);
// dst[i] = x[i] in half precision, rounded to nearest with ties to even as f32_to_f16 (a NaN stays a NaN),
// for i < n: the KV cache's writes, a few hundred values per token and layer.
using ToF16RowFn = void (*)(const float* x, f16_t* dst, int64_t n);

void sgemm_tile_ref(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate);
float exp_shift_sum_ref(const float* x, float scale, float shift, float* y, int64_t n);
void swiglu_backward_ref(const float* g, const float* u, const float* dh, float* dg, float* du, int64_t n);
float rms_norm_row_ref(const float* x, const float* w, float* out, int64_t n, float eps);
void rms_norm_backward_ref(const float* x, float r, const float* w, const float* dy, float* dx, int64_t n,
                           bool accumulate);
void norm_weight_grad_ref(const float* x, const float* rstd, const float* dy, int64_t rows, int64_t ld, int64_t cols,
                          double* acc);
void adamw_ref(float* p, const float* g, float* m, float* v, int64_t n, const AdamWScalars& s);
void softmax_backward_ref(const float* p, float* dp, float d, float scale, int64_t n);
float dot_f32_ref(const float* a, const float* b, int64_t n);
float max_f32_ref(const float* x, int64_t n);
void scale_f32_ref(float* x, float c, int64_t n);
void rope_pairs_ref(float* x, const float* cs, const float* sn, int64_t half, float sign);
void f32_to_f16_row_ref(const float* x, f16_t* dst, int64_t n);

constexpr int kMaxTypeId = 31;
struct KernelTable {
    Isa isa;
    const char* name;  // "ref", "avx2", "avx512"
    QuantizeActFn quantize_act;
    SwigluFn swiglu;
    SgemmKernel sgemm;
    SgemmBf16Kernel sgemm_bf16;
    ExpShiftSumFn exp_shift_sum;
    SwigluBackwardFn swiglu_backward;
    RmsNormRowFn rms_norm_row;
    RmsNormBackwardFn rms_norm_backward;
    NormWeightGradFn norm_weight_grad;
    AdamWFn adamw;
    SoftmaxBackwardFn softmax_backward;
    DotF32Fn dot_f32;
    MaxF32Fn max_f32;
    ScaleF32Fn scale_f32;
    RopePairsFn rope_pairs;
    ToF16RowFn f32_to_f16_row;
    DotFn dot[kMaxTypeId];    // indexed by DType id; nullptr where unsupported
    GemmFn gemm[kMaxTypeId];  // indexed by DType id; nullptr where unsupported
    // The same products written transposed, out[c * out_stride + r]: a batch's [tokens][rows] outputs without a
    // scatter through a tile. nullptr where the table has no such kernel (the caller transposes gemm's).
    GemmFn gemm_t[kMaxTypeId];
};

// Best table this CPU supports; HEARTH_ISA=ref|avx2|avx512 in the environment forces one (clamped to what
// the CPU can run, with a warning on stderr).
const KernelTable& active();
// Table for a specific ISA, or nullptr if the CPU cannot run it.
const KernelTable* table_for(Isa isa);
bool cpu_supports(Isa isa);

// Per-ISA table builders (kernels/ref.cpp, kernels/avx2.cpp, kernels/avx512.cpp).
const KernelTable& ref_table();
const KernelTable& avx2_table();
const KernelTable& avx512_table();

}  // namespace hearth::kernels
