// Random-weight models of realistic shape, for speed work and tests (no real model can be downloaded here).
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "tensor/dtype.h"

namespace hearth {

struct SynthShape {
    std::string name;
    int64_t n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0, n_vocab = 0, head_dim = 0;
    int64_t n_ctx_train = 8192;
    float rope_base = 10000.0f;
    float rms_eps = 1e-5f;
    bool tied = true;
    bool llama3_rope = false;  // write rope_freqs.weight with Llama 3's frequency scaling
};

// Named shapes: smollm2-135m, smollm2-360m, llama3.2-1b, tiny (for tests); or explicit
// "embd=576,layers=30,heads=9,kv_heads=3,ff=1536[,vocab=N][,head_dim=64][,tied=0][,rope_base=B][,llama3_rope=1]".
SynthShape synth_shape(const std::string& spec);

struct SynthOptions {
    SynthShape shape;
    std::string vocab_path;  // vocab GGUF, tokenizer.json or encoder.json; empty: a byte-level placeholder
                             // vocab of shape.n_vocab tokens named "<id>" (tests only)
    DType type = DType::F16;  // F32, F16 or BF16
    uint64_t seed = 0;
    float stddev = 0.02f;
};

// Writes the model; returns its size in bytes.
size_t synth_model(const SynthOptions& opt, const std::string& out,
                   const std::function<void(int done, int total)>& progress = {});

}  // namespace hearth
