// Building blocks shared by the decoder architectures' loaders (arch/<name>.cpp): the llama-style
// hyper-parameters every decoder has, and the per-layer tensors, with the variations as switches.
#pragma once
#include <string>

#include "model/model.h"

namespace hearth::arch {

struct DecoderLayout {
    bool qkv_bias = false;       // attn_{q,k,v}.bias (qwen2)
    bool qk_norm = false;        // attn_{q,k}_norm: per-head RMSNorm (qwen3, gemma3)
    bool post_norms = false;     // post_attention_norm, post_ffw_norm (gemma3)
    bool fused_qkv = false;      // attn_qkv = [q | k | v] (phi3)
    bool fused_gate_up = false;  // ffn_up = [gate | up] (phi3)
    bool moe = false;            // ffn_gate_inp + ffn_{gate,up,down}_exps instead of the dense FFN (qwen3moe)
};

// Reads `<arch>.*` hyper-parameters common to decoders (sizes, heads, eps, rope base and linear scaling);
// the caller sets the architecture's rope type and specifics afterwards.
void load_decoder_hparams(Model& m);
// Token embeddings, output norm and (tied or separate) output, and every layer's tensors per `layout`.
void load_decoder_weights(Model& m, const DecoderLayout& layout);

// The key `<arch>.<suffix>`.
inline std::string key(const Model& m, const std::string& suffix) { return m.hp.arch + "." + suffix; }

}  // namespace hearth::arch
