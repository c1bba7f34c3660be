// qwen2 architecture (Qwen2, Qwen2.5): the llama block with biases on the Q, K and V projections and NeoX
// rope ordering.
#include "model/arch/decoder.h"

namespace hearth::arch {

void load_qwen2(Model& m) {
    load_decoder_hparams(m);
    m.hp.rope_type = RopeType::Neox;
    load_decoder_weights(m, {.qkv_bias = true});
}

}  // namespace hearth::arch
