// Scalar references of the training kernels (tensor/kernels.h): the SIMD versions are tested against them.
#include <algorithm>
#include <cmath>

#include "tensor/dtype.h"
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

void pack_bf16_pairs_ref(const float* src, int64_t lane_stride, int64_t k_stride, int lanes, int r, int64_t kc,
                         uint32_t* out) {
    const int64_t kc2 = (kc + 1) / 2;
    const int panels = (lanes + r - 1) / r;
    for (int p = 0; p < panels; ++p)
        for (int64_t k2 = 0; k2 < kc2; ++k2)
            for (int l = 0; l < r; ++l) {
                const int lane = p * r + l;
                uint32_t v = 0;
                if (lane < lanes) {
                    const float* x = src + lane * lane_stride + 2 * k2 * k_stride;
                    v = f32_to_bf16(x[0]);
                    if (2 * k2 + 1 < kc) v |= static_cast<uint32_t>(f32_to_bf16(x[k_stride])) << 16;
                }
                out[(p * kc2 + k2) * r + l] = v;
            }
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

float rms_norm_row_ref(const float* x, const float* w, float* out, int64_t n, float eps) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
    const float r = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(n)) + eps);
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] * r * w[i];
    return r;
}

void rms_norm_backward_ref(const float* x, float r, const float* w, const float* dy, float* dx, int64_t n,
                           bool accumulate) {
    double dot = 0.0;
    for (int64_t i = 0; i < n; ++i) dot += static_cast<double>(w[i] * dy[i]) * x[i];
    const float c = static_cast<float>(dot / static_cast<double>(n)) * r * r * r;
    for (int64_t i = 0; i < n; ++i) {
        const float g = r * w[i] * dy[i] - x[i] * c;
        dx[i] = accumulate ? dx[i] + g : g;
    }
}

void norm_weight_grad_ref(const float* x, const float* rstd, const float* dy, int64_t rows, int64_t ld, int64_t cols,
                          double* acc) {
    for (int64_t t = 0; t < rows; ++t)
        for (int64_t j = 0; j < cols; ++j)
            acc[j] += static_cast<double>(dy[t * ld + j]) * x[t * ld + j] * rstd[t];
}

void adamw_ref(float* p, const float* g, float* m, float* v, int64_t n, const AdamWScalars& s) {
    for (int64_t i = 0; i < n; ++i) {
        m[i] = s.b1 * m[i] + (1.0f - s.b1) * g[i];
        v[i] = s.b2 * v[i] + (1.0f - s.b2) * g[i] * g[i];
        const float denom = std::sqrt(v[i]) * s.inv_sqrt_bc2 + s.eps;
        p[i] = p[i] * s.decay - s.step_size * m[i] / denom;
    }
}

void softmax_backward_ref(const float* p, float* dp, float d, float scale, int64_t n) {
    for (int64_t j = 0; j < n; ++j) dp[j] = p[j] * (dp[j] - d) * scale;
}

float dot_f32_ref(const float* a, const float* b, int64_t n) {
    float s = 0;
    for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

float max_f32_ref(const float* x, int64_t n) {
    float m = x[0];
    for (int64_t i = 1; i < n; ++i) m = std::max(m, x[i]);
    return m;
}

void scale_f32_ref(float* x, float c, int64_t n) {
    for (int64_t i = 0; i < n; ++i) x[i] *= c;
}

void rope_pairs_ref(float* x, const float* cs, const float* sn, int64_t half, float sign) {
    for (int64_t i = 0; i < half; ++i) {
        const float a = x[2 * i], b = x[2 * i + 1], s = sign * sn[i];
        x[2 * i] = a * cs[i] - b * s;
        x[2 * i + 1] = a * s + b * cs[i];
    }
}

}  // namespace hearth::kernels
