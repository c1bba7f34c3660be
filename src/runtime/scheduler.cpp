#include "runtime/scheduler.h"

#include <algorithm>
#include <exception>
#include <optional>
#include <string>

#include "model/draft.h"
#include "runtime/speculative.h"

namespace hearth {

const char* finish_reason_name(FinishReason r) {
    switch (r) {
        case FinishReason::Stop: return "stop";
        case FinishReason::Length: return "length";
        case FinishReason::Cancelled: return "cancelled";
        case FinishReason::Error: return "error";
        case FinishReason::None: break;
    }
    return "";
}

// A request's whole state. tokens = prompt + generated; the KV cache holds tokens[0, n_computed). Pending
// tokens (tokens.size() - n_computed) are 1 for a decoding request (its last sampled token) and more while it
// prefills (a new prompt, or prompt + generated tokens after a preemption); the logits of the last pending
// token are sampled, so a token is only ever sampled once.
struct Scheduler::Req {
    int64_t id;
    GenRequest g;
    Sampler sampler;
    std::vector<int32_t> tokens;
    int n_prompt;
    int n_generated = 0;
    int n_computed = 0;
    int32_t seq = -1;          // KV sequence id while running, -1 while waiting
    int64_t admitted = -1;     // admission order (re-set on every admission)
    int64_t last_served = -1;  // step of its last decode token: the least recently served decode goes first
    std::optional<grammar::GrammarMatcher> matcher;  // with a grammar; kept across preemptions
    std::vector<float> masked;                      // the logits row with the grammar's mask applied

    Req(int64_t id_, GenRequest&& g_) : id(id_), g(std::move(g_)), sampler(g.sampling), tokens(g.prompt),
                                        n_prompt(static_cast<int>(g.prompt.size())) {
        for (int32_t t : g.prompt) sampler.accept(t);  // as `hearth run`: the prompt is in the penalty window
        if (g.grammar) matcher.emplace(g.grammar);
    }
    int pending() const { return static_cast<int>(tokens.size()) - n_computed; }
};

Scheduler::Scheduler(Context& ctx, const SchedulerParams& p) : ctx_(ctx), p_(p) {
    if (p.token_budget < 1) fail("scheduler: token budget must be positive (got {})", p.token_budget);
    if (p.max_running < 1) fail("scheduler: max running must be positive (got {})", p.max_running);
    if (p.max_waiting < 0) fail("scheduler: max waiting must not be negative (got {})", p.max_waiting);
    if (ctx.out_dim() != ctx.model().hp.n_vocab)
        fail("scheduler: the context is in embedding mode, it produces no logits to sample");
}

Scheduler::~Scheduler() {
    for (auto& r : running_) ctx_.kv().truncate(r->seq, 0);
}

int64_t Scheduler::kv_blocks_total() const { return ctx_.kv().config().n_blocks; }
int64_t Scheduler::kv_blocks_used() const { return kv_blocks_total() - ctx_.kv().free_blocks(); }
int64_t Scheduler::kv_blocks_cached() const { return ctx_.kv().cached_blocks(); }

bool Scheduler::idle() const { return running_.empty() && waiting_.empty() && cancelled_.empty(); }

int64_t Scheduler::submit(GenRequest r) {
    const int64_t n_vocab = ctx_.model().hp.n_vocab;
    const int64_t n_prompt = static_cast<int64_t>(r.prompt.size());
    if (r.prompt.empty()) fail("the request's prompt is empty");
    for (size_t i = 0; i < r.prompt.size(); ++i)
        if (r.prompt[i] < 0 || r.prompt[i] >= n_vocab)
            fail("prompt token {} (id {}) is out of the vocabulary [0, {})", i, r.prompt[i], n_vocab);
    if (r.max_tokens < 1) fail("max_tokens must be at least 1 (got {})", r.max_tokens);
    if (r.logprobs > 20) fail("at most 20 top logprobs per token (got {})", r.logprobs);
    if (r.grammar && r.stop_tokens.empty()) fail("a request with a grammar needs stop tokens (to end where it may)");
    if (r.grammar && r.grammar->tokens().size() > n_vocab)
        fail("the grammar was compiled for {} tokens, the model has {}", r.grammar->tokens().size(), n_vocab);
    if (n_prompt > ctx_.n_ctx())
        fail("the prompt has {} tokens, more than the context size {}", n_prompt, ctx_.n_ctx());
    if (n_prompt + r.max_tokens > ctx_.n_ctx())
        fail("the prompt ({} tokens) plus max_tokens ({}) exceeds the context size {}", n_prompt, r.max_tokens,
             ctx_.n_ctx());
    auto req = std::make_unique<Req>(next_id_, std::move(r));  // throws on invalid sampling parameters
    if (static_cast<int64_t>(waiting_.size()) >= p_.max_waiting)
        throw QueueFull(fmt::format("the queue is full ({} requests waiting): retry later", waiting_.size()));
    waiting_.push_back(std::move(req));
    return next_id_++;
}

int32_t Scheduler::take_seq_id() {
    if (!free_seq_ids_.empty()) {
        const int32_t s = free_seq_ids_.back();
        free_seq_ids_.pop_back();
        return s;
    }
    return next_seq_id_++;
}

void Scheduler::release(Req* r) {
    if (r->seq < 0) return;
    ctx_.kv().truncate(r->seq, 0);
    if (p_.drafter) p_.drafter->forget(r->seq);
    free_seq_ids_.push_back(r->seq);
    r->seq = -1;
    r->n_computed = 0;
}

void Scheduler::preempt(Req* victim, std::vector<Work>& plan, int& budget_left) {
    for (auto it = plan.begin(); it != plan.end(); ++it)
        if (it->r == victim) {
            budget_left += it->n;
            plan.erase(it);
            break;
        }
    release(victim);  // its prompt + generated tokens are all pending again: recomputed on resumption
    auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& p) { return p.get() == victim; });
    waiting_.push_front(std::move(*it));
    running_.erase(it);
    ++n_preemptions_;
    preempted_this_step_ = true;
}

int Scheduler::reserve(Req* r, int n, std::vector<Work>& plan, int& budget_left) {
    KvCache& kv = ctx_.kv();
    const int64_t bs = kv.config().block_size;
    for (;;) {
        const int64_t have = static_cast<int64_t>(kv.blocks(r->seq).size());
        const int64_t need = (r->n_computed + n + bs - 1) / bs - have;
        if (need <= kv.free_blocks()) {
            kv.reserve(r->seq, r->n_computed + n);
            return n;
        }
        // Short: the newest running request gives way, so older requests always progress (and the oldest,
        // alone in the pool, always fits: submit() bounds prompt + max_tokens by the pool).
        Req* newest = running_.back().get();
        if (newest != r) {
            preempt(newest, plan, budget_left);
            continue;
        }
        // r is the newest: take what fits, else r itself waits.
        const int64_t fit = (have + kv.free_blocks()) * bs - r->n_computed;
        if (fit > 0) {
            kv.reserve(r->seq, r->n_computed + static_cast<int>(fit));
            return static_cast<int>(fit);
        }
        preempt(r, plan, budget_left);
        return 0;
    }
}

std::vector<Event> Scheduler::step() {
    std::vector<Event> events = std::move(cancelled_);
    cancelled_.clear();
    preempted_this_step_ = false;
    std::vector<Work> plan;
    int budget = p_.token_budget;

    // 1. One decode token per running request whose prompt is done, least recently served first (when the
    //    budget is smaller than the number of streams, they take turns).
    std::vector<Req*> dec;
    for (auto& r : running_)
        if (r->pending() == 1) dec.push_back(r.get());
    std::stable_sort(dec.begin(), dec.end(), [](const Req* a, const Req* b) {
        return a->last_served != b->last_served ? a->last_served < b->last_served : a->admitted < b->admitted;
    });
    for (Req* r : dec) {
        if (budget == 0) break;
        if (r->seq < 0) continue;  // preempted for an older request meanwhile
        if (reserve(r, 1, plan, budget) == 1) {
            plan.push_back({r, 1, r->n_generated > 0});  // a 1-token prompt's first feed is a prefill
            --budget;
        }
    }
    // 1b. Speculative decoding, batch-aware: a decode step reads every weight once whatever its few tokens, so
    //     draft tokens verified in the same pass are nearly free while the step's decode entries stay few;
    //     past speculative_max_tokens of them the pass turns compute-bound and drafts would cost what they
    //     save. Requests that asked for it draft in decode order while that room lasts (and only into free KV
    //     blocks: a draft never preempts anyone).
    {
        int room = p_.speculative_max_tokens - static_cast<int>(plan.size());
        KvCache& kv = ctx_.kv();
        const int64_t bs = kv.config().block_size;
        for (Work& w : plan) {
            Req* r = w.r;
            if (room <= 0) break;
            if (!w.decode || r->g.speculative == Speculation::Off) continue;
            if (r->g.speculative == Speculation::Draft && !p_.drafter) continue;
            const int left = r->g.max_tokens - r->n_generated - 1;  // tokens after the one this pass samples
            const int ctx_left = ctx_.n_ctx() - static_cast<int>(r->tokens.size()) - 1;
            const int k_max = std::min({p_.draft_max, room, left, ctx_left});
            if (k_max <= 0) continue;
            try {
                w.draft = r->g.speculative == Speculation::Lookup
                              ? lookup_draft(r->tokens, static_cast<size_t>(k_max))
                              : p_.drafter->draft(r->tokens, static_cast<size_t>(k_max), nullptr, nullptr, r->seq);
            } catch (const Error&) {
                w.draft.clear();  // the draft model's cache is full: no draft this time
            }
            if (w.draft.empty()) continue;
            const int64_t have = static_cast<int64_t>(kv.blocks(r->seq).size());
            const int64_t need = (r->n_computed + 1 + static_cast<int64_t>(w.draft.size()) + bs - 1) / bs - have;
            if (need > kv.free_blocks()) {
                w.draft.clear();
                continue;
            }
            kv.reserve(r->seq, r->n_computed + 1 + static_cast<int32_t>(w.draft.size()));
            room -= static_cast<int>(w.draft.size());
            budget -= static_cast<int>(w.draft.size());
        }
        if (budget < 0) budget = 0;
    }
    // 2. Prompt chunks of running requests still prefilling, oldest first. Preemption only ever removes the
    //    newest running request, which is this one or one after it, so indexing stays valid.
    for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
        Req* r = running_[i].get();
        if (r->pending() <= 1) continue;
        const int got = reserve(r, std::min(r->pending(), budget), plan, budget);
        if (got > 0) {
            plan.push_back({r, got, false});
            budget -= got;
        }
    }

    // 3. Admissions, FIFO (a head that does not fit blocks the queue: no overtaking). Only when nothing was
    //    preempted this step (the pool is tight), and only when the whole pending prefix fits in the free
    //    blocks not already promised to this step's admissions, so an admission is not preempted at once.
    if (!preempted_this_step_) {
        KvCache& kv = ctx_.kv();
        const int64_t bs = kv.config().block_size;
        int64_t promised = 0;
        while (budget > 0 && !waiting_.empty() && static_cast<int>(running_.size()) < p_.max_running) {
            Req* r = waiting_.front().get();
            const int32_t seq = take_seq_id();
            const int32_t n_tokens = static_cast<int32_t>(r->tokens.size());
            // The last token is always computed: its logits are what the request samples from.
            const int32_t cached = p_.prefix_cache ? kv.attach_prefix(seq, r->tokens.data(), n_tokens - 1) : 0;
            const int64_t whole = (n_tokens + bs - 1) / bs - cached / bs;
            if (whole > kv.free_blocks() - promised) {
                kv.truncate(seq, 0);
                free_seq_ids_.push_back(seq);
                break;
            }
            n_prefix_queried_ += n_tokens;
            n_prefix_hit_ += cached;
            r->seq = seq;
            r->n_computed = cached;
            r->admitted = next_admit_++;
            running_.push_back(std::move(waiting_.front()));
            waiting_.pop_front();
                const int got = reserve(r, std::min(r->pending(), budget), plan, budget);
            plan.push_back({r, got, false});
            budget -= got;
            promised += (n_tokens + bs - 1) / bs - static_cast<int64_t>(kv.blocks(r->seq).size());
        }
    }
    if (plan.empty()) return events;

    // The batch: decode entries first (plan order), logits only where a token is sampled.
    batch_.clear();
    for (const Work& w : plan) {
        Req* r = w.r;
        const bool samples = r->n_computed + w.n == static_cast<int>(r->tokens.size());
        for (int i = 0; i < w.n; ++i) {
            const int pos = r->n_computed + i;
            batch_.add(r->tokens[pos], pos, r->seq, samples && i + 1 == w.n);
        }
        for (size_t i = 0; i < w.draft.size(); ++i)  // a row of logits for each draft token too
            batch_.add(w.draft[i], r->n_computed + w.n + static_cast<int>(i), r->seq, true);
    }
    const std::vector<float>& logits = ctx_.decode(batch_);
    ++n_steps_;

    const int32_t n_vocab = static_cast<int32_t>(ctx_.model().hp.n_vocab);
    const float* row = logits.data();
    // Sampling (a softmax over the vocabulary, per request) is independent between requests and, with many
    // of them, a large part of a decode step: the forward pass's threads share it.
    // A request with a draft has one row per draft token after its own; its rows are sampled in order and a
    // draft token stands only while it equals the token sampled before it (runtime/speculative.h), so the
    // tokens are those of decoding without the draft.
    struct Sampled {
        Req* r;
        const float* row;
        const std::vector<int32_t>* draft;
        std::vector<int32_t> toks;
        std::vector<Event> evs;
        std::string error;  // sampling failed for this request
    };
    std::vector<Sampled> sampled;
    for (const Work& w : plan) {
        Req* r = w.r;
        r->n_computed += w.n;
        if (!w.decode) n_prefilled_ += w.n;
        if (p_.prefix_cache) ctx_.kv().publish(r->seq, r->tokens.data(), r->n_computed);
        if (r->pending() != 0) continue;  // a prompt chunk that does not reach the end
        sampled.push_back(Sampled{r, row, &w.draft, {}, {}, {}});
        row += n_vocab * static_cast<int64_t>(1 + w.draft.size());
    }
    const int n_sampled = static_cast<int>(sampled.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(ctx_.n_threads()) if (n_sampled > 1)
    for (int i = 0; i < n_sampled; ++i) {
        Sampled& sm = sampled[static_cast<size_t>(i)];
        Req* r = sm.r;
        try {
            for (size_t j = 0;; ++j) {
                const float* raw = sm.row + j * static_cast<size_t>(n_vocab);
                const VerifiedToken v =
                    verify_position(raw, n_vocab, r->sampler, r->matcher ? &*r->matcher : nullptr, r->g.stop_tokens,
                                    j < sm.draft->size() ? &(*sm.draft)[j] : nullptr, nullptr,
                                    r->n_generated + static_cast<int64_t>(sm.toks.size()), r->masked);
                Event e;
                if (r->g.logprobs >= 0) e.logprob = token_logprobs(raw, n_vocab, v.token, r->g.logprobs, &e.top_logprobs);
                sm.toks.push_back(v.token);
                sm.evs.push_back(std::move(e));
                if (v.stop || r->n_generated + static_cast<int>(sm.toks.size()) >= r->g.max_tokens) break;
                if (j >= sm.draft->size() || v.rejected) break;  // the draft ends or goes another way
            }
        } catch (const std::exception& ex) {
            // This request alone ends (a grammar too ambiguous to run, say); the batch goes on.
            sm.error = ex.what();
        }
    }
    std::vector<Req*> done;
    for (Sampled& sm : sampled) {
        Req* r = sm.r;
        if (!sm.error.empty()) {
            Event e;
            e.id = r->id;
            e.finished = true;
            e.reason = FinishReason::Error;
            e.error = std::move(sm.error);
            e.n_prompt = r->n_prompt;
            e.n_generated = r->n_generated;
            events.push_back(std::move(e));
            done.push_back(r);
            continue;
        }
        if (!sm.draft->empty()) {
            ++n_spec_steps_;
            n_spec_drafted_ += static_cast<int64_t>(sm.draft->size());
            n_spec_accepted_ += static_cast<int64_t>(sm.toks.size()) - 1;
        }
        bool finished = false;
        for (size_t j = 0; j < sm.toks.size() && !finished; ++j) {
            const int32_t tok = sm.toks[j];
            Event e = std::move(sm.evs[j]);
            r->tokens.push_back(tok);
            ++r->n_generated;
            ++n_generated_;
            r->last_served = n_steps_;
            e.id = r->id;
            e.token = tok;
            e.n_prompt = r->n_prompt;
            e.n_generated = r->n_generated;
            const auto& stop = r->g.stop_tokens;
            if (std::find(stop.begin(), stop.end(), tok) != stop.end())
                e.reason = FinishReason::Stop;
            else if (r->n_generated >= r->g.max_tokens)
                e.reason = FinishReason::Length;
            if (e.reason != FinishReason::None) {
                e.finished = true;
                done.push_back(r);
                finished = true;
            }
            events.push_back(std::move(e));
        }
        // Kept draft tokens are computed already (tokens sampled after them are pending); the cells of the rest
        // hold text that was not generated.
        if (!finished && !sm.draft->empty()) {
            r->n_computed += static_cast<int>(sm.toks.size()) - 1;
            ctx_.kv().truncate(r->seq, r->n_computed);
        }
    }
    for (Req* r : done) {
        release(r);
        running_.erase(std::find_if(running_.begin(), running_.end(), [&](const auto& p) { return p.get() == r; }));
    }
    return events;
}

bool Scheduler::cancel(int64_t id) {
    auto report = [&](const Req& r) {
        Event e;
        e.id = r.id;
        e.finished = true;
        e.reason = FinishReason::Cancelled;
        e.n_prompt = r.n_prompt;
        e.n_generated = r.n_generated;
        cancelled_.push_back(e);
    };
    for (auto it = running_.begin(); it != running_.end(); ++it)
        if ((*it)->id == id) {
            report(**it);
            release(it->get());
            running_.erase(it);
            return true;
        }
    for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
        if ((*it)->id == id) {
            report(**it);
            waiting_.erase(it);
            return true;
        }
    return false;
}

}  // namespace hearth
