#include "lab/perplexity.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"

namespace hearth {

namespace {

// Logits of positions [first, n_ctx - 1) of one window, fed `step` tokens per pass.
std::vector<float> window_logits(Context& ctx, const std::vector<int32_t>& tokens, size_t start, int n_ctx,
                                 int first, int step, int32_t bos, bool add_bos) {
    const int64_t n_vocab = ctx.model().hp.n_vocab;
    ctx.kv().clear();
    std::vector<float> out;
    out.reserve(static_cast<size_t>(n_ctx - 1 - first) * n_vocab);
    for (int i0 = 0; i0 < n_ctx; i0 += step) {
        Batch b;
        const int i1 = std::min(n_ctx, i0 + step);
        for (int i = i0; i < i1; ++i) {
            int32_t t = tokens[start + i];
            if (i == 0 && add_bos) t = bos;
            b.add(t, i, 0, i >= first && i < n_ctx - 1);
        }
        const std::vector<float>& logits = ctx.decode(b);
        out.insert(out.end(), logits.begin(), logits.end());
    }
    return out;
}

// log-softmax of one row, in doubles.
void log_softmax(const float* l, int64_t n, std::vector<double>& out) {
    out.resize(static_cast<size_t>(n));
    float mx = l[0];
    for (int64_t v = 1; v < n; ++v) mx = std::max(mx, l[v]);
    double sum = 0;
    for (int64_t v = 0; v < n; ++v) sum += std::exp(static_cast<double>(l[v] - mx));
    const double lse = std::log(sum) + mx;
    for (int64_t v = 0; v < n; ++v) out[v] = static_cast<double>(l[v]) - lse;
}

}  // namespace

PerplexityResult perplexity(Context& ctx, const std::vector<int32_t>& tokens, int n_ctx, int32_t bos, bool add_bos,
                            const PerplexityOptions& opt) {
    if (n_ctx < 8) fail("perplexity: context {} is too small (at least 8)", n_ctx);
    if (n_ctx > ctx.n_ctx()) fail("perplexity: context {} exceeds the engine's context {}", n_ctx, ctx.n_ctx());
    if (opt.base && n_ctx > opt.base->n_ctx())
        fail("perplexity: context {} exceeds the base engine's context {}", n_ctx, opt.base->n_ctx());
    if (opt.base && &opt.base->model() != &ctx.model()) fail("perplexity: the base context must run the same model");
    if (opt.step < 0) fail("perplexity: the step must not be negative (got {})", opt.step);
    int n_chunks = static_cast<int>(tokens.size() / static_cast<size_t>(n_ctx));
    if (opt.max_chunks > 0) n_chunks = std::min(n_chunks, opt.max_chunks);
    if (n_chunks == 0)
        fail("perplexity: the text has {} tokens, fewer than one window of {}", tokens.size(), n_ctx);
    const int64_t n_vocab = ctx.model().hp.n_vocab;
    const int first = n_ctx / 2;
    const int step = opt.step > 0 ? std::min(opt.step, n_ctx) : n_ctx;
    PerplexityResult r;
    r.step = step;
    double nll_sum = 0, base_nll_sum = 0, kl_sum = 0;
    int agree = 0;
    std::vector<double> lp, base_lp;
    for (int c = 0; c < n_chunks; ++c) {
        const size_t start = static_cast<size_t>(c) * n_ctx;
        const std::vector<float> logits = window_logits(ctx, tokens, start, n_ctx, first, step, bos, add_bos);
        std::vector<float> base_logits;
        if (opt.base) base_logits = window_logits(*opt.base, tokens, start, n_ctx, first, step, bos, add_bos);
        for (int i = first; i < n_ctx - 1; ++i) {
            const size_t row = static_cast<size_t>(i - first) * n_vocab;
            log_softmax(logits.data() + row, n_vocab, lp);
            const int32_t next = tokens[start + i + 1];
            nll_sum -= lp[next];
            ++r.scored_tokens;
            if (!opt.base) continue;
            log_softmax(base_logits.data() + row, n_vocab, base_lp);
            base_nll_sum -= base_lp[next];
            double kl = 0;
            for (int64_t v = 0; v < n_vocab; ++v) kl += std::exp(base_lp[v]) * (base_lp[v] - lp[v]);
            kl = std::max(kl, 0.0);
            kl_sum += kl;
            r.kl_max = std::max(r.kl_max, kl);
            agree += std::max_element(lp.begin(), lp.end()) - lp.begin() ==
                     std::max_element(base_lp.begin(), base_lp.end()) - base_lp.begin();
        }
        r.running_ppl.push_back(std::exp(nll_sum / r.scored_tokens));
        if (opt.on_chunk) opt.on_chunk(c + 1, n_chunks, r.running_ppl.back());
    }
    r.chunks = n_chunks;
    r.nll_mean = nll_sum / r.scored_tokens;
    r.ppl = std::exp(r.nll_mean);
    if (opt.base) {
        r.base_ppl = std::exp(base_nll_sum / r.scored_tokens);
        r.kl_mean = kl_sum / r.scored_tokens;
        r.top1_agree = static_cast<double>(agree) / r.scored_tokens;
    }
    return r;
}

}  // namespace hearth
