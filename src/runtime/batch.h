// A forward-pass batch: any mix of sequences, each entry one token at one position. Prefill, decode,
// continuous batching and speculative verification are all just batches.
#pragma once
#include <cstdint>
#include <vector>

namespace hearth {

struct BatchEntry {
    int32_t token = 0;
    int32_t pos = 0;
    int32_t seq = 0;
    bool logits = false;  // return the logits computed at this entry
};

struct Batch {
    std::vector<BatchEntry> entries;
    void add(int32_t token, int32_t pos, int32_t seq, bool logits) { entries.push_back({token, pos, seq, logits}); }
    void clear() { entries.clear(); }
    size_t size() const { return entries.size(); }
    int n_logits() const {
        int n = 0;
        for (const auto& e : entries) n += e.logits;
        return n;
    }
};

}  // namespace hearth
