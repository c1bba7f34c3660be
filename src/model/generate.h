// Generation of one sequence: the prompt, then tokens sampled one forward pass at a time, or several per pass
// with speculative decoding (a draft from prompt lookup or from a draft model, verified in one batched pass),
// under an optional grammar, with optional KV eviction after the prompt. `hearth run` is this loop plus
// printing; the server's scheduler batches many sequences its own way.
//
// Verification: the logits of the pass's rows are taken in order. For a deterministic draft (prompt lookup,
// greedy drafts) the target samples each row exactly as without speculation and a draft token stands only
// while it equals the sampled one (runtime/speculative.h says why that is exact). For drafts sampled from the
// draft model (temperature > 0) speculative sampling's rule decides (speculative_verify), whose output is
// distributed as the target's. Cells of rejected draft tokens are rolled back.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "grammar/matcher.h"
#include "model/draft.h"
#include "model/forward.h"
#include "model/kv_evict.h"
#include "runtime/sampler.h"
#include "runtime/speculative.h"

namespace hearth {

struct GenerateOptions {
    int n_predict = 128;
    std::vector<int32_t> eog;  // end-of-generation tokens (sorted): sampling one ends the text, unprinted
    int lookup = 0;            // > 0: prompt-lookup drafts of up to this many tokens
    DraftModel* drafter = nullptr;  // or drafts from this model
    int draft_max = 8;
    // With a drafter and a sampling (temperature > 0) sampler: draw the drafts from the draft model's
    // distribution through this sampler and verify by speculative sampling; null: greedy drafts.
    Sampler* draft_sampler = nullptr;
    grammar::GrammarMatcher* matcher = nullptr;  // constrain the output
    const KvEvictParams* evict = nullptr;        // evict after the prompt
    std::function<void(int32_t)> on_token;       // each generated token, once it is final
};

struct GenerateResult {
    std::vector<int32_t> tokens;  // generated (no end-of-generation token)
    SpeculativeStats spec;
    KvEvictResult evicted;
    bool context_full = false;  // stopped because the context was full
    double prompt_seconds = 0;  // the prompt's forward pass (and eviction)
    double decode_seconds = 0;  // everything after it: drafting, verification, sampling
};

// The sequence is sequence 0 of ctx, which must be empty. Throws hearth::Error when the prompt is empty or does
// not fit the context, or when the grammar allows no token.
GenerateResult generate(Context& ctx, const std::vector<int32_t>& prompt, Sampler& sampler, const GenerateOptions& o);

}  // namespace hearth
