// qwen2 architecture (Qwen2, Qwen2.5): the llama block with biases on the Q, K and V projections and NeoX
// rope ordering; everything else is the llama loader's.
#include "base/error.h"
#include "model/model.h"
#include "model/weights.h"

namespace hearth::arch {

void load_qwen2(Model& m) {
    load_llama(m);
    HParams& hp = m.hp;
    hp.rope_type = RopeType::Neox;
    for (int64_t i = 0; i < hp.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        LayerWeights& l = m.layers[static_cast<size_t>(i)];
        l.bq = get_weight(m.file, p + "attn_q.bias", hp.q_dim(), 0);
        l.bk = get_weight(m.file, p + "attn_k.bias", hp.kv_dim(), 0);
        l.bv = get_weight(m.file, p + "attn_v.bias", hp.kv_dim(), 0);
        for (const Weight* w : {&l.bq, &l.bk, &l.bv})
            if (w->type != DType::F32) fail("{}: bias tensor '{}' must be F32", m.file.path(), w->name);
    }
}

}  // namespace hearth::arch
