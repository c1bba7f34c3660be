// The training kernels of each instruction set (train_ref.cpp, train_avx2.cpp, train_avx512.cpp), declared for
// the kernel tables; callers go through kernels::active() (tensor/kernels.h).
#pragma once
#include <cstdint>

#include "tensor/kernels.h"

namespace hearth::kernels {

// Register tiles: 4 x 8 (reference), 6 x 16 (AVX2: 12 of 16 ymm registers accumulate), 12 x 32 (AVX-512: 24
// of 32 zmm registers accumulate, two hold the B row, the A values are broadcast from memory).
constexpr int kSgemmRefMr = 4, kSgemmRefNr = 8;
constexpr int kSgemmAvx2Mr = 6, kSgemmAvx2Nr = 16;
constexpr int kSgemmAvx512Mr = 12, kSgemmAvx512Nr = 32;

// Every training row kernel of a table (exp_shift_sum .. rope_pairs) set to its reference (the tables are
// built at compile time).
constexpr void set_reference_train_rows(KernelTable& t) {
    t.exp_shift_sum = exp_shift_sum_ref;
    t.swiglu_backward = swiglu_backward_ref;
    t.rms_norm_row = rms_norm_row_ref;
    t.rms_norm_backward = rms_norm_backward_ref;
    t.norm_weight_grad = norm_weight_grad_ref;
    t.adamw = adamw_ref;
    t.softmax_backward = softmax_backward_ref;
    t.dot_f32 = dot_f32_ref;
    t.max_f32 = max_f32_ref;
    t.scale_f32 = scale_f32_ref;
    t.rope_pairs = rope_pairs_ref;
}

void sgemm_tile_avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate);
void sgemm_tile_avx512(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate);
void pack_bf16_pairs_avx512(const float* src, int64_t lane_stride, int64_t k_stride, int lanes, int r, int64_t kc,
                            uint32_t* out);
void sgemm_bf16_tile_avx512(int64_t kc2, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, bool accumulate);
float exp_shift_sum_avx512(const float* x, float scale, float shift, float* y, int64_t n);
void swiglu_backward_avx512(const float* g, const float* u, const float* dh, float* dg, float* du, int64_t n);
float rms_norm_row_avx512(const float* x, const float* w, float* out, int64_t n, float eps);
void rms_norm_backward_avx512(const float* x, float r, const float* w, const float* dy, float* dx, int64_t n,
                              bool accumulate);
void norm_weight_grad_avx512(const float* x, const float* rstd, const float* dy, int64_t rows, int64_t ld,
                             int64_t cols, double* acc);
void adamw_avx512(float* p, const float* g, float* m, float* v, int64_t n, const AdamWScalars& s);
void softmax_backward_avx512(const float* p, float* dp, float d, float scale, int64_t n);
float dot_f32_avx512(const float* a, const float* b, int64_t n);
float max_f32_avx512(const float* x, int64_t n);
void scale_f32_avx512(float* x, float c, int64_t n);
void rope_pairs_avx512(float* x, const float* cs, const float* sn, int64_t half, float sign);

}  // namespace hearth::kernels
