// Speculative decoding's draft-model drafter: a small model of the same vocabulary proposes the next tokens
// from its own KV cache, which follows the accepted text (cells of rejected drafts are truncated). Greedy
// drafts are verified as any deterministic draft is; sampled drafts (at temperature > 0) come with the
// distribution each token was drawn from, for speculative sampling's rule (runtime/speculative.h).
#pragma once
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "model/forward.h"
#include "runtime/sampler.h"
#include "tokenizer/vocab.h"

namespace hearth {

// Throws hearth::Error naming the first difference when the draft's vocabulary cannot stand for the target's
// (another size, tokenizer model, BOS / EOS, or a token whose text differs).
void check_draft_vocab(const tok::Vocab& target, const tok::Vocab& draft);

class DraftModel {
public:
    DraftModel(const Model& model, const ContextParams& params) : ctx_(model, params) {}

    // Up to max_draft tokens the draft model expects after `history`: greedy, or with `sampler` drawn through
    // it, the distribution of each appended to *q. Brings its cache to `history` first: keeps the longest
    // prefix it already holds and feeds the rest in one pass.
    // `seq`: the draft cache's sequence (a server drafts for many requests, one sequence each).
    std::vector<int32_t> draft(const std::vector<int32_t>& history, size_t max_draft, Sampler* sampler = nullptr,
                               std::vector<TokenDist>* q = nullptr, int32_t seq = 0);
    // Drops the cache of a sequence (its request ended).
    void forget(int32_t seq);
    Context& context() { return ctx_; }

private:
    Context ctx_;
    std::unordered_map<int32_t, std::vector<int32_t>> fed_;  // per sequence: tokens whose KV the cache holds
};

}  // namespace hearth
