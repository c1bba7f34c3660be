// Pre-tokenization for byte-level BPE vocabularies: the regular expressions llama.cpp's llama-vocab.cpp
// applies per `tokenizer.ggml.pre` value, run with PCRE2.
//
// Why hand-written: the table of expressions and the way they are chained follow llama.cpp (the GGUF files
// are written for it and its test vectors check this behaviour); PCRE2 (PCRE2_UTF | PCRE2_UCP, JIT when
// available) does the Unicode regex work, so no Unicode category tables live here.
//
// Semantics (llama.cpp's unicode_regex_split): the expressions are applied one after the other; each one
// cuts every fragment left by the previous ones into its matches AND the text between them (nothing is
// dropped), so the concatenation of the pieces is always the input.
//
// Invalid UTF-8 (PCRE2 refuses it): the input is cut into maximal valid runs and ill-formed units (the
// maximal-subpart rule of vocab.h); the expressions run on each valid run, and each ill-formed unit is a
// piece of its own. The BPE then sees its bytes as byte-level characters, so nothing is lost.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::tok {

// What a `tokenizer.ggml.pre` value means for the BPE tokenizer besides its expressions.
struct PreTokenizerInfo {
    std::vector<std::string> regexes;  // applied in order
    bool ignore_merges = false;        // a pre-token that is itself a token is emitted directly (llama3)
    int add_bos = -1;                  // -1: keep the model default; 0/1: llama.cpp's override for this pre
};

// The llama.cpp rules for `pre` ("" and "default" give llama.cpp's default expressions). Throws
// hearth::Error naming `pre` when it is unknown.
PreTokenizerInfo pre_tokenizer_info(const std::string& pre);

// Compiled expressions. Thread-safe: split() may be called concurrently.
class PreTokenizer {
public:
    // Throws hearth::Error (with PCRE2's message and offset) when an expression does not compile.
    explicit PreTokenizer(const std::vector<std::string>& regexes);
    ~PreTokenizer();
    PreTokenizer(PreTokenizer&&) noexcept;
    PreTokenizer& operator=(PreTokenizer&&) noexcept;
    PreTokenizer(const PreTokenizer&) = delete;
    PreTokenizer& operator=(const PreTokenizer&) = delete;

    // The pieces of `text` (views into it), in order; their concatenation is `text`.
    std::vector<std::string_view> split(std::string_view text) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace hearth::tok
