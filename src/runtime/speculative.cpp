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

}  // namespace hearth
