// bert architecture (BERT, BGE, MiniLM, E5 and other WordPiece sentence encoders, as llama.cpp's converter
// writes them): learned absolute positions, token-type embeddings, a LayerNorm over the summed embeddings,
// post-norm blocks (h = LN(x + attn(x)); out = LN(h + down(gelu(up(h))))) with biases everywhere, and
// bidirectional attention. The forward pass is the Encoder (model/encoder.h), not the decoder's Context.
#include "base/error.h"
#include "model/model.h"
#include "model/weights.h"

namespace hearth::arch {

namespace {

// LayerNorm weights and every bias are applied as f32 vectors by the encoder.
void require_f32(const gguf::File& f, const Weight& w) {
    if (w.type != DType::F32)
        fail("{}: tensor '{}' has type {}; norm and bias tensors must be F32", f.path(), w.name, dtype_name(w.type));
}

}  // namespace

void load_bert(Model& m) {
    const gguf::File& f = m.file;
    HParams& hp = m.hp;
    const std::string a = hp.arch + ".";
    hp.n_embd = f.get_u32(a + "embedding_length");
    hp.n_layer = f.get_u32(a + "block_count");
    hp.n_head = f.get_u32(a + "attention.head_count");
    hp.n_head_kv = f.get_u32_or(a + "attention.head_count_kv", static_cast<uint32_t>(hp.n_head));
    hp.n_ff = f.get_u32(a + "feed_forward_length");
    hp.n_ctx_train = f.get_u32(a + "context_length");
    hp.rms_eps = f.get_f32_or(a + "attention.layer_norm_epsilon", 1e-12f);
    if (hp.n_embd <= 0 || hp.n_layer <= 0 || hp.n_head <= 0 || hp.n_ff <= 0 || hp.n_ctx_train <= 0)
        fail("{}: invalid hyper-parameters (embd {}, layers {}, heads {}, ffn {}, context {})", f.path(), hp.n_embd,
             hp.n_layer, hp.n_head, hp.n_ff, hp.n_ctx_train);
    if (hp.n_head_kv != hp.n_head)
        fail("{}: attention.head_count_kv {} differs from head_count {}: grouped-query BERT is not supported",
             f.path(), hp.n_head_kv, hp.n_head);
    if (hp.n_embd % hp.n_head != 0)
        fail("{}: embedding_length {} is not a multiple of head_count {}", f.path(), hp.n_embd, hp.n_head);
    hp.head_dim = hp.n_embd / hp.n_head;
    if (f.get_u32_or(a + "attention.key_length", static_cast<uint32_t>(hp.head_dim)) != hp.head_dim ||
        f.get_u32_or(a + "attention.value_length", static_cast<uint32_t>(hp.head_dim)) != hp.head_dim)
        fail("{}: attention key/value length differs from embedding_length / head_count, which BERT does not do",
             f.path());
    if (!(hp.rms_eps >= 0.0f) || hp.rms_eps > 1.0f)
        fail("{}: attention.layer_norm_epsilon {} is invalid", f.path(), hp.rms_eps);
    hp.causal = f.get_bool_or(a + "attention.causal", false);
    if (hp.causal) fail("{}: {}attention.causal is true: causal BERT models are not supported", f.path(), a);
    const uint32_t pooling = f.get_u32_or(a + "pooling_type", 0);
    switch (pooling) {
        case 0: hp.pooling = Pooling::None; break;
        case 1: hp.pooling = Pooling::Mean; break;
        case 2: hp.pooling = Pooling::Cls; break;
        case 3: hp.pooling = Pooling::Last; break;
        case 4: fail("{}: {}pooling_type 4 (rank: a reranker's classification head) is not supported", f.path(), a);
        default: fail("{}: {}pooling_type {} is unknown (0 none, 1 mean, 2 cls, 3 last)", f.path(), a, pooling);
    }
    hp.norm_type = NormType::Layer;
    hp.ffn_act = FfnAct::Gelu;
    hp.rope_dim = 0;
    hp.tied_output = false;

    const gguf::TensorInfo* emb = f.find_tensor("token_embd.weight");
    if (!emb || emb->dims.size() != 2) fail("{}: tensor 'token_embd.weight' is missing or not 2-D", f.path());
    hp.n_vocab = emb->dims[1];
    m.tok_embd = get_weight(f, "token_embd.weight", hp.n_embd, hp.n_vocab);
    const gguf::TensorInfo* types = f.find_tensor("token_types.weight");
    if (!types || types->dims.size() != 2) fail("{}: tensor 'token_types.weight' is missing or not 2-D", f.path());
    hp.n_token_types = f.get_u32_or("tokenizer.ggml.token_type_count", static_cast<uint32_t>(types->dims[1]));
    if (hp.n_token_types < 1) fail("{}: tokenizer.ggml.token_type_count must be at least 1", f.path());
    m.tok_types = get_weight(f, "token_types.weight", hp.n_embd, hp.n_token_types);
    m.pos_embd = get_weight(f, "position_embd.weight", hp.n_embd, hp.n_ctx_train);
    m.tok_embd_norm = get_weight(f, "token_embd_norm.weight", hp.n_embd, 0);
    m.tok_embd_norm_b = get_weight(f, "token_embd_norm.bias", hp.n_embd, 0);
    require_f32(f, m.tok_embd_norm);
    require_f32(f, m.tok_embd_norm_b);
    if (f.find_tensor("cls.output.weight") || f.find_tensor("cls.weight"))
        fail("{}: the model has a classification head (a reranker), which hearth does not support", f.path());

    const int64_t E = hp.n_embd, F = hp.n_ff;
    m.layers.resize(static_cast<size_t>(hp.n_layer));
    for (int64_t i = 0; i < hp.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        LayerWeights& l = m.layers[static_cast<size_t>(i)];
        if (f.find_tensor(p + "attn_qkv.weight"))
            fail("{}: fused '{}attn_qkv.weight' (nomic-bert / jina style) is not supported for bert", f.path(), p);
        l.wq = get_weight(f, p + "attn_q.weight", E, E);
        l.wk = get_weight(f, p + "attn_k.weight", E, E);
        l.wv = get_weight(f, p + "attn_v.weight", E, E);
        l.bq = get_weight(f, p + "attn_q.bias", E, 0);
        l.bk = get_weight(f, p + "attn_k.bias", E, 0);
        l.bv = get_weight(f, p + "attn_v.bias", E, 0);
        l.wo = get_weight(f, p + "attn_output.weight", E, E);
        l.bo = get_weight(f, p + "attn_output.bias", E, 0);
        l.attn_out_norm = get_weight(f, p + "attn_output_norm.weight", E, 0);
        l.attn_out_norm_b = get_weight(f, p + "attn_output_norm.bias", E, 0);
        if (f.find_tensor(p + "ffn_gate.weight"))
            fail("{}: '{}ffn_gate.weight': gated FFNs (jina-bert-v2 style) are not supported for bert", f.path(), p);
        l.ffn_up = get_weight(f, p + "ffn_up.weight", E, F);
        l.ffn_up_b = get_weight(f, p + "ffn_up.bias", F, 0);
        l.ffn_down = get_weight(f, p + "ffn_down.weight", F, E);
        l.ffn_down_b = get_weight(f, p + "ffn_down.bias", E, 0);
        l.layer_out_norm = get_weight(f, p + "layer_output_norm.weight", E, 0);
        l.layer_out_norm_b = get_weight(f, p + "layer_output_norm.bias", E, 0);
        for (const Weight* w : {&l.bq, &l.bk, &l.bv, &l.bo, &l.attn_out_norm, &l.attn_out_norm_b, &l.ffn_up_b,
                                &l.ffn_down_b, &l.layer_out_norm, &l.layer_out_norm_b})
            require_f32(f, *w);
    }
}

}  // namespace hearth::arch
