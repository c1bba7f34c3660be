#include "model/layer_ops.h"

namespace hearth::ops {

void rope_angles(const RopeSpec& rope, int32_t pos, float* cos_out, float* sin_out) {
    const int64_t half = rope.rope_dim / 2;
    const float theta_scale = std::pow(rope.base, -2.0f / static_cast<float>(rope.rope_dim));
    float theta = static_cast<float>(pos);
    for (int64_t i = 0; i < half; ++i) {
        const float th = rope.freq_scale * theta / (rope.factors ? rope.factors[i] : 1.0f);
        cos_out[i] = std::cos(th) * rope.attn_factor;
        sin_out[i] = std::sin(th) * rope.attn_factor;
        theta *= theta_scale;
    }
}

void rope_rotate(const kernels::KernelTable& k, float* x, const float* cs, const float* sn, const RopeSpec& rope,
                 bool inverse) {
    const int64_t half = rope.rope_dim / 2;
    const float sign = inverse ? -1.0f : 1.0f;
    if (rope.type == RopeType::Norm) {
        k.rope_pairs(x, cs, sn, half, sign);
    } else {
        for (int64_t i = 0; i < half; ++i) {
            const float a = x[i], b = x[i + half], s = sign * sn[i];
            x[i] = a * cs[i] - b * s;
            x[i + half] = a * s + b * cs[i];
        }
    }
}

void gated_act(FfnAct act, const kernels::KernelTable& k, float* g, const float* u, int64_t n) {
    if (n <= 0) return;
    if (act == FfnAct::Silu) {
        k.swiglu(g, u, n);
        return;
    }
    constexpr float kSqrt2OverPi = 0.7978845608028654f;
    for (int64_t i = 0; i < n; ++i) {
        const float x = g[i];
        g[i] = 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + 0.044715f * x * x))) * u[i];
    }
}

}  // namespace hearth::ops
