// Speculative decoding's drafters and bookkeeping. A drafter proposes tokens that likely come next; the model
// verifies them in one batched forward pass (a pass over k + 1 tokens reads the weights once, as one token does).
//
// Exactness, for any sampler: the token of each verified position is sampled exactly as without speculation
// (same logits, same sampler state, same grammar mask), and a draft token is kept only while it equals the token
// sampled before it. For a deterministic draft this is the speculative-sampling rule itself (accepting draft d
// with probability p(d) and otherwise sampling from p without d is the same as sampling from p and comparing),
// and it consumes the sampler's random stream in the same order, so the output is the same tokens, up to
// floating-point rounding: a pass over k + 1 tokens rounds differently from k + 1 one-token passes (as switching
// the cache from f16 to f32 does), so where two logits tie to within ~1e-5 the two runs can pick differently.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "grammar/matcher.h"
#include "runtime/sampler.h"

namespace hearth {

// Prompt lookup: the tokens that followed the latest earlier occurrence of the longest suffix of `history`
// (max_ngram tokens down to 1) that occurred before, at most max_draft of them. Empty when no suffix recurs.
std::vector<int32_t> lookup_draft(const std::vector<int32_t>& history, size_t max_draft, size_t max_ngram = 4);

// Speculative sampling's rule (Leviathan et al. 2023, Chen et al. 2023), for a draft token drawn from the draft's
// distribution q: keep it with probability min(1, p(draft) / q(draft)), where p is the target's; otherwise emit
// a token drawn from max(0, p - q), normalised. The emitted token is then distributed exactly as p, whatever q
// is. Returns the token to emit at this position (the draft itself when accepted) and sets `accepted`. The
// randomness comes from the target's sampler: one variate for the test, one more after a rejection.
int32_t speculative_verify(const TokenDist& p, const TokenDist& q, int32_t draft, Sampler& sampler, bool& accepted);

// One position of a verification pass, or of plain decoding (no draft), as generate() and the scheduler both
// run it: the grammar's mask on the logits row (`masked` is its scratch), the token sampled exactly as without
// speculation, or, for a draft token drawn from q (sampled drafts), by speculative sampling's rule; then the
// token accepted by the sampler, and by the grammar unless it is a stop token. Fails when the grammar allows
// no token (after `n_generated` generated tokens) or, as an internal error, when the sampled token is one it
// forbids.
struct VerifiedToken {
    int32_t token = -1;
    bool stop = false;      // the token is one of the stop tokens
    bool rejected = false;  // a draft token stood at this position and was not kept
};
VerifiedToken verify_position(const float* logits, int32_t n_vocab, Sampler& sampler, grammar::GrammarMatcher* matcher,
                              const std::vector<int32_t>& stop_tokens, const int32_t* draft, const TokenDist* q,
                              int64_t n_generated, std::vector<float>& masked);

struct SpeculativeStats {
    int64_t steps = 0;    // verification forward passes (one per generated run of tokens)
    int64_t drafted = 0;  // draft tokens verified
    int64_t accepted = 0;  // of those, kept
    double acceptance_rate() const { return drafted > 0 ? static_cast<double>(accepted) / drafted : 0.0; }
};

}  // namespace hearth
