#include "serve/metrics.h"

#include <fmt/format.h>

namespace hearth::serve {

void Histogram::observe(double seconds) {
    std::lock_guard<std::mutex> g(m_);
    size_t i = 0;
    while (i < kBounds.size() && seconds > kBounds[i]) ++i;
    ++counts_[i];
    sum_ += seconds;
}

uint64_t Histogram::count() const {
    std::lock_guard<std::mutex> g(m_);
    uint64_t n = 0;
    for (uint64_t c : counts_) n += c;
    return n;
}

std::string Histogram::prometheus(const std::string& name, const std::string& help) const {
    std::lock_guard<std::mutex> g(m_);
    std::string out = fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
    uint64_t cum = 0;
    for (size_t i = 0; i < kBounds.size(); ++i) {
        cum += counts_[i];
        out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, kBounds[i], cum);
    }
    cum += counts_.back();
    out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, cum, name, sum_, name, cum);
    return out;
}

void Metrics::count_request(int status) {
    if (status < 0 || status >= static_cast<int>(by_status_.size())) return;
    std::lock_guard<std::mutex> g(m_);
    ++by_status_[static_cast<size_t>(status)];
}

std::string Metrics::prometheus() const {
    std::string out;
    {
        std::lock_guard<std::mutex> g(m_);
        out += "# HELP hearth_requests_total Requests answered, by HTTP status.\n# TYPE hearth_requests_total counter\n";
        for (size_t s = 0; s < by_status_.size(); ++s)
            if (by_status_[s]) out += fmt::format("hearth_requests_total{{status=\"{}\"}} {}\n", s, by_status_[s]);
    }
    auto gauge = [&](const char* name, const char* type, const char* help, int64_t v) {
        out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, v);
    };
    gauge("hearth_prompt_tokens_total", "counter", "Prompt tokens received.", tokens_in.load());
    gauge("hearth_generated_tokens_total", "counter", "Tokens generated.", tokens_out.load());
    gauge("hearth_requests_running", "gauge", "Requests holding KV cache (prefilling or decoding).", running.load());
    gauge("hearth_queue_depth", "gauge", "Requests waiting to be admitted.", waiting.load());
    gauge("hearth_kv_blocks_used", "gauge", "KV cache blocks in use.", kv_blocks_used.load());
    gauge("hearth_kv_blocks_total", "gauge", "KV cache blocks in the pool.", kv_blocks_total.load());
    gauge("hearth_kv_blocks_cached", "gauge",
          "KV cache blocks kept by the prefix cache (shared or evictable; evictable ones count as free).",
          kv_blocks_cached.load());
    gauge("hearth_prefix_cache_queried_tokens_total", "counter", "Prompt tokens looked up in the prefix cache.",
          prefix_tokens_queried.load());
    gauge("hearth_prefix_cache_hit_tokens_total", "counter", "Prompt tokens found in the prefix cache (not computed).",
          prefix_tokens_hit.load());
    const int64_t q = prefix_tokens_queried.load();
    out += fmt::format("# HELP hearth_prefix_cache_hit_rate Fraction of looked-up prompt tokens found in the prefix "
                       "cache.\n# TYPE hearth_prefix_cache_hit_rate gauge\nhearth_prefix_cache_hit_rate {}\n",
                       q > 0 ? static_cast<double>(prefix_tokens_hit.load()) / static_cast<double>(q) : 0.0);
    gauge("hearth_preemptions_total", "counter", "Requests preempted (their KV freed, recomputed later).",
          preemptions.load());
    gauge("hearth_speculative_steps_total", "counter", "Decode steps that verified a draft (speculative decoding).",
          spec_steps.load());
    gauge("hearth_speculative_draft_tokens_total", "counter", "Draft tokens verified.", spec_drafted.load());
    gauge("hearth_speculative_accepted_tokens_total", "counter", "Draft tokens kept.", spec_accepted.load());
    const int64_t drafted = spec_drafted.load(), steps = spec_steps.load();
    out += fmt::format("# HELP hearth_speculative_acceptance_rate Fraction of verified draft tokens kept.\n"
                       "# TYPE hearth_speculative_acceptance_rate gauge\nhearth_speculative_acceptance_rate {}\n",
                       drafted > 0 ? static_cast<double>(spec_accepted.load()) / static_cast<double>(drafted) : 0.0);
    out += fmt::format("# HELP hearth_speculative_tokens_per_step Tokens produced per verification step (kept "
                       "drafts + 1).\n# TYPE hearth_speculative_tokens_per_step gauge\n"
                       "hearth_speculative_tokens_per_step {}\n",
                       steps > 0 ? static_cast<double>(spec_accepted.load() + steps) / static_cast<double>(steps) : 0.0);
    out += ttft.prometheus("hearth_time_to_first_token_seconds", "Time from submission to the first token.");
    out += itl.prometheus("hearth_inter_token_latency_seconds", "Time between consecutive tokens of a stream.");
    return out;
}

}  // namespace hearth::serve
