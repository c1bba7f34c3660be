// AdamW with decoupled weight decay and bias correction (Loshchilov & Hutter; torch.optim.AdamW's update), a
// linear warm-up then cosine learning-rate schedule, and gradient clipping by global norm
// (torch.nn.utils.clip_grad_norm_'s rule). Elementwise over the parameter buffer; the global norm is summed in
// fixed chunks so it does not depend on the thread count.
#pragma once
#include <cstdint>

#include "lab/train/params.h"

namespace hearth::lab {

struct AdamWConfig {
    float lr = 1e-3f;
    float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
    float weight_decay = 0.1f;  // on matrices and embeddings only (ParamTensor::decay)
};

struct Schedule {
    float lr = 1e-3f;
    int64_t warmup = 0;           // steps of linear warm-up: lr * (step + 1) / warmup
    int64_t total = 1;            // steps in the run: the cosine reaches min_lr at the end
    float min_lr_ratio = 0.1f;    // min_lr = lr * min_lr_ratio
    // Learning rate of step `step` (0-based).
    float at(int64_t step) const;
};

// Sets the gradients to zero (before a step's first accumulation), on the team.
void zero_grads(float* grads, size_t n, int n_threads);
// sqrt(sum of squares) over the whole buffer.
double global_norm(const float* grads, size_t n, int n_threads);
// Multiplies the gradients by min(1, max_norm / (norm + 1e-6)) when max_norm > 0; returns the factor.
float clip_by_global_norm(float* grads, size_t n, double norm, float max_norm, int n_threads);

// One AdamW step (`step` counts from 1 for the bias corrections) on every tensor of the layout:
// p -= lr * wd * p (decaying tensors), m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
// p -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps).
void adamw_step(const ParamLayout& layout, const AdamWConfig& cfg, float lr, int64_t step, float* params,
                const float* grads, float* m, float* v, int n_threads);

}  // namespace hearth::lab
