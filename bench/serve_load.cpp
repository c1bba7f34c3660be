// hearth_serve_bench: a load generator for `hearth serve` (or any OpenAI-compatible server), used by bench/serve.
//
// Why it exists: `hearth bench` measures one sequence in-process, but a server's figures of merit are what its
// clients see under concurrency: aggregate decode throughput, time to first token and inter-token latency while
// continuous batching interleaves many streams, and whether anything fails or leaks over a long run with
// clients hanging up mid-answer. Those can only be measured from outside, over HTTP, with real concurrency.
//
// Why it is shaped so:
// - One OS thread per client with a blocking cpp-httplib client: every client is then an honest, independent
//   stream (its own connection, its own timing), and at the concurrencies measured here (≤ 64) threads are cheap;
//   an event loop would add code without changing what the server sees.
// - /v1/completions with `stream: true` and `stream_options.include_usage`: the plain-text endpoint keeps the
//   prompt exactly what we built (no chat template in between), and the usage in the final chunk gives the
//   server's own prompt and completion token counts, so nothing here needs the model's tokenizer.
// - Timing is client-side: TTFT from sending the request to the first SSE event carrying text, inter-token
//   latency as the gaps between SSE events (one event = one token's text, except where the server holds text
//   back, e.g. an incomplete UTF-8 character; such tokens are merged into the next event, which the counts from
//   `usage` correct for throughput). Events that arrive in one read share its arrival time, as a real client
//   would see them.
// - Prompts are random sentences from a fixed word list with a seeded RNG (reproducible, no data files); their
//   length in tokens is calibrated once against the server's own count (two non-streaming probes give
//   tokens = intercept + slope × words), so `--prompt-tokens` means tokens of this model, not words.
// - A failed request is one the server got wrong (non-200, malformed SSE, a connection error we did not cause,
//   a stream ending without [DONE] and a finish_reason); a request we hang up on ourselves (`--cancel-rate`) is
//   counted apart as cancelled, since exercising that path is the point of it.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

struct IntRange {
    int lo = 0, hi = 0;
    int pick(std::mt19937_64& rng) const { return std::uniform_int_distribution<int>(lo, hi)(rng); }
};

// "A:B" or "A" (a fixed value).
IntRange parse_range(const std::string& s, const char* what) {
    IntRange r;
    try {
        const size_t colon = s.find(':');
        r.lo = std::stoi(s.substr(0, colon));
        r.hi = colon == std::string::npos ? r.lo : std::stoi(s.substr(colon + 1));
    } catch (const std::exception&) {
        throw CLI::ValidationError(what, "expected MIN:MAX, got '" + s + "'");
    }
    if (r.lo < 1 || r.hi < r.lo) throw CLI::ValidationError(what, "expected 1 <= MIN <= MAX, got '" + s + "'");
    return r;
}

struct Options {
    std::string url = "http://127.0.0.1:8080";
    std::string api_key;
    std::vector<int> concurrency = {1, 4, 16, 64};
    int requests_per_client = 0;  // 0: --duration decides
    double duration = 0;
    double warmup = 0;
    IntRange prompt_tokens{128, 512};
    IntRange max_tokens{128, 256};
    int shared_prefix = 0;
    double cancel_rate = 0;
    int server_pid = 0;
    uint64_t seed = 1;
    int timeout = 600;
    bool json_out = false;
    std::string jsonl;  // also append each scenario's JSON object to this file
    std::string name;   // scenario label (default: load, or shared_prefix with --shared-prefix)
};

// Common English words: prompts look like text to a BPE / SPM tokenizer (a few tokens per word, as in real
// prompts) rather than like random characters, which would inflate the token count per byte.
const char* const kWords[] = {
    "the",      "of",       "and",     "to",      "in",       "a",        "is",      "that",     "for",     "it",
    "as",       "was",      "with",    "be",      "by",       "on",       "not",     "he",       "this",    "are",
    "or",       "his",      "from",    "at",      "which",    "but",      "have",    "an",       "had",     "they",
    "you",      "were",     "their",   "one",     "all",      "we",       "can",     "her",      "has",     "there",
    "been",     "if",       "more",    "when",    "will",     "would",    "who",     "so",       "no",      "time",
    "people",   "water",    "river",   "mountain", "village", "market",   "winter",  "summer",   "garden",  "letter",
    "window",   "morning",  "evening", "question", "answer",  "history",  "science", "engine",   "kitchen", "library",
    "children", "teacher",  "doctor",  "farmer",  "captain",  "bridge",   "forest",  "island",   "harbour", "station",
    "walked",   "carried",  "opened",  "noticed", "explained", "remembered", "built", "followed", "watched", "wrote",
    "quietly",  "suddenly", "slowly",  "carefully", "together", "already", "perhaps", "certainly", "again",  "often",
    "small",    "large",    "bright",  "ancient", "careful",  "strange",  "narrow",  "golden",   "heavy",   "simple",
    "because",  "although", "before",  "after",   "during",   "between",  "through", "without",  "under",   "above",
    "measure",  "number",   "paper",   "stone",   "light",    "sound",    "voice",   "road",     "house",   "city",
    "problem",  "method",   "result",  "reason",  "example",  "system",   "process", "language", "machine", "memory",
};
constexpr size_t kNumWords = sizeof(kWords) / sizeof(kWords[0]);

// Sentences of 6–16 random words, capitalised and ended with a full stop, `n_words` words in all.
std::string make_text(std::mt19937_64& rng, int n_words) {
    std::uniform_int_distribution<size_t> word(0, kNumWords - 1);
    std::uniform_int_distribution<int> sentence_len(6, 16);
    std::string out;
    int left_in_sentence = sentence_len(rng);
    bool capital = true;
    for (int i = 0; i < n_words; ++i) {
        std::string w = kWords[word(rng)];
        if (capital) w[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(w[0])));
        capital = false;
        if (!out.empty()) out += ' ';
        out += w;
        if (--left_in_sentence == 0 || i + 1 == n_words) {
            out += '.';
            capital = true;
            left_in_sentence = sentence_len(rng);
        }
    }
    return out;
}

// Words needed for about `tokens` prompt tokens of the server's model (from the probes).
struct Calibration {
    double intercept = 1, slope = 1.3;
    int probe_completion_tokens = 0;
    int words_for(int tokens) const { return std::max(1, static_cast<int>(std::lround((tokens - intercept) / slope))); }
};

httplib::Client make_client(const Options& o) {
    httplib::Client c(o.url);
    c.set_connection_timeout(30, 0);
    c.set_read_timeout(o.timeout, 0);
    c.set_write_timeout(60, 0);
    // One connection per request: a kept-alive idle connection would hold one of the server's HTTP worker
    // threads between our requests, which no real population of clients does.
    c.set_keep_alive(false);
    if (!o.api_key.empty()) c.set_bearer_token_auth(o.api_key);
    return c;
}

// What one streamed request produced.
struct Outcome {
    enum Kind { Ok, Failed, Cancelled } kind = Failed;
    std::string error;
    double ttft = -1;            // seconds, -1 when no text arrived
    double stream_span = 0;      // seconds from the first to the last text event
    std::vector<double> gaps;    // seconds between consecutive text events
    int events = 0;              // SSE events carrying text
    int completion_tokens = -1;  // from usage (complete streams)
    int prompt_tokens = -1;      // from usage
    int prompt_estimate = 0;     // what the calibration predicted
    // Generated tokens the client accounts for: the server's count when the stream completed, else the events
    // seen before hanging up (the server may have generated a few more).
    int tokens() const { return completion_tokens >= 0 ? completion_tokens : events; }
    int prompt() const { return prompt_tokens >= 0 ? prompt_tokens : prompt_estimate; }
};

Outcome stream_completion(const Options& o, const std::string& prompt, int prompt_estimate, int max_tokens,
                          int cancel_after, int seed) {
    Outcome out;
    out.prompt_estimate = prompt_estimate;
    const json body = {{"prompt", prompt},
                       {"max_tokens", max_tokens},
                       {"stream", true},
                       {"stream_options", {{"include_usage", true}}},
                       {"temperature", 1.0},
                       {"seed", seed}};
    httplib::Client cli = make_client(o);
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.headers = {{"Accept", "text/event-stream"}};
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    if (!o.api_key.empty()) req.set_header("Authorization", "Bearer " + o.api_key);

    int status = 0;
    std::string pending, error_body, malformed, finish;
    bool done = false, cancelled = false;
    Clock::time_point t0, first, last;

    // One SSE event (its lines without the blank separator). False stops reading.
    auto on_event = [&](const std::string& ev, Clock::time_point now) {
        std::string data;
        std::istringstream lines(ev);
        for (std::string line; std::getline(lines, line);) {
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.empty() || line[0] == ':') continue;  // comments keep connections alive
            if (line.rfind("data:", 0) != 0) continue;     // event:, id:, retry: carry nothing we measure
            std::string d = line.substr(5);
            if (!d.empty() && d[0] == ' ') d.erase(0, 1);
            data += d;
        }
        if (data.empty()) return true;
        if (done) {
            malformed = "data after [DONE]";
            return false;
        }
        if (data == "[DONE]") {
            done = true;
            return true;
        }
        json j;
        try {
            j = json::parse(data);
        } catch (const std::exception&) {
            malformed = "not JSON: " + data.substr(0, 200);
            return false;
        }
        if (j.contains("error")) {
            malformed = "error event: " + j["error"].dump().substr(0, 300);
            return false;
        }
        if (j.contains("usage") && j["usage"].is_object()) {
            const json& u = j["usage"];
            if (u.contains("completion_tokens")) out.completion_tokens = u["completion_tokens"].get<int>();
            if (u.contains("prompt_tokens")) out.prompt_tokens = u["prompt_tokens"].get<int>();
        }
        if (!j.contains("choices") || !j["choices"].is_array()) {
            malformed = "no choices: " + data.substr(0, 200);
            return false;
        }
        if (j["choices"].empty()) return true;
        const json& c = j["choices"][0];
        if (c.contains("text") && c["text"].is_string() && !c["text"].get_ref<const std::string&>().empty()) {
            if (out.events == 0) {
                out.ttft = seconds_between(t0, now);
                first = now;
            } else {
                out.gaps.push_back(seconds_between(last, now));
            }
            last = now;
            ++out.events;
        }
        if (c.contains("finish_reason") && c["finish_reason"].is_string()) finish = c["finish_reason"];
        if (cancel_after > 0 && out.events >= cancel_after && finish.empty()) {
            cancelled = true;
            return false;
        }
        return true;
    };

    req.response_handler = [&](const httplib::Response& r) {
        status = r.status;
        return true;
    };
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
        const Clock::time_point now = Clock::now();
        if (status != 200) {
            if (error_body.size() < 500) error_body.append(data, std::min<size_t>(n, 500));
            return true;
        }
        pending.append(data, n);
        for (size_t end; (end = pending.find("\n\n")) != std::string::npos;) {
            const std::string ev = pending.substr(0, end);
            pending.erase(0, end + 2);
            if (!on_event(ev, now)) return false;
        }
        return true;
    };
    t0 = Clock::now();
    const httplib::Result res = cli.send(req);
    if (out.events > 0) out.stream_span = seconds_between(first, last);

    if (cancelled) {
        out.kind = Outcome::Cancelled;
    } else if (!malformed.empty()) {
        out.error = "malformed stream: " + malformed;
    } else if (!res) {
        out.error = "connection: " + httplib::to_string(res.error());
    } else if (status != 200) {
        out.error = fmt::format("HTTP {}: {}", status, error_body);
    } else if (pending.find_first_not_of("\r\n ") != std::string::npos) {
        out.error = "stream ended inside an event";
    } else if (!done || finish.empty()) {
        out.error = fmt::format("stream ended without {}", done ? "a finish_reason" : "[DONE]");
    } else {
        out.kind = Outcome::Ok;
    }
    return out;
}

// Prompt tokens the server counts for a prompt (non-streaming, one generated token).
std::pair<int, int> probe_prompt_tokens(const Options& o, const std::string& prompt) {
    httplib::Client cli = make_client(o);
    const json body = {{"prompt", prompt}, {"max_tokens", 1}, {"temperature", 0.0}};
    auto r = cli.Post("/v1/completions", body.dump(), "application/json");
    if (!r) throw std::runtime_error("cannot reach " + o.url + ": " + httplib::to_string(r.error()));
    if (r->status != 200) throw std::runtime_error(fmt::format("probe request: HTTP {}: {}", r->status, r->body.substr(0, 300)));
    const json j = json::parse(r->body);
    return {j.at("usage").at("prompt_tokens").get<int>(), j.at("usage").at("completion_tokens").get<int>()};
}

Calibration calibrate(const Options& o) {
    std::mt19937_64 rng(o.seed ^ 0xca11b7a7eULL);
    constexpr int kShort = 16, kLong = 96;  // short enough for a small test context
    const auto [p1, g1] = probe_prompt_tokens(o, make_text(rng, kShort));
    const auto [p2, g2] = probe_prompt_tokens(o, make_text(rng, kLong));
    Calibration c;
    c.slope = std::max(0.1, static_cast<double>(p2 - p1) / (kLong - kShort));
    c.intercept = p1 - c.slope * kShort;
    c.probe_completion_tokens = g1 + g2;
    return c;
}

long read_vm_rss_kib(int pid) {
    std::ifstream f(fmt::format("/proc/{}/status", pid));
    for (std::string line; std::getline(f, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
}

// Nearest-rank percentile (no interpolation: every figure reported is one that was observed).
double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

// Outcomes of a phase, gathered from every client thread, with live counters for the progress line.
struct Collector {
    std::mutex m;
    std::vector<Outcome> outcomes;
    std::atomic<int> ok{0}, failed{0}, cancelled{0};
    std::atomic<int64_t> tokens{0};
    std::vector<std::string> errors;  // the first few, for the report
    // Peaks of hearth's own gauges while the phase ran (-1: the server does not export them): they show whether
    // the clients really were served at once or waited in a queue in front of the engine.
    int64_t max_running = -1, max_queue = -1;

    void add(Outcome o) {
        (o.kind == Outcome::Ok ? ok : o.kind == Outcome::Failed ? failed : cancelled) += 1;
        tokens += o.tokens();
        std::lock_guard<std::mutex> g(m);
        if (o.kind == Outcome::Failed && errors.size() < 5) errors.push_back(o.error);
        outcomes.push_back(std::move(o));
    }
};

// The value of a sample line "NAME VALUE" of a Prometheus text page; -1 when absent.
int64_t prometheus_value(const std::string& page, const std::string& name) {
    for (size_t at = 0; (at = page.find(name + ' ', at)) != std::string::npos; at += name.size()) {
        if (at == 0 || page[at - 1] == '\n') return std::atoll(page.c_str() + at + name.size() + 1);
    }
    return -1;
}

// How a phase's requests look: ordinary random prompts, or a shared system text plus a short question.
struct Workload {
    const Options* o = nullptr;
    const Calibration* cal = nullptr;
    const std::string* prefix = nullptr;  // shared-prefix mode when set
    int prefix_tokens = 0;

    struct Item {
        std::string prompt;
        int prompt_estimate, max_tokens, cancel_after, seed;
    };
    Item next(std::mt19937_64& rng, bool allow_cancel) const {
        Item it;
        if (prefix) {
            const int n_words = std::uniform_int_distribution<int>(8, 16)(rng);
            it.prompt = *prefix + fmt::format("\n\nQuestion {}: ", rng() % 100000) + make_text(rng, n_words) + "\nAnswer:";
            it.prompt_estimate = prefix_tokens + static_cast<int>(std::lround(cal->slope * (n_words + 5)));
        } else {
            it.prompt_estimate = o->prompt_tokens.pick(rng);
            it.prompt = make_text(rng, cal->words_for(it.prompt_estimate));
        }
        it.max_tokens = o->max_tokens.pick(rng);
        it.cancel_after = 0;
        if (allow_cancel && std::uniform_real_distribution<double>(0, 1)(rng) < o->cancel_rate)
            it.cancel_after = std::uniform_int_distribution<int>(1, it.max_tokens)(rng);
        it.seed = static_cast<int>(rng() & 0x7fffffff);
        return it;
    }
};

// Runs `clients` threads, each issuing requests back to back until it has made `per_client` (when > 0) or the
// deadline has passed; returns the wall time from the first request to the last answer.
double run_phase(const Workload& w, int clients, int per_client, double seconds, uint64_t seed, bool allow_cancel,
                 Collector& col, const std::string& label) {
    const Clock::time_point start = Clock::now();
    const Clock::time_point deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    std::atomic<int> running{clients};
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
        threads.emplace_back([&, c] {
            std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(c) * 0x632be59bd9b4e019ULL + 1);
            for (int i = 0; per_client > 0 ? i < per_client : Clock::now() < deadline; ++i) {
                const Workload::Item it = w.next(rng, allow_cancel);
                col.add(stream_completion(*w.o, it.prompt, it.prompt_estimate, it.max_tokens, it.cancel_after, it.seed));
            }
            --running;
        });
    }
    // Long phases (the soak) print a line every 10 s so that a stuck server shows while it happens; between
    // those lines the server's gauges are polled.
    std::mutex pm;
    std::condition_variable pcv;
    bool finished = false;
    std::thread progress([&] {
        httplib::Client mc = make_client(*w.o);
        mc.set_read_timeout(5, 0);
        Clock::time_point next_line = start + std::chrono::seconds(10);
        std::unique_lock<std::mutex> lock(pm);
        while (!pcv.wait_for(lock, std::chrono::milliseconds(250), [&] { return finished; })) {
            if (auto r = mc.Get("/metrics"); r && r->status == 200) {
                col.max_running = std::max(col.max_running, prometheus_value(r->body, "hearth_requests_running"));
                col.max_queue = std::max(col.max_queue, prometheus_value(r->body, "hearth_queue_depth"));
            }
            if (Clock::now() < next_line) continue;
            next_line += std::chrono::seconds(10);
            const double t = seconds_between(start, Clock::now());
            fmt::print(stderr, "  [{}] {:.0f} s: ok {} failed {} cancelled {}, {} tokens ({:.1f} tok/s), {} clients active\n",
                       label, t, col.ok.load(), col.failed.load(), col.cancelled.load(), col.tokens.load(),
                       static_cast<double>(col.tokens.load()) / t, running.load());
        }
    });
    for (auto& t : threads) t.join();
    const double wall = seconds_between(start, Clock::now());
    {
        std::lock_guard<std::mutex> g(pm);
        finished = true;
    }
    pcv.notify_all();
    progress.join();
    return wall;
}

json summarize(const Collector& col, double wall) {
    std::vector<double> ttft, gaps, per_stream, prefill;
    int64_t tokens = 0, decode_tokens = 0, events = 0, prompt_tokens = 0;
    for (const Outcome& o : col.outcomes) {
        if (o.kind == Outcome::Failed) continue;
        tokens += o.tokens();
        events += o.events;
        if (o.tokens() > 0) decode_tokens += o.tokens() - 1;  // the first token is the prefill's
        prompt_tokens += o.prompt();
        if (o.ttft >= 0) {
            ttft.push_back(o.ttft);
            prefill.push_back(o.prompt() / o.ttft);
        }
        gaps.insert(gaps.end(), o.gaps.begin(), o.gaps.end());
        if (o.events >= 2 && o.stream_span > 0) per_stream.push_back((o.events - 1) / o.stream_span);
    }
    // ms to 0.1 µs: a tiny model's inter-token gaps are microseconds, and must not round to zero.
    auto ms = [](double s) { return std::round(s * 1e7) / 1e4; };
    auto r1 = [](double x) { return std::round(x * 10) / 10; };
    return {{"requests", col.outcomes.size()},
            {"ok", col.ok.load()},
            {"failed", col.failed.load()},
            {"cancelled", col.cancelled.load()},
            {"errors", col.errors},
            {"wall_s", std::round(wall * 1000) / 1000},
            {"tokens", tokens},
            {"sse_events", events},
            {"prompt_tokens", prompt_tokens},
            {"agg_decode_tok_s", r1(wall > 0 ? decode_tokens / wall : 0)},
            {"per_stream_decode_tok_s_p50", r1(percentile(per_stream, 50))},
            {"prompt_tok_s", r1(wall > 0 ? prompt_tokens / wall : 0)},
            {"prefill_tok_s_p50", r1(percentile(prefill, 50))},
            {"ttft_ms", {{"p50", ms(percentile(ttft, 50))}, {"p99", ms(percentile(ttft, 99))}, {"n", ttft.size()}}},
            {"itl_ms", {{"p50", ms(percentile(gaps, 50))}, {"p99", ms(percentile(gaps, 99))}, {"n", gaps.size()}}},
            {"server_max_running", col.max_running},
            {"server_max_queue", col.max_queue}};
}

void print_table_header() {
    fmt::print("{:<14} {:>4} {:>15} {:>7} {:>9} {:>9} {:>17} {:>15} {:>9} {:>8} {:>7}\n", "scenario", "conc",
               "ok/fail/cancel", "wall s", "agg tok/s", "tok/s/str", "TTFT p50/p99 ms", "ITL p50/p99 ms", "prompt/s",
               "RSS end", "max run");
}

void print_table_row(const json& j) {
    const std::string rss = j.contains("rss_ratio") ? fmt::format("{:.3f}x", j["rss_ratio"].get<double>()) : "-";
    fmt::print("{:<14} {:>4} {:>15} {:>7.1f} {:>9.1f} {:>9.1f} {:>17} {:>15} {:>9.0f} {:>8} {:>7}\n",
               j["scenario"].get<std::string>(), j["concurrency"].get<int>(),
               fmt::format("{}/{}/{}", j["ok"].get<int>(), j["failed"].get<int>(), j["cancelled"].get<int>()),
               j["wall_s"].get<double>(), j["agg_decode_tok_s"].get<double>(),
               j["per_stream_decode_tok_s_p50"].get<double>(),
               fmt::format("{:.0f}/{:.0f}", j["ttft_ms"]["p50"].get<double>(), j["ttft_ms"]["p99"].get<double>()),
               fmt::format("{:.2f}/{:.2f}", j["itl_ms"]["p50"].get<double>(), j["itl_ms"]["p99"].get<double>()),
               j["prompt_tok_s"].get<double>(), rss, j["server_max_running"].get<int64_t>());
    if (j.contains("miss")) {
        const json& m = j["miss"];
        fmt::print("{:<14} {:>4}   prefix miss: TTFT {:.0f} ms ({} prompt tokens, {}); hits TTFT p50 {:.0f} ms: {:.1f}x faster\n",
                   "", "", m["ttft_ms"].get<double>(), m["prompt_tokens"].get<int>(), m["ok"].get<bool>() ? "ok" : "FAILED",
                   j["ttft_ms"]["p50"].get<double>(), j["prefix_speedup"].get<double>());
    }
    for (const auto& e : j["errors"]) fmt::print("    error: {}\n", e.get<std::string>());
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{"Load generator for an OpenAI-compatible server (hearth serve): N concurrent streaming clients; "
                 "reports aggregate decode tok/s, TTFT and inter-token latency percentiles"};
    std::string prompt_range = "128:512", max_range = "128:256";
    app.add_option("--url", o.url, "Server base URL (default http://127.0.0.1:8080)");
    app.add_option("--api-key", o.api_key, "Send 'Authorization: Bearer KEY'");
    app.add_option("--concurrency", o.concurrency, "Concurrent clients, one scenario per value (default 1,4,16,64)")
        ->delimiter(',')
        ->check(CLI::PositiveNumber);
    auto* per = app.add_option("--requests-per-client", o.requests_per_client, "Requests each client makes (default 4)")
                    ->check(CLI::PositiveNumber);
    auto* dur = app.add_option("--duration", o.duration, "Seconds each scenario runs instead (clients start no request after)")
                    ->check(CLI::PositiveNumber);
    per->excludes(dur);
    app.add_option("--warmup", o.warmup,
                   "Seconds of the same load before each scenario, not measured (memory is sampled after it)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--prompt-tokens", prompt_range, "Prompt length range in tokens MIN:MAX (default 128:512)");
    app.add_option("--max-tokens", max_range, "max_tokens range MIN:MAX (default 128:256)");
    app.add_option("--shared-prefix", o.shared_prefix,
                   "Every prompt is one common text of about this many tokens plus a short question; the first "
                   "request of each scenario runs alone and is reported as the prefix-cache miss")
        ->check(CLI::PositiveNumber);
    app.add_option("--cancel-rate", o.cancel_rate, "Probability that a client hangs up after a random number of tokens")
        ->check(CLI::Range(0.0, 1.0));
    app.add_option("--server-pid", o.server_pid, "Sample the server's VmRSS after warm-up and at the end of each scenario")
        ->check(CLI::PositiveNumber);
    app.add_option("--name", o.name, "Scenario label in the table and the JSON (default load / shared_prefix)");
    app.add_option("--seed", o.seed, "Random seed (prompts, lengths, cancellations)");
    app.add_option("--timeout", o.timeout, "Read timeout per request in seconds (default 600)")->check(CLI::PositiveNumber);
    app.add_flag("--json", o.json_out, "One JSON object per scenario on stdout instead of the table");
    app.add_option("--jsonl", o.jsonl, "Append each scenario's JSON object to this file as well (the table stays on stdout)");
    CLI11_PARSE(app, argc, argv);
    try {
        o.prompt_tokens = parse_range(prompt_range, "--prompt-tokens");
        o.max_tokens = parse_range(max_range, "--max-tokens");
    } catch (const CLI::Error& e) {
        return app.exit(e);
    }
    if (o.requests_per_client == 0 && o.duration == 0) o.requests_per_client = 4;
    if (o.server_pid && read_vm_rss_kib(o.server_pid) < 0) {
        fmt::print(stderr, "hearth_serve_bench: cannot read /proc/{}/status\n", o.server_pid);
        return 1;
    }

    Calibration cal;
    try {
        cal = calibrate(o);
    } catch (const std::exception& e) {
        fmt::print(stderr, "hearth_serve_bench: {}\n", e.what());
        return 1;
    }
    fmt::print(stderr, "hearth_serve_bench: {}: {:.3f} tokens per word (+{:.1f})\n", o.url, cal.slope, cal.intercept);

    bool any_failed = false;
    if (!o.json_out) print_table_header();
    for (size_t si = 0; si < o.concurrency.size(); ++si) {
        const int clients = o.concurrency[si];
        const uint64_t seed = o.seed + 1000 * (si + 1);
        Workload w;
        w.o = &o;
        w.cal = &cal;
        std::string prefix;
        if (o.shared_prefix) {
            // A new system text per scenario, so that each one starts with a genuine miss.
            std::mt19937_64 prng(seed ^ 0x5eedULL);
            prefix = make_text(prng, cal.words_for(o.shared_prefix));
            w.prefix = &prefix;
            w.prefix_tokens = o.shared_prefix;
        }
        const std::string scenario = !o.name.empty() ? o.name : o.shared_prefix ? "shared_prefix" : "load";
        const std::string label = fmt::format("{} c={}", scenario, clients);
        json j = {{"scenario", scenario},
                  {"concurrency", clients},
                  {"url", o.url},
                  {"seed", o.seed},
                  {"prompt_tokens_range", {o.prompt_tokens.lo, o.prompt_tokens.hi}},
                  {"max_tokens_range", {o.max_tokens.lo, o.max_tokens.hi}},
                  {"cancel_rate", o.cancel_rate},
                  {"calibration", {{"tokens_per_word", cal.slope}, {"intercept", cal.intercept},
                                   {"probe_completion_tokens", si == 0 ? cal.probe_completion_tokens : 0}}}};
        if (o.requests_per_client) j["requests_per_client"] = o.requests_per_client;
        else j["duration_s"] = o.duration;

        std::optional<Outcome> miss;
        if (o.shared_prefix) {
            std::mt19937_64 rng(seed ^ 0x3155ULL);
            const Workload::Item it = w.next(rng, /*allow_cancel=*/false);
            miss = stream_completion(o, it.prompt, it.prompt_estimate, it.max_tokens, 0, it.seed);
            if (miss->kind != Outcome::Ok) any_failed = true;
        }
        int64_t warmup_tokens = 0;
        if (o.warmup > 0) {
            Collector wc;
            fmt::print(stderr, "  [{}] warm-up {:.0f} s\n", label, o.warmup);
            run_phase(w, clients, 0, o.warmup, seed ^ 0x3a3aULL, o.cancel_rate > 0, wc, label + " warm-up");
            j["warmup"] = {{"ok", wc.ok.load()}, {"failed", wc.failed.load()}, {"cancelled", wc.cancelled.load()},
                           {"errors", wc.errors}};
            warmup_tokens = wc.tokens.load();
            if (wc.failed > 0) any_failed = true;
        }
        const long rss_start = o.server_pid ? read_vm_rss_kib(o.server_pid) : -1;
        Collector col;
        const double wall = run_phase(w, clients, o.requests_per_client, o.duration, seed, o.cancel_rate > 0, col, label);
        j.update(summarize(col, wall));
        j["warmup_tokens"] = warmup_tokens;
        if (col.failed > 0) any_failed = true;
        if (miss) {
            j["miss"] = {{"ok", miss->kind == Outcome::Ok},
                         {"error", miss->error},
                         {"ttft_ms", std::round(miss->ttft * 1e5) / 100},
                         {"prompt_tokens", miss->prompt()},
                         {"tokens", miss->tokens()}};
            const double hit = j["ttft_ms"]["p50"].get<double>();
            j["prefix_speedup"] = hit > 0 ? std::round(miss->ttft * 1e5 / hit) / 100 : 0.0;
        }
        if (o.server_pid) {
            const long rss_end = read_vm_rss_kib(o.server_pid);
            j["rss_kib_start"] = rss_start;
            j["rss_kib_end"] = rss_end;
            if (rss_start > 0 && rss_end > 0) j["rss_ratio"] = std::round(1e4 * rss_end / rss_start) / 1e4;
        }
        if (o.json_out) fmt::print("{}\n", j.dump());
        else print_table_row(j);
        if (!o.jsonl.empty()) {
            std::ofstream f(o.jsonl, std::ios::app);
            f << j.dump() << '\n';
            if (!f) fmt::print(stderr, "hearth_serve_bench: cannot append to {}\n", o.jsonl);
        }
        std::fflush(stdout);
    }
    return any_failed ? 2 : 0;
}
