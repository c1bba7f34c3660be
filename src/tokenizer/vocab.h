// The vocabulary of a model (tokens, scores, attributes, special ids) as stored in GGUF metadata, and the
// text <-> token conversions built on it. One Vocab serves every tokenizer type; the type-specific part of
// encoding lives in its own file and is selected from `tokenizer.ggml.model`: SentencePiece merges for
// "llama" (spm.cpp; or unigram Viterbi, unigram.cpp, when `tokenizer.hearth.algorithm` is "unigram"), byte-level
// BPE for "gpt2" (bpe.cpp, with the pre-tokenizer of `tokenizer.ggml.pre`, pretokenize.cpp), WordPiece for "bert"
// (wpm.cpp).
//
// Behaviour follows llama.cpp's llama_vocab, which is what GGUF files are written for:
//  - encode(): special-token partition (tokenizer_st_partition), then the model's tokenizer on each text
//    fragment; SPM adds a prefix space to a text fragment at the start of the input and after every special
//    token (when add_space_prefix).
//  - token_to_piece() / decode(): llama_token_to_piece / llama_detokenize with remove_special = false, but
//    without llama.cpp's clean_spaces pass for BPE / WPM (which deletes the space before "?!.,'" and so is
//    not lossless): decode(encode(x)) == x for byte-level BPE vocabularies.
//
// Invalid UTF-8 (documented rule, used by sanitize_utf8() and StreamDecoder): every *maximal subpart of an
// ill-formed subsequence* becomes one U+FFFD, the "best practice" of Unicode 15 §3.9 (Table 3-8), which is
// also what Python's bytes.decode('utf-8', 'replace') and the WHATWG Encoding Standard do. A maximal subpart
// is either a byte that cannot start a sequence (80..BF, C0, C1, F5..FF), or a well-formed prefix of a
// sequence (lead byte plus the continuation bytes that were still allowed) that is cut short by a byte that
// is not allowed next, or by the end of the input. encode() itself does NOT replace anything: bytes that are
// not valid UTF-8 reach the tokenizer as they are and come out as byte tokens, so decode(encode(x)) == x for
// any byte string x when the vocabulary has byte tokens.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hearth::gguf {
class File;
}

namespace hearth::tok {

struct BpeModel;
struct UnigramModel;

// From tokenizer.ggml.token_type 1..6 (0, "undefined" in GGUF writers, is read as Normal).
enum class TokenAttr : uint8_t { Normal, Unknown, Control, UserDefined, Unused, Byte };

// The algorithm behind tokenizer.ggml.model.
enum class TokenizerModel : uint8_t { Spm /* "llama" */, Bpe /* "gpt2" */, Wpm /* "bert" */ };

// Transparent hash so that lookups by std::string_view do not allocate.
struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

class Vocab {
public:
    // Reads tokenizer.ggml.* from a GGUF. Throws hearth::Error naming the key or token that is wrong.
    static Vocab from_gguf(const gguf::File& f);

    TokenizerModel model() const { return model_; }
    int32_t n_tokens() const { return static_cast<int32_t>(tokens_.size()); }
    // Special ids; -1 when the vocabulary has none.
    int32_t bos() const { return bos_; }
    int32_t eos() const { return eos_; }
    int32_t unk() const { return unk_; }
    int32_t pad() const { return pad_; }
    int32_t sep() const { return sep_; }
    int32_t eot() const { return eot_; }
    int32_t eom() const { return eom_; }
    bool add_bos() const { return add_bos_; }
    bool add_eos() const { return add_eos_; }
    bool add_space_prefix() const { return add_space_prefix_; }
    // WordPiece: append SEP after the text when add_special (tokenizer.ggml.add_sep_token, default true).
    bool add_sep() const { return add_sep_; }
    // tokenizer.ggml.pre as read ("" when absent).
    const std::string& pre() const { return pre_; }
    // Longest token text in bytes.
    int32_t max_token_len() const { return max_token_len_; }
    // End of generation: eos, eot, eom, fim pad/rep/sep, and the tokens llama.cpp recognises by their text
    // (<|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>, <|endoftext|>, <|eom_id|>, <EOT>, ...).
    bool is_eog(int32_t id) const;
    const std::vector<int32_t>& eog_ids() const { return eog_ids_; }

    // Per-token data. Throw hearth::Error when id is out of range.
    const std::string& text(int32_t id) const;
    TokenAttr attr(int32_t id) const;
    float score(int32_t id) const;
    // Whitespace stripped left / right of this special token when it is matched in the input (llama.cpp sets
    // these by model name, e.g. rstrip for Phi-3's chat tokens).
    bool lstrip(int32_t id) const;
    bool rstrip(int32_t id) const;
    // The token whose text is exactly `text`, or -1 (when several share a text, the last one, as llama.cpp).
    int32_t find(std::string_view text) const;
    // The token that stands for byte b when a text has no token of its own: "<0xAB>", else the one-byte
    // text; -1 if neither exists (the tokenizer then uses unk()).
    int32_t byte_token(uint8_t b) const { return byte_to_token_[b]; }
    // For the SPM tokenizer: whether it may tokenize word by word (spm.h, spm_words_are_independent).
    bool spm_words_independent() const { return spm_words_independent_; }
    // For the SPM tokenizer: SentencePiece unigram Viterbi instead of merges (unigram.h), from
    // `tokenizer.hearth.algorithm = "unigram"`.
    bool spm_unigram() const { return unigram_ != nullptr; }

    // text -> ids. add_special: prepend BOS / append EOS per add_bos() / add_eos() (WordPiece: BOS is [CLS],
    // and SEP is appended per add_sep()). parse_special: recognise
    // control (and unknown) token texts in the input; user-defined token texts are always recognised, as in
    // llama.cpp.
    std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

    // The bytes a token contributes to the output: byte tokens "<0xAB>" -> the byte; U+2581 -> space (SPM,
    // WPM); BPE: every byte-level character -> its byte;
    // user-defined tokens -> their text; control and unknown tokens -> "" unless `special` (then their text);
    // unused tokens -> "".
    std::string token_to_piece(int32_t id, bool special = false) const;
    // llama.cpp's detokenize: the concatenated pieces, with one leading space removed from the first token when
    // add_space_prefix (the space the encoder put there). remove_special: drop a leading BOS (when add_bos; the
    // next token then keeps its space, as in llama.cpp; WordPiece: [CLS], and the first word still loses its
    // "▁") and a trailing EOS (when add_eos; WordPiece: also a trailing SEP when add_sep). Bytes are returned
    // as they are: the result may be invalid UTF-8 if the ids split a character (see sanitize_utf8()).
    std::string decode(const std::vector<int32_t>& ids, bool special = false, bool remove_special = false) const;

private:
    struct Fragment {
        int32_t token;  // -1: raw text [offset, offset + length) of the input
        size_t offset;
        size_t length;
    };
    struct TrieNode {
        std::vector<std::pair<uint8_t, int32_t>> next;  // sorted by byte
        std::vector<int32_t> tokens;                    // special tokens ending here, in processing order
    };

    void finish_load(const std::string& model_name, const std::string& tokenizer_pre, const std::string& arch);
    void check_id(int32_t id) const;
    std::vector<Fragment> partition(std::string_view text, bool parse_special) const;

    TokenizerModel model_ = TokenizerModel::Spm;
    std::vector<std::string> tokens_;
    std::vector<float> scores_;
    std::vector<TokenAttr> attrs_;
    std::vector<uint8_t> strip_;  // bit 0: lstrip, bit 1: rstrip
    std::vector<uint8_t> token_byte_;  // for Byte tokens: the byte
    std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> text_to_id_;
    std::array<int32_t, 256> byte_to_token_{};
    // Special-token matcher: a byte trie over the texts of Control / UserDefined / Unknown tokens.
    std::vector<TrieNode> trie_;
    std::vector<int32_t> special_rank_;  // processing order (longest text first) per token; -1 if not special

    int32_t bos_ = -1, eos_ = -1, unk_ = -1, pad_ = -1, sep_ = -1, eot_ = -1, eom_ = -1;
    bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false, add_sep_ = false;
    std::string pre_;
    int32_t max_token_len_ = 0;
    std::shared_ptr<const BpeModel> bpe_;  // model_ == Bpe: merges and pre-tokenizer (shared by copies)
    std::shared_ptr<const UnigramModel> unigram_;  // Spm with the unigram algorithm: the piece trie
    bool spm_words_independent_ = false;
    std::vector<int32_t> eog_ids_;  // sorted
};

// Streaming detokenizer: feed ids one at a time; returns only complete UTF-8 characters. Bytes of a sequence
// that may still be completed by the next token are held back; ill-formed bytes are replaced by U+FFFD as
// soon as they are known to be ill-formed (rule at the top of this file).
//   special: render control tokens (as token_to_piece).
//   strip_leading_space: drop the one leading space of the first piece when the vocabulary adds a space
//     prefix, so that the concatenated output equals sanitize_utf8(decode(ids)). Off by default: a stream of
//     generated tokens continues a prompt and keeps its word-initial space, as llama.cpp prints it.
class StreamDecoder {
public:
    explicit StreamDecoder(const Vocab& vocab, bool special = false, bool strip_leading_space = false);
    // Throws hearth::Error (leaving the decoder unchanged) for an id out of range.
    std::string push(int32_t id);
    // Ends the stream: emits U+FFFD for an incomplete sequence still held, and resets the decoder so that the
    // next push() starts a new stream.
    std::string flush();
    // Bytes held back, waiting for the rest of a character.
    size_t pending() const { return pending_.size(); }

private:
    const Vocab* vocab_;
    bool special_;
    bool strip_leading_space_;
    bool first_ = true;
    std::string pending_;
};

// UTF-8 helpers (rule at the top of this file).
// Replaces every maximal ill-formed subpart by U+FFFD; valid text is returned unchanged.
std::string sanitize_utf8(std::string_view s);
bool is_valid_utf8(std::string_view s);
// Length of the unit starting at s[i] (i < s.size()): a whole valid character, or one maximal ill-formed
// subpart (at least 1 byte).
size_t utf8_unit_length(std::string_view s, size_t i);

}  // namespace hearth::tok
