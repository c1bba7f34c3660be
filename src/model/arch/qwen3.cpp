// qwen3 and qwen3moe architectures (Qwen3, Qwen3-MoE, Qwen3-Embedding): the llama block with a per-head
// RMSNorm of q and k before rope, NeoX rope, an attention width that may differ from the hidden size; the MoE
// variant replaces the FFN by routed experts (softmax router, top-k, chosen weights renormalised to sum 1).
#include "base/error.h"
#include "model/arch/decoder.h"

namespace hearth::arch {

void load_qwen3(Model& m) {
    load_decoder_hparams(m);
    HParams& hp = m.hp;
    hp.rope_type = RopeType::Neox;
    const bool moe = hp.arch == "qwen3moe";
    if (moe) {
        const gguf::File& f = m.file;
        hp.n_expert = f.get_u32(key(m, "expert_count"));
        hp.n_expert_used = f.get_u32(key(m, "expert_used_count"));
        hp.n_ff_exp = f.get_u32(key(m, "expert_feed_forward_length"));
        hp.expert_weights_norm = true;  // Qwen3-MoE's norm_topk_prob
        if (hp.n_expert <= 0 || hp.n_expert_used <= 0 || hp.n_expert_used > hp.n_expert || hp.n_ff_exp <= 0)
            fail("{}: invalid expert configuration ({} experts, {} used, width {})", f.path(), hp.n_expert,
                 hp.n_expert_used, hp.n_ff_exp);
        if (f.get_u32_or(key(m, "expert_shared_count"), 0) != 0)
            fail("{}: shared experts ({}) are not supported for qwen3moe", f.path(), key(m, "expert_shared_count"));
    }
    load_decoder_weights(m, {.qk_norm = true, .moe = moe});
}

}  // namespace hearth::arch
