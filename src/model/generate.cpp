#include "model/generate.h"

#include <algorithm>
#include <chrono>

#include "base/error.h"

namespace hearth {

GenerateResult generate(Context& ctx, const std::vector<int32_t>& prompt, Sampler& sampler, const GenerateOptions& o) {
    if (prompt.empty()) fail("the prompt is empty: nothing to condition on");
    const int n_ctx = ctx.n_ctx();
    if (static_cast<int64_t>(prompt.size()) > n_ctx)
        fail("the prompt has {} tokens, more than the context size {}", prompt.size(), n_ctx);
    const int32_t n_vocab = static_cast<int32_t>(ctx.model().hp.n_vocab);
    const bool sampled_drafts = o.drafter && o.draft_sampler && sampler.params().temperature > 0.0f;

    GenerateResult r;
    Batch batch;
    for (size_t i = 0; i < prompt.size(); ++i) batch.add(prompt[i], static_cast<int32_t>(i), 0, i + 1 == prompt.size());
    for (int32_t t : prompt) sampler.accept(t);
    if (o.evict) kv_evict_observe(ctx, 0, static_cast<int32_t>(prompt.size()), *o.evict);
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    const std::vector<float>* logits = &ctx.decode(batch);
    if (o.evict) r.evicted = kv_evict(ctx, 0, *o.evict);
    const auto t1 = Clock::now();
    r.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();
    struct DecodeTimer {  // also when the loop ends by an exception
        GenerateResult& r;
        Clock::time_point start;
        ~DecodeTimer() { r.decode_seconds = std::chrono::duration<double>(Clock::now() - start).count(); }
    } timer{r, t1};

    std::vector<int32_t> history = prompt, draft;
    std::vector<TokenDist> q;  // sampled drafts: the distribution each draft token was drawn from
    std::vector<float> masked;
    int32_t fed_at = static_cast<int32_t>(prompt.size()) - 1;  // position of the pass's first token
    bool done = o.n_predict == 0;
    while (!done) {
        int32_t tok = -1;
        size_t row = 0;
        bool rejected = false;
        for (;; ++row) {
            if (o.matcher && o.matcher->must_end()) {  // the text is complete and nothing may follow
                done = true;
                break;
            }
            const bool in_draft = row < draft.size();
            const VerifiedToken v = verify_position(logits->data() + row * static_cast<size_t>(n_vocab), n_vocab, sampler,
                                                    o.matcher, o.eog, in_draft ? &draft[row] : nullptr,
                                                    sampled_drafts && in_draft ? &q[row] : nullptr,
                                                    static_cast<int64_t>(r.tokens.size()), masked);
            tok = v.token;
            rejected = v.rejected;
            if (v.stop) {
                done = true;
                break;
            }
            r.tokens.push_back(tok);
            history.push_back(tok);
            if (o.on_token) o.on_token(tok);
            if (static_cast<int>(r.tokens.size()) >= o.n_predict) {
                done = true;
                break;
            }
            if (row >= draft.size() || rejected) break;  // the draft ends or goes another way
        }
        r.spec.accepted += static_cast<int64_t>(std::min(row, draft.size()));
        if (done) break;
        // Cells of the draft tokens after the first wrong one hold KV of text that was not generated.
        const int32_t pos = fed_at + static_cast<int32_t>(row) + 1;
        if (!draft.empty()) ctx.kv().truncate(0, pos);
        if (pos >= n_ctx) {
            r.context_full = true;
            break;
        }
        draft.clear();
        if (o.lookup > 0 || o.drafter) {
            const int room = std::min({o.drafter ? o.draft_max : o.lookup, n_ctx - pos - 1,
                                       o.n_predict - static_cast<int>(r.tokens.size()) - 1});
            if (room > 0) {
                if (o.drafter)
                    draft = o.drafter->draft(history, static_cast<size_t>(room), sampled_drafts ? o.draft_sampler : nullptr,
                                             sampled_drafts ? &q : nullptr);
                else
                    draft = lookup_draft(history, static_cast<size_t>(room));
            }
        }
        batch.clear();
        batch.add(tok, pos, 0, true);
        for (size_t k = 0; k < draft.size(); ++k) batch.add(draft[k], pos + 1 + static_cast<int32_t>(k), 0, true);
        fed_at = pos;
        logits = &ctx.decode(batch);
        ++r.spec.steps;
        r.spec.drafted += static_cast<int64_t>(draft.size());
    }
    return r;
}

}  // namespace hearth
