// Needle in a haystack: a fact (the needle) is placed at several depths of a long filler text, the prompt ends
// with a question whose answer only the needle gives, and the model's answer is scored with the full KV cache
// and after KV eviction (model/kv_evict.h). Scored two ways, because small models retrieve weakly: whether
// greedy decoding reproduces the answer (a hit), and the answer's log-probability under teacher forcing,
// compared with the same prompt without the needle: the needle's gain (full - without) is the retrieval
// signal, and the share of it left after eviction is what eviction kept.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "model/forward.h"
#include "model/kv_evict.h"

namespace hearth {

struct NeedleSpec {
    std::vector<int32_t> prefix;    // before the haystack (BOS)
    std::vector<int32_t> haystack;  // filler tokens
    std::vector<size_t> boundaries;  // haystack indices where the needle may go (sentence ends); empty: any
    std::vector<int32_t> needle, question, answer;
    std::vector<double> depths;  // fractions of the haystack before the needle, in [0, 1]
};

struct NeedleDepth {
    double depth = 0;
    int32_t needle_pos = 0;     // position of the needle's first token
    int32_t prompt_tokens = 0;  // with the needle
    double logp_full = 0, logp_evicted = 0, logp_without = 0;  // of the whole answer, nats
    bool hit_full = false, hit_evicted = false;
    int32_t kept_cells = 0;  // per KV head after eviction
};

struct NeedleResult {
    std::vector<NeedleDepth> depths;
    double hits_full = 0, hits_evicted = 0;  // fractions of the depths
    // Sum over depths of (evicted - without) / sum of (full - without): 1 = eviction kept the needle's whole
    // effect, 0 = as if the needle were absent. NaN when the needle does not help at all with the full cache.
    double gain_kept = 0;
};

// Throws hearth::Error for an empty needle, question or answer, a depth outside [0, 1], or a prompt plus answer
// longer than the context.
NeedleResult needle_check(const Model& model, const ContextParams& cp, const NeedleSpec& spec,
                          const KvEvictParams& evict, const std::function<void(int done, int total)>& on_step = {});

}  // namespace hearth
