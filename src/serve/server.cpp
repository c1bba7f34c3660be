#include "serve/server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include "base/error.h"
#include "chat/chat_template.h"
#include "model/draft.h"
#include "model/embed.h"
#include "model/forward.h"
#include "runtime/scheduler.h"
#include "serve/metrics.h"
#include "serve/openai.h"
#include "serve/structured.h"
#include "serve/web_assets.h"

namespace hearth::serve {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

bool constant_time_equal(const std::string& a, const std::string& b) {
    // Compare over the longer length so that neither the content nor the length position leaks through time.
    const size_t n = std::max(a.size(), b.size());
    unsigned diff = a.size() == b.size() ? 0u : 1u;
    for (size_t i = 0; i < n; ++i) {
        const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
        const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
        diff |= static_cast<unsigned>(x ^ y);
    }
    return diff == 0;
}

namespace {

std::string_view content_type_for(std::string_view path) {
    auto ends = [&](std::string_view ext) { return path.size() >= ext.size() && path.substr(path.size() - ext.size()) == ext; };
    if (ends(".html")) return "text/html; charset=utf-8";
    if (ends(".js") || ends(".mjs")) return "text/javascript; charset=utf-8";
    if (ends(".css")) return "text/css; charset=utf-8";
    if (ends(".svg")) return "image/svg+xml";
    if (ends(".png")) return "image/png";
    if (ends(".ico")) return "image/x-icon";
    if (ends(".json")) return "application/json";
    return "application/octet-stream";
}

int64_t count_code_points(std::string_view s) {
    int64_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

// One request's channel from the engine thread to its HTTP handler.
struct Channel {
    std::mutex m;
    std::condition_variable cv;
    int64_t id = 0;            // the scheduler's id once accepted
    bool accepted = false;
    std::string reject;        // set when submit() refused it
    int reject_status = 0;
    std::deque<Event> events;  // tokens, in order
    // Events pushed and not yet taken (read by the engine without this channel's lock: see engine_loop).
    std::atomic<int> undelivered{0};
    bool finished = false;
    bool logprobs = false;     // the request asked for logprobs (its events carry them)
};

struct Submission {
    GenRequest req;
    std::shared_ptr<Channel> ch;
};

}  // namespace

struct Server::Impl {
    const Model& model;
    const tok::Vocab& vocab;
    ServerOptions opt;
    std::string model_id;
    std::unique_ptr<ChatTemplate> chat_template;
    Context ctx;
    std::unique_ptr<DraftModel> drafter;  // before sched, which points at it
    Scheduler sched;
    httplib::Server http;
    Metrics metrics;
    int64_t created = 0;

    std::mutex m;  // guards the fields below
    std::condition_variable cv;
    std::deque<Submission> submissions;
    std::vector<int64_t> cancels;
    std::unordered_map<int64_t, std::shared_ptr<Channel>> live;
    bool stopping = false, draining = false;
    std::thread engine, listener;
    std::atomic<bool> listening{false};
    int bound_port = 0;

    std::mutex embed_m;  // embeddings run one request at a time on their own context
    std::unique_ptr<Embedder> embedder;

    GrammarCache grammars;  // structured output: compiled grammars by their text
    ToolSupport tool_support;

    Impl(const Model& model_, const tok::Vocab& vocab_, const ServerOptions& o)
        : model(model_),
          vocab(vocab_),
          opt(o),
          ctx(model_, make_context_params(o)),
          drafter(make_drafter(o)),
          sched(ctx, scheduler_params(o, drafter.get())),
          grammars(vocab_) {
        model_id = opt.model_name.empty() ? (model.hp.name.empty() ? model.hp.arch : model.hp.name) : opt.model_name;
        const std::string tmpl = model.file.get_str_or("tokenizer.chat_template", "");
        const std::string source = tmpl.empty() ? kDefaultChatTemplate : tmpl;
        chat_template = std::make_unique<ChatTemplate>(source);
        created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
        tool_support = probe_tool_support(source, *chat_template, chat_inputs());
    }

    static std::unique_ptr<DraftModel> make_drafter(const ServerOptions& o) {
        if (!o.draft_model) return nullptr;
        ContextParams dp;
        dp.n_ctx = o.n_ctx;
        dp.n_threads = o.n_threads;
        return std::make_unique<DraftModel>(*o.draft_model, dp);
    }
    static SchedulerParams scheduler_params(const ServerOptions& o, DraftModel* drafter) {
        SchedulerParams p{std::min(512, std::max(64, o.parallel * 4)), o.parallel, o.max_waiting, o.prefix_cache};
        p.drafter = drafter;
        p.draft_max = o.draft_max;
        p.speculative_max_tokens = o.speculative_max_tokens;
        return p;
    }

    ChatInputs chat_inputs() const {
        ChatInputs in;
        in.add_generation_prompt = true;
        if (vocab.bos() >= 0) in.bos_token = vocab.text(vocab.bos());
        if (vocab.eos() >= 0) in.eos_token = vocab.text(vocab.eos());
        return in;
    }

    static ContextParams make_context_params(const ServerOptions& o) {
        ContextParams cp;
        cp.n_ctx = o.n_ctx;
        cp.n_threads = o.n_threads;
        cp.kv_type = o.kv_type;
        cp.kv_residual = o.kv_residual;
        return cp;
    }

    // ---- engine thread: owns the scheduler.
    void engine_loop() {
        for (;;) {
            std::vector<Submission> subs;
            std::vector<int64_t> cancel_ids;
            {
                std::unique_lock<std::mutex> lock(m);
                // Backpressure: while every live request has more than kMaxUndelivered tokens its handler has
                // not taken (a stream whose writer is starved or whose client reads slowly), stepping would only
                // make tokens nobody may want: a Stop, seen when a write fails, would find the answer hundreds
                // of tokens further on. A waiting request is live with none undelivered, so it is never held up.
                cv.wait(lock, [&] {
                    return stopping || !submissions.empty() || !cancels.empty() || (!sched.idle() && !all_backed_up());
                });
                if (stopping && sched.idle() && submissions.empty()) return;
                subs.assign(std::make_move_iterator(submissions.begin()), std::make_move_iterator(submissions.end()));
                submissions.clear();
                cancel_ids.swap(cancels);
            }
            for (auto& s : subs) {
                std::lock_guard<std::mutex> lock(s.ch->m);
                try {
                    s.ch->id = sched.submit(std::move(s.req));
                    s.ch->accepted = true;
                    std::lock_guard<std::mutex> g(m);
                    live[s.ch->id] = s.ch;
                } catch (const QueueFull& e) {
                    s.ch->reject = e.what();
                    s.ch->reject_status = 429;
                } catch (const Error& e) {
                    s.ch->reject = e.what();
                    s.ch->reject_status = 400;
                }
                s.ch->cv.notify_all();
            }
            for (int64_t id : cancel_ids) sched.cancel(id);
            if (sched.idle()) continue;
            std::vector<Event> events;
            try {
                events = sched.step();
            } catch (const std::exception& e) {
                // A failed step must not leave clients hanging: end every live request.
                std::fprintf(stderr, "hearth serve: forward step failed: %s\n", e.what());
                std::lock_guard<std::mutex> g(m);
                for (auto& [id, ch] : live) {
                    sched.cancel(id);
                    std::lock_guard<std::mutex> lc(ch->m);
                    ch->finished = true;
                    ch->cv.notify_all();
                }
                live.clear();
                continue;
            }
            metrics.kv_blocks_used = sched.kv_blocks_used();
            metrics.kv_blocks_total = sched.kv_blocks_total();
            metrics.kv_blocks_cached = sched.kv_blocks_cached();
            metrics.prefix_tokens_queried = sched.prefix_tokens_queried();
            metrics.prefix_tokens_hit = sched.prefix_tokens_hit();
            metrics.preemptions = sched.preemptions();
            metrics.spec_steps = sched.speculative_steps();
            metrics.spec_drafted = sched.speculative_drafted();
            metrics.spec_accepted = sched.speculative_accepted();
            metrics.running = sched.running();
            metrics.waiting = sched.waiting();
            for (const Event& ev : events) {
                std::shared_ptr<Channel> ch;
                {
                    std::lock_guard<std::mutex> g(m);
                    auto it = live.find(ev.id);
                    if (it == live.end()) continue;
                    ch = it->second;
                    if (ev.finished) live.erase(it);
                }
                std::lock_guard<std::mutex> lc(ch->m);
                ch->events.push_back(ev);
                ch->undelivered.fetch_add(1);
                if (ev.finished) ch->finished = true;
                ch->cv.notify_all();
            }
        }
    }

    static constexpr int kMaxUndelivered = 16;
    // Every live request's handler is more than kMaxUndelivered tokens behind (m held).
    bool all_backed_up() const {
        if (live.empty()) return false;
        for (const auto& [id, ch] : live)
            if (ch->undelivered.load() <= kMaxUndelivered) return false;
        return true;
    }

    // Submits and waits for acceptance; throws ApiError (429 / 400) when refused.
    std::shared_ptr<Channel> submit(GenRequest req) {
        auto ch = std::make_shared<Channel>();
        ch->logprobs = req.logprobs >= 0;
        {
            std::lock_guard<std::mutex> g(m);
            if (draining) throw ApiError(503, "the server is shutting down", "server_error");
            submissions.push_back({std::move(req), ch});
        }
        cv.notify_all();
        std::unique_lock<std::mutex> lock(ch->m);
        ch->cv.wait(lock, [&] { return ch->accepted || ch->reject_status != 0; });
        if (ch->reject_status == 429) throw ApiError(429, ch->reject, "rate_limit_error", "", "queue_full");
        if (ch->reject_status) throw ApiError(400, ch->reject, "invalid_request_error", "messages", "invalid_value");
        return ch;
    }

    void cancel(int64_t id) {
        {
            std::lock_guard<std::mutex> g(m);
            cancels.push_back(id);
        }
        cv.notify_all();
    }

    // Cancels a request whose answer is no longer wanted (client gone, stop string) and waits until the
    // scheduler has reported it, so that its blocks are free when this returns.
    void abandon(Channel& ch) {
        cancel(ch.id);
        Event ev;
        while (next_event(ch, ev)) {}
    }

    // Next event of a request; false when it has finished and every event was taken.
    bool next_event(Channel& ch, Event& out) {
        std::unique_lock<std::mutex> lock(ch.m);
        ch.cv.wait(lock, [&] { return !ch.events.empty() || ch.finished; });
        if (ch.events.empty()) return false;
        out = ch.events.front();
        ch.events.pop_front();
        if (ch.undelivered.fetch_sub(1) == kMaxUndelivered + 1) {
            lock.unlock();
            // Taking m orders this wake-up after the engine's last look at the counts (no lost wake-up).
            { std::lock_guard<std::mutex> g(m); }
            cv.notify_all();
        }
        return true;
    }

    GenRequest gen_request(std::vector<int32_t> prompt, const SamplingFields& s,
                           std::shared_ptr<const grammar::CompiledGrammar> grammar) const {
        GenRequest g;
        g.grammar = std::move(grammar);
        g.logprobs = s.logprobs ? s.top_logprobs : -1;
        g.prompt = std::move(prompt);
        g.sampling.temperature = s.temperature.value_or(1.0f);
        g.sampling.top_p = s.top_p.value_or(1.0f);
        g.sampling.top_k = 0;
        g.sampling.min_p = 0.0f;
        g.sampling.presence_penalty = s.presence_penalty;
        g.sampling.frequency_penalty = s.frequency_penalty;
        if (s.seed) g.sampling.seed = *s.seed;
        const std::string mode = s.speculative.value_or(opt.speculative);
        g.speculative = mode == "lookup" ? Speculation::Lookup : mode == "draft" ? Speculation::Draft : Speculation::Off;
        if (g.speculative == Speculation::Draft && !drafter)
            bad_param("speculative", "'speculative': \"draft\" needs a draft model (hearth serve --draft MODEL)");
        const int room = opt.n_ctx - static_cast<int>(g.prompt.size());
        if (room < 1)
            throw ApiError(400,
                           fmt::format("the prompt has {} tokens, which leaves no room in the context of {} tokens",
                                       g.prompt.size(), opt.n_ctx),
                           "invalid_request_error", "messages", "context_length_exceeded");
        if (s.max_tokens && *s.max_tokens > room)
            throw ApiError(400,
                           fmt::format("the prompt ({} tokens) plus max_tokens ({}) exceed the context of {} tokens",
                                       g.prompt.size(), *s.max_tokens, opt.n_ctx),
                           "invalid_request_error", "max_tokens", "context_length_exceeded");
        g.max_tokens = s.max_tokens.value_or(std::min(opt.default_max_tokens, room));
        for (int32_t id : vocab.eog_ids()) g.stop_tokens.push_back(id);
        return g;
    }

    std::vector<int32_t> tokenize_prompt(const std::string& text) const {
        std::vector<int32_t> toks = vocab.encode(text, /*add_special=*/false, /*parse_special=*/true);
        // The template usually writes the BOS text itself; add it only when it did not.
        if (vocab.add_bos() && vocab.bos() >= 0 && (toks.empty() || toks[0] != vocab.bos()))
            toks.insert(toks.begin(), vocab.bos());
        if (toks.empty()) throw ApiError(400, "the prompt is empty", "invalid_request_error", "prompt");
        return toks;
    }

    void check_model(const std::string& name) const {
        if (!name.empty() && name != model_id)
            throw ApiError(404, "the model '" + name + "' does not exist (this server serves '" + model_id + "')",
                           "invalid_request_error", "model", "model_not_found");
    }

    // Text generation shared by chat and completions: runs the request, detokenizes, applies stop strings,
    // and calls emit(text piece, tokens) as text becomes final, `tokens` being the logprobs of the tokens
    // whose text starts in that piece (empty unless the request asked for logprobs); returns the finish reason
    // and usage.
    struct Outcome {
        std::string finish_reason;
        Usage usage;
        bool client_gone = false;
        std::string error;  // the request could not go on (FinishReason::Error)
    };
    template <typename Emit>
    Outcome generate(const std::shared_ptr<Channel>& ch, int n_prompt, const std::vector<std::string>& stops,
                     Emit&& emit) {
        Outcome o;
        o.usage.prompt_tokens = n_prompt;
        tok::StreamDecoder dec(vocab);
        std::string held;  // decoded text not yet emitted: it may be the start of a stop string
        int64_t emitted = 0;  // characters of text emitted so far
        // Logprobs of tokens not emitted yet; text_offset is relative to `held` until they are.
        std::vector<TokenLogprobText> pending;
        // Emits held[0, n) with the tokens whose text starts there (all pending ones when `all`: at the end).
        auto release = [&](size_t n, bool all) {
            std::vector<TokenLogprobText> out;
            size_t k = all ? pending.size() : 0;
            while (k < pending.size() && static_cast<size_t>(pending[k].text_offset) < n) ++k;
            out.assign(std::make_move_iterator(pending.begin()), std::make_move_iterator(pending.begin() + k));
            pending.erase(pending.begin(), pending.begin() + k);
            // Offsets in characters (code points), as OpenAI counts them, from the start of the completion.
            for (auto& t : out)
                t.text_offset = emitted + count_code_points(std::string_view(held).substr(
                                              0, std::min(held.size(), static_cast<size_t>(t.text_offset))));
            for (auto& t : pending) t.text_offset -= static_cast<int64_t>(n);
            const bool ok = emit(held.substr(0, n), std::move(out));
            emitted += count_code_points(std::string_view(held).substr(0, n));
            held.erase(0, n);
            return ok;
        };
        const Clock::time_point t0 = Clock::now();
        Clock::time_point last = t0;
        bool first = true;
        Event ev;
        while (next_event(*ch, ev)) {
            if (ev.token >= 0) {
                const Clock::time_point now = Clock::now();
                if (first) metrics.ttft.observe(std::chrono::duration<double>(now - t0).count());
                else metrics.itl.observe(std::chrono::duration<double>(now - last).count());
                first = false;
                last = now;
                metrics.tokens_out += 1;
                o.usage.completion_tokens = ev.n_generated;
                if (!(ev.finished && ev.reason == FinishReason::Stop)) {
                    if (ch->logprobs) {
                        TokenLogprobText t;
                        t.piece = vocab.token_to_piece(ev.token);
                        t.logprob = ev.logprob;
                        for (const TokenLogprob& a : ev.top_logprobs)
                            t.top.emplace_back(vocab.token_to_piece(a.token), a.logprob);
                        t.text_offset = static_cast<int64_t>(held.size());
                        pending.push_back(std::move(t));
                    }
                    held += dec.push(ev.token);
                }
            }
            if (ev.finished) {
                held += dec.flush();
                o.finish_reason = ev.reason == FinishReason::Length ? "length" : "stop";
                if (ev.reason == FinishReason::Cancelled) o.client_gone = true;
                if (ev.reason == FinishReason::Error) o.error = ev.error;
            }
            // Stop strings: cut at the first match and end the request (tokens past the cut are dropped).
            size_t cut = std::string::npos;
            for (const auto& s : stops)
                if (size_t p = held.find(s); p != std::string::npos) cut = std::min(cut, p);
            if (cut != std::string::npos) {
                held.resize(cut);
                std::erase_if(pending, [&](const TokenLogprobText& t) { return static_cast<size_t>(t.text_offset) >= cut; });
                if ((!held.empty() || !pending.empty()) && !release(held.size(), true)) o.client_gone = true;
                o.finish_reason = "stop";
                abandon(*ch);
                return o;
            }
            // Emit all but the longest tail that could still begin a stop string.
            size_t keep = 0;
            for (const auto& s : stops)
                for (size_t k = std::min(s.size() - 1, held.size()); k > keep; --k)
                    if (held.compare(held.size() - k, k, s, 0, k) == 0) {
                        keep = k;
                        break;
                    }
            if (ev.finished) keep = 0;
            if (held.size() > keep || (ev.finished && !pending.empty())) {
                if (!release(held.size() - keep, ev.finished)) {
                    o.client_gone = true;
                    abandon(*ch);
                    return o;
                }
            }
        }
        return o;
    }

    // The whole answer of a non-streamed request.
    std::tuple<std::string, std::vector<TokenLogprobText>, Outcome> collect(const std::shared_ptr<Channel>& ch, int n_prompt,
                                            const std::vector<std::string>& stops) {
        std::string text;
        std::vector<TokenLogprobText> lps;
        Outcome o = generate(ch, n_prompt, stops, [&](const std::string& t, std::vector<TokenLogprobText>&& toks) {
            text += t;
            lps.insert(lps.end(), std::make_move_iterator(toks.begin()), std::make_move_iterator(toks.end()));
            return true;
        });
        if (!o.error.empty()) throw generation_failed(o.error);
        return {std::move(text), std::move(lps), o};
    }

    // A request that failed mid-generation: its grammar (the request's own) could not go on.
    static ApiError generation_failed(const std::string& why) {
        return ApiError(400, "generation failed: " + why, "invalid_request_error", "", "generation_failed");
    }
    // The same, in a stream that has already begun: an error event in place of the final chunk.
    static void write_stream_error(httplib::DataSink& sink, const std::string& why) {
        write_sse(sink, generation_failed(why).to_json());
        end_stream(sink);
    }

    // Tokens of a request body must be in the vocabulary.
    void check_token_ids(const std::vector<int32_t>& ids, const char* param) const {
        for (int32_t t : ids)
            if (t >= vocab.n_tokens())
                throw ApiError(400, fmt::format("token id {} is outside the vocabulary of {}", t, vocab.n_tokens()),
                               "invalid_request_error", param);
    }

    // Queues a generation request for a tokenized prompt (under a grammar for structured output).
    std::shared_ptr<Channel> start(std::vector<int32_t> prompt, const SamplingFields& s,
                                   std::shared_ptr<const grammar::CompiledGrammar> grammar = nullptr) {
        const int64_t n = static_cast<int64_t>(prompt.size());
        GenRequest g = gen_request(std::move(prompt), s, std::move(grammar));
        metrics.tokens_in += n;
        return submit(std::move(g));
    }

    static bool write_sse(httplib::DataSink& sink, const json& j) {
        const std::string e = sse_event(j);
        return sink.write(e.data(), e.size());
    }
    static void end_stream(httplib::DataSink& sink) {
        const std::string done = sse_done();
        sink.write(done.data(), done.size());
    }

    // ---- HTTP
    void reply_error(httplib::Response& res, const ApiError& e) {
        res.status = e.status;
        if (e.status == 429) res.set_header("Retry-After", "1");
        res.set_content(e.to_json().dump(), "application/json");
        metrics.count_request(e.status);
    }

    bool authorized(const httplib::Request& req, httplib::Response& res) {
        if (opt.api_key.empty()) return true;
        const std::string auth = req.get_header_value("Authorization");
        const std::string prefix = "Bearer ";
        const std::string given = auth.rfind(prefix, 0) == 0 ? auth.substr(prefix.size()) : std::string();
        if (!given.empty() && constant_time_equal(given, opt.api_key)) return true;
        reply_error(res, ApiError(401, given.empty() ? "missing API key (send 'Authorization: Bearer KEY')"
                                                     : "incorrect API key",
                                  "invalid_request_error", "", "invalid_api_key"));
        return false;
    }

    template <typename Fn>
    void guarded(const httplib::Request& req, httplib::Response& res, Fn&& fn) {
        if (!authorized(req, res)) return;
        try {
            fn();
        } catch (const ApiError& e) {
            reply_error(res, e);
        } catch (const std::exception& e) {
            reply_error(res, ApiError(500, std::string("internal error: ") + e.what(), "server_error"));
        }
    }

    std::string new_id(const char* prefix) {
        static std::atomic<uint64_t> n{0};
        return fmt::format("{}-{:x}{:06x}", prefix, created, ++n);
    }

    // The compiled form of a request's grammar (cached by its text); `param` names the field that asked for it.
    std::shared_ptr<const grammar::CompiledGrammar> compile(const std::optional<grammar::Grammar>& g,
                                                            const std::string& param) {
        if (!g) return nullptr;
        try {
            return grammars.get(*g);
        } catch (const Error& e) {
            throw ApiError(400, "'" + param + "' cannot be enforced: " + e.what(), "invalid_request_error", param,
                           "unsupported_schema");
        }
    }

    void handle_chat(const httplib::Request& req, httplib::Response& res) {
        const ChatRequest r = parse_chat_request(req.body);
        check_model(r.model);
        const bool tools = resolve_tool_choice(r).mode != ToolMode::None;
        if (tools && !tool_support.generate)
            throw ApiError(400, tool_support.refusal, "invalid_request_error", "tools", "unsupported_parameter");
        auto grammar = compile(chat_grammar(r, tool_support.thinking, opt.strict_schema), tools ? "tools" : "response_format");
        const ChatInputs in = tool_chat_inputs(r, tools, tool_support, chat_inputs());
        std::string prompt_text;
        try {
            prompt_text = chat_template->apply(in);
        } catch (const Error& e) {
            throw ApiError(400, std::string("the chat template failed on these messages: ") + e.what(),
                           "invalid_request_error", "messages");
        }
        std::vector<int32_t> prompt = tokenize_prompt(prompt_text);
        const int n_prompt = static_cast<int>(prompt.size());
        auto ch = start(std::move(prompt), r.sampling, std::move(grammar));
        const std::string id = new_id("chatcmpl");
        const std::string call_ids = "call_" + id.substr(id.find('-') + 1) + "_";
        if (!r.sampling.stream) {
            const auto [text, lps, o] = collect(ch, n_prompt, r.sampling.stop);
            json message = {{"role", "assistant"}, {"content", text}};
            std::string finish = o.finish_reason;
            if (tools) {
                const ParsedMessage m = parse_generated_tool_calls(text, call_ids);
                message = m.to_json();
                if (!m.tool_calls.empty() && finish == "stop") finish = "tool_calls";
            }
            res.set_content(chat_completion(id, model_id, created, message, finish, o.usage,
                                            r.sampling.logprobs ? chat_logprobs(lps) : json())
                                .dump(),
                            "application/json");
            metrics.count_request(200);
            return;
        }
        const SamplingFields s = r.sampling;
        res.set_chunked_content_provider("text/event-stream", [this, ch, id, s, n_prompt, tools, call_ids](size_t, httplib::DataSink& sink) {
            Outcome o;
            // With tools, text passes through a splitter: content streams as it becomes certain not to start a
            // call, and each call goes out whole when its closing marker arrives, in OpenAI's delta shape (name
            // and id first, then the arguments). Logprobs ride on the next chunk written.
            ToolCallSplitter split(call_ids);
            int n_calls_sent = 0;
            std::vector<TokenLogprobText> held_lps;
            auto take_lps = [&]() -> json {
                if (!s.logprobs) return json();
                json j = chat_logprobs(held_lps);
                held_lps.clear();
                return j;
            };
            auto write_piece = [&](const ToolCallSplitter::Piece& p) {
                if (!p.content.empty() &&
                    !write_sse(sink, chat_chunk(id, model_id, created, {{"content", p.content}}, std::nullopt, take_lps())))
                    return false;
                for (const ToolCall& c : p.calls) {
                    const int index = n_calls_sent++;
                    const json head = {{"tool_calls", json::array({{{"index", index}, {"id", c.id}, {"type", "function"},
                                                                     {"function", {{"name", c.name}, {"arguments", ""}}}}})}};
                    const json args = {{"tool_calls", json::array({{{"index", index}, {"function", {{"arguments", c.arguments}}}}})}};
                    if (!write_sse(sink, chat_chunk(id, model_id, created, head, std::nullopt, take_lps())) ||
                        !write_sse(sink, chat_chunk(id, model_id, created, args, std::nullopt)))
                        return false;
                }
                return true;
            };
            if (write_sse(sink, chat_chunk(id, model_id, created, {{"role", "assistant"}, {"content", ""}}, std::nullopt))) {
                o = generate(ch, n_prompt, s.stop, [&](const std::string& t, std::vector<TokenLogprobText>&& toks) {
                    if (!tools)
                        return write_sse(sink, chat_chunk(id, model_id, created, {{"content", t}}, std::nullopt,
                                                          s.logprobs ? chat_logprobs(toks) : json()));
                    held_lps.insert(held_lps.end(), std::make_move_iterator(toks.begin()), std::make_move_iterator(toks.end()));
                    return write_piece(split.push(t));
                });
                if (tools && !o.client_gone && !write_piece(split.finish())) o.client_gone = true;
            } else {
                abandon(*ch);
                o.client_gone = true;
            }
            if (!o.client_gone && !o.error.empty()) {
                write_stream_error(sink, o.error);
            } else if (!o.client_gone) {
                const std::string finish = tools && split.n_calls() > 0 && o.finish_reason == "stop" ? "tool_calls" : o.finish_reason;
                write_sse(sink, chat_chunk(id, model_id, created, json::object(), finish, held_lps.empty() ? json() : take_lps()));
                if (s.include_usage) {
                    json u = chat_chunk(id, model_id, created, json::object(), std::nullopt);
                    u["choices"] = json::array();
                    u["usage"] = o.usage.to_json();
                    write_sse(sink, u);
                }
                end_stream(sink);
            }
            sink.done();
            return true;
        });
        metrics.count_request(200);
    }

    void handle_completion(const httplib::Request& req, httplib::Response& res) {
        const CompletionRequest r = parse_completion_request(req.body);
        check_model(r.model);
        std::vector<int32_t> prompt;
        if (r.prompt_tokens) {
            prompt = *r.prompt_tokens;
            check_token_ids(prompt, "prompt");
        } else {
            prompt = vocab.encode(r.prompt, /*add_special=*/true, /*parse_special=*/true);
            if (prompt.empty()) throw ApiError(400, "'prompt' is empty", "invalid_request_error", "prompt");
        }
        const int n_prompt = static_cast<int>(prompt.size());
        // Completion logprobs count text offsets from the start of the prompt's text.
        const int64_t offset_base = r.sampling.logprobs
                                        ? count_code_points(r.prompt_tokens ? tok::sanitize_utf8(vocab.decode(prompt)) : r.prompt)
                                        : 0;
        auto ch = start(std::move(prompt), r.sampling, compile(response_format_grammar(r.response_format, opt.strict_schema), "response_format"));
        const std::string id = new_id("cmpl");
        if (!r.sampling.stream) {
            const auto [text, lps, o] = collect(ch, n_prompt, r.sampling.stop);
            res.set_content(text_completion(id, model_id, created, text, o.finish_reason, o.usage,
                                            r.sampling.logprobs ? completion_logprobs(lps, offset_base) : json())
                                .dump(),
                            "application/json");
            metrics.count_request(200);
            return;
        }
        const SamplingFields s = r.sampling;
        res.set_chunked_content_provider("text/event-stream", [this, ch, id, s, n_prompt, offset_base](size_t, httplib::DataSink& sink) {
            const Outcome o = generate(ch, n_prompt, s.stop, [&](const std::string& t, std::vector<TokenLogprobText>&& toks) {
                return write_sse(sink, text_completion(id, model_id, created, t, std::nullopt, std::nullopt,
                                                       s.logprobs ? completion_logprobs(toks, offset_base) : json()));
            });
            if (!o.client_gone && !o.error.empty()) {
                write_stream_error(sink, o.error);
            } else if (!o.client_gone) {
                write_sse(sink, text_completion(id, model_id, created, "", o.finish_reason,
                                                s.include_usage ? std::optional<Usage>(o.usage) : std::nullopt));
                end_stream(sink);
            }
            sink.done();
            return true;
        });
        metrics.count_request(200);
    }

    void handle_embeddings(const httplib::Request& req, httplib::Response& res) {
        const EmbeddingsRequest r = parse_embeddings_request(req.body);
        check_model(r.model);
        if (r.dimensions && *r.dimensions != model.hp.n_embd)
            throw ApiError(400, fmt::format("'dimensions' must be the model's {} (got {})", model.hp.n_embd, *r.dimensions),
                           "invalid_request_error", "dimensions", "unsupported_parameter");
        std::lock_guard<std::mutex> g(embed_m);
        if (!embedder) {
            EmbedParams ep;
            ep.n_threads = opt.n_threads;
            ep.pooling = model_pooling(model) == Pooling::None ? Pooling::Last : Pooling::None;
            embedder = std::make_unique<Embedder>(model, vocab, ep);
        }
        std::vector<std::vector<int32_t>> seqs;
        try {
            for (const auto& t : r.texts) seqs.push_back(embedder->tokenize(t));
        } catch (const Error& e) {
            throw ApiError(400, e.what(), "invalid_request_error", "input");
        }
        for (const auto& t : r.token_inputs) {
            check_token_ids(t, "input");
            if (static_cast<int64_t>(t.size()) > embedder->max_tokens())
                throw ApiError(400, fmt::format("an input has {} tokens, more than the model's context of {}", t.size(),
                                                embedder->max_tokens()),
                               "invalid_request_error", "input", "context_length_exceeded");
            seqs.push_back(t);
        }
        int64_t n_tokens = 0;
        for (const auto& s : seqs) n_tokens += static_cast<int64_t>(s.size());
        const std::vector<float> flat = embedder->embed_tokens(seqs);
        const int64_t dim = embedder->dim();
        std::vector<std::vector<float>> vecs;
        for (size_t i = 0; i < seqs.size(); ++i) vecs.emplace_back(flat.begin() + i * dim, flat.begin() + (i + 1) * dim);
        metrics.tokens_in += n_tokens;
        res.set_content(embeddings_list(model_id, vecs, n_tokens, r.base64).dump(), "application/json");
        metrics.count_request(200);
    }

    // llama-server's POST /tokenize: {"content": str, "add_special": false, "parse_special": true,
    // "with_pieces": false} -> {"tokens": [id, ...]}, or [{"id", "piece"}, ...] with pieces (special tokens by
    // their text, as llama-server renders them).
    void handle_tokenize(const httplib::Request& req, httplib::Response& res) {
        const TokenizeRequest r = parse_tokenize_request(req.body);
        json tokens = json::array();
        for (int32_t t : vocab.encode(r.content, r.add_special, r.parse_special)) {
            if (r.with_pieces)
                tokens.push_back({{"id", t}, {"piece", piece_json(vocab.token_to_piece(t, /*special=*/true))}});
            else
                tokens.push_back(t);
        }
        res.set_content(json{{"tokens", std::move(tokens)}}.dump(), "application/json");
        metrics.count_request(200);
    }

    // llama-server's POST /detokenize: {"tokens": [id, ...]} -> {"content": str}. Control tokens are written as
    // their text (the inverse of /tokenize's parse_special default); unlike llama-server, which concatenates the
    // pieces, the space the SPM encoder puts before a text is dropped again (llama.cpp's detokenize), so
    // detokenizing the tokens of a text gives the text. Ids that split a character end in U+FFFD.
    void handle_detokenize(const httplib::Request& req, httplib::Response& res) {
        const std::vector<int32_t> ids = parse_detokenize_request(req.body, vocab.n_tokens());
        const std::string text = tok::sanitize_utf8(vocab.decode(ids, /*special=*/true));
        res.set_content(json{{"content", text}}.dump(), "application/json");
        metrics.count_request(200);
    }

    void routes() {
        http.set_payload_max_length(opt.max_body_bytes);
        const int n_http = opt.http_threads > 0 ? opt.http_threads : opt.parallel + opt.max_waiting + 8;
        http.new_task_queue = [n_http] { return new httplib::ThreadPool(static_cast<size_t>(n_http)); };
        http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
            res.set_content(json{{"status", "ok"}}.dump(), "application/json");
        });
        http.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
            guarded(req, res, [&] { res.set_content(models_list({model_id}, created).dump(), "application/json"); });
        });
        http.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
            guarded(req, res, [&] {
                const std::string name = req.matches[1];
                check_model(name);
                res.set_content(models_list({model_id}, created)["data"][0].dump(), "application/json");
            });
        });
        http.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
            guarded(req, res, [&] { res.set_content(metrics.prometheus(), "text/plain; version=0.0.4"); });
        });
        http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
            guarded(req, res, [&] { handle_chat(req, res); });
        });
        http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
            guarded(req, res, [&] { handle_completion(req, res); });
        });
        http.Post("/v1/embeddings", [this](const httplib::Request& req, httplib::Response& res) {
            guarded(req, res, [&] { handle_embeddings(req, res); });
        });
        http.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
            guarded(req, res, [&] { handle_tokenize(req, res); });
        });
        http.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
            guarded(req, res, [&] { handle_detokenize(req, res); });
        });
        // The web chat UI: static files compiled into the binary, "/" being index.html. They are public (the page
        // asks for the API key and sends it with its API calls, which are guarded as any client's).
        for (const WebAsset& a : web_assets()) {
            auto serve_asset = [a](const httplib::Request&, httplib::Response& res) {
                res.set_content(std::string(a.data), std::string(content_type_for(a.path)));
                res.set_header("Cache-Control", "no-cache");
            };
            std::string pattern;  // httplib routes are regular expressions: match the name literally
            for (char c : a.path) {
                if (std::strchr(".+*?()[]{}|^$\\", c)) pattern += '\\';
                pattern += c;
            }
            http.Get(pattern, serve_asset);
            if (a.path == "/index.html") http.Get("/", serve_asset);
        }
        // Unknown paths and over-long bodies: OpenAI-shaped errors rather than httplib's empty pages.
        http.set_error_handler([this](const httplib::Request&, httplib::Response& res) {
            if (!res.body.empty()) return;
            if (res.status == 413) {
                reply_error(res, ApiError(413, fmt::format("the request body is larger than {} bytes", opt.max_body_bytes),
                                          "invalid_request_error", "", "request_too_large"));
            } else if (res.status == 404) {
                reply_error(res, ApiError(404, "no such endpoint", "invalid_request_error", "", "not_found"));
            }
        });
    }
};

Server::Server(const Model& model, const tok::Vocab& vocab, const ServerOptions& opt)
    : impl_(std::make_unique<Impl>(model, vocab, opt)) {
    if (!model.hp.causal) fail("{} is an encoder model: hearth serve needs a decoder (use hearth embed)", model.hp.arch);
}

Server::~Server() { stop(0.0); }

void Server::start() {
    Impl& s = *impl_;
    s.routes();
    // Debian's cpp-httplib is a compiled library that listens with a backlog of 5: a burst of clients (64
    // connecting at once) overflows the accept queue and some connections fail. The socket options hook sees
    // the listening socket before bind; after bind (which calls listen) it is listened on again with a deep
    // queue, which Linux allows on a listening socket.
    socket_t listen_sock = INVALID_SOCKET;
    s.http.set_socket_options([&listen_sock](socket_t sock) {
        httplib::default_socket_options(sock);
        listen_sock = sock;
    });
    if (s.opt.port == 0) {
        s.bound_port = s.http.bind_to_any_port(s.opt.host.c_str());
        if (s.bound_port <= 0) fail("cannot bind {} on any port", s.opt.host);
    } else {
        if (!s.http.bind_to_port(s.opt.host.c_str(), s.opt.port))
            fail("cannot listen on {}:{} (in use, or not an address of this machine)", s.opt.host, s.opt.port);
        s.bound_port = s.opt.port;
    }
    if (listen_sock != INVALID_SOCKET && ::listen(listen_sock, 1024) != 0)
        fail("cannot listen on {}:{}: {}", s.opt.host, s.bound_port, std::system_category().message(errno));
    s.engine = std::thread([&s] { s.engine_loop(); });
    s.listener = std::thread([&s] {
        s.listening = true;
        s.http.listen_after_bind();
    });
    while (!s.http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

int Server::port() const { return impl_->bound_port; }

void Server::stop(double drain_seconds) {
    Impl& s = *impl_;
    if (!s.engine.joinable() && !s.listener.joinable()) return;
    {
        std::lock_guard<std::mutex> g(s.m);
        s.draining = true;
    }
    // Let in-flight requests finish, then cancel what is left.
    const Clock::time_point deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                          std::chrono::duration<double>(drain_seconds));
    for (;;) {
        {
            std::lock_guard<std::mutex> g(s.m);
            if (s.live.empty() && s.submissions.empty()) break;
            if (Clock::now() >= deadline) {
                for (auto& [id, ch] : s.live) s.cancels.push_back(id);
                break;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    s.cv.notify_all();
    // Wait for the cancellations to reach their handlers, then stop the engine and the listener.
    for (int i = 0; i < 500; ++i) {
        {
            std::lock_guard<std::mutex> g(s.m);
            if (s.live.empty()) break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    {
        std::lock_guard<std::mutex> g(s.m);
        s.stopping = true;
    }
    s.cv.notify_all();
    if (s.engine.joinable()) s.engine.join();
    s.http.stop();
    if (s.listener.joinable()) s.listener.join();
}

void Server::wait() {
    Impl& s = *impl_;
    std::unique_lock<std::mutex> lock(s.m);
    s.cv.wait(lock, [&] { return s.stopping; });
}

}  // namespace hearth::serve
