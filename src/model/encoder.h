// The forward pass of encoder models (bert): every input sequence is run on its own, with bidirectional
// attention over all of its tokens, learned absolute positions 0..n-1 and token-type embeddings, and no KV
// cache (a sequence is seen whole, once). Several sequences share one micro-batch so that the matrix products
// run over many tokens at a time; attention stays within each sequence.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "model/model.h"

namespace hearth {

struct EncoderParams {
    int n_threads = 0;      // 0: every core
    int n_ubatch = 2048;    // tokens per micro-batch: whole sequences are packed up to this many (a longer
                            // sequence gets a micro-batch of its own)
};

class Encoder {
public:
    // Throws hearth::Error if the model is not an encoder (hp.causal) or the parameters are invalid.
    Encoder(const Model& model, const EncoderParams& params);
    ~Encoder();

    // Runs each sequence (token ids; types: per-token token-type ids, or empty for all 0) through the model.
    // Returns n_embd floats per sequence, pooled as `pooling` says (Mean: over all tokens, [CLS] and [SEP]
    // included, as sentence-transformers does; Cls: the first token; Last: the last token), not normalised;
    // Pooling::None returns the final state of every token instead, sequence after sequence.
    // Throws hearth::Error on an empty sequence, a sequence longer than the model's context, or an id out of
    // range, naming the sequence.
    std::vector<float> encode(const std::vector<std::vector<int32_t>>& seqs, Pooling pooling,
                              const std::vector<std::vector<int32_t>>& types = {});

    const Model& model() const { return model_; }
    int n_threads() const { return n_threads_; }

private:
    struct Scratch;
    // Sequences [s0, s1) as one micro-batch; writes their outputs at out.
    void run_ubatch(const std::vector<std::vector<int32_t>>& seqs, const std::vector<std::vector<int32_t>>& types,
                    size_t s0, size_t s1, Pooling pooling, float* out);

    const Model& model_;
    EncoderParams params_;
    int n_threads_;
    std::unique_ptr<Scratch> s_;
};

}  // namespace hearth
