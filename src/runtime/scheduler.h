// Continuous-batching scheduler for `hearth serve`: many generation requests share one Context (one paged KV
// cache), and every step() is ONE forward pass mixing decode tokens of running streams with chunks of prompts.
//
// Why this shape:
// - One forward pass per step, filled up to a token budget: a decode token alone leaves the gemms
//   memory-bound, so batching many streams' tokens reads the weights once for all of them.
// - Decode tokens go first, then prompt chunks (chunked prefill): a long prompt is spread over several steps,
//   so it never stalls the streams that are already producing tokens (their inter-token latency stays at one
//   step), and a step's cost stays bounded by the budget.
// - Requests hold KV blocks only while running. When the pool runs short, the most recently admitted request
//   is preempted (its blocks are freed, it goes back to the FRONT of the queue) rather than failing anyone:
//   an admitted request is never failed because another arrived. A preempted request keeps its prompt, the
//   tokens it has generated and its Sampler (random stream, penalty window); on resumption the scheduler
//   recomputes the KV of prompt + generated tokens as a prefill and samples only after the last of them, so
//   no emitted token is sampled again and the continuation is the one it would have produced unpreempted.
//   Priority is first come, first served: a request short of blocks preempts only newer ones (the newest
//   takes what fits, else waits itself), so the oldest always progresses and nothing livelocks. The cost is
//   recomputation (a resumed stream is silent while it re-prefills, at prefill speed), chosen over swapping
//   KV blocks to host memory because the pool already is host memory: there is nowhere cheaper to put them.
// - Admission is FIFO, and a request is admitted only when its whole pending prefix fits the free blocks
//   (and not in a step that preempted): admitting it into a pool that cannot hold it would only preempt it
//   again.
// - Each request has its own Sampler and its own KV sequence id, so batching does not change what a request
//   generates: the forward pass treats every entry independently of its batch neighbours, up to rounding
//   differences between batch shapes (the forward tests bound them at 1e-4 on logits), which may in rare
//   near-ties flip a greedy argmax or a draw. The same holds for the recompute after a preemption.
//
// - Prefix cache: on admission a request attaches the longest chain of cached full KV blocks that matches its
//   tokens (the KvCache's prefix index) and computes only the rest; after every step the full blocks of each
//   running request are published, so they outlive the request and serve the next one with the same system
//   prompt or conversation history, and a preempted request's recomputation mostly hits them too. Cached
//   blocks nobody uses count as free and are evicted least recently used first, so caching never causes a
//   preemption or a refusal.
//
// Threading: single-threaded by design. The server drives it from one engine thread (submit/cancel/step are
// not synchronised); HTTP handlers hand submissions and cancellations to that thread through a queue and
// receive the events back the same way. The forward pass itself uses the Context's thread team.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "base/error.h"
#include "grammar/matcher.h"
#include "model/forward.h"
#include "runtime/sampler.h"

namespace hearth {

class DraftModel;

struct SchedulerParams {
    int token_budget = 512;  // batch entries (tokens) per forward step, decode and prefill together
    int max_running = 64;    // sequences holding KV (prefilling or decoding) at once
    int max_waiting = 256;   // queue limit: submit() beyond it throws QueueFull (the server's 429)
    bool prefix_cache = true;  // reuse full KV blocks of earlier requests with the same leading tokens
    // Speculative decoding (GenRequest::speculative): drafts of up to draft_max tokens, added while a step's
    // decode entries (drafts included) stay within speculative_max_tokens.
    DraftModel* drafter = nullptr;  // for Speculation::Draft; its context must hold sequences as ids go
    int draft_max = 8;
    int speculative_max_tokens = 16;
};

// Per request: how the scheduler drafts tokens for it (runtime/speculative.h; the output is the same tokens).
enum class Speculation { Off, Lookup, Draft };

struct GenRequest {
    std::vector<int32_t> prompt;       // token ids, BOS included if the model wants one
    SamplerParams sampling;            // incl. seed: same seed and settings, same tokens
    int max_tokens = 128;              // tokens to generate at most (>= 1)
    std::vector<int32_t> stop_tokens;  // a sampled token in this set ends the request (EOS, EOT, ...)
    int logprobs = -1;                 // >= 0: report each sampled token's logprob and this many top alternatives
    // Structured output: every sampled token keeps the text inside the grammar's language, and a stop token
    // is sampled only where the grammar may end (when nothing else may follow, only stop tokens remain).
    // Needs stop_tokens. Logprobs stay the model's own (before the mask).
    std::shared_ptr<const grammar::CompiledGrammar> grammar;
    Speculation speculative = Speculation::Off;
};

// Error: the request could not go on (its grammar failed: Event::error says why); the others are unaffected.
enum class FinishReason { None, Stop, Length, Cancelled, Error };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "error" ("" for None)

// One per sampled token, and one for each cancelled request. A request's last event has finished == true; a
// Stop event carries the stop token itself (the server decides whether to show it).
struct Event {
    int64_t id = 0;
    int32_t token = -1;  // the token sampled this step; -1 when none (Cancelled)
    bool finished = false;
    FinishReason reason = FinishReason::None;
    int n_prompt = 0;     // prompt tokens of the request
    int n_generated = 0;  // tokens generated so far, this one included
    // With GenRequest::logprobs >= 0: the token's log-probability and the most likely alternatives.
    float logprob = 0.0f;
    std::vector<TokenLogprob> top_logprobs;
    std::string error;  // with FinishReason::Error
};

// Thrown by submit() when the waiting queue is full. It is a hearth::Error (one-line message), but a
// distinct type so that the server answers 429 (retry later) rather than 400: catch it before Error.
class QueueFull : public Error {
public:
    using Error::Error;
};

class Scheduler {
public:
    // ctx must outlive the scheduler, and nothing else may use its KV cache meanwhile (sequence ids are the
    // scheduler's). Throws hearth::Error on a non-positive parameter.
    Scheduler(Context& ctx, const SchedulerParams& p);
    ~Scheduler();

    // Queues a request and returns its id (1, 2, ...). Throws hearth::Error naming the problem for an empty
    // prompt, a token id outside the vocabulary, max_tokens < 1, prompt + max_tokens beyond the context
    // (ctx.n_ctx(), so a request alone always fits the pool), or invalid sampling parameters; QueueFull when
    // max_waiting requests are already waiting. Nothing is computed until step().
    int64_t submit(GenRequest r);

    // One forward pass (or none when there is nothing to compute): decode tokens of running requests whose
    // prompts are done, then prompt chunks of prefilling ones, then new admissions (FIFO) while budget, KV
    // blocks and max_running allow. Returns the step's events (cancellations first).
    std::vector<Event> step();

    // Drops a request now (running: its KV blocks go back to the pool at once; waiting: it leaves the queue);
    // the next step() reports it once as finished with reason Cancelled. Returns false (and does nothing)
    // for an unknown or already finished id.
    bool cancel(int64_t id);

    // Nothing running, waiting or left to report.
    bool idle() const;

    // Introspection for metrics.
    int running() const { return static_cast<int>(running_.size()); }
    int waiting() const { return static_cast<int>(waiting_.size()); }
    int64_t kv_blocks_total() const;
    int64_t kv_blocks_used() const;
    int64_t preemptions() const { return n_preemptions_; }
    int64_t tokens_prefilled() const { return n_prefilled_; }  // prompt (and recomputed) tokens fed
    int64_t tokens_generated() const { return n_generated_; }  // tokens sampled
    int64_t steps() const { return n_steps_; }                  // forward passes run
    // Prefix cache: prompt (or recomputation) tokens looked up at admission, and how many of them were found.
    int64_t prefix_tokens_queried() const { return n_prefix_queried_; }
    int64_t prefix_tokens_hit() const { return n_prefix_hit_; }
    int64_t kv_blocks_cached() const;  // blocks held by the prefix index (in use or evictable)
    // Speculative decoding: decode feeds that carried a draft, draft tokens verified, and those kept.
    int64_t speculative_steps() const { return n_spec_steps_; }
    int64_t speculative_drafted() const { return n_spec_drafted_; }
    int64_t speculative_accepted() const { return n_spec_accepted_; }

private:
    struct Req;
    struct Work {
        Req* r;
        int n;        // tokens of r fed this step
        bool decode;  // its one sampled token (not a prompt chunk or a recomputation)
        std::vector<int32_t> draft = {};  // decode: draft tokens verified in the same pass
    };

    // Reserves KV cells for `n` more tokens of r, preempting newer running requests while the pool is
    // short; returns how many tokens it could reserve (may be fewer than n when r is the newest).
    int reserve(Req* r, int n, std::vector<Work>& plan, int& budget_left);
    void preempt(Req* victim, std::vector<Work>& plan, int& budget_left);
    void release(Req* r);  // frees r's KV sequence and sequence id
    int32_t take_seq_id();

    Context& ctx_;
    SchedulerParams p_;
    int64_t next_id_ = 1;
    int64_t next_admit_ = 0;  // admission counter: orders running requests from oldest to newest
    std::vector<std::unique_ptr<Req>> running_;  // in admission order
    std::deque<std::unique_ptr<Req>> waiting_;
    std::vector<Event> cancelled_;  // reported by the next step()
    std::vector<int32_t> free_seq_ids_;
    int32_t next_seq_id_ = 0;
    bool preempted_this_step_ = false;
    Batch batch_;
    int64_t n_preemptions_ = 0, n_prefilled_ = 0, n_generated_ = 0, n_steps_ = 0;
    int64_t n_prefix_queried_ = 0, n_prefix_hit_ = 0;
    int64_t n_spec_steps_ = 0, n_spec_drafted_ = 0, n_spec_accepted_ = 0;
};

}  // namespace hearth
