#include "lab/needle.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "base/error.h"
#include "runtime/sampler.h"

namespace hearth {
namespace {

struct Score {
    double logp = 0;
    bool hit = true;
    int32_t kept = 0;
};

// Feeds the prompt (evicting after it when `evict` is set), then the answer token by token, scoring each.
Score score(Context& ctx, const std::vector<int32_t>& prompt, const std::vector<int32_t>& answer,
            const KvEvictParams* evict) {
    ctx.kv().clear();
    const int32_t n = static_cast<int32_t>(prompt.size());
    if (evict) kv_evict_observe(ctx, 0, n, *evict);
    Batch b;
    for (int32_t i = 0; i < n; ++i) b.add(prompt[i], i, 0, i + 1 == n);
    const std::vector<float>* logits = &ctx.decode(b);
    Score s;
    s.kept = evict ? kv_evict(ctx, 0, *evict).cells_after : ctx.kv().seq_cells(0);
    const int32_t V = static_cast<int32_t>(ctx.model().hp.n_vocab);
    for (size_t i = 0; i < answer.size(); ++i) {
        const float* lg = logits->data();
        s.logp += token_logprobs(lg, V, answer[i], 0, nullptr);
        s.hit = s.hit && std::max_element(lg, lg + V) - lg == answer[i];
        if (i + 1 == answer.size()) break;
        b.clear();
        b.add(answer[i], n + static_cast<int32_t>(i), 0, true);
        logits = &ctx.decode(b);
    }
    return s;
}

}  // namespace

NeedleResult needle_check(const Model& model, const ContextParams& cp, const NeedleSpec& spec,
                          const KvEvictParams& evict, const std::function<void(int, int)>& on_step) {
    if (spec.needle.empty() || spec.question.empty() || spec.answer.empty())
        fail("needle check: the needle, the question and the answer must each have tokens");
    const size_t total = spec.prefix.size() + spec.haystack.size() + spec.needle.size() + spec.question.size() +
                         spec.answer.size();
    if (total > static_cast<size_t>(cp.n_ctx))
        fail("needle check: prompt and answer take {} tokens, more than the context size {}", total, cp.n_ctx);
    Context ctx(model, cp);
    NeedleResult r;
    double gain_full = 0, gain_evicted = 0;
    const int steps = static_cast<int>(spec.depths.size()) * 2 + 1;
    int done = 0;
    // The prompt without the needle is the same at every depth: scored once.
    std::vector<int32_t> without = spec.prefix;
    without.insert(without.end(), spec.haystack.begin(), spec.haystack.end());
    without.insert(without.end(), spec.question.begin(), spec.question.end());
    const Score none = spec.depths.empty() ? Score{} : score(ctx, without, spec.answer, nullptr);
    if (on_step) on_step(++done, steps);
    for (double depth : spec.depths) {
        if (!(depth >= 0.0 && depth <= 1.0)) fail("needle check: depth {} is outside [0, 1]", depth);
        // The boundary nearest to the depth.
        const double want = depth * static_cast<double>(spec.haystack.size());
        size_t at = static_cast<size_t>(std::lround(want));
        if (!spec.boundaries.empty()) {
            at = spec.boundaries.front();
            for (size_t c : spec.boundaries)
                if (std::fabs(static_cast<double>(c) - want) < std::fabs(static_cast<double>(at) - want)) at = c;
        }
        at = std::min(at, spec.haystack.size());
        std::vector<int32_t> with = spec.prefix;
        with.insert(with.end(), spec.haystack.begin(), spec.haystack.begin() + static_cast<std::ptrdiff_t>(at));
        with.insert(with.end(), spec.needle.begin(), spec.needle.end());
        with.insert(with.end(), spec.haystack.begin() + static_cast<std::ptrdiff_t>(at), spec.haystack.end());
        with.insert(with.end(), spec.question.begin(), spec.question.end());

        NeedleDepth d;
        d.depth = depth;
        d.needle_pos = static_cast<int32_t>(spec.prefix.size() + at);
        d.prompt_tokens = static_cast<int32_t>(with.size());
        const Score full = score(ctx, with, spec.answer, nullptr);
        if (on_step) on_step(++done, steps);
        const Score ev = score(ctx, with, spec.answer, &evict);
        if (on_step) on_step(++done, steps);
        d.logp_full = full.logp;
        d.logp_evicted = ev.logp;
        d.logp_without = none.logp;
        d.hit_full = full.hit;
        d.hit_evicted = ev.hit;
        d.kept_cells = ev.kept;
        gain_full += full.logp - none.logp;
        gain_evicted += ev.logp - none.logp;
        r.hits_full += full.hit;
        r.hits_evicted += ev.hit;
        r.depths.push_back(d);
    }
    if (!r.depths.empty()) {
        r.hits_full /= static_cast<double>(r.depths.size());
        r.hits_evicted /= static_cast<double>(r.depths.size());
    }
    r.gain_kept = gain_full > 0 ? gain_evicted / gain_full : std::numeric_limits<double>::quiet_NaN();
    return r;
}

}  // namespace hearth
