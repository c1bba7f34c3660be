// Byte-level BPE ("gpt2" in tokenizer.ggml.model), as llama.cpp's llm_tokenizer_bpe.
//
// Why hand-written: the merge loop and the vocabulary rules (merge ranks from tokenizer.ggml.merges,
// ignore_merges for Llama-3-style vocabularies, the fallback for symbols that are no token) must follow
// llama.cpp exactly for the ids to match its test vectors; the Unicode regex work of pre-tokenization is
// PCRE2's (pretokenize.h).
//
// Encoding of one raw text fragment:
//  1. pre-tokenize (the expressions of tokenizer.ggml.pre);
//  2. map every byte of each pre-token to its GPT-2 "byte-level" character (bytes_to_unicode: the printable
//     bytes stand for themselves, the others for U+0100 + n);
//  3. ignore_merges: a pre-token whose mapped text is itself a token is emitted as that token;
//  4. else split it into characters and repeatedly merge the adjacent pair with the lowest merge rank (ties:
//     the leftmost pair), with a priority queue;
//  5. each final symbol becomes its token; a symbol that is no token becomes the tokens of its single bytes
//     (the bytes of its mapped text that are tokens; others are dropped, as in llama.cpp).
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/pretokenize.h"

namespace hearth::tok {

class Vocab;

struct BpeModel {
    struct Merge {
        int32_t rank;    // the merge's index (the first of duplicates wins)
        int32_t merged;  // the token of the concatenated text, or -1 when that text is no token
    };
    PreTokenizer pre;
    bool ignore_merges = false;
    // (left token id << 32 | right token id) -> merge, in an open-addressing table (power-of-two size, linear
    // probing; key ~0 marks an empty slot): the merge loop's one lookup per candidate pair is its hot spot.
    // Resolving the merged token at load time keeps string hashing out of the loop.
    struct Slot {
        uint64_t key = ~uint64_t(0);
        Merge merge{};
    };
    std::vector<Slot> table;
    const Merge* find_merge(uint64_t key) const {
        const size_t mask = table.size() - 1;
        for (size_t i = (key * 0x9E3779B97F4A7C15ull) >> 20 & mask;; i = (i + 1) & mask) {
            if (table[i].key == key) return &table[i].merge;
            if (table[i].key == ~uint64_t(0)) return nullptr;
        }
    }
    // Identifies this model for the per-thread cache of tokenized pre-tokens (never reused, unlike an address).
    uint64_t serial = 0;
    // The token of each raw byte's byte-level character, or -1.
    std::array<int32_t, 256> byte_token{};
};

// Builds the merge table. Throws hearth::Error naming the merge that is malformed (no space separating two
// parts) or refers to a text that is no token, and for an unknown `pre`.
std::shared_ptr<const BpeModel> bpe_load(const Vocab& vocab, const std::vector<std::string>& merges,
                                         const PreTokenizerInfo& pre);

// Appends the ids of the raw fragment `raw` to `out`.
void bpe_tokenize(const Vocab& vocab, const BpeModel& model, std::string_view raw, std::vector<int32_t>& out);

// Raw bytes -> their byte-level characters (UTF-8).
std::string bpe_byte_encode(std::string_view raw);
// Byte-level text -> raw bytes. Characters outside the 256 byte-level characters (e.g. in added tokens) are
// kept as their UTF-8 (llama.cpp writes "[UNK_BYTE_0x..]" instead); invalid UTF-8 is kept as it is.
std::string bpe_byte_decode(std::string_view text);

}  // namespace hearth::tok
