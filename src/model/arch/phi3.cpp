// phi3 architecture (Phi-3, Phi-3.5 mini): fused [q | k | v] and [gate | up] projections, NeoX rope, and
// "longrope": per-dimension frequency divisors, the short set up to the original context and the long set
// beyond it, with cos / sin scaled by rope.scaling.attn_factor.
#include "base/error.h"
#include "model/arch/decoder.h"
#include "model/weights.h"

namespace hearth::arch {

void load_phi3(Model& m) {
    load_decoder_hparams(m);
    HParams& hp = m.hp;
    const gguf::File& f = m.file;
    hp.rope_type = RopeType::Neox;
    hp.n_ctx_orig = f.get_u32_or(key(m, "rope.scaling.original_context_length"), static_cast<uint32_t>(hp.n_ctx_train));
    hp.rope_attn_factor = f.get_f32_or(key(m, "rope.scaling.attn_factor"), 1.0f);
    if (!(hp.rope_attn_factor > 0)) fail("{}: rope.scaling.attn_factor must be positive", f.path());
    load_decoder_weights(m, {.fused_qkv = true, .fused_gate_up = true});
    m.rope_factors_short = get_weight(f, "rope_factors_short.weight", hp.rope_dim / 2, 0, true);
    m.rope_factors_long = get_weight(f, "rope_factors_long.weight", hp.rope_dim / 2, 0, true);
    if (static_cast<bool>(m.rope_factors_short) != static_cast<bool>(m.rope_factors_long))
        fail("{}: rope_factors_short and rope_factors_long come as a pair", f.path());
    for (const Weight* w : {&m.rope_factors_short, &m.rope_factors_long})
        if (*w && w->type != DType::F32) fail("{}: '{}' must be F32", f.path(), w->name);
}

}  // namespace hearth::arch
