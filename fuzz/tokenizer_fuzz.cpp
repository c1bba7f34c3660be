// libFuzzer target for the tokenizers: any byte string is encoded (special tokens on and off) by a BPE
// (GPT-2), an SPM (Llama) and a WordPiece (BERT) vocabulary from ../shared; encoding must not crash, and for
// GPT-2 (byte-level, every byte has a token) decode(encode(x)) must give x back.
// The vocabularies come from $HEARTH_SHARED (default: ../shared beside the source tree).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "base/error.h"
#include "gguf/gguf.h"
#include "tokenizer/vocab.h"

namespace {

std::unique_ptr<hearth::tok::Vocab> load(const char* name) {
    const char* env = std::getenv("HEARTH_SHARED");
    const std::string dir = env && *env ? env : std::string(HEARTH_SOURCE_DIR) + "/../shared";
    const hearth::gguf::File f = hearth::gguf::File::open(dir + "/tokenizers/llama.cpp-vocab/" + name);
    return std::make_unique<hearth::tok::Vocab>(hearth::tok::Vocab::from_gguf(f));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const auto gpt2 = load("ggml-vocab-gpt-2.gguf");
    static const auto spm = load("ggml-vocab-llama-spm.gguf");
    static const auto bert = load("ggml-vocab-bert-bge.gguf");
    const std::string text(reinterpret_cast<const char*>(data), size);
    for (bool special : {false, true}) {
        const auto ids = gpt2->encode(text, false, special);
        if (!special && gpt2->decode(ids) != text) __builtin_trap();
        (void)spm->encode(text, true, special);
        (void)bert->encode(text, true, special);
    }
    return 0;
}
