// KV eviction for long prompts (`--kv-evict`): after a prompt is computed, each KV head keeps `budget` of its
// cells and the rest of the prompt's KV is dropped (KvCache::compact); generated tokens are appended after the
// kept cells and never evicted. Decode then reads `budget` cells instead of the whole prompt: less memory per
// conversation and less attention work per token, at the cost of what the dropped positions would have
// contributed.
//
// - snapkv:BUDGET (Li et al. 2024, "SnapKV: LLM Knows What You are Looking for Before Generation"): the
//   queries of the prompt's last `window` positions vote, per KV head, with their softmax weights (summed over
//   the window and the head's query heads) for the earlier positions; the votes are max-pooled so that a kept
//   position brings its neighbours, and each head keeps the `budget - window` best plus the window itself.
// - recent:BUDGET (StreamingLLM's shape: Xiao et al. 2023): the first `sinks` positions and the most recent
//   ones, the same for every head: the baseline that shows what the vote is worth.
// Written by hand: the vote needs this engine's queries (saved by the forward pass) and its cache layout.
#pragma once
#include <cstdint>
#include <string_view>

#include "model/forward.h"

namespace hearth {

enum class KvEvictMethod { SnapKv, Recent };

struct KvEvictParams {
    KvEvictMethod method = KvEvictMethod::SnapKv;
    int budget = 0;   // cells each KV head keeps, the window (or the sinks) included
    int window = 32;  // snapkv: the prompt's last positions, whose queries vote and which are always kept
    int pool = 7;     // snapkv: width of the max-pooling over the votes
    int sinks = 4;    // recent: leading positions always kept (attention sinks)
};

// "snapkv:BUDGET" or "recent:BUDGET"; throws hearth::Error naming the accepted forms, or a budget that leaves no
// room beyond the observation window (the sinks).
KvEvictParams parse_kv_evict(std::string_view spec);
// Throws hearth::Error when the budget is not below the context size (nothing could ever be evicted).
void check_kv_evict(const KvEvictParams& p, int n_ctx);

// Before the prompt of `seq` (n_prompt tokens from position 0) is computed: has the context save the queries of
// the observation window (snapkv, when the prompt exceeds the budget).
void kv_evict_observe(Context& ctx, int32_t seq, int32_t n_prompt, const KvEvictParams& p);

struct KvEvictResult {
    int32_t cells_before = 0;  // per KV head
    int32_t cells_after = 0;
};
// After the whole prompt is computed: compacts the sequence to the budget (nothing when it fits already).
// Throws hearth::Error for a model with sliding-window layers (their cells are positions), a sequence already
// compacted, or (snapkv) one whose window queries were not observed.
KvEvictResult kv_evict(Context& ctx, int32_t seq, const KvEvictParams& p);

}  // namespace hearth
