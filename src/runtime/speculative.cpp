#include "runtime/speculative.h"

#include <algorithm>

#include "base/error.h"

namespace hearth {

std::vector<int32_t> lookup_draft(const std::vector<int32_t>& history, size_t max_draft, size_t max_ngram) {
    const size_t len = history.size();
    if (max_draft == 0 || len < 2) return {};
    for (size_t n = std::min(max_ngram, len - 1); n >= 1; --n) {
        const auto suffix = history.end() - static_cast<std::ptrdiff_t>(n);
        // Latest first: recent text predicts the next tokens best (a list being continued, a repeated phrase).
        for (size_t start = len - n; start-- > 0;) {
            if (!std::equal(suffix, history.end(), history.begin() + static_cast<std::ptrdiff_t>(start))) continue;
            const size_t from = start + n, take = std::min(max_draft, len - from);
            return {history.begin() + static_cast<std::ptrdiff_t>(from),
                    history.begin() + static_cast<std::ptrdiff_t>(from + take)};
        }
    }
    return {};
}

namespace {
double prob_of(const TokenDist& d, int32_t tok) {
    auto it = std::lower_bound(d.begin(), d.end(), tok, [](const std::pair<int32_t, double>& e, int32_t t) { return e.first < t; });
    return it != d.end() && it->first == tok ? it->second : 0.0;
}
}  // namespace

int32_t speculative_verify(const TokenDist& p, const TokenDist& q, int32_t draft, Sampler& sampler, bool& accepted) {
    const double pd = prob_of(p, draft), qd = prob_of(q, draft);
    accepted = qd > 0.0 && sampler.uniform() * qd < pd;
    if (accepted) return draft;
    TokenDist residual;
    residual.reserve(p.size());
    for (const auto& [tok, pt] : p) residual.emplace_back(tok, std::max(0.0, pt - prob_of(q, tok)));
    double total = 0.0;
    for (const auto& e : residual) total += e.second;
    // p <= q everywhere only through rounding (both sum to 1): then p itself is the distribution left.
    return sampler.draw_from(total > 1e-12 ? residual : p);
}

VerifiedToken verify_position(const float* logits, int32_t n_vocab, Sampler& sampler, grammar::GrammarMatcher* matcher,
                              const std::vector<int32_t>& stop_tokens, const int32_t* draft, const TokenDist* q,
                              int64_t n_generated, std::vector<float>& masked) {
    const float* lg = logits;
    if (matcher) {
        masked.assign(logits, logits + n_vocab);
        if (!matcher->apply(masked.data(), n_vocab, stop_tokens))
            fail("the grammar allows no token after {} generated tokens", n_generated);
        lg = masked.data();
    }
    VerifiedToken v;
    if (draft && q) {
        TokenDist p;
        sampler.distribution(lg, n_vocab, p);
        bool accepted = false;
        v.token = speculative_verify(p, *q, *draft, sampler, accepted);
        v.rejected = !accepted;
    } else {
        v.token = sampler.sample(lg, n_vocab);
        v.rejected = draft && *draft != v.token;
    }
    v.stop = std::find(stop_tokens.begin(), stop_tokens.end(), v.token) != stop_tokens.end();
    if (matcher && !v.stop && !matcher->accept_token(v.token))
        fail("internal error: token {} was sampled but the grammar forbids it", v.token);
    sampler.accept(v.token);
    return v;
}

}  // namespace hearth
