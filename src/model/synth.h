// Random-weight models of realistic shape, for speed work and tests (no real model can be downloaded here).
// Every architecture is written with the GGUF metadata keys and tensor names llama.cpp uses, so the files also
// load there.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace hearth {

struct SynthShape {
    std::string name;
    std::string arch = "llama";  // llama, qwen2, qwen3, qwen3moe, gemma3, granite, phi3, bert
    int64_t n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0, n_vocab = 0, head_dim = 0;
    int64_t n_ctx_train = 8192;
    float rope_base = 10000.0f;
    float rms_eps = 1e-5f;  // RMSNorm epsilon; LayerNorm epsilon for bert
    bool tied = true;
    bool llama3_rope = false;  // write rope_freqs.weight with Llama 3's frequency scaling

    // Mixture of experts (qwen3moe): n_expert FFNs of width n_ff_exp, n_expert_used chosen per token.
    int64_t n_expert = 0, n_expert_used = 0, n_ff_exp = 0;
    // Sliding-window attention (gemma3): {arch}.attention.sliding_window; 0 writes no key.
    int64_t sliding_window = 0;
    // granite multipliers ({arch}.embedding_scale, residual_scale, attention.scale, logit_scale).
    float embd_scale = 1.0f, residual_scale = 1.0f, attn_scale = 1.0f, logit_scale = 1.0f;
    // phi3 "longrope": rope.scaling.original_context_length (0: n_ctx_train). When it is below n_ctx_train,
    // rope_factors_short/long.weight and rope.scaling.attn_factor are written too.
    int64_t n_ctx_orig = 0;
    float rope_attn_factor = 1.0f;
    // bert: token types and pooling (0 none, 1 mean, 2 cls, 3 last: llama.cpp's pooling_type).
    int64_t n_token_types = 0;
    int pooling = 0;

    bool moe() const { return n_expert > 0; }
    bool longrope() const { return n_ctx_orig > 0 && n_ctx_orig < n_ctx_train; }
    int64_t q_dim() const { return n_head * head_dim; }
    int64_t kv_dim() const { return n_head_kv * head_dim; }
};

// Named shapes: smollm2-135m, smollm2-360m, llama3.2-1b, qwen3-0.6b, qwen2.5-0.5b, gemma3-270m, gemma3-1b,
// granite-3.3-2b, phi3-mini, qwen3moe-a400m, bge-small; tiny, moe-tiny, bert-tiny (for tests); or explicit
// "embd=576,layers=30,heads=9,kv_heads=3,ff=1536[,arch=A][,vocab=N][,head_dim=64][,tied=0][,rope_base=B]
// [,llama3_rope=1][,ctx=N][,eps=E][,experts=N,experts_used=K,ff_exp=F][,window=W][,embd_scale=..,
// residual_scale=..,attn_scale=..,logit_scale=..][,orig_ctx=N][,token_types=N][,pooling=cls]".
// Throws hearth::Error naming the problem (unknown shape, arch or key, inconsistent dimensions).
SynthShape synth_shape(const std::string& spec);
// Names of the named shapes, in the order above.
std::vector<std::string> synth_shape_names();
// Parses a pooling name (none, mean, cls, last) to llama.cpp's pooling_type; throws on an unknown name.
int synth_pooling(const std::string& name);

// Parameters of the shape's tensors (with its n_vocab; a --vocab file may change that).
int64_t synth_n_params(const SynthShape& shape);

struct SynthOptions {
    SynthShape shape;
    std::string vocab_path;  // vocab GGUF, tokenizer.json or encoder.json; empty: a byte-level placeholder
                             // vocab of shape.n_vocab tokens named "<id>" (tests only)
    DType type = DType::F16;  // F32, F16 or BF16
    uint64_t seed = 0;
    float stddev = 0.02f;
};

struct SynthResult {
    size_t bytes = 0;      // tensor data
    int64_t n_params = 0;  // elements of all tensors
    int64_t n_vocab = 0;   // the vocabulary actually written (the tokenizer's when one is given)
};

// Writes the model. Norm weights are 1.0 (F32; bert's LayerNorm weights 1 + normal(0, stddev)), biases
// normal(0, stddev) in F32, every 1-D tensor F32, other matrices normal(0, stddev) in opt.type.
SynthResult synth_model(const SynthOptions& opt, const std::string& out,
                        const std::function<void(int done, int total)>& progress = {});

}  // namespace hearth
