// Bringing a tokenizer from another format into GGUF metadata (tokenizer.ggml.* keys): a vocab GGUF, a
// Hugging Face tokenizer.json (BPE), or a GPT-2 style encoder.json + vocab.bpe pair (Llama 3).
#pragma once
#include <cstdint>
#include <string>

#include "gguf/gguf.h"
#include "tokenizer/vocab.h"

namespace hearth::tok {

struct ImportedTokenizer {
    int64_t n_tokens = 0;
    std::string model;  // tokenizer.ggml.model
};

// Sets every tokenizer.* key in `w` (from a vocab GGUF also its hearth.tokenizer.* keys, the training options of
// `hearth tokenizer train`). `pre` overrides tokenizer.ggml.pre for the JSON formats (else guessed
// from the source). Throws hearth::Error on a missing file, malformed JSON or an unsupported tokenizer model.
ImportedTokenizer import_tokenizer(const std::string& path, gguf::Writer& w, const std::string& pre = "");

// The vocabulary of such a file, ready to encode (import_tokenizer into a GGUF in memory, read back).
Vocab import_vocab(const std::string& path, const std::string& pre = "");

}  // namespace hearth::tok
