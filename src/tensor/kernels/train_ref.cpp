// Scalar references of the training kernels (tensor/kernels.h): the SIMD versions are tested against them.
#include <cmath>

#include "tensor/kernels.h"
#include "tensor/kernels/train.h"

namespace hearth::kernels {

void sgemm_tile_ref(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
    constexpr int MR = kSgemmRefMr, NR = kSgemmRefNr;
    float acc[MR][NR] = {};
    for (int64_t k = 0; k < kc; ++k)
        for (int i = 0; i < MR; ++i)
            for (int j = 0; j < NR; ++j) acc[i][j] += a[k * MR + i] * b[k * NR + j];
    for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}

float exp_shift_sum_ref(const float* x, float scale, float shift, float* y, int64_t n) {
    float sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += y[i] = std::exp(x[i] * scale - shift);
    return sum;
}

void swiglu_backward_ref(const float* g, const float* u, const float* dh, float* dg, float* du, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float s = 1.0f / (1.0f + std::exp(-g[i]));
        const float silu = g[i] * s;
        du[i] = dh[i] * silu;
        dg[i] = dh[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
    }
}

}  // namespace hearth::kernels
