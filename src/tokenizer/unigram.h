// SentencePiece unigram tokenization (Viterbi over piece scores) for "llama" vocabularies that say so with
// `tokenizer.hearth.algorithm = "unigram"` (written by `hearth tokenizer train --type unigram`).
//
// Why a second SPM path: llama.cpp's "llama" tokenizer (spm.h) merges adjacent symbols by score. That is how
// SentencePiece *encodes* with a BPE model, but a unigram model encodes with Viterbi: the segmentation whose
// piece scores (log probabilities) have the largest sum. The two agree on most words and differ on some (the
// test measures how often on man pages); llama.cpp, which does not know the key, tokenizes such a file with
// merges, so its ids are valid tokens of the vocabulary but not always SentencePiece's. Hearth honours the key
// and reproduces SentencePiece exactly.
//
// The search is SentencePiece's own (unigram::Model::EncodeOptimized in 0.1.97), followed step for step because
// ties and rounding decide ids on long texts (runs of one character, "────────", are segmented into the same
// pieces in many orders of equal score):
//  - positions are the boundaries of UTF-8 units (utf8_unit_length, vocab.h), visited left to right; the best
//    path score at each position is held as a float, the running sum from the start of the whole fragment (not
//    reset per word: a sum rounded at another magnitude can break a near-tie the other way);
//  - from each position, every Normal token that the text continues with is a candidate for the position where
//    it ends: score(position) + score(token) computed in double (SentencePiece's token score is a double
//    expression there), taken when strictly greater than the float that end already holds, which then becomes
//    the sum rounded to float; so of equal scores the one found first (the earliest start) wins;
//  - when no token covers exactly the one unit at a position, an unknown node covers it with the float sum
//    score(position) + (min(Normal scores) - 10) (SentencePiece's kUnkPenalty);
//  - the best path is read back from the end; an unknown node becomes the byte tokens of its bytes (byte
//    fallback), or <unk> where a byte has none, as spm.h does.
// Control, unknown, byte, unused and user-defined tokens never come out of the search (user-defined texts are
// cut out before, by Vocab's special-token partition).
#pragma once
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace hearth::tok {

class Vocab;

struct UnigramModel {
    // A byte trie of the Normal tokens: node 0 is the root; a node's children are the edges
    // [first_edge, first_edge + n_edges), sorted by byte.
    struct Node {
        int32_t token = -1;
        float score = 0;
        uint32_t first_edge = 0;
        uint32_t n_edges = 0;
    };
    std::vector<Node> nodes;
    std::vector<uint8_t> edge_byte;
    std::vector<int32_t> edge_child;
    float unk_score = 0;
};

std::shared_ptr<const UnigramModel> unigram_load(const Vocab& vocab);

// Appends the ids of `escaped` (already in SPM form, spm_escape) to `out`. Throws hearth::Error if a byte has
// no token to fall back to.
void unigram_tokenize(const Vocab& vocab, const UnigramModel& model, std::string_view escaped,
                      std::vector<int32_t>& out);

}  // namespace hearth::tok
