// The transformer's layer operations on rows of floats, named once and used by both the inference forward pass
// (model/forward.cpp, the decoder Context) and the training forward and backward passes (lab/train), so that
// the two compute the same model with the same rounding. Matrix products and attention have their own kernels
// (tensor/kernels.h, tensor/gemm.h, model/attention.h).
#pragma once
#include <cmath>
#include <cstdint>

#include "model/model.h"
#include "tensor/kernels.h"

namespace hearth::ops {

// 1 / sqrt(mean(v(i)^2) + eps) over i < n, summed in double: RMSNorm's scale of a row whose elements v(i)
// yields (a row in memory, or a residual sum computed on the fly).
template <class ValueAt>
inline float rms_inv(ValueAt v, int64_t n, float eps) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        const float x = v(i);
        sum += static_cast<double>(x) * x;
    }
    return 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(n)) + eps);
}
inline float rms_inv(const float* x, int64_t n, float eps) {
    return rms_inv([x](int64_t i) { return x[i]; }, n, eps);
}
// out = x * rms_inv(x) * w; returns the scale (the backward pass keeps it).
inline float rms_norm(const float* x, const float* w, float* out, int64_t n, float eps) {
    const float r = rms_inv(x, n, eps);
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] * r * w[i];
    return r;
}

// What rope needs to know of the model (hparams and the optional per-dimension divisors).
struct RopeSpec {
    RopeType type = RopeType::Norm;
    int64_t rope_dim = 0;          // rotated dimensions per head
    float base = 10000.0f;
    float freq_scale = 1.0f;
    const float* factors = nullptr;  // rope_dim / 2 frequency divisors, or null
    float attn_factor = 1.0f;        // cos and sin are multiplied by it (longrope)
};
// cos / sin of the angles of position pos: theta_i = pos * freq_scale * base^(-2i/rope_dim) / factor_i for
// i < rope_dim / 2, built by repeated multiplication in float as ggml does (so we round like the reference).
void rope_angles(const RopeSpec& rope, int32_t pos, float* cos_out, float* sin_out);
// Rotates one head's first rope_dim values by the angles (pairs (2i, 2i+1) for Norm, (i, i + half) for Neox).
// inverse rotates by -theta: the rotation is orthogonal, so that is also its backward pass.
// Norm pairs go through k's rope_pairs kernel.
void rope_rotate(const kernels::KernelTable& k, float* x, const float* cs, const float* sn, const RopeSpec& rope,
                 bool inverse = false);

// g[i] = act(g[i]) * u[i] for i in [0, n): the gated FFN's activation (SiLU through the kernel table, or GELU
// with the tanh approximation as gemma's gelu_pytorch_tanh).
void gated_act(FfnAct act, const kernels::KernelTable& k, float* g, const float* u, int64_t n);

}  // namespace hearth::ops
