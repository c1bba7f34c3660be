// Perplexity with llama.cpp's method: non-overlapping windows of n_ctx tokens, the first token of each
// replaced by BOS, the second half of each window scored. Optionally against a base context (another KV cache
// type over the same model): the KL divergence of its next-token distributions from the base's, as
// llama.cpp's --kl-divergence reports it.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/forward.h"

namespace hearth {

struct PerplexityResult {
    double ppl = 0;
    double nll_mean = 0;
    int chunks = 0;
    int scored_tokens = 0;
    int step = 0;                     // tokens per forward pass within a window
    std::vector<double> running_ppl;  // after each window
    // With a base context:
    double base_ppl = 0;
    double kl_mean = 0;       // mean over scored tokens of KL(base || this), in nats
    double kl_max = 0;
    double top1_agree = 0;    // fraction of scored tokens whose most likely next token is the base's
};

struct PerplexityOptions {
    int max_chunks = 0;  // > 0: score only the first max_chunks windows (llama.cpp's --chunks)
    // Tokens per forward pass within a window; 0: the whole window at once. A compressed KV cache quantizes a
    // block once later positions follow it, at the start of a pass (runtime/kv_cache.h): feeding a window in
    // block-sized steps makes each token see the cache a decoding model would, where one pass would read
    // everything in f16.
    int step = 0;
    Context* base = nullptr;  // compare with this context (fed the same way)
    std::function<void(int done, int total, double ppl)> on_chunk;
};

// tokens: the whole text, tokenized once (with BOS when the vocab adds it). Throws hearth::Error when the text
// has fewer than n_ctx tokens (no full window) or n_ctx is below 8.
PerplexityResult perplexity(Context& ctx, const std::vector<int32_t>& tokens, int n_ctx, int32_t bos, bool add_bos,
                            const PerplexityOptions& opt = {});

}  // namespace hearth
