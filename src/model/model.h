// A loaded model: hyper-parameters read from GGUF metadata and weight views into the mmap'd file.
// Architecture-specific naming and defaults live in arch/<name>.cpp; the forward pass (forward.h) is shared.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tensor/dtype.h"

namespace hearth {

enum class RopeType { Norm, Neox };

struct HParams {
    std::string arch;  // general.architecture
    std::string name;  // general.name
    int64_t n_vocab = 0;
    int64_t n_ctx_train = 0;
    int64_t n_embd = 0;
    int64_t n_layer = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;
    int64_t head_dim = 0;  // key_length == value_length here
    int64_t n_ff = 0;
    float rms_eps = 1e-5f;
    float rope_base = 10000.0f;
    float rope_freq_scale = 1.0f;  // 1 / rope.scaling.factor for linear scaling
    int64_t rope_dim = 0;          // rotated dims per head (rope.dimension_count), default head_dim
    RopeType rope_type = RopeType::Norm;
    bool tied_output = false;
    int64_t q_dim() const { return n_head * head_dim; }
    int64_t kv_dim() const { return n_head_kv * head_dim; }
};

// A 2-D weight view: `rows` rows of `cols` elements, rows `row_bytes` apart.
struct Weight {
    std::string name;
    DType type = DType::F32;
    const uint8_t* data = nullptr;
    int64_t cols = 0;
    int64_t rows = 0;
    size_t row_bytes = 0;
    size_t bytes() const { return row_bytes * static_cast<size_t>(rows); }
    explicit operator bool() const { return data != nullptr; }
};

struct LayerWeights {
    Weight attn_norm, wq, wk, wv, wo;
    Weight bq, bk, bv;  // attention biases (qwen2); empty when the architecture has none
    Weight ffn_norm, ffn_gate, ffn_up, ffn_down;
};

struct Model {
    gguf::File file;
    HParams hp;
    Weight tok_embd, output_norm, output;
    std::vector<Weight> rope_freqs;  // optional per-dimension frequency divisors (llama3 scaling), one tensor
    std::vector<LayerWeights> layers;

    // Opens and validates a model file. Throws hearth::Error naming the problem (missing file, corrupt GGUF,
    // unknown architecture, missing tensor, wrong shape, unsupported tensor type).
    // use_mmap maps the file (zero copy); otherwise the weights are read into anonymous memory, which the
    // kernel's page-cache reclaim cannot take away mid-run (see bench/RESULTS.md).
    static std::unique_ptr<Model> load(const std::string& path, bool use_mmap = false);

    int64_t n_params() const;
    size_t weight_bytes() const;
    // Bytes of weights read to decode one token (every matrix and norm once, one embedding row; the whole
    // embedding matrix when the output is tied to it).
    size_t bytes_per_token() const;
};

namespace arch {
// Fills hp and weights for the llama architecture family (llama, mistral-style, SmolLM, TinyLlama).
void load_llama(Model& m);
void load_qwen2(Model& m);
}  // namespace arch

}  // namespace hearth
