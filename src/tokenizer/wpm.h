// WordPiece ("bert" in tokenizer.ggml.model), as llama.cpp's llm_tokenizer_wpm.
//
// Why hand-written: the word splitting and the greedy longest match must follow llama.cpp for the ids to
// match its test vectors; utf8proc does the Unicode work (decomposition, case mapping, categories).
//
// llama.cpp's BERT vocabularies store word-initial pieces with a U+2581 ("▁") prefix and continuation pieces
// bare (the converter rewrote "##ing" -> "ing" and "hello" -> "▁hello"). Encoding of one raw fragment:
//  1. decode UTF-8 (ill-formed subparts become U+FFFD), and replace every character by the first character of
//     its canonical decomposition (llama.cpp's "NFD": "é" -> "e", i.e. accents of precomposed characters are
//     dropped);
//  2. whitespace ends a word; U+0000, U+FFFD, control characters (Cc, Cf, Co, Cs) and nonspacing marks (Mn:
//     combining accents that were already decomposed in the input; here llama.cpp keeps them and the word
//     becomes [UNK], Hugging Face's BertNormalizer drops them) are dropped; the rest is lower-cased; punctuation, ASCII symbols and CJK ideographs are words of one character;
//  3. each word, with "▁" in front, is matched greedily (longest token first, from left to right); a word
//     with a position where nothing matches becomes one unknown token.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::tok {

class Vocab;

// The words of step 1-2 (UTF-8, lower-cased), for tests.
std::vector<std::string> wpm_words(std::string_view raw);

// Appends the ids of the raw fragment `raw` to `out`. Throws hearth::Error if a word has no match and the
// vocabulary has no unknown token.
void wpm_tokenize(const Vocab& vocab, std::string_view raw, std::vector<int32_t>& out);

}  // namespace hearth::tok
