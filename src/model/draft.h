// Speculative decoding's draft-model drafter: a small model of the same vocabulary proposes the next tokens
// greedily from its own KV cache, which follows the accepted text (cells of rejected drafts are truncated).
// The target verifies them as it verifies any draft (runtime/speculative.h: the output does not depend on
// where the draft came from).
#pragma once
#include <cstdint>
#include <vector>

#include "model/forward.h"
#include "tokenizer/vocab.h"

namespace hearth {

// Throws hearth::Error naming the first difference when the draft's vocabulary cannot stand for the target's
// (another size, tokenizer model, BOS / EOS, or a token whose text differs).
void check_draft_vocab(const tok::Vocab& target, const tok::Vocab& draft);

class DraftModel {
public:
    DraftModel(const Model& model, const ContextParams& params) : ctx_(model, params) {}

    // Up to max_draft tokens the draft model expects after `history` (greedy). Brings its cache to `history`
    // first: keeps the longest prefix it already holds and feeds the rest in one pass.
    std::vector<int32_t> draft(const std::vector<int32_t>& history, size_t max_draft);
    Context& context() { return ctx_; }

private:
    Context ctx_;
    std::vector<int32_t> fed_;  // tokens whose KV the cache holds, positions 0..
};

}  // namespace hearth
