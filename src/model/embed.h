// Sentence embeddings from any model: encoders (bert) through the Encoder, decoders (Qwen3-Embedding style)
// through the decoder Context in embedding mode (final normed hidden states). One vector per input text:
// tokens as the vocabulary adds them ([CLS] ... [SEP] for WordPiece, BOS/EOS per the GGUF flags), pooled
// (mean / CLS / last token), optionally L2-normalised.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/model.h"
#include "tokenizer/vocab.h"

namespace hearth {

class Context;
class Encoder;

// "none", "mean", "cls", "last".
const char* pooling_name(Pooling p);
// "mean" | "cls" | "last" (what a user may choose); throws hearth::Error naming the valid choices.
Pooling parse_pooling(std::string_view name);
// The model's own pooling: bert's hp.pooling (from bert.pooling_type); a decoder's {arch}.pooling_type when
// the file has it, else Last. Pooling::None: the model declares none.
Pooling model_pooling(const Model& model);

struct EmbedParams {
    Pooling pooling = Pooling::None;  // None: the model's own (model_pooling)
    bool normalize = true;            // L2-normalise each vector
    bool truncate = false;            // cut inputs longer than the context (keeping the trailing special tokens)
    int n_threads = 0;                // 0: every core
};

class Embedder {
public:
    // Throws hearth::Error when no pooling is possible (the model declares none and params choose none).
    Embedder(const Model& model, const tok::Vocab& vocab, const EmbedParams& params);
    ~Embedder();

    Pooling pooling() const { return pooling_; }
    bool normalize() const { return params_.normalize; }
    int64_t dim() const { return model_.hp.n_embd; }
    // Most tokens one input may have (the model's training context).
    int64_t max_tokens() const { return model_.hp.n_ctx_train; }

    // The tokens of one input text, special tokens included (control-token texts in the input are recognised,
    // as llama.cpp's embedding tool does). Throws hearth::Error for an empty text, or one longer than
    // max_tokens() (unless params.truncate).
    std::vector<int32_t> tokenize(std::string_view text) const;
    // One vector of dim() floats per token sequence, [n][dim()].
    std::vector<float> embed_tokens(const std::vector<std::vector<int32_t>>& seqs);
    // tokenize + embed_tokens.
    std::vector<float> embed(const std::vector<std::string>& texts);

private:
    std::vector<float> embed_decoder(const std::vector<std::vector<int32_t>>& seqs);

    const Model& model_;
    const tok::Vocab& vocab_;
    EmbedParams params_;
    Pooling pooling_;
    std::unique_ptr<Encoder> encoder_;
    std::unique_ptr<Context> ctx_;
};

// x / ||x||_2 in place (a zero vector stays zero).
void l2_normalize(float* x, int64_t n);

}  // namespace hearth
