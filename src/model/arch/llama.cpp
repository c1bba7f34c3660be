// llama architecture: llama 1/2/3, Mistral-style, SmolLM, TinyLlama files.
#include "base/error.h"
#include "model/model.h"
#include "model/weights.h"

namespace hearth::arch {

void load_llama(Model& m) {
    const gguf::File& f = m.file;
    HParams& hp = m.hp;
    const std::string a = hp.arch + ".";
    hp.n_embd = f.get_u32(a + "embedding_length");
    hp.n_layer = f.get_u32(a + "block_count");
    hp.n_head = f.get_u32(a + "attention.head_count");
    hp.n_head_kv = f.get_u32_or(a + "attention.head_count_kv", static_cast<uint32_t>(hp.n_head));
    hp.n_ff = f.get_u32(a + "feed_forward_length");
    hp.n_ctx_train = f.get_u32_or(a + "context_length", 2048);
    hp.rms_eps = f.get_f32_or(a + "attention.layer_norm_rms_epsilon", 1e-5f);
    hp.rope_base = f.get_f32_or(a + "rope.freq_base", 10000.0f);
    if (hp.n_embd <= 0 || hp.n_layer <= 0 || hp.n_head <= 0 || hp.n_head_kv <= 0 || hp.n_ff <= 0)
        fail("{}: invalid hyper-parameters (embd {}, layers {}, heads {}/{}, ffn {})", f.path(), hp.n_embd,
             hp.n_layer, hp.n_head, hp.n_head_kv, hp.n_ff);
    if (hp.n_head % hp.n_head_kv != 0)
        fail("{}: head_count {} is not a multiple of head_count_kv {}", f.path(), hp.n_head, hp.n_head_kv);
    hp.head_dim = f.get_u32_or(a + "attention.key_length", static_cast<uint32_t>(hp.n_embd / hp.n_head));
    if (f.get_u32_or(a + "attention.value_length", static_cast<uint32_t>(hp.head_dim)) != hp.head_dim)
        fail("{}: attention.value_length differs from key_length, which llama models do not do", f.path());
    hp.rope_dim = f.get_u32_or(a + "rope.dimension_count", static_cast<uint32_t>(hp.head_dim));
    if (hp.rope_dim > hp.head_dim || hp.rope_dim % 2 != 0)
        fail("{}: rope.dimension_count {} is invalid for head size {}", f.path(), hp.rope_dim, hp.head_dim);
    const std::string scaling = f.get_str_or(a + "rope.scaling.type", "none");
    if (scaling == "linear") {
        const float factor = f.get_f32_or(a + "rope.scaling.factor", 1.0f);
        if (!(factor > 0)) fail("{}: rope.scaling.factor must be positive", f.path());
        hp.rope_freq_scale = 1.0f / factor;
    } else if (scaling != "none" && scaling != "llama3" && scaling != "yarn") {
        fail("{}: rope scaling '{}' is not supported", f.path(), scaling);
    } else if (scaling == "yarn") {
        fail("{}: rope scaling 'yarn' is not supported yet", f.path());
    }
    hp.rope_type = RopeType::Norm;

    const gguf::TensorInfo* emb = f.find_tensor("token_embd.weight");
    if (!emb || emb->dims.size() != 2) fail("{}: tensor 'token_embd.weight' is missing or not 2-D", f.path());
    hp.n_vocab = emb->dims[1];
    m.tok_embd = get_weight(f, "token_embd.weight", hp.n_embd, hp.n_vocab);
    m.output_norm = get_weight(f, "output_norm.weight", hp.n_embd, 0);
    m.output = get_weight(f, "output.weight", hp.n_embd, hp.n_vocab, /*optional=*/true);
    if (!m.output) {
        m.output = m.tok_embd;
        hp.tied_output = true;
    }
    if (Weight rf = get_weight(f, "rope_freqs.weight", hp.rope_dim / 2, 0, true)) {
        if (rf.type != DType::F32) fail("{}: rope_freqs.weight must be F32", f.path());
        m.rope_freqs.push_back(rf);
    }

    m.layers.resize(static_cast<size_t>(hp.n_layer));
    for (int64_t i = 0; i < hp.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        LayerWeights& l = m.layers[static_cast<size_t>(i)];
        l.attn_norm = get_weight(f, p + "attn_norm.weight", hp.n_embd, 0);
        l.wq = get_weight(f, p + "attn_q.weight", hp.n_embd, hp.q_dim());
        l.wk = get_weight(f, p + "attn_k.weight", hp.n_embd, hp.kv_dim());
        l.wv = get_weight(f, p + "attn_v.weight", hp.n_embd, hp.kv_dim());
        l.wo = get_weight(f, p + "attn_output.weight", hp.q_dim(), hp.n_embd);
        l.ffn_norm = get_weight(f, p + "ffn_norm.weight", hp.n_embd, 0);
        l.ffn_gate = get_weight(f, p + "ffn_gate.weight", hp.n_embd, hp.n_ff);
        l.ffn_up = get_weight(f, p + "ffn_up.weight", hp.n_embd, hp.n_ff);
        l.ffn_down = get_weight(f, p + "ffn_down.weight", hp.n_ff, hp.n_embd);
        for (const Weight* w : {&l.attn_norm, &l.ffn_norm})
            if (w->type != DType::F32) fail("{}: norm tensor '{}' must be F32", f.path(), w->name);
    }
    if (m.output_norm.type != DType::F32) fail("{}: output_norm.weight must be F32", f.path());
}

}  // namespace hearth::arch
