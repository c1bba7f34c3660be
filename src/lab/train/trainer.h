// `hearth train`: the loop around the Transformer. Batches from the corpus, gradient accumulation, clipping,
// AdamW on the schedule, periodic validation, crash-safe checkpoints that resume bit-identically, the metrics
// log and the loss chart, data-parallel ranks over MPI, and a clean stop on SIGINT / SIGTERM (a checkpoint,
// then an exit the caller reports).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace hearth::lab {

struct TrainOptions {
    std::string model;      // a shape name or "embd=..,layers=..,..." (synth's syntax), or a llama GGUF to continue
    std::string tokenizer;  // vocab GGUF (`hearth tokenizer train`)
    std::string data;       // corpus folder (`hearth data man`)
    std::string output;     // the trained model, a GGUF
    int64_t tokens = 0;     // train on about this many tokens ...
    double minutes = 0;     // ... or for about this long (the step count is fixed from a timed step first)
    int batch = 16, seq = 256, accum = 1;
    float lr = 1e-3f, min_lr_ratio = 0.1f, weight_decay = 0.1f, clip = 1.0f;
    float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
    int64_t warmup = -1;  // steps; -1: 5 % of the run (at least 1)
    float init_std = 0.02f;
    uint64_t seed = 0;
    int threads = 0;  // per rank; 0: every core
    bool recompute = false;
    bool bf16 = false;  // bfloat16 matrix products (AVX512-BF16), float master weights and optimiser
    int64_t eval_every = 0;       // steps between validations; 0: 20 per run
    int64_t eval_windows = 32;    // validation windows each time, spread over the split (0: the whole split)
    int64_t final_eval_windows = 0;  // the same for the validation after the last step
    int64_t checkpoint_every = 0; // steps between checkpoints; 0: at every validation
    std::string checkpoint_dir;   // default: the output's name with .ckpt
    std::string resume;           // a checkpoint file, or a checkpoint folder (its newest)
    DType out_type = DType::F32;
    int64_t stop_after = 0;       // tests: stop (as if interrupted) after this many steps of this process
};

struct StepInfo {
    int64_t step = 0, total = 0;  // steps done, of total
    double loss = 0, lr = 0, grad_norm = 0;
    double tokens_per_s = 0, elapsed_s = 0, eta_s = 0;
    bool has_val = false;
    double val_loss = 0;
};

struct TrainReport {
    std::string output, checkpoint, log, chart;
    int64_t steps = 0, total_steps = 0, tokens = 0, n_params = 0;
    int64_t train_tokens_available = 0, val_tokens_available = 0;
    double seconds = 0, tokens_per_s = 0, flops_per_token = 0, gflops_per_s = 0;
    double train_loss = 0;                  // mean of the last 10 steps' losses
    double val_loss = 0, val_ppl = 0;       // the final evaluation (eval_windows windows... or the whole split)
    int64_t val_windows = 0;
    bool interrupted = false;
    int ranks = 1, threads = 1;
    bool bf16 = false;  // the products ran in bfloat16
    std::vector<double> losses;                  // per step
    std::vector<std::pair<int64_t, double>> val;  // (step, loss)
};

// Trains; throws hearth::Error naming the problem (bad data, shape, checkpoint, a non-finite loss, a failed
// checkpoint write: the last good checkpoint is kept and named).
TrainReport train(const TrainOptions& opt, const std::function<void(const StepInfo&)>& on_step = {});

// Training FLOPs per token of a shape at a sequence length, the PaLM paper's (appendix B) and nanoGPT's
// estimate: 6 per weight of every matrix the tokens pass through (the output projection included, the
// embedding lookup not) plus attention's 12 * layers * q_dim * seq (scores and weighted sum, forward and
// backward, counted over the whole window as those estimates do, though causal attention needs half).
double train_flops_per_token(int64_t n_matmul_params, int64_t n_layer, int64_t q_dim, int seq);

}  // namespace hearth::lab
