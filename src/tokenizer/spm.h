// SentencePiece-style ("llama" / SPM) tokenization of one text fragment, as llama.cpp's llm_tokenizer_spm.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::tok {

class Vocab;

// The SPM form of a raw text fragment: an optional leading space, then every ' ' replaced by U+2581 ("▁").
std::string spm_escape(std::string_view raw, bool prefix_space);

// Appends the ids of `escaped` (already in SPM form) to `out`:
//  1. split into UTF-8 characters; bytes that are not valid UTF-8 are split by the maximal-subpart rule
//     (vocab.h), each subpart its own symbol. On valid UTF-8 this is llama.cpp's split; on invalid input
//     llama.cpp takes the length the lead byte announces, which can swallow the bytes of the next character
//     (a stray 0xC6 before a space turns the space's "▁" into byte tokens that decode as "▁", not " "),
//     while this split keeps decode(encode(x)) == x for any bytes x;
//  2. repeatedly merge the adjacent pair of symbols whose concatenation is a token with the highest score
//     (ties: the leftmost pair), with a priority queue of candidate pairs, O(n log n);
//  3. map each final symbol to its token; a symbol that is no token becomes one byte token per byte
//     (Vocab::byte_token: <0xXX>, else the one-byte text); bytes with neither become <unk>, one <unk> for
//     each run of such bytes within a symbol, so that an unknown character is one <unk>.
// Merges only produce tokens that SentencePiece itself can produce (Normal, UserDefined, Unused): a control,
// unknown or byte token never comes out of merging plain text (llama.cpp does not check this; no real SPM
// vocabulary we know of has a merge path to such a token, so the two agree on them).
// When the vocabulary allows it (spm_words_are_independent), the text is first cut into words (a run of "▁"
// and what follows up to the next "▁"), which gives the same ids and keeps the queue small.
// Throws hearth::Error if a byte has no token to fall back to.
void spm_tokenize(const Vocab& vocab, std::string_view escaped, std::vector<int32_t>& out);

// True when no token a merge can produce has a "▁" after a character other than "▁" (true of SentencePiece
// vocabularies trained with split_by_whitespace, the default): then no merge crosses a word boundary.
bool spm_words_are_independent(const Vocab& vocab);

}  // namespace hearth::tok
