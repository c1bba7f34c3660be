// llama architecture: llama 1/2/3, Mistral-style, SmolLM, TinyLlama files.
#include "model/arch/decoder.h"

namespace hearth::arch {

void load_llama(Model& m) {
    load_decoder_hparams(m);
    m.hp.rope_type = RopeType::Norm;
    load_decoder_weights(m, {});
}

}  // namespace hearth::arch
