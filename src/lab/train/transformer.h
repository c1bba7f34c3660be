// The training forward and backward passes of a llama decoder over batches of token rows, written by hand (as
// llm.c does) on the layer operations the inference engine uses (model/layer_ops.h, the attention kernel) and
// the training matrix product (tensor/gemm.h). The forward keeps what the backward needs (or, with
// recomputation, only each layer's input, re-running the layer during the backward pass).
//
// A batch is `rows` rows of seq + 1 tokens: the first seq are the inputs at positions 0 .. seq-1, the last seq
// the targets. Losses are cross-entropies in nats. Every reduction runs in an order fixed by the shapes alone,
// so results are bit-identical for any thread count.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "lab/train/params.h"

namespace hearth::lab {

class Transformer {
public:
    // bf16: the layers' and the head's matrix products multiply in bfloat16 (sums, weights, optimiser and
    // everything else stay float) where the CPU has AVX512-BF16; elsewhere it has no effect.
    Transformer(const ParamLayout& layout, int n_threads, bool recompute = false, bool bf16 = false);
    ~Transformer();

    // Adds grad_scale * d(sum of the rows' token losses)/d(params) to grads; returns that sum of losses.
    double forward_backward(const float* params, const int32_t* tokens, int rows, int seq, float grad_scale,
                            float* grads);
    // The loss of every target (rows * seq, row-major) without a backward pass.
    void forward_losses(const float* params, const int32_t* tokens, int rows, int seq, float* losses);
    // The logits of every input position (rows * seq * n_vocab), for tests against the inference engine.
    void forward_logits(const float* params, const int32_t* tokens, int rows, int seq, float* logits);

    int n_threads() const { return n_threads_; }
    // Where the time went since the last reset: the matrix products of the layers and the head (their FLOPs
    // counted as 2 m n k), attention (forward kernel and backward), and everything in all.
    struct Profile {
        double gemm_s = 0, gemm_flop = 0, attention_s = 0, total_s = 0;
    };
    const Profile& profile() const;
    void reset_profile();
    // Bytes of activations and scratch the last call allocated.
    size_t scratch_bytes() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    int n_threads_;
};

}  // namespace hearth::lab
