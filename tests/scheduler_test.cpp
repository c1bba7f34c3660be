// The continuous-batching scheduler: batched outputs equal each request run alone (greedy and seeded
// sampling), chunked prefill never stalls running streams, preemption under a tiny KV pool recomputes to the
// same continuation, cancellation frees blocks at once, and request errors name the problem.
#include <gtest/gtest.h>

#include <map>

#include "base/error.h"
#include "grammar/gbnf.h"
#include "grammar/matcher.h"
#include "grammar_oracle.h"
#include "model/draft.h"
#include "model/forward.h"
#include "runtime/scheduler.h"
#include "model_test_util.h"
#include "test_util.h"
#include "tokenizer/vocab.h"

namespace hearth {
namespace {

using test::stories_model;

ContextParams ctx_params(int n_ctx, int block = 16) {
    ContextParams cp;
    cp.n_ctx = n_ctx;
    cp.n_threads = 2;
    cp.kv_block_size = block;
    return cp;
}

// A deterministic prompt: BOS then pseudo-random ids of the 512-token vocabulary.
std::vector<int32_t> prompt(int n, uint32_t salt) {
    std::vector<int32_t> p = {1};
    uint32_t x = 2463534242u ^ (salt * 2654435761u);
    while (static_cast<int>(p.size()) < n) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        p.push_back(static_cast<int32_t>(3 + x % 500));
    }
    return p;
}

GenRequest request(int n_prompt, int max_tokens, uint32_t salt, bool sampled) {
    GenRequest r;
    r.prompt = prompt(n_prompt, salt);
    r.max_tokens = max_tokens;
    if (sampled) {
        r.sampling.temperature = 0.9f;
        r.sampling.seed = 1000 + salt;
    } else {
        r.sampling.temperature = 0.0f;
    }
    return r;
}

// The request alone: a fresh Context, the whole prompt in one batch, then one token per decode.
std::vector<int32_t> run_alone(const GenRequest& r, KvType kv_type = KvType::F16) {
    ContextParams cp = ctx_params(512);
    cp.kv_type = kv_type;
    Context ctx(stories_model(), cp);
    Sampler s(r.sampling);
    for (int32_t t : r.prompt) s.accept(t);
    Batch b;
    for (size_t i = 0; i < r.prompt.size(); ++i) b.add(r.prompt[i], static_cast<int32_t>(i), 0, i + 1 == r.prompt.size());
    const std::vector<float>* logits = &ctx.decode(b);
    int32_t pos = static_cast<int32_t>(r.prompt.size());
    std::vector<int32_t> out;
    for (int i = 0; i < r.max_tokens; ++i) {
        const int32_t tok = s.sample(logits->data(), static_cast<int32_t>(stories_model().hp.n_vocab));
        s.accept(tok);
        out.push_back(tok);
        if (std::find(r.stop_tokens.begin(), r.stop_tokens.end(), tok) != r.stop_tokens.end()) break;
        if (i + 1 == r.max_tokens) break;
        b.clear();
        b.add(tok, pos++, 0, true);
        logits = &ctx.decode(b);
    }
    return out;
}

struct Outcome {
    std::vector<int32_t> tokens;
    int finishes = 0;
    FinishReason reason = FinishReason::None;
    std::string error;
};

// Steps until idle, checking every event's bookkeeping; returns the outcome per request id.
std::map<int64_t, Outcome> drain(Scheduler& s, std::map<int64_t, Outcome> out = {}) {
    for (int guard = 0; !s.idle(); ++guard) {
        if (guard > 10000) {
            ADD_FAILURE() << "scheduler never became idle";
            break;
        }
        for (const Event& e : s.step()) {
            Outcome& o = out[e.id];
            EXPECT_EQ(o.finishes, 0) << "event after the finish of request " << e.id;
            if (e.token >= 0) o.tokens.push_back(e.token);
            EXPECT_EQ(e.n_generated, static_cast<int>(o.tokens.size()));
            if (e.finished) ++o.finishes, o.reason = e.reason, o.error = e.error;
        }
    }
    return out;
}

void check_batched_equals_alone(bool sampled) {
    Context ctx(stories_model(), ctx_params(1024));
    SchedulerParams sp;
    sp.token_budget = 48;  // several prompts need more than one step
    Scheduler s(ctx, sp);
    std::vector<GenRequest> reqs;
    std::vector<int64_t> ids;
    for (int i = 0; i < 8; ++i) {
        reqs.push_back(request(4 + 9 * i, 12 + 5 * i, i, sampled));
        ids.push_back(s.submit(reqs.back()));
    }
    const auto out = drain(s);
    for (int i = 0; i < 8; ++i) {
        const Outcome& o = out.at(ids[i]);
        EXPECT_EQ(o.tokens, run_alone(reqs[i])) << "request " << i;
        EXPECT_EQ(o.finishes, 1);
        EXPECT_EQ(o.reason, FinishReason::Length);
    }
    EXPECT_EQ(s.kv_blocks_used(), 0);
    EXPECT_EQ(s.preemptions(), 0);
    int64_t prompt_total = 0, gen_total = 0;
    for (const auto& r : reqs) prompt_total += r.prompt.size(), gen_total += r.max_tokens;
    EXPECT_EQ(s.tokens_prefilled(), prompt_total);
    EXPECT_EQ(s.tokens_generated(), gen_total);
}

TEST(Scheduler, BatchedGreedyEqualsEachAlone) { check_batched_equals_alone(false); }
TEST(Scheduler, BatchedSeededSamplingEqualsEachAlone) { check_batched_equals_alone(true); }

// Compressed caches under continuous batching with chunked prefill: every request completes, the blocks and
// their f16 slots all come back, and the tokens match each request run alone with the same cache type nearly
// everywhere (not exactly: a prompt split into chunks reads its early blocks quantized, one batch reads them all
// in f16, so near-ties can go either way).
TEST(Scheduler, CompressedCachesUnderContinuousBatching) {
    for (const KvType type : {KvType::Q8, KvType::Rot3}) {
        ContextParams cp = ctx_params(1024);
        cp.kv_type = type;
        Context ctx(stories_model(), cp);
        SchedulerParams sp;
        sp.token_budget = 48;
        Scheduler s(ctx, sp);
        std::vector<GenRequest> reqs;
        std::vector<int64_t> ids;
        for (int i = 0; i < 8; ++i) {
            reqs.push_back(request(4 + 9 * i, 30 + 5 * i, i, false));
            ids.push_back(s.submit(reqs.back()));
        }
        const auto out = drain(s);
        int same = 0, total = 0;
        for (int i = 0; i < 8; ++i) {
            const Outcome& o = out.at(ids[i]);
            ASSERT_EQ(o.tokens.size(), static_cast<size_t>(reqs[i].max_tokens));
            EXPECT_EQ(o.reason, FinishReason::Length);
            const std::vector<int32_t> alone = run_alone(reqs[i], type);
            size_t k = 0;
            while (k < alone.size() && alone[k] == o.tokens[k]) ++k;  // tokens before the first difference
            same += static_cast<int>(k), total += static_cast<int>(alone.size());
        }
        // Measured: q8 380 of 380 tokens before each request's first difference, rot3 252 of 380.
        EXPECT_GE(same, total * (type == KvType::Q8 ? 95 : 50) / 100) << kv_type_name(type);
        EXPECT_EQ(s.kv_blocks_used(), 0);
        // Blocks kept for the prefix cache keep their f16 slot until they age or are evicted; nothing else does.
        EXPECT_LE(ctx.kv().residual_slots(), ctx.kv().cached_blocks());
        ctx.kv().clear();
        EXPECT_EQ(ctx.kv().residual_slots(), 0);
    }
}

TEST(Scheduler, ChunkedPrefillDoesNotStallRunningStream) {
    Context ctx(stories_model(), ctx_params(512));
    SchedulerParams sp;
    sp.token_budget = 16;
    Scheduler s(ctx, sp);
    const GenRequest a = request(8, 40, 11, false), b = request(100, 10, 12, false);
    const int64_t ia = s.submit(a);
    std::map<int64_t, Outcome> out;
    while (out[ia].tokens.empty())
        for (const Event& e : s.step()) out[e.id].tokens.push_back(e.token);
    const int64_t ib = s.submit(b);
    int steps_until_b = 0;
    while (out[ia].finishes == 0) {
        const auto events = s.step();
        bool a_got = false;
        for (const Event& e : events) {
            Outcome& o = out[e.id];
            o.tokens.push_back(e.token);
            if (e.finished) ++o.finishes, o.reason = e.reason, o.error = e.error;
            a_got |= e.id == ia;
        }
        ASSERT_TRUE(a_got) << "the running request got no token in a step";
        if (out[ib].tokens.empty()) ++steps_until_b;
    }
    // 100 prompt tokens at 15 per step (one of the 16 is the running stream's decode): 7 steps of prefill.
    EXPECT_GE(steps_until_b, 6);
    out = drain(s, out);
    EXPECT_EQ(out[ia].tokens, run_alone(a));
    EXPECT_EQ(out[ib].tokens, run_alone(b));
    EXPECT_EQ(out[ib].finishes, 1);
    EXPECT_EQ(out[ib].reason, FinishReason::Length);
}

TEST(Scheduler, PreemptionUnderTinyPoolRecomputesSameOutputs) {
    Context ctx(stories_model(), ctx_params(96, 16));  // 6 blocks of 16 cells
    SchedulerParams sp;
    sp.token_budget = 64;
    Scheduler s(ctx, sp);
    std::vector<GenRequest> reqs = {request(20, 45, 21, false), request(26, 40, 22, true),
                                    request(30, 50, 23, false), request(17, 44, 24, true)};
    std::vector<int64_t> ids;
    for (const auto& r : reqs) ids.push_back(s.submit(r));
    // With a budget above the number of streams, a decoding request misses a step only when it was preempted
    // after generating: its prompt and generated tokens are then recomputed.
    std::map<int64_t, Outcome> out;
    std::map<int64_t, int> last_step;
    bool resumed_mid_generation = false;
    for (int step = 0; !s.idle() && step < 1000; ++step) {
        for (const Event& e : s.step()) {
            Outcome& o = out[e.id];
            o.tokens.push_back(e.token);
            if (e.finished) ++o.finishes, o.reason = e.reason, o.error = e.error;
            if (last_step.count(e.id) && step - last_step[e.id] > 1) resumed_mid_generation = true;
            last_step[e.id] = step;
        }
    }
    EXPECT_TRUE(resumed_mid_generation);
    EXPECT_GT(s.preemptions(), 0);
    for (size_t i = 0; i < reqs.size(); ++i) {
        const Outcome& o = out.at(ids[i]);
        EXPECT_EQ(o.tokens, run_alone(reqs[i])) << "request " << i;
        EXPECT_EQ(o.finishes, 1);
        EXPECT_EQ(o.reason, FinishReason::Length);
    }
    EXPECT_EQ(s.kv_blocks_used(), 0);
    EXPECT_EQ(s.kv_blocks_total(), 6);
}

TEST(Scheduler, CancelFreesBlocksAndReportsOnce) {
    Context ctx(stories_model(), ctx_params(512, 8));
    Scheduler s(ctx, SchedulerParams{});
    const std::vector<GenRequest> reqs = {request(10, 30, 31, false), request(21, 30, 32, true),
                                          request(14, 30, 33, false)};
    std::vector<int64_t> ids;
    for (const auto& r : reqs) ids.push_back(s.submit(r));
    std::map<int64_t, Outcome> out;
    for (int i = 0; i < 5; ++i)
        for (const Event& e : s.step()) out[e.id].tokens.push_back(e.token);
    ASSERT_EQ(out[ids[1]].tokens.size(), 5u);
    // Its cache holds prompt + generated tokens but the last (not fed yet): ceil(25 / 8) = 4 blocks.
    const int64_t used = s.kv_blocks_used();
    EXPECT_TRUE(s.cancel(ids[1]));
    EXPECT_EQ(s.kv_blocks_used(), used - 4);
    EXPECT_FALSE(s.cancel(ids[1]));
    EXPECT_FALSE(s.cancel(12345));
    EXPECT_EQ(s.running(), 2);
    const auto events = s.step();
    int cancelled = 0;
    for (const Event& e : events) {
        if (e.id != ids[1]) {
            out[e.id].tokens.push_back(e.token);
            continue;
        }
        ++cancelled;
        EXPECT_TRUE(e.finished);
        EXPECT_EQ(e.reason, FinishReason::Cancelled);
        EXPECT_EQ(e.token, -1);
        EXPECT_EQ(e.n_generated, 5);
        EXPECT_EQ(e.n_prompt, 21);
    }
    EXPECT_EQ(cancelled, 1);
    const std::vector<int32_t> cancelled_tokens = out[ids[1]].tokens;
    out.erase(ids[1]);
    out = drain(s, out);
    EXPECT_EQ(out.count(ids[1]), 0u) << "the cancelled request was reported again";
    EXPECT_EQ(out[ids[0]].tokens, run_alone(reqs[0]));
    EXPECT_EQ(out[ids[2]].tokens, run_alone(reqs[2]));
    const std::vector<int32_t> alone1 = run_alone(reqs[1]);
    EXPECT_EQ(cancelled_tokens, std::vector<int32_t>(alone1.begin(), alone1.begin() + 5));
    EXPECT_EQ(s.kv_blocks_used(), 0);

    // A waiting request can be cancelled too.
    const int64_t w = s.submit(request(5, 5, 34, false));
    EXPECT_EQ(s.waiting(), 1);
    EXPECT_TRUE(s.cancel(w));
    EXPECT_EQ(s.waiting(), 0);
    const auto ev = s.step();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].reason, FinishReason::Cancelled);
    EXPECT_TRUE(s.idle());
}

// A budget smaller than the number of streams: decodes take turns (least recently served first), no stream
// starves, max_running bounds admissions, and outputs are unchanged.
TEST(Scheduler, SmallBudgetStreamsTakeTurns) {
    Context ctx(stories_model(), ctx_params(256));
    SchedulerParams sp;
    sp.token_budget = 2;
    sp.max_running = 3;
    Scheduler s(ctx, sp);
    std::vector<GenRequest> reqs;
    std::vector<int64_t> ids;
    for (int i = 0; i < 4; ++i) {
        reqs.push_back(request(2 + i, 8, 50 + i, i % 2 == 1));
        ids.push_back(s.submit(reqs.back()));
    }
    std::map<int64_t, Outcome> out;
    std::map<int64_t, int> last_step;
    for (int step = 0; !s.idle() && step < 1000; ++step) {
        for (const Event& e : s.step()) {
            Outcome& o = out[e.id];
            o.tokens.push_back(e.token);
            if (e.finished) ++o.finishes, o.reason = e.reason, o.error = e.error;
            if (last_step.count(e.id)) {
                EXPECT_LE(step - last_step[e.id], 2) << "request " << e.id << " waited too long";
            }
            last_step[e.id] = step;
        }
        EXPECT_LE(s.running(), 3);
    }
    for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(out[ids[i]].tokens, run_alone(reqs[i])) << "request " << i;
        EXPECT_EQ(out[ids[i]].finishes, 1);
    }
}

template <typename E, typename F>
void expect_error(F f, const std::string& needle) {
    try {
        f();
        ADD_FAILURE() << "no error, expected one mentioning '" << needle << "'";
    } catch (const E& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

// A long common prefix (a system prompt) followed by different questions: requests after the first attach the
// cached blocks and compute only the rest, and still produce exactly what they produce alone. Requests admitted
// in the same step cannot share (nothing is published yet); with the cache off nothing is shared.
void check_shared_prefix(bool cache_on) {
    Context ctx(stories_model(), ctx_params(1024, 16));
    SchedulerParams sp;
    sp.token_budget = 64;
    sp.prefix_cache = cache_on;
    Scheduler s(ctx, sp);
    const std::vector<int32_t> system = prompt(100, 77);
    auto with_question = [&](int salt, bool sampled) {
        GenRequest r = request(12, 10, static_cast<uint32_t>(salt), sampled);
        r.prompt.erase(r.prompt.begin());  // drop its BOS: the system prompt has one
        r.prompt.insert(r.prompt.begin(), system.begin(), system.end());
        return r;
    };
    const GenRequest first = with_question(1, false);
    const int64_t i1 = s.submit(first);
    EXPECT_EQ(drain(s).at(i1).tokens, run_alone(first));
    EXPECT_EQ(s.prefix_tokens_hit(), 0);
    EXPECT_EQ(s.prefix_tokens_queried(), static_cast<int64_t>(first.prompt.size()));
    EXPECT_EQ(s.kv_blocks_used(), 0);
    EXPECT_EQ(s.kv_blocks_cached(), cache_on ? (111 + 10 - 1) / 16 : 0);  // prompt + generated, full blocks

    // Two more, one greedy and one sampled: each attaches the 6 full blocks of the system prompt (96 tokens)
    // and prefills only its 15 remaining prompt tokens.
    const int64_t prefilled = s.tokens_prefilled();
    const GenRequest second = with_question(2, false), third = with_question(3, true);
    const int64_t i2 = s.submit(second), i3 = s.submit(third);
    const auto out = drain(s);
    EXPECT_EQ(out.at(i2).tokens, run_alone(second));
    EXPECT_EQ(out.at(i3).tokens, run_alone(third));
    EXPECT_EQ(s.prefix_tokens_hit(), cache_on ? 2 * 96 : 0);
    EXPECT_EQ(s.tokens_prefilled() - prefilled, cache_on ? 2 * (111 - 96) : 2 * 111);
    EXPECT_EQ(s.kv_blocks_used(), 0);

    // The same prompt again: the cache holds 7 blocks of it (prompt + answer), but attaching stops at whole
    // blocks before the last prompt token, whose logits must be computed: 6 blocks, 96 of its 111 tokens.
    const int64_t hit_before = s.prefix_tokens_hit();
    const int64_t i4 = s.submit(first);
    EXPECT_EQ(drain(s).at(i4).tokens, run_alone(first));
    EXPECT_EQ(s.prefix_tokens_hit() - hit_before, cache_on ? 96 : 0);
}

TEST(Scheduler, SharedPrefixIsComputedOnce) { check_shared_prefix(true); }
TEST(Scheduler, PrefixCacheOffSharesNothing) { check_shared_prefix(false); }

// Sampled requests under a grammar, batched, with a pool small enough to preempt: every output is in the
// language, ends with the stop token exactly where the grammar is complete, and a preempted request resumes
// with its grammar state.
TEST(Scheduler, GrammarConstrainedRequestsStayInTheLanguage) {
    const grammar::Grammar g = grammar::parse_gbnf(R"(
root ::= "Once" (" " word){2,6} ("." | "!")
word ::= [a-z]{1,8}
)");
    const tok::Vocab vocab = tok::Vocab::from_gguf(stories_model().file);
    auto cg = grammar::compile(g, std::make_shared<const grammar::TokenTable>(grammar::TokenTable::from_vocab(vocab)));
    grammar::testing::Recognizer rec(g);
    Context ctx(stories_model(), ctx_params(96, 8));
    SchedulerParams sp;
    sp.token_budget = 32;
    Scheduler s(ctx, sp);
    std::vector<int64_t> ids;
    for (int i = 0; i < 10; ++i) {
        GenRequest r = request(10 + 3 * i, 40, 50 + i, true);
        r.sampling.temperature = 1.0f;
        r.sampling.top_k = 0;
        r.sampling.top_p = 1.0f;
        r.sampling.min_p = 0.0f;
        r.stop_tokens = {vocab.eos()};
        r.grammar = cg;
        ids.push_back(s.submit(r));
    }
    const auto out = drain(s);
    int completed = 0;
    for (int64_t id : ids) {
        const Outcome& o = out.at(id);
        std::string text;
        for (int32_t t : o.tokens)
            if (t != vocab.eos()) text += vocab.token_to_piece(t);
        if (o.reason == FinishReason::Stop) {
            ++completed;
            EXPECT_EQ(o.tokens.back(), vocab.eos());
            EXPECT_TRUE(rec.matches(text)) << text;
        } else {
            EXPECT_EQ(o.reason, FinishReason::Length);
            EXPECT_TRUE(rec.is_prefix(text)) << text;
        }
    }
    EXPECT_GE(completed, 5);
    EXPECT_GT(s.preemptions(), 0);
    GenRequest no_stop = request(5, 4, 1, true);
    no_stop.grammar = cg;
    EXPECT_THROW(s.submit(no_stop), Error);
}

// A request whose grammar fails while generating (one too ambiguous to run: 24 nested loops) ends alone with
// FinishReason::Error and the grammar's message; the request batched beside it is unaffected (the same tokens
// as when it runs alone), and the scheduler goes on serving.
TEST(Scheduler, AFailingGrammarEndsOnlyItsRequest) {
    const tok::Vocab vocab = tok::Vocab::from_gguf(stories_model().file);
    const auto table = std::make_shared<const grammar::TokenTable>(grammar::TokenTable::from_vocab(vocab));
    auto bad = grammar::compile(grammar::parse_gbnf("root ::= [a-z ]" + std::string(24, '+') + " \"xyzzy.\""), table);
    Context ctx(stories_model(), ctx_params(256));
    Scheduler s(ctx, SchedulerParams{});
    GenRequest good = request(12, 16, 7, true);
    GenRequest failing = request(14, 16, 8, true);
    failing.stop_tokens = {vocab.eos()};
    failing.grammar = bad;
    const int64_t ig = s.submit(good), ib = s.submit(failing);
    const auto out = drain(s);
    EXPECT_EQ(out.at(ib).reason, FinishReason::Error);
    EXPECT_NE(out.at(ib).error.find("too ambiguous"), std::string::npos) << out.at(ib).error;
    EXPECT_EQ(out.at(ig).reason, FinishReason::Length);
    const int64_t again = s.submit(good);
    const auto alone = drain(s);
    EXPECT_EQ(out.at(ig).tokens, alone.at(again).tokens);
    EXPECT_EQ(s.kv_blocks_used(), 0);
}

TEST(Scheduler, RequestErrorsAndFinishReasons) {
    Context ctx(stories_model(), ctx_params(128));
    SchedulerParams sp;
    sp.max_waiting = 2;
    Scheduler s(ctx, sp);
    GenRequest r = request(10, 8, 41, false);
    r.prompt.clear();
    expect_error<Error>([&] { s.submit(r); }, "prompt is empty");
    r = request(129, 1, 41, false);
    expect_error<Error>([&] { s.submit(r); }, "more than the context size 128");
    r = request(100, 29, 41, false);
    expect_error<Error>([&] { s.submit(r); }, "exceeds the context size 128");
    r = request(10, 8, 41, false);
    r.prompt[3] = 512;
    expect_error<Error>([&] { s.submit(r); }, "out of the vocabulary");
    r = request(10, 0, 41, false);
    expect_error<Error>([&] { s.submit(r); }, "max_tokens");
    r = request(10, 8, 41, false);
    r.sampling.top_p = 2.0f;
    expect_error<Error>([&] { s.submit(r); }, "top");
    EXPECT_TRUE(s.idle());

    // Length: max_tokens tokens, the last finished with Length.
    const GenRequest len = request(10, 3, 42, false);
    const int64_t il = s.submit(len);
    // Stop: a token the request produces (its 4th when alone) ends it there, reported with that token.
    GenRequest stop = request(12, 20, 43, false);
    const std::vector<int32_t> alone = run_alone(stop);
    stop.stop_tokens = {alone[3]};
    const size_t first = std::find(alone.begin(), alone.end(), alone[3]) - alone.begin();
    const int64_t is = s.submit(stop);
    expect_error<QueueFull>([&] { s.submit(request(5, 5, 44, false)); }, "queue is full");
    const auto out = drain(s);
    EXPECT_EQ(out.at(il).tokens.size(), 3u);
    EXPECT_EQ(out.at(il).reason, FinishReason::Length);
    EXPECT_EQ(out.at(is).tokens, std::vector<int32_t>(alone.begin(), alone.begin() + first + 1));
    EXPECT_EQ(out.at(is).reason, FinishReason::Stop);
    EXPECT_STREQ(finish_reason_name(FinishReason::Stop), "stop");
    // The queue has room again; a one-token prompt (BOS alone) counts as one prefilled token.
    const int64_t prefilled = s.tokens_prefilled(), generated = s.tokens_generated();
    const GenRequest bos = request(1, 2, 45, false);
    const int64_t ib = s.submit(bos);
    EXPECT_EQ(drain(s).at(ib).tokens, run_alone(bos));
    EXPECT_EQ(s.tokens_prefilled() - prefilled, 1);
    EXPECT_EQ(s.tokens_generated() - generated, 2);
    EXPECT_TRUE(s.idle());
}

// Speculation per request: lookup and draft-model drafts verified in the batched steps give each request the
// tokens it gets alone, the counters say drafts were made and kept, and drafting stops while the step's decode
// entries would exceed speculative_max_tokens.
TEST(Scheduler, SpeculativeRequestsGiveTheSameTokens) {
    const Model& m = stories_model();
    DraftModel drafter(m, ctx_params(1024));  // stories260K drafting for itself
    for (const bool sampled : {false, true}) {
        SCOPED_TRACE(sampled ? "seeded sampling" : "greedy");
        Context ctx(m, ctx_params(1024));
        SchedulerParams sp;
        sp.drafter = &drafter;
        sp.draft_max = 6;
        sp.speculative_max_tokens = 32;
        Scheduler s(ctx, sp);
        std::vector<GenRequest> reqs;
        std::vector<int64_t> ids;
        const Speculation modes[] = {Speculation::Off, Speculation::Lookup, Speculation::Draft, Speculation::Draft};
        for (int i = 0; i < 4; ++i) {
            GenRequest r = request(20 + 7 * i, 60, 40 + static_cast<uint32_t>(i), sampled);
            r.speculative = modes[i];
            reqs.push_back(r);
            ids.push_back(s.submit(r));
        }
        const auto out = drain(s);
        for (int i = 0; i < 4; ++i) EXPECT_EQ(out.at(ids[i]).tokens, run_alone(reqs[i])) << "request " << i;
        EXPECT_GT(s.speculative_steps(), 0);
        EXPECT_GT(s.speculative_drafted(), s.speculative_steps());
        EXPECT_GT(s.speculative_accepted(), 0);
        EXPECT_LE(s.speculative_accepted(), s.speculative_drafted());
        if (!sampled) {
            EXPECT_LT(s.steps(), 60 + 10);  // greedy self-drafts are kept: far fewer steps than tokens
        }
    }
    // Four streams decoding together fill a speculative_max_tokens of 4: no step has room for a draft.
    Context ctx(m, ctx_params(1024));
    SchedulerParams sp;
    sp.drafter = &drafter;
    sp.speculative_max_tokens = 4;
    Scheduler s(ctx, sp);
    for (int i = 0; i < 4; ++i) {
        GenRequest r = request(24, 30, 70 + static_cast<uint32_t>(i), false);
        r.speculative = Speculation::Draft;
        s.submit(r);
    }
    drain(s);
    EXPECT_EQ(s.speculative_steps(), 0);
}

}  // namespace
}  // namespace hearth
