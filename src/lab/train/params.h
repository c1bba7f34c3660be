// The trainable parameters of a llama model as one f32 buffer of named tensors, with gradients and AdamW's
// moments in buffers of the same layout: every whole-model operation (clearing, the optimiser, the gradient
// norm, the MPI all-reduce, checkpoints) is one loop over one array.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/synth.h"

namespace hearth::gguf {
class File;
class Writer;
}  // namespace hearth::gguf

namespace hearth::lab {

// The model being trained: a llama decoder (RMSNorm, rope on adjacent pairs, grouped-query causal attention,
// SwiGLU), with the output projection tied to the embeddings or not.
struct TrainShape {
    int64_t n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0;
    int64_t n_ctx = 0;  // the longest sequence trained on (written as llama.context_length)
    float rope_base = 10000.0f;
    float rms_eps = 1e-5f;
    bool tied = true;
    int64_t q_dim() const { return n_head * head_dim; }
    int64_t kv_dim() const { return n_head_kv * head_dim; }
};
// From a synth shape (named or "embd=..,layers=..,..."); it must be a llama shape.
TrainShape train_shape_from(const SynthShape& s);

struct ParamTensor {
    std::string name;            // llama.cpp's tensor name (token_embd.weight, blk.0.attn_q.weight, ...)
    std::vector<int64_t> dims;   // GGUF order: dims[0] is the row length
    size_t offset = 0;           // floats from the start of the buffer
    int64_t rows = 0, cols = 0;  // a 1-D tensor has rows == 1
    bool decay = false;          // AdamW weight decay applies (matrices and embeddings, not norm weights)
    int64_t size() const { return rows * cols; }
};

// Offsets of one layer's tensors (floats from the start of a buffer of the layout).
struct LayerOffsets {
    size_t attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
};

class ParamLayout {
public:
    explicit ParamLayout(const TrainShape& shape);
    const TrainShape& shape() const { return shape_; }
    const std::vector<ParamTensor>& tensors() const { return tensors_; }
    size_t n_floats() const { return n_floats_; }
    const ParamTensor* find(const std::string& name) const;
    size_t tok_embd() const { return tok_embd_; }
    size_t output_norm() const { return output_norm_; }
    size_t output() const { return output_; }  // == tok_embd() when tied
    const LayerOffsets& layer(int64_t il) const { return layers_[static_cast<size_t>(il)]; }

private:
    TrainShape shape_;
    std::vector<ParamTensor> tensors_;
    std::vector<LayerOffsets> layers_;
    size_t n_floats_ = 0, tok_embd_ = 0, output_norm_ = 0, output_ = 0;
};

// Initial weights: norms 1; matrices and embeddings normal(0, stddev), the projections that write into the
// residual stream (attn_output, ffn_down) scaled by 1/sqrt(2 n_layer) (GPT-2's scheme). Deterministic for a
// seed, independent of threads.
void init_params(const ParamLayout& layout, uint64_t seed, float stddev, float* params);

// The metadata of a llama GGUF that llama.cpp and hearth read, with the tokenizer's keys copied from
// `tokenizer` (a vocab GGUF); a null tokenizer writes a placeholder vocabulary of "<id>" tokens (tests).
void add_model_metadata(const ParamLayout& layout, const gguf::File* tokenizer, const std::string& name,
                        gguf::Writer& w);
// Adds the tensors (F32, F16 or BF16 matrices; norms always F32) under prefix + name; `store` keeps converted
// data alive until w.write().
void add_model_tensors(const ParamLayout& layout, const float* params, DType type, const std::string& prefix,
                       gguf::Writer& w, std::vector<std::vector<uint8_t>>& store);
// Reads the weights of a llama GGUF of this shape (F32, F16 or BF16) into params; throws naming a missing
// tensor or a wrong shape.
void read_params(const ParamLayout& layout, const gguf::File& f, const std::string& prefix, float* params);
// The shape of a llama GGUF (what `hearth train` wrote, or any F32/F16/BF16 llama model).
TrainShape train_shape_of(const gguf::File& f);

}  // namespace hearth::lab
