#include "model/draft.h"

#include <algorithm>

#include "base/error.h"

namespace hearth {

void check_draft_vocab(const tok::Vocab& target, const tok::Vocab& draft) {
    if (target.n_tokens() != draft.n_tokens())
        fail("the draft model's vocabulary has {} tokens, the model's {}: a draft must share the vocabulary",
             draft.n_tokens(), target.n_tokens());
    if (target.bos() != draft.bos() || target.eos() != draft.eos())
        fail("the draft model's BOS / EOS are {} / {}, the model's {} / {}: a draft must share the vocabulary",
             draft.bos(), draft.eos(), target.bos(), target.eos());
    for (int32_t id = 0; id < target.n_tokens(); ++id)
        if (target.text(id) != draft.text(id))
            fail("the draft model's token {} is '{}', the model's is '{}': a draft must share the vocabulary", id,
                 draft.text(id), target.text(id));
}

void DraftModel::forget(int32_t seq) {
    ctx_.kv().truncate(seq, 0);
    fed_.erase(seq);
}

std::vector<int32_t> DraftModel::draft(const std::vector<int32_t>& history, size_t max_draft, Sampler* sampler,
                                       std::vector<TokenDist>* q, int32_t seq) {
    if (q) q->clear();
    if (max_draft == 0 || history.empty()) return {};
    const size_t room = static_cast<size_t>(ctx_.n_ctx()) > history.size() ? ctx_.n_ctx() - history.size() : 0;
    max_draft = std::min(max_draft, room);
    if (max_draft == 0) return {};
    // The cache keeps the common prefix; the last history token is always fed again, for its logits.
    std::vector<int32_t>& fed = fed_[seq];
    size_t keep = 0;
    while (keep < fed.size() && keep + 1 < history.size() && fed[keep] == history[keep]) ++keep;
    ctx_.kv().truncate(seq, static_cast<int32_t>(keep));
    fed.resize(keep);
    Batch b;
    for (size_t i = keep; i < history.size(); ++i) b.add(history[i], static_cast<int32_t>(i), seq, i + 1 == history.size());
    fed.insert(fed.end(), history.begin() + static_cast<std::ptrdiff_t>(keep), history.end());
    const int64_t n_vocab = ctx_.model().hp.n_vocab;
    std::vector<int32_t> out;
    const std::vector<float>* logits = &ctx_.decode(b);
    for (;;) {
        const float* l = logits->data();
        if (sampler) {
            q->emplace_back();
            sampler->distribution(l, static_cast<int32_t>(n_vocab), q->back());
            out.push_back(sampler->draw_from(q->back()));
        } else {
            out.push_back(static_cast<int32_t>(std::max_element(l, l + n_vocab) - l));
        }
        if (out.size() == max_draft) break;
        b.clear();
        b.add(out.back(), static_cast<int32_t>(fed.size()), seq, true);
        fed.push_back(out.back());
        logits = &ctx_.decode(b);
    }
    return out;
}

}  // namespace hearth
