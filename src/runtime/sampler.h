// Token sampler: repetition penalties, then greedy (temperature 0) or the llama.cpp default chain
// top-k → top-p → min-p → temperature → softmax → seeded draw.
//
// Determinism: the random stream is std::mt19937_64 (whose output the C++ standard fixes), and the
// uniform variate is built from its raw 64-bit output, so the same seed, settings and logits give the
// same tokens with any standard library. Every floating-point reduction runs in a fixed order
// (token-id order or the total order "higher logit first, lower id on ties").
//
// Cost per token: O(V). For top_k <= 256 one pass keeps the k best in a heap and every filter then works
// on those k. Otherwise the prefix that top-k or top-p keeps is found by bucketing the candidates by logit
// (256 buckets), summing counts or probabilities per bucket and descending only into the bucket where
// the target is crossed: expected O(V), and at most a few dozen passes for adversarial float logits.
#pragma once
#include <cstdint>
#include <deque>
#include <random>
#include <unordered_map>
#include <utility>
#include <vector>

namespace hearth {

struct SamplerParams {
    float temperature = 0.8f;  // 0 → greedy argmax
    int top_k = 40;            // 0 → off
    float top_p = 0.95f;       // 1 → off
    float min_p = 0.05f;       // 0 → off
    float repeat_penalty = 1.0f;     // 1 → off
    float frequency_penalty = 0.0f;  // 0 → off
    float presence_penalty = 0.0f;   // 0 → off
    int penalty_last_n = 64;         // window of accepted tokens the penalties look at; 0 → off
    uint64_t seed = 0xFFFFFFFF'FFFFFFFFull;  // this value = pick a seed from std::random_device
};

// A distribution over tokens: (token, probability), ascending by token, zero-probability tokens left out.
using TokenDist = std::vector<std::pair<int32_t, double>>;

struct TokenLogprob {
    int32_t token = -1;
    float logprob = 0.0f;
};

// Log-probability of `token` under the model's distribution (log-softmax of the raw logits, before penalties,
// temperature or truncation: what the model believes, as vLLM and OpenAI report by default), and the `k` most
// likely tokens with theirs, most likely first (ties by lower id). -inf logits have logprob -inf.
float token_logprobs(const float* logits, int32_t n_vocab, int32_t token, int k, std::vector<TokenLogprob>* top);

class Sampler {
public:
    static constexpr uint64_t kRandomSeed = 0xFFFFFFFF'FFFFFFFFull;

    // Throws hearth::Error naming the first invalid parameter and its value.
    explicit Sampler(SamplerParams p);

    // Picks the next token from n_vocab logits (not modified). The logits may contain -inf (masked
    // tokens) but no NaN or +inf; at least one must be finite.
    int32_t sample(const float* logits, int32_t n_vocab);

    // The distribution sample() would draw from for these logits (penalties, filters and temperature applied;
    // greedy: the argmax with probability 1), without drawing: speculative sampling needs the probabilities.
    void distribution(const float* logits, int32_t n_vocab, TokenDist& out);
    // A uniform variate in [0, 1) from the sampler's random stream.
    double uniform() { return next_uniform(); }
    // A token drawn from `weights` (ascending tokens, non-negative weights, not necessarily normalised, at
    // least one positive) with one variate of the stream.
    int32_t draw_from(const TokenDist& weights);

    // Records a token in the penalty window (the last penalty_last_n accepted tokens).
    void accept(int32_t token);

    // Forgets the accepted tokens and restarts the random stream from seed(), so a reset sampler
    // repeats its earlier choices for the same logits.
    void reset();

    // The seed in use (the drawn one when the parameters asked for a random seed).
    uint64_t seed() const { return seed_; }

    const SamplerParams& params() const { return params_; }

private:
    struct Cand {
        float logit;
        int32_t id;
    };
    struct Item {
        float logit;
        int32_t id;
        double weight;  // exp(logit - max logit), used by top-p
    };

    bool apply_penalties(int32_t n_vocab);  // true if it changed a logit
    int32_t sample_small_k(size_t n, size_t k, float max_logit);
    int32_t sample_large(size_t n, size_t k, float max_logit);
    bool select_prefix(const std::vector<Item>& from, bool by_count, double target, Item& last);
    int32_t draw(float max_logit);  // from kept_ (token ids ascending, logits in .second)
    int32_t draw_unfiltered(float max_logit);  // the same draw over every token of work_ (no filter is on)
    int32_t draw_weights(const int32_t* ids, size_t m);  // both draws' weights and walk
    double next_uniform();           // in [0, 1), 53 random bits

    SamplerParams params_;
    uint64_t seed_;
    std::mt19937_64 rng_;
    std::deque<int32_t> window_;                  // last penalty_last_n accepted tokens
    std::unordered_map<int32_t, int32_t> counts_;  // occurrences of each token in window_

    // Scratch buffers reused across calls.
    std::vector<float> work_;   // penalised logits
    std::vector<Cand> cands_;   // small-k path: the top-k candidates
    std::vector<Item> items_;   // large path: finite candidates in token-id order
    std::vector<Item> sel_a_, sel_b_;  // select_prefix working sets
    std::vector<uint8_t> bucket_of_;   // select_prefix: bucket of each candidate of the current set
    std::vector<std::pair<int32_t, float>> kept_;  // tokens that survive the filters, by id
    std::vector<int32_t> ids_;                     // draw(): the kept tokens' ids
    std::vector<float> draw_w_;                    // the drawn tokens' logit - max, then unnormalised probability
    std::vector<double> block_w_;                  // their sums over blocks of 64 token ids
    std::vector<size_t> block_end_;                // where each block's tokens end in draw_w_
    TokenDist* dist_out_ = nullptr;  // set by distribution(): the draw writes the distribution here instead
};

}  // namespace hearth
