#include "lab/train/optim.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/kernels.h"

namespace hearth::lab {

// Elementwise loops shorter than this run on one thread (waking the team would cost more).
constexpr size_t kParallelMin = 1 << 16;

float Schedule::at(int64_t step) const {
    if (step < warmup) return lr * static_cast<float>(step + 1) / static_cast<float>(warmup);
    const double progress =
        static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
    const double p = std::min(1.0, progress);
    const double min_lr = static_cast<double>(lr) * min_lr_ratio;
    return static_cast<float>(min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(M_PI * p)));
}

void zero_grads(float* grads, size_t n, int n_threads) {
    constexpr size_t kChunk = 1 << 16;
    const size_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for num_threads(n_threads) schedule(static) if (chunks > 4)
    for (size_t c = 0; c < chunks; ++c) std::fill(grads + c * kChunk, grads + std::min(n, (c + 1) * kChunk), 0.0f);
}

double global_norm(const float* grads, size_t n, int n_threads) {
    constexpr size_t kChunk = 1 << 14;
    const size_t chunks = (n + kChunk - 1) / kChunk;
    std::vector<double> part(chunks);
#pragma omp parallel for num_threads(n_threads) schedule(static) if (chunks > 4)
    for (size_t c = 0; c < chunks; ++c) {
        double s = 0;
        for (size_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) s += static_cast<double>(grads[i]) * grads[i];
        part[c] = s;
    }
    double total = 0;
    for (double s : part) total += s;
    return std::sqrt(total);
}

float clip_by_global_norm(float* grads, size_t n, double norm, float max_norm, int n_threads) {
    if (max_norm <= 0) return 1.0f;
    const double coef = static_cast<double>(max_norm) / (norm + 1e-6);
    if (coef >= 1.0) return 1.0f;
    const float c = static_cast<float>(coef);
#pragma omp parallel for num_threads(n_threads) schedule(static) if (n > kParallelMin)
    for (size_t i = 0; i < n; ++i) grads[i] *= c;
    return c;
}

void adamw_step(const ParamLayout& layout, const AdamWConfig& cfg, float lr, int64_t step, float* params,
                const float* grads, float* m, float* v, int n_threads) {
    const double bc1 = 1.0 - std::pow(static_cast<double>(cfg.beta1), static_cast<double>(step));
    const double bc2 = 1.0 - std::pow(static_cast<double>(cfg.beta2), static_cast<double>(step));
    const float step_size = static_cast<float>(lr / bc1);
    const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
    const kernels::AdamWFn adamw = kernels::active().adamw;
    for (const ParamTensor& t : layout.tensors()) {
        const kernels::AdamWScalars s{cfg.beta1, cfg.beta2, cfg.eps, step_size, inv_sqrt_bc2,
                                      t.decay ? 1.0f - lr * cfg.weight_decay : 1.0f};
        const int64_t n = t.size();
        // Chunks of whole cache lines, as many as the threads (any split gives the same bits: elementwise).
        constexpr int64_t kChunk = 4096;
        const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for num_threads(n_threads) schedule(static) if (n > static_cast<int64_t>(kParallelMin))
        for (int64_t c = 0; c < chunks; ++c) {
            const int64_t i = c * kChunk, len = std::min(kChunk, n - i);
            adamw(params + t.offset + i, grads + t.offset + i, m + t.offset + i, v + t.offset + i, len, s);
        }
    }
}

}  // namespace hearth::lab
