// Training SentencePiece tokenizers with Debian's libsentencepiece and writing them as vocab-only GGUFs that
// hearth's SPM tokenizer (tok::Vocab) and llama.cpp's "llama" tokenizer load.
//
// The training is SentencePiece's own (BPE or unigram), set up for what a GGUF "llama" tokenizer can express:
// no normalization (identity: neither hearth nor llama.cpp normalise SPM input), a dummy-prefix space
// (tokenizer.ggml.add_space_prefix), whitespace kept as it is (no remove_extra_whitespaces) with runs of spaces
// allowed as pieces (allow_whitespace_only_pieces, as Llama 2's vocabulary has them: indentation is one token, not
// one a space), byte fallback (a character outside the vocabulary becomes <0xXX> tokens), digits split, and the
// Llama ids <unk> = 0, <s> = 1, </s> = 2 followed by the 256 byte tokens. SentencePiece trains on sentences: the
// non-empty lines of the texts, so a newline is never part of a piece and encodes as <0x0A>, as in Llama 2.
//
// Encoding with the result: a BPE vocabulary is encoded by score-ordered merges, which is how both SentencePiece
// and llama.cpp encode it. A unigram vocabulary is encoded by SentencePiece with Viterbi; the file says so with
// `tokenizer.hearth.algorithm = "unigram"`, which hearth honours (tokenizer/unigram.h) and llama.cpp ignores (it
// then merges by score: valid ids, but not always SentencePiece's).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gguf/gguf.h"

namespace hearth::tok {
class Vocab;
}

namespace hearth::lab {

enum class SpmType { Bpe, Unigram };
// "bpe" / "unigram"; throws hearth::Error naming anything else.
SpmType spm_type_from_name(const std::string& name);
const char* spm_type_name(SpmType t);

// 3 specials + 256 byte tokens, and at least one piece of text.
constexpr int32_t kMinTokenizerVocab = 260;
// Longer lines are left out of training (SentencePiece's own limit, raised from its default of 4192 bytes).
constexpr size_t kMaxSentenceBytes = 65536;

struct TokenizerTrainOptions {
    int32_t vocab_size = 8000;
    SpmType type = SpmType::Bpe;
    double character_coverage = 0.9995;
    // At most this many sentences (lines) are trained on, a uniform sample drawn with `seed`; 0: all of them.
    int64_t max_sentences = 2'000'000;
    uint64_t seed = 0;
    // SentencePiece's worker threads. A fixed default rather than the machine's cores: a unigram vocabulary
    // depends on the count (its EM sums expectations per thread's share of the sentences, in float), so the
    // same seed and thread count give the same file on any machine. BPE does not depend on it.
    int threads = 8;
    // Called from the training thread while SentencePiece reads the sentences (every few thousand).
    std::function<void(int64_t loaded, int64_t total)> on_load;
};

struct TrainedTokenizer {
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<int32_t> types;  // llama.cpp's token types: 1 normal, 2 unknown, 3 control, 5 unused, 6 byte
    std::string spm_model;       // the serialized SentencePiece ModelProto (what a .model file holds)
    int64_t sentences = 0;       // non-empty lines of the texts
    int64_t sentences_long = 0;  // of those, longer than kMaxSentenceBytes, left out
    int64_t sentences_used = 0;  // trained on (after the cap)
    double seconds = 0;          // SentencePiece's training
};

// Trains on the non-empty lines of `texts`. Throws hearth::Error with a one-line message for an empty corpus,
// options out of range, and SentencePiece's refusals (a vocabulary too large for the corpus, with the largest it
// allows; too small for the corpus's characters).
TrainedTokenizer train_tokenizer(const std::vector<std::string>& texts, const TokenizerTrainOptions& o);

// The vocab-only GGUF (no tensors): general.architecture = llama, llama.cpp's tokenizer.ggml.* keys,
// tokenizer.hearth.algorithm, and the training options as hearth.tokenizer.* keys. Nothing in it depends on
// the time or the machine, so the same options and texts give the same bytes.
gguf::Writer tokenizer_gguf(const TrainedTokenizer& t, const TokenizerTrainOptions& o);

// Writes `bytes` to `path` through a synced temporary file renamed over it. Throws hearth::Error naming the path.
void write_file_atomic(const std::string& path, const std::string& bytes);
// Throws hearth::Error unless a file can be created at `path` (its folder exists and is writable, and `path` is
// not a folder); leaves nothing behind.
void check_writable(const std::string& path);

struct Compression {
    int64_t documents = 0;
    int64_t bytes = 0;
    int64_t characters = 0;  // Unicode code points
    int64_t tokens = 0;      // without BOS
    double chars_per_token() const { return tokens ? static_cast<double>(characters) / tokens : 0; }
    double bytes_per_token() const { return tokens ? static_cast<double>(bytes) / tokens : 0; }
};
// Encodes each text (no special tokens added) and counts.
Compression measure_compression(const tok::Vocab& vocab, const std::vector<std::string>& texts);


}  // namespace hearth::lab
