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
enum class FfnAct { Silu, GeluTanh, Gelu };  // gate activation of the gated FFN (plain FFN for encoders)
enum class NormType { Rms, Layer };          // RMSNorm (decoders) or LayerNorm with bias (BERT)
enum class Pooling { None, Mean, Cls, Last };  // how an embedding model turns token states into one vector

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
    FfnAct ffn_act = FfnAct::Silu;

    // Multipliers (granite, gemma): token embeddings × embd_scale; attention and FFN outputs × residual_scale
    // before each residual add; softmax(q·k × attn_scale) (0: 1/sqrt(head_dim)); logits × logit_scale, then
    // logit soft-capping c·tanh(logit / c) when final_logit_softcap > 0.
    float embd_scale = 1.0f;
    float residual_scale = 1.0f;
    float attn_scale = 0.0f;
    float logit_scale = 1.0f;
    float final_logit_softcap = 0.0f;

    // Sliding-window attention (gemma3): a sliding layer sees the last `sliding_window` positions (the query's
    // own included) and rotates with its own rope base and scale.
    int64_t sliding_window = 0;
    std::vector<uint8_t> layer_sliding;  // per layer; empty: no sliding layers
    float rope_base_sliding = 10000.0f;
    float rope_freq_scale_sliding = 1.0f;
    bool is_sliding(int64_t il) const { return !layer_sliding.empty() && layer_sliding[static_cast<size_t>(il)]; }

    // Phi-3 "longrope": per-dimension frequency divisors, the long set once the context exceeds n_ctx_orig;
    // cos and sin are multiplied by rope_attn_factor.
    int64_t n_ctx_orig = 0;
    float rope_attn_factor = 1.0f;

    // Mixture of experts: a router picks n_expert_used of n_expert FFNs (width n_ff_exp) per token;
    // expert_weights_norm renormalises the chosen softmax weights to sum to one.
    int64_t n_expert = 0;
    int64_t n_expert_used = 0;
    int64_t n_ff_exp = 0;
    bool expert_weights_norm = false;

    // Encoders (bert): bidirectional attention, LayerNorm, learned absolute positions, token types, pooling.
    bool causal = true;
    NormType norm_type = NormType::Rms;
    Pooling pooling = Pooling::None;
    int64_t n_token_types = 0;
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

// Optional tensors are empty (operator bool false) when the architecture has none.
struct LayerWeights {
    Weight attn_norm, wq, wk, wv, wo;
    Weight wqkv;                      // fused [q | k | v] projection (phi3); wq, wk, wv empty then
    Weight bq, bk, bv;                // projection biases (qwen2, bert)
    Weight attn_q_norm, attn_k_norm;  // per-head RMSNorm of q and k before rope (qwen3, gemma3)
    Weight post_attn_norm;            // norm of the attention output before the residual add (gemma)
    Weight ffn_norm, ffn_gate, ffn_up, ffn_down;
    // With ffn_gate empty and a gated FFN, ffn_up holds [gate | up] (2 × n_ff rows, phi3).
    Weight post_ffn_norm;  // norm of the FFN output before the residual add (gemma)
    // Mixture of experts: router [n_expert][n_embd] and one 2-D view per expert.
    Weight ffn_gate_inp;
    std::vector<Weight> gate_exps, up_exps, down_exps;
    // --- encoders (bert): output bias, post-attention and post-FFN LayerNorms with biases, FFN biases.
    Weight bo;
    Weight attn_out_norm, attn_out_norm_b;
    Weight ffn_up_b, ffn_down_b;
    Weight layer_out_norm, layer_out_norm_b;
    // --- end of encoder fields
};

struct Model {
    gguf::File file;
    HParams hp;
    Weight tok_embd, output_norm, output;
    std::vector<Weight> rope_freqs;  // optional per-dimension frequency divisors (llama3 scaling), one tensor
    Weight rope_factors_short, rope_factors_long;  // phi3 longrope divisors
    // --- encoders (bert): learned positions, token types, LayerNorm of the embeddings.
    Weight pos_embd, tok_types, tok_embd_norm, tok_embd_norm_b;
    // --- end of encoder fields
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
void load_qwen3(Model& m);     // also qwen3moe
void load_gemma3(Model& m);
void load_granite(Model& m);
void load_phi3(Model& m);
void load_bert(Model& m);
}  // namespace arch

}  // namespace hearth
