// Helpers the tokenizer tests share: llama.cpp's vocabulary files and test vectors, synthetic vocabularies.
#pragma once
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "base/error.h"
#include "gguf/gguf.h"
#include "test_util.h"
#include "tokenizer/vocab.h"

namespace hearth::test {

// llama.cpp's vocabulary-only GGUF files and their test vectors, under ../shared.
inline const std::string kVocabDir = "tokenizers/llama.cpp-vocab/";

inline std::string ids_str(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) s += " " + std::to_string(id);
    return s;
}

// A vocabulary from GGUF metadata written in memory, loaded as any GGUF file.
inline tok::Vocab vocab_from_writer(const gguf::Writer& w) {
    const std::vector<uint8_t> bytes = w.to_bytes();
    return tok::Vocab::from_gguf(gguf::File::from_memory(bytes.data(), bytes.size(), "synthetic.gguf"));
}

// The error loading that vocabulary gives, or "(no error)".
inline std::string vocab_load_error(const gguf::Writer& w) {
    try {
        vocab_from_writer(w);
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

// Encodes each of llama.cpp's test vectors NAME.inp as its test-tokenizer-0 does (add_special = false,
// parse_special = false), expects NAME.out's ids, and expects decoding to give the input back (true of byte-level
// BPE and of SPM, which normalizes nothing).
inline void check_vocab_vectors(const tok::Vocab& vocab, const std::string& name) {
    const VocabVectors v = read_vocab_vectors(name);
    ASSERT_EQ(v.inputs.size(), 46u) << name;
    ASSERT_EQ(v.inputs.size(), v.outputs.size()) << name;
    size_t passed = 0;
    for (size_t i = 0; i < v.inputs.size(); ++i) {
        const std::vector<int32_t> got = vocab.encode(v.inputs[i], false, false);
        EXPECT_EQ(got, v.outputs[i]) << name << " vector " << i << " input '" << v.inputs[i] << "'\n got:"
                                     << ids_str(got) << "\nwant:" << ids_str(v.outputs[i]);
        EXPECT_EQ(vocab.decode(got), v.inputs[i]) << name << " vector " << i;
        passed += got == v.outputs[i];
    }
    std::printf("[ %s: %zu / %zu vectors pass ]\n", name.c_str(), passed, v.inputs.size());
}

}  // namespace hearth::test
