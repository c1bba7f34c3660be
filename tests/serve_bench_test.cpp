// hearth_serve_bench (bench/serve_load.cpp) against an in-process server with the tiny stories260K model: the
// load generator is the instrument behind bench/serve's figures, so what it counts has to be checked against
// the server's own books (/metrics) rather than trusted. Small numbers keep this to a few seconds; the
// figures themselves (tokens/s, latencies) are not asserted beyond being well-formed, since they depend on
// the machine.
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/server.h"
#include "serve_fixture.h"
#include "test_util.h"
#include "tokenizer/vocab.h"

namespace hearth::serve {
namespace {

using nlohmann::json;

struct BenchFixture : ServerFixture {

    // A value of the Prometheus text (a line "NAME VALUE").
    int64_t metric(const std::string& name) const {
        httplib::Client c("127.0.0.1", server->port());
        auto r = c.Get("/metrics");
        if (!r || r->status != 200) return -1;
        std::istringstream lines(r->body);
        for (std::string line; std::getline(lines, line);)
            if (line.rfind(name + " ", 0) == 0) return std::stoll(line.substr(name.size() + 1));
        return -1;
    }

    // Hung-up requests are noticed by the server at its next write: wait until nothing runs any more.
    bool settle() const {
        for (int i = 0; i < 500; ++i) {
            if (metric("hearth_requests_running") == 0 && metric("hearth_kv_blocks_used") == 0) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return false;
    }

    struct Run {
        int code;
        std::vector<json> scenarios;
        std::string err;
    };
    Run bench(const std::string& args) const {
        const test::RunResult r = test::run_command(std::string(HEARTH_SERVE_BENCH) + " --url " + url() +
                                                    " --server-pid " + std::to_string(getpid()) + " --timeout 60 --json " + args);
        Run out{r.code, {}, r.err};
        std::istringstream lines(r.out);
        for (std::string line; std::getline(lines, line);)
            if (!line.empty()) out.scenarios.push_back(json::parse(line));
        return out;
    }
};

// Checks that hold for every scenario object; returns the generated tokens the client accounted for.
int64_t check_scenario(const json& s) {
    EXPECT_EQ(s["failed"].get<int>(), 0) << s.dump();
    EXPECT_EQ(s["ok"].get<int>() + s["cancelled"].get<int>(), s["requests"].get<int>()) << s.dump();
    EXPECT_GT(s["tokens"].get<int64_t>(), 0);
    EXPECT_GT(s["agg_decode_tok_s"].get<double>(), 0);
    EXPECT_GT(s["per_stream_decode_tok_s_p50"].get<double>(), 0);
    for (const char* k : {"ttft_ms", "itl_ms"}) {
        EXPECT_GT(s[k]["p50"].get<double>(), 0) << k << " " << s.dump();
        EXPECT_LE(s[k]["p50"].get<double>(), s[k]["p99"].get<double>()) << k;
    }
    EXPECT_GT(s["rss_kib_start"].get<int64_t>(), 0);
    EXPECT_GT(s["rss_ratio"].get<double>(), 0);
    return s["tokens"].get<int64_t>() + s["calibration"]["probe_completion_tokens"].get<int64_t>() +
           (s.contains("miss") ? s["miss"]["tokens"].get<int64_t>() : 0);
}

// Without cancellations every stream completes, so the client's token count (the usage of each final chunk,
// plus the calibration probes) must equal the server's generated-tokens counter exactly.
TEST(ServeBench, CountsMatchServerMetrics) {
    BenchFixture f;
    const int64_t before = f.metric("hearth_generated_tokens_total");
    ASSERT_GE(before, 0);
    const auto run = f.bench("--concurrency 1,4 --requests-per-client 3 --prompt-tokens 16:48 --max-tokens 8:24 --seed 7");
    ASSERT_EQ(run.code, 0) << run.err;
    ASSERT_EQ(run.scenarios.size(), 2u) << run.err;
    int64_t client_tokens = 0;
    for (size_t i = 0; i < run.scenarios.size(); ++i) {
        const json& s = run.scenarios[i];
        EXPECT_EQ(s["scenario"], "load");
        EXPECT_EQ(s["concurrency"].get<int>(), i == 0 ? 1 : 4);
        EXPECT_EQ(s["requests"].get<int>(), 3 * s["concurrency"].get<int>());
        EXPECT_EQ(s["cancelled"].get<int>(), 0);
        client_tokens += check_scenario(s);
        // Prompts were sized by the calibration: they should land near the requested range.
        const double mean_prompt = s["prompt_tokens"].get<double>() / s["requests"].get<double>();
        EXPECT_GT(mean_prompt, 10);
        EXPECT_LT(mean_prompt, 60);
    }
    ASSERT_TRUE(f.settle());
    EXPECT_EQ(f.metric("hearth_generated_tokens_total") - before, client_tokens);
}

// Hanging up mid-stream is counted as cancelled, never as failed, and the server frees what those requests held.
TEST(ServeBench, CancellationsAreNotFailures) {
    BenchFixture f;
    const int64_t before = f.metric("hearth_generated_tokens_total");
    const auto run = f.bench("--concurrency 1,4 --requests-per-client 3 --prompt-tokens 16:48 --max-tokens 16:32 "
                             "--cancel-rate 0.5 --seed 11");
    ASSERT_EQ(run.code, 0) << run.err;
    ASSERT_EQ(run.scenarios.size(), 2u) << run.err;
    int64_t client_tokens = 0, cancelled = 0;
    for (const json& s : run.scenarios) {
        client_tokens += check_scenario(s);
        cancelled += s["cancelled"].get<int>();
    }
    EXPECT_GT(cancelled, 0);
    ASSERT_TRUE(f.settle()) << "requests still running or KV blocks held after every client is gone";
    // The server may generate a token or two past a hang-up before its write fails; never fewer than we saw.
    EXPECT_GE(f.metric("hearth_generated_tokens_total") - before, client_tokens);
}

// The shared-prefix scenario: one miss alone first, then the hits; prompts carry the long common text.
TEST(ServeBench, SharedPrefixReportsMissAndHits) {
    BenchFixture f;
    const auto run = f.bench("--concurrency 2 --requests-per-client 2 --shared-prefix 300 --max-tokens 4:8 --seed 3");
    ASSERT_EQ(run.code, 0) << run.err;
    ASSERT_EQ(run.scenarios.size(), 1u) << run.err;
    const json& s = run.scenarios[0];
    EXPECT_EQ(s["scenario"], "shared_prefix");
    check_scenario(s);
    ASSERT_TRUE(s.contains("miss"));
    EXPECT_TRUE(s["miss"]["ok"].get<bool>()) << s["miss"].dump();
    EXPECT_GT(s["miss"]["ttft_ms"].get<double>(), 0);
    EXPECT_GT(s["miss"]["prompt_tokens"].get<int>(), 250);
    EXPECT_GT(s["prompt_tokens"].get<int>(), 4 * 250);  // every hit carries the prefix too
    EXPECT_GT(s["prefix_speedup"].get<double>(), 0);
}

TEST(ServeBench, RejectsBadRanges) {
    const test::RunResult r = test::run_command(std::string(HEARTH_SERVE_BENCH) + " --prompt-tokens 50:10");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("--prompt-tokens"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace hearth::serve
