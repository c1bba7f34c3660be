// Perplexity with llama.cpp's method: non-overlapping windows of n_ctx tokens, the first token of each
// replaced by BOS, the second half of each window scored.
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
    std::vector<double> running_ppl;  // after each window
};

// tokens: the whole text, tokenized once (with BOS when the vocab adds it). Throws hearth::Error when the text
// has fewer than n_ctx tokens (no full window) or n_ctx is below 8.
// max_chunks > 0 scores only the first max_chunks windows (llama.cpp's --chunks).
PerplexityResult perplexity(Context& ctx, const std::vector<int32_t>& tokens, int n_ctx, int32_t bos, bool add_bos,
                            const std::function<void(int done, int total, double ppl)>& on_chunk = {},
                            int max_chunks = 0);

}  // namespace hearth
