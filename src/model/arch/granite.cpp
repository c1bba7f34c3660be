// granite architecture (IBM Granite 3.x dense): the llama block with four multipliers: token embeddings ×
// embedding_scale, each attention and FFN output × residual_scale before its residual add, attention scores ×
// attention.scale (instead of 1/sqrt(head_dim)), and logits ÷ logit_scale.
#include "base/error.h"
#include "model/arch/decoder.h"

namespace hearth::arch {

void load_granite(Model& m) {
    load_decoder_hparams(m);
    HParams& hp = m.hp;
    const gguf::File& f = m.file;
    hp.rope_type = RopeType::Norm;
    hp.embd_scale = f.get_f32_or(key(m, "embedding_scale"), 1.0f);
    hp.residual_scale = f.get_f32_or(key(m, "residual_scale"), 1.0f);
    hp.attn_scale = f.get_f32_or(key(m, "attention.scale"), 0.0f);
    const float logit_scale = f.get_f32_or(key(m, "logit_scale"), 1.0f);
    if (!(logit_scale > 0) || !(hp.embd_scale > 0) || !(hp.residual_scale > 0) || hp.attn_scale < 0)
        fail("{}: granite multipliers must be positive (embedding {}, residual {}, attention {}, logit {})", f.path(),
             hp.embd_scale, hp.residual_scale, hp.attn_scale, logit_scale);
    hp.logit_scale = 1.0f / logit_scale;
    load_decoder_weights(m, {});
}

}  // namespace hearth::arch
