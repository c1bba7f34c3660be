// The forward pass: runs a Batch of (token, position, sequence, wants-logits) entries through the model,
// reading and writing the paged KV cache. One Context per independent cache (a server keeps one and batches
// all its sequences through it).
#pragma once
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "model/model.h"
#include "runtime/batch.h"
#include "runtime/kv_cache.h"

namespace hearth {

struct ContextParams {
    int n_ctx = 4096;      // KV cells in the pool (all sequences together)
    int n_threads = 0;     // 0: every core
    int n_ubatch = 512;    // micro-batch: larger batches are split into chunks of this many entries
    int kv_block_size = 16;
    KvType kv_type = KvType::F16;  // how the cache stores K and V
    int kv_residual = 32;          // compressed KV types: recent positions kept in f16 (KvCacheConfig::residual)
    // Embedding mode: decode() returns, for each entry that asks for output, the final normed hidden state
    // (n_embd floats) instead of the logits: what decoder embedding models (Qwen3-Embedding) pool.
    bool embeddings = false;
};

class Context {
public:
    Context(const Model& model, const ContextParams& params);
    ~Context();

    // Runs the batch. Returns the logits of the entries with logits == true, n_vocab floats each (n_embd in
    // embedding mode: out_dim()), in batch order. Positions of a sequence must continue it (pos <= current length); throws hearth::Error on an
    // invalid token, position or sequence, or when the cache is full.
    const std::vector<float>& decode(const Batch& batch);

    // KV eviction (model/snapkv.h) votes with the queries of a prompt's last positions: after this call, the
    // batches that compute positions [first_pos, first_pos + n) of `seq` also save their queries (after rope
    // and the per-head norms, as attention uses them) until forget_queries(seq).
    struct ObservedQueries {
        int32_t first_pos = 0, n = 0;
        std::vector<float> q;  // [layer][n][n_head * head_dim]
    };
    void observe_queries(int32_t seq, int32_t first_pos, int32_t n);
    const ObservedQueries* observed_queries(int32_t seq) const;
    void forget_queries(int32_t seq) { observed_.erase(seq); }

    KvCache& kv() { return *kv_; }
    const Model& model() const { return model_; }
    int n_threads() const { return n_threads_; }
    int n_ctx() const { return params_.n_ctx; }
    int64_t out_dim() const { return params_.embeddings ? model_.hp.n_embd : model_.hp.n_vocab; }

private:
    struct Scratch;
    void run_ubatch(const BatchEntry* entries, int n, float* logits_out);

    const Model& model_;
    ContextParams params_;
    int n_threads_;
    std::unique_ptr<KvCache> kv_;
    std::unique_ptr<Scratch> s_;
    std::vector<float> logits_;
    std::unordered_map<int32_t, ObservedQueries> observed_;
};

}  // namespace hearth
