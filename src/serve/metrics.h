// Prometheus metrics of `hearth serve` (text exposition format 0.0.4): request counts by status, tokens in and
// out, queue depth, running requests, KV blocks, prefix-cache hits, preemptions, speculative decoding's acceptance, and histograms of time to first token and inter-token latency.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace hearth::serve {

class Histogram {
public:
    static constexpr std::array<double, 12> kBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                       0.5,   1.0,  2.5,   5.0,  10.0, 30.0};  // seconds
    void observe(double seconds);
    // `name`_bucket{le=...} (cumulative), `name`_sum, `name`_count.
    std::string prometheus(const std::string& name, const std::string& help) const;
    uint64_t count() const;

private:
    mutable std::mutex m_;
    std::array<uint64_t, kBounds.size() + 1> counts_{};  // last: +Inf
    double sum_ = 0;
};

struct Metrics {
    std::atomic<int64_t> tokens_in{0}, tokens_out{0};
    std::atomic<int64_t> running{0}, waiting{0}, kv_blocks_used{0}, kv_blocks_total{0};
    // Prefix cache: blocks held by its index, and prompt tokens looked up / found at admission.
    std::atomic<int64_t> kv_blocks_cached{0}, prefix_tokens_queried{0}, prefix_tokens_hit{0}, preemptions{0};
    // Speculative decoding: decode steps that verified a draft, draft tokens verified, and those kept.
    std::atomic<int64_t> spec_steps{0}, spec_drafted{0}, spec_accepted{0};
    Histogram ttft, itl;

    void count_request(int status);
    std::string prometheus() const;

private:
    mutable std::mutex m_;
    std::array<uint64_t, 600> by_status_{};  // indexed by HTTP status
};

}  // namespace hearth::serve
