#include "runtime/speculative.h"

#include <algorithm>

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

}  // namespace hearth
