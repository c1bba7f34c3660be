#include "model/arch/decoder.h"

#include "base/error.h"
#include "model/weights.h"

namespace hearth::arch {

void load_decoder_hparams(Model& m) {
    const gguf::File& f = m.file;
    HParams& hp = m.hp;
    hp.n_embd = f.get_u32(key(m, "embedding_length"));
    hp.n_layer = f.get_u32(key(m, "block_count"));
    hp.n_head = f.get_u32(key(m, "attention.head_count"));
    hp.n_head_kv = f.get_u32_or(key(m, "attention.head_count_kv"), static_cast<uint32_t>(hp.n_head));
    hp.n_ff = f.get_u32_or(key(m, "feed_forward_length"), 0);
    hp.n_ctx_train = f.get_u32_or(key(m, "context_length"), 2048);
    hp.rms_eps = f.get_f32_or(key(m, "attention.layer_norm_rms_epsilon"), 1e-5f);
    hp.rope_base = f.get_f32_or(key(m, "rope.freq_base"), 10000.0f);
    if (hp.n_embd <= 0 || hp.n_layer <= 0 || hp.n_head <= 0 || hp.n_head_kv <= 0)
        fail("{}: invalid hyper-parameters (embd {}, layers {}, heads {}/{})", f.path(), hp.n_embd, hp.n_layer,
             hp.n_head, hp.n_head_kv);
    if (hp.n_head % hp.n_head_kv != 0)
        fail("{}: head_count {} is not a multiple of head_count_kv {}", f.path(), hp.n_head, hp.n_head_kv);
    hp.head_dim = f.get_u32_or(key(m, "attention.key_length"), static_cast<uint32_t>(hp.n_embd / hp.n_head));
    if (f.get_u32_or(key(m, "attention.value_length"), static_cast<uint32_t>(hp.head_dim)) != hp.head_dim)
        fail("{}: attention.value_length differs from key_length, which hearth does not support", f.path());
    if (hp.head_dim <= 0 || hp.head_dim % 2 != 0) fail("{}: head size {} is invalid", f.path(), hp.head_dim);
    hp.rope_dim = f.get_u32_or(key(m, "rope.dimension_count"), static_cast<uint32_t>(hp.head_dim));
    if (hp.rope_dim > hp.head_dim || hp.rope_dim % 2 != 0 || hp.rope_dim <= 0)
        fail("{}: rope.dimension_count {} is invalid for head size {}", f.path(), hp.rope_dim, hp.head_dim);
    const std::string scaling = f.get_str_or(key(m, "rope.scaling.type"), "none");
    if (scaling == "linear") {
        const float factor = f.get_f32_or(key(m, "rope.scaling.factor"), 1.0f);
        if (!(factor > 0)) fail("{}: rope.scaling.factor must be positive", f.path());
        hp.rope_freq_scale = 1.0f / factor;
    } else if (scaling != "none" && scaling != "llama3") {
        // llama3 scaling arrives as rope_freqs.weight divisors; yarn and others change the rope itself.
        fail("{}: rope scaling '{}' is not supported", f.path(), scaling);
    }
    if (f.find(key(m, "attn_logit_softcapping")))
        fail("{}: attention logit soft-capping ({}) is not supported", f.path(), key(m, "attn_logit_softcapping"));
}

void load_decoder_weights(Model& m, const DecoderLayout& layout) {
    const gguf::File& f = m.file;
    HParams& hp = m.hp;
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
    if (!layout.moe && hp.n_ff <= 0) fail("{}: feed_forward_length is missing or zero", f.path());
    const int64_t E = hp.n_embd, QD = hp.q_dim(), KVD = hp.kv_dim(), F = hp.n_ff;

    // A view of `rows` rows of w starting at row `first` (fused tensors are used as separate matrices: the
    // gemm reads the same bytes either way, and the forward pass stays one code path).
    auto rows_of = [](const Weight& w, int64_t first, int64_t rows, const std::string& part) {
        Weight v = w;
        v.name = w.name + part;
        v.data = w.data + static_cast<size_t>(first) * w.row_bytes;
        v.rows = rows;
        return v;
    };
    auto norm = [&](const std::string& name, int64_t n) {
        Weight w = get_weight(f, name, n, 0);
        if (w.type != DType::F32) fail("{}: norm tensor '{}' must be F32", f.path(), name);
        return w;
    };
    if (m.output_norm.type != DType::F32) fail("{}: output_norm.weight must be F32", f.path());

    m.layers.resize(static_cast<size_t>(hp.n_layer));
    for (int64_t i = 0; i < hp.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        LayerWeights& l = m.layers[static_cast<size_t>(i)];
        l.attn_norm = norm(p + "attn_norm.weight", E);
        if (layout.fused_qkv) {
            l.wqkv = get_weight(f, p + "attn_qkv.weight", E, QD + 2 * KVD);
            l.wq = rows_of(l.wqkv, 0, QD, "[q]");
            l.wk = rows_of(l.wqkv, QD, KVD, "[k]");
            l.wv = rows_of(l.wqkv, QD + KVD, KVD, "[v]");
        } else {
            l.wq = get_weight(f, p + "attn_q.weight", E, QD);
            l.wk = get_weight(f, p + "attn_k.weight", E, KVD);
            l.wv = get_weight(f, p + "attn_v.weight", E, KVD);
        }
        l.wo = get_weight(f, p + "attn_output.weight", QD, E);
        if (layout.qkv_bias) {
            l.bq = get_weight(f, p + "attn_q.bias", QD, 0);
            l.bk = get_weight(f, p + "attn_k.bias", KVD, 0);
            l.bv = get_weight(f, p + "attn_v.bias", KVD, 0);
            for (const Weight* w : {&l.bq, &l.bk, &l.bv})
                if (w->type != DType::F32) fail("{}: bias tensor '{}' must be F32", f.path(), w->name);
        }
        if (layout.qk_norm) {
            l.attn_q_norm = norm(p + "attn_q_norm.weight", hp.head_dim);
            l.attn_k_norm = norm(p + "attn_k_norm.weight", hp.head_dim);
        }
        if (layout.post_norms) {
            l.post_attn_norm = norm(p + "post_attention_norm.weight", E);
            l.post_ffn_norm = norm(p + "post_ffw_norm.weight", E);
        }
        l.ffn_norm = norm(p + "ffn_norm.weight", E);
        if (layout.moe) {
            const int64_t NE = hp.n_expert, FE = hp.n_ff_exp;
            l.ffn_gate_inp = get_weight(f, p + "ffn_gate_inp.weight", E, NE);
            if (l.ffn_gate_inp.type != DType::F32) fail("{}: router '{}' must be F32", f.path(), l.ffn_gate_inp.name);
            // [n_expert][rows][cols] tensors, viewed one expert at a time.
            auto experts = [&](const std::string& name, int64_t cols, int64_t rows, std::vector<Weight>& out) {
                const Weight all = get_weight(f, name, {cols, rows, NE});
                for (int64_t e = 0; e < NE; ++e) out.push_back(rows_of(all, e * rows, rows, "[" + std::to_string(e) + "]"));
            };
            experts(p + "ffn_gate_exps.weight", E, FE, l.gate_exps);
            experts(p + "ffn_up_exps.weight", E, FE, l.up_exps);
            experts(p + "ffn_down_exps.weight", FE, E, l.down_exps);
        } else if (layout.fused_gate_up) {
            const Weight gu = get_weight(f, p + "ffn_up.weight", E, 2 * F);
            l.ffn_gate = rows_of(gu, 0, F, "[gate]");
            l.ffn_up = rows_of(gu, F, F, "[up]");
            l.ffn_down = get_weight(f, p + "ffn_down.weight", F, E);
        } else {
            l.ffn_gate = get_weight(f, p + "ffn_gate.weight", E, F);
            l.ffn_up = get_weight(f, p + "ffn_up.weight", E, F);
            l.ffn_down = get_weight(f, p + "ffn_down.weight", F, E);
        }
    }
}

}  // namespace hearth::arch
