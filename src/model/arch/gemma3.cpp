// gemma3 architecture (Gemma 3 text models): embeddings scaled by sqrt(n_embd); per-head q/k RMSNorm; norms
// after the attention and the FFN as well as before; a GELU-tanh gated FFN; five sliding-window layers (local
// rope: base 10000, no scaling) for every global one (the file's rope base and scaling); NeoX rope. The norm
// weights in GGUF already include Gemma's "+1".
#include <cmath>

#include "base/error.h"
#include "model/arch/decoder.h"

namespace hearth::arch {

void load_gemma3(Model& m) {
    load_decoder_hparams(m);
    HParams& hp = m.hp;
    const gguf::File& f = m.file;
    hp.rope_type = RopeType::Neox;
    hp.ffn_act = FfnAct::GeluTanh;
    hp.embd_scale = std::sqrt(static_cast<float>(hp.n_embd));
    // query_pre_attn_scalar: head_dim, except Gemma 3 27B (62 layers), which uses n_embd / n_head, as llama.cpp.
    hp.attn_scale = hp.n_layer == 62 ? 1.0f / std::sqrt(static_cast<float>(hp.n_embd / hp.n_head))
                                     : 1.0f / std::sqrt(static_cast<float>(hp.head_dim));
    hp.final_logit_softcap = f.get_f32_or(key(m, "final_logit_softcapping"), 0.0f);
    hp.sliding_window = f.get_u32_or(key(m, "attention.sliding_window"), 0);
    if (hp.sliding_window > 0) {
        constexpr int kPattern = 6;  // layer il is global when (il + 1) % 6 == 0
        hp.layer_sliding.resize(static_cast<size_t>(hp.n_layer));
        for (int64_t il = 0; il < hp.n_layer; ++il) hp.layer_sliding[static_cast<size_t>(il)] = (il + 1) % kPattern != 0;
        hp.rope_base_sliding = 10000.0f;
        hp.rope_freq_scale_sliding = 1.0f;
    }
    load_decoder_weights(m, {.qk_norm = true, .post_norms = true});
}

}  // namespace hearth::arch
