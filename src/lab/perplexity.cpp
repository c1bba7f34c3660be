#include "lab/perplexity.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"

namespace hearth {

PerplexityResult perplexity(Context& ctx, const std::vector<int32_t>& tokens, int n_ctx, int32_t bos, bool add_bos,
                            const std::function<void(int, int, double)>& on_chunk, int max_chunks) {
    if (n_ctx < 8) fail("perplexity: context {} is too small (at least 8)", n_ctx);
    if (n_ctx > ctx.n_ctx()) fail("perplexity: context {} exceeds the engine's context {}", n_ctx, ctx.n_ctx());
    int n_chunks = static_cast<int>(tokens.size() / static_cast<size_t>(n_ctx));
    if (max_chunks > 0) n_chunks = std::min(n_chunks, max_chunks);
    if (n_chunks == 0)
        fail("perplexity: the text has {} tokens, fewer than one window of {}", tokens.size(), n_ctx);
    const int64_t n_vocab = ctx.model().hp.n_vocab;
    const int first = n_ctx / 2;
    PerplexityResult r;
    double nll_sum = 0;
    for (int c = 0; c < n_chunks; ++c) {
        const size_t start = static_cast<size_t>(c) * n_ctx;
        ctx.kv().clear();
        Batch b;
        for (int i = 0; i < n_ctx; ++i) {
            int32_t t = tokens[start + i];
            if (i == 0 && add_bos) t = bos;
            b.add(t, i, 0, i >= first && i < n_ctx - 1);
        }
        const std::vector<float>& logits = ctx.decode(b);
        for (int i = first; i < n_ctx - 1; ++i) {
            const float* l = logits.data() + static_cast<size_t>(i - first) * n_vocab;
            float mx = l[0];
            for (int64_t v = 1; v < n_vocab; ++v) mx = std::max(mx, l[v]);
            double sum = 0;
            for (int64_t v = 0; v < n_vocab; ++v) sum += std::exp(static_cast<double>(l[v] - mx));
            const int32_t next = tokens[start + i + 1];
            nll_sum += std::log(sum) - static_cast<double>(l[next] - mx);
            ++r.scored_tokens;
        }
        r.running_ppl.push_back(std::exp(nll_sum / r.scored_tokens));
        if (on_chunk) on_chunk(c + 1, n_chunks, r.running_ppl.back());
    }
    r.chunks = n_chunks;
    r.nll_mean = nll_sum / r.scored_tokens;
    r.ppl = std::exp(r.nll_mean);
    return r;
}

}  // namespace hearth
