// SentencePiece ("llama") tokenizer and Vocab: llama.cpp's test vectors, SentencePiece itself as an oracle
// (Debian python3-sentencepiece through /usr/bin/python3), a naive quadratic reference, round trips,
// streaming, special tokens and malformed vocabularies.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "base/error.h"
#include "base/utf8.h"
#include "gguf/gguf.h"
#include "test_util.h"
#include "vocab_test_util.h"
#include "tokenizer/spm.h"
#include "tokenizer/vocab.h"

namespace hearth {
namespace {

using tok::TokenAttr;
using tok::Vocab;
using ::testing::HasSubstr;

using test::kVocabDir;

tok::Vocab load_shared_vocab(const std::string& rel) {
    const gguf::File f = gguf::File::open(test::shared(rel));
    return Vocab::from_gguf(f);
}

// Loaded once: the 32000-token Llama 2 vocabulary is used by many tests.
const Vocab& llama_vocab() {
    static const Vocab v = load_shared_vocab(kVocabDir + "ggml-vocab-llama-spm.gguf");
    return v;
}
const Vocab& tiny_llama_vocab() {
    static const Vocab v = load_shared_vocab("models/llama-2-tiny-random-f16.gguf");
    return v;
}
const Vocab& stories_vocab() {
    static const Vocab v = load_shared_vocab("models/stories260K.gguf");
    return v;
}

std::string hex(std::string_view s) {
    static const char* d = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
        out += d[c >> 4];
        out += d[c & 15];
    }
    return out;
}

using test::ids_str;

std::string utf8(uint32_t cp) {
    std::string s;
    utf8_append(s, cp);
    return s;
}

// ---- llama.cpp test vectors ----------------------------------------------------------------------------


TEST(SpmVectors, LlamaSpmAllPass) { test::check_vocab_vectors(llama_vocab(), "ggml-vocab-llama-spm.gguf"); }

TEST(SpmVectors, Phi3AllPass) {
    test::check_vocab_vectors(load_shared_vocab(kVocabDir + "ggml-vocab-phi-3.gguf"), "ggml-vocab-phi-3.gguf");
}

// ---- metadata ------------------------------------------------------------------------------------------

TEST(VocabSpm, LoadsLlama2Metadata) {
    const Vocab& v = llama_vocab();
    EXPECT_EQ(v.model(), tok::TokenizerModel::Spm);
    EXPECT_EQ(v.n_tokens(), 32000);
    EXPECT_EQ(v.bos(), 1);
    EXPECT_EQ(v.eos(), 2);
    EXPECT_EQ(v.unk(), 0);
    EXPECT_EQ(v.pad(), -1);
    EXPECT_TRUE(v.add_bos());
    EXPECT_FALSE(v.add_eos());
    EXPECT_TRUE(v.add_space_prefix());
    EXPECT_EQ(v.attr(0), TokenAttr::Unknown);
    EXPECT_EQ(v.attr(1), TokenAttr::Control);
    EXPECT_EQ(v.attr(2), TokenAttr::Control);
    EXPECT_EQ(v.attr(3), TokenAttr::Byte);
    EXPECT_EQ(v.attr(258), TokenAttr::Byte);
    EXPECT_EQ(v.attr(259), TokenAttr::Normal);
    EXPECT_EQ(v.text(1), "<s>");
    EXPECT_EQ(v.text(13), "<0x0A>");
    EXPECT_EQ(v.text(259), "\xE2\x96\x81\xE2\x96\x81");  // "▁▁"
    EXPECT_FLOAT_EQ(v.score(260), -1.0f);
    EXPECT_EQ(v.find("<0x0A>"), 13);
    EXPECT_EQ(v.find("no such token"), -1);
    EXPECT_EQ(v.byte_token('\n'), 13);
    EXPECT_EQ(v.byte_token(0xFF), 3 + 0xFF);
    EXPECT_TRUE(v.is_eog(2));
    EXPECT_FALSE(v.is_eog(1));
    EXPECT_FALSE(v.is_eog(13));
    EXPECT_EQ(v.eog_ids(), std::vector<int32_t>{2});
    // The model file and the vocab-only file carry the same vocabulary.
    const Vocab& t = tiny_llama_vocab();
    ASSERT_EQ(t.n_tokens(), v.n_tokens());
    for (int32_t i = 0; i < v.n_tokens(); i += 97) EXPECT_EQ(t.text(i), v.text(i));
}

TEST(VocabSpm, Phi3SpecialTokensAndEog) {
    const Vocab v = load_shared_vocab(kVocabDir + "ggml-vocab-phi-3.gguf");
    EXPECT_EQ(v.n_tokens(), 32064);
    EXPECT_EQ(v.eos(), 32000);
    EXPECT_EQ(v.pad(), 32000);
    EXPECT_EQ(v.text(32007), "<|end|>");
    EXPECT_TRUE(v.is_eog(32000));  // <|endoftext|>: eos
    EXPECT_TRUE(v.is_eog(32007));  // <|end|>: by text
    EXPECT_EQ(v.eot(), 32007);
    EXPECT_FALSE(v.is_eog(32010));  // <|user|>
    // Phi-3 (by general.name): special tokens strip whitespace on their right, except <s>, <unk>, <|endoftext|>.
    EXPECT_TRUE(v.rstrip(32010));
    EXPECT_TRUE(v.rstrip(32007));
    EXPECT_TRUE(v.rstrip(2));
    EXPECT_FALSE(v.rstrip(1));
    EXPECT_FALSE(v.rstrip(32000));
    EXPECT_FALSE(v.lstrip(32010));
    // A chat turn, as llama.cpp tokenizes it: the newline after each special token is dropped and the next
    // fragment gets the SPM prefix space.
    const std::vector<int32_t> want = {1, 32010, 317, 21554, 13, 17628, 32007, 32001};
    EXPECT_EQ(v.encode("<|user|>\nSYS\nHI<|end|>\n<|assistant|>\n", true, true), want);
    // A vocabulary that is not Phi-3 keeps the whitespace.
    EXPECT_FALSE(llama_vocab().rstrip(2));
    EXPECT_EQ(llama_vocab().encode("</s>\nx", false, true), (std::vector<int32_t>{2, 29871, 13, 29916}));
}

// ---- encoding details ----------------------------------------------------------------------------------

TEST(VocabSpm, AddSpecialAndParseSpecial) {
    const Vocab& v = llama_vocab();
    EXPECT_EQ(v.encode("", false, false), std::vector<int32_t>{});
    EXPECT_EQ(v.encode("", true, false), std::vector<int32_t>{1});
    EXPECT_EQ(v.encode("Hello world", false, false), (std::vector<int32_t>{15043, 3186}));
    EXPECT_EQ(v.encode("Hello world", true, false), (std::vector<int32_t>{1, 15043, 3186}));
    // Control token texts are plain text unless parse_special.
    const std::vector<int32_t> plain = v.encode("<s>Hello</s>", false, false);
    EXPECT_EQ(plain, (std::vector<int32_t>{529, 29879, 29958, 10994, 829, 29879, 29958}));
    EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
    // Parsed: every text fragment after a special token gets the prefix space, as llama.cpp does.
    EXPECT_EQ(v.encode("<s>Hello</s>", false, true), (std::vector<int32_t>{1, 15043, 2}));
    EXPECT_EQ(v.encode("a</s>b", false, true), (std::vector<int32_t>{263, 2, 289}));
    EXPECT_EQ(v.encode("<s>", true, true), (std::vector<int32_t>{1, 1}));
    // <unk> is matched only when parse_special.
    EXPECT_EQ(v.encode("<unk>", false, true), (std::vector<int32_t>{0}));
    EXPECT_NE(v.encode("<unk>", false, false), (std::vector<int32_t>{0}));
}

TEST(VocabSpm, TokenToPieceAndDecode) {
    const Vocab& v = llama_vocab();
    EXPECT_EQ(v.token_to_piece(15043), " Hello");
    EXPECT_EQ(v.token_to_piece(259), "  ");
    EXPECT_EQ(v.token_to_piece(13), "\n");
    EXPECT_EQ(v.token_to_piece(3 + 0xE4), std::string(1, '\xE4'));
    EXPECT_EQ(v.token_to_piece(1), "");
    EXPECT_EQ(v.token_to_piece(1, true), "<s>");
    EXPECT_EQ(v.token_to_piece(0), "");
    EXPECT_EQ(v.token_to_piece(0, true), "<unk>");
    // The first token loses the prefix space the encoder added; later ones keep theirs.
    EXPECT_EQ(v.decode({15043, 3186}), "Hello world");
    EXPECT_EQ(v.decode({3186, 15043}), "world Hello");
    EXPECT_EQ(v.decode({29871, 13}), "\n");
    // llama.cpp keeps the space after a leading BOS (the BOS is the "first token").
    EXPECT_EQ(v.decode({1, 15043, 2}), " Hello");
    EXPECT_EQ(v.decode({1, 15043, 2}, true), "<s> Hello</s>");
    EXPECT_EQ(v.decode({1, 15043, 2}, false, true), " Hello");
    EXPECT_EQ(v.decode({}), "");
}

TEST(VocabSpm, OutOfRangeIdsThrow) {
    const Vocab& v = llama_vocab();
    for (int32_t bad : {-1, 32000, 1 << 30}) {
        EXPECT_THROW(v.token_to_piece(bad), Error);
        EXPECT_THROW(v.text(bad), Error);
        EXPECT_THROW(v.attr(bad), Error);
        EXPECT_THROW(v.score(bad), Error);
        EXPECT_THROW(v.decode({15043, bad}), Error);
    }
    EXPECT_FALSE(v.is_eog(-5));
    EXPECT_FALSE(v.is_eog(1 << 30));
    try {
        v.token_to_piece(32000);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_THAT(e.what(), HasSubstr("token id 32000 is out of range"));
        EXPECT_THAT(e.what(), HasSubstr("32000 tokens"));
    }
    tok::StreamDecoder dec(v);
    EXPECT_EQ(dec.push(3 + 0xC3), "");
    EXPECT_THROW(dec.push(-3), Error);
    EXPECT_EQ(dec.push(3 + 0xA9), "\xC3\xA9");  // the held byte survived the failed push
}

TEST(VocabSpm, Stories260K) {
    const Vocab& v = stories_vocab();
    EXPECT_EQ(v.n_tokens(), 512);
    EXPECT_EQ(v.bos(), 1);
    EXPECT_EQ(v.eos(), 2);
    EXPECT_EQ(v.sep(), -1);  // 4294967295 = none
    EXPECT_EQ(v.pad(), -1);
    const std::vector<int32_t> ids = v.encode("Once upon a time", true, false);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], 1);
    std::string joined;
    for (size_t i = 1; i < ids.size(); ++i) {
        EXPECT_EQ(v.attr(ids[i]), TokenAttr::Normal) << v.text(ids[i]);
        joined += v.text(ids[i]);
    }
    EXPECT_EQ(joined, "\xE2\x96\x81Once\xE2\x96\x81upon\xE2\x96\x81\x61\xE2\x96\x81time");
    EXPECT_EQ(ids, (std::vector<int32_t>{1, 403, 407, 261, 378}));
    EXPECT_EQ(v.decode(ids, false, true), " Once upon a time");
    EXPECT_EQ(v.decode({403, 407, 261, 378}), "Once upon a time");
    // The reference stories round-trip; characters outside the 512 tokens fall back to bytes.
    const std::string ref = test::read_file(test::shared("models/stories260K.greedy-reference.txt"));
    ASSERT_GT(ref.size(), 500u);
    EXPECT_EQ(v.decode(v.encode(ref, false, false)), ref);
    const std::vector<int32_t> cjk = v.encode("\xE4\xB8\xAD", false, false);  // 中
    EXPECT_EQ(cjk, (std::vector<int32_t>{v.find("\xE2\x96\x81"), 3 + 0xE4, 3 + 0xB8, 3 + 0xAD}));
}

// ---- a naive reference implementation ------------------------------------------------------------------

// The same specification, written as plainly as possible (quadratic): merge the best adjacent pair until none.
std::vector<int32_t> naive_spm(const Vocab& v, const std::string& raw, bool prefix) {
    std::string text = prefix ? " " + raw : raw;
    std::string esc;
    for (char c : text) esc += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
    std::vector<std::string> sym;
    for (size_t i = 0; i < esc.size();) {
        const size_t len = tok::utf8_unit_length(esc, i);
        sym.push_back(esc.substr(i, len));
        i += len;
    }
    auto mergeable = [&](const std::string& s) {
        const int32_t id = v.find(s);
        if (id < 0) return -1;
        const TokenAttr a = v.attr(id);
        return (a == TokenAttr::Normal || a == TokenAttr::UserDefined || a == TokenAttr::Unused) ? id : -1;
    };
    for (;;) {
        int best = -1;
        float best_score = 0;
        for (size_t i = 0; i + 1 < sym.size(); ++i) {
            const int32_t id = mergeable(sym[i] + sym[i + 1]);
            if (id >= 0 && (best < 0 || v.score(id) > best_score)) {
                best = static_cast<int>(i);
                best_score = v.score(id);
            }
        }
        if (best < 0) break;
        sym[best] += sym[best + 1];
        sym.erase(sym.begin() + best + 1);
    }
    std::vector<int32_t> out;
    for (const std::string& s : sym) {
        const int32_t id = mergeable(s);
        if (id >= 0) {
            out.push_back(id);
        } else {
            bool last_unk = false;
            for (unsigned char c : s) {
                const int32_t b = v.byte_token(c);
                if (b >= 0) out.push_back(b);
                else if (!last_unk) out.push_back(v.unk());
                last_unk = b < 0;
            }
        }
    }
    return out;
}

// Random text from a pool of characters of many scripts, spaces, and (optionally) raw invalid bytes.
std::string random_text(std::mt19937& rng, size_t max_chars, bool invalid_bytes) {
    static const std::vector<uint32_t> pool = {
        'a', 'b', 'e', 'h', 'i', 'n', 'o', 's', 't', 'T', 'H', 'W', ' ', ' ', ' ', '\n', '\t', '.', ',', '\'', '"',
        '0', '1', '7', '(', ')', '{', '}', '<', '>', '/', '_', '-', '=', 0xE9, 0xFC, 0xDF, 0x0411, 0x044F, 0x03B1,
        0x05D0, 0x0627, 0x0905, 0x0E01, 0x4E2D, 0x6587, 0x65E5, 0x672C, 0x3042, 0x30A2, 0xAC00, 0xD55C, 0x2581,
        0xFFFD, 0x00A0, 0x200B, 0x0301, 0x1F600, 0x1F44D, 0x1F3FD, 0x200D, 0x2764, 0xFE0F, 0x1F1FA, 0x10348};
    std::uniform_int_distribution<size_t> len_d(1, max_chars), pick(0, pool.size() - 1), byte_d(0, 255), coin(0, 9);
    const size_t len = len_d(rng);
    std::string s;
    for (size_t i = 0; i < len; ++i) {
        if (invalid_bytes && coin(rng) == 0)
            s += static_cast<char>(byte_d(rng));
        else
            s += utf8(pool[pick(rng)]);
    }
    return s;
}

TEST(SpmTokenizer, MatchesNaiveReference) {
    std::mt19937 rng(20240607);
    for (const Vocab* v : {&llama_vocab(), &stories_vocab()}) {
        for (int i = 0; i < 400; ++i) {
            const std::string s = random_text(rng, 40, i % 4 == 0);
            EXPECT_EQ(v->encode(s, false, false), naive_spm(*v, s, true)) << "'" << s << "'";
        }
    }
}

TEST(SpmTokenizer, WordSplittingOnlyWhenNoTokenCrossesWords) {
    EXPECT_TRUE(llama_vocab().spm_words_independent());
    EXPECT_TRUE(stories_vocab().spm_words_independent());
    // A vocabulary with tokens that span a word boundary ("a▁b", "b▁"): the whole text is one merge problem.
    const std::string S = "\xE2\x96\x81";
    gguf::Writer w;
    std::vector<std::string> toks = {"<unk>", "<s>", "</s>", S, "a", "b", S + "a", "a" + S, "a" + S + "b",
                                     "b" + S, S + S, "ab", S + "ab" + S};
    std::vector<float> scores = {0, 0, 0, -1, -1, -1, -3, -2, -2.5f, -4, -5, -2, -1};
    std::vector<int32_t> types(toks.size(), 1);
    types[0] = 2, types[1] = 3, types[2] = 3;
    w.set("tokenizer.ggml.model", gguf::Value::str("llama"));
    w.set("tokenizer.ggml.tokens", gguf::Value::str_array(toks));
    w.set("tokenizer.ggml.scores", gguf::Value::f32_array(scores));
    w.set("tokenizer.ggml.token_type", gguf::Value::i32_array(types));
    const std::vector<uint8_t> bytes = w.to_bytes();
    const Vocab v = Vocab::from_gguf(gguf::File::from_memory(bytes.data(), bytes.size()));
    EXPECT_FALSE(v.spm_words_independent());
    // "▁a▁b": "a▁" (-2) beats "▁a" (-3), then "a▁" + "b" -> "a▁b" (-2.5): one token across the space.
    EXPECT_EQ(v.encode("a b", false, false), (std::vector<int32_t>{3, 8}));
    std::mt19937 rng(5);
    std::uniform_int_distribution<int> len_d(1, 14), ch(0, 2);
    for (int i = 0; i < 2000; ++i) {
        std::string s;
        const int n = len_d(rng);
        for (int k = 0; k < n; ++k) s += "ab "[ch(rng)];
        EXPECT_EQ(v.encode(s, false, false), naive_spm(v, s, true)) << "'" << s << "'";
    }
}

TEST(SpmTokenizer, TiesGoToTheLeftmostPair) {
    // Synthetic vocabulary where "ab" and "bc" have the same score: "abc" -> "ab" + "c".
    gguf::Writer w;
    std::vector<std::string> toks = {"<unk>", "<s>", "</s>", "a", "b", "c", "ab", "bc", "abc_never"};
    std::vector<float> scores = {0, 0, 0, -1, -1, -1, -5, -5, -9};
    std::vector<int32_t> types = {2, 3, 3, 1, 1, 1, 1, 1, 1};
    w.set("tokenizer.ggml.model", gguf::Value::str("llama"));
    w.set("tokenizer.ggml.tokens", gguf::Value::str_array(toks));
    w.set("tokenizer.ggml.scores", gguf::Value::f32_array(scores));
    w.set("tokenizer.ggml.token_type", gguf::Value::i32_array(types));
    w.set("tokenizer.ggml.add_space_prefix", gguf::Value::boolean(false));
    const std::vector<uint8_t> bytes = w.to_bytes();
    const Vocab v = Vocab::from_gguf(gguf::File::from_memory(bytes.data(), bytes.size()));
    EXPECT_FALSE(v.add_space_prefix());
    EXPECT_EQ(v.encode("abc", false, false), (std::vector<int32_t>{6, 5}));
    EXPECT_EQ(v.encode("bcab", false, false), (std::vector<int32_t>{7, 6}));
    EXPECT_EQ(v.encode("cbc", false, false), (std::vector<int32_t>{5, 7}));
    // No byte tokens: unknown characters become <unk>.
    EXPECT_EQ(v.encode("axb", false, false), (std::vector<int32_t>{3, 0, 4}));
    EXPECT_EQ(v.encode("ab c", false, false), (std::vector<int32_t>{6, 0, 5}));
}

TEST(SpmTokenizer, RoundTripArbitraryBytes) {
    std::mt19937 rng(7);
    const Vocab& v = llama_vocab();
    for (int i = 0; i < 300; ++i) {
        // U+2581 is SentencePiece's space: it decodes to ' ', the one character that does not round-trip.
        std::string s = random_text(rng, 60, i % 2 == 0);
        for (size_t p; (p = s.find("\xE2\x96\x81")) != std::string::npos;) s.replace(p, 3, "_");
        const std::vector<int32_t> ids = v.encode(s, false, false);
        EXPECT_EQ(v.decode(ids), s) << hex(s);
        EXPECT_EQ(v.decode(v.encode(s, true, false), false, true), " " + s) << hex(s);
    }
    const std::string all_bytes = [] {
        std::string s;
        for (int b = 0; b < 256; ++b) s += static_cast<char>(b);
        return s;
    }();
    EXPECT_EQ(v.decode(v.encode(all_bytes, false, false)), all_bytes);
    EXPECT_EQ(stories_vocab().decode(stories_vocab().encode(all_bytes, false, false)), all_bytes);
}

TEST(SpmTokenizer, LongInputIsNotQuadratic) {
    const Vocab& v = llama_vocab();
    // 256 KiB without a single space: one word, one symbol chain of 262144 characters.
    std::string s;
    while (s.size() < (1u << 18)) s += "abcdefghijklmnopqrstuvwxyz0123456789";
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<int32_t> ids = v.encode(s, false, false);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(secs, 20.0);  // quadratic would be ~7e10 steps
    EXPECT_GT(ids.size(), s.size() / 8);
    EXPECT_EQ(v.decode(ids), s);
}

// ---- streaming -----------------------------------------------------------------------------------------

TEST(StreamDecoderSpm, HoldsSplitMultibyteCharacters) {
    const Vocab& v = llama_vocab();
    // 😀 has no token in the Llama 2 vocabulary: four byte tokens.
    const std::vector<int32_t> ids = v.encode("\xF0\x9F\x98\x80!", false, false);
    ASSERT_EQ(ids, (std::vector<int32_t>{29871, 3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80, 29991}));
    tok::StreamDecoder dec(v);
    EXPECT_EQ(dec.push(ids[0]), " ");
    EXPECT_EQ(dec.push(ids[1]), "");
    EXPECT_EQ(dec.push(ids[2]), "");
    EXPECT_EQ(dec.push(ids[3]), "");
    EXPECT_EQ(dec.pending(), 3u);
    EXPECT_EQ(dec.push(ids[4]), "\xF0\x9F\x98\x80");
    EXPECT_EQ(dec.push(ids[5]), "!");
    EXPECT_EQ(dec.flush(), "");
    // An ill-formed sequence is replaced as soon as it is known to be ill-formed: E4 then 'A'.
    EXPECT_EQ(dec.push(3 + 0xE4), "");
    EXPECT_EQ(dec.push(v.find("A")), "\xEF\xBF\xBD" "A");
    // A stray continuation byte is replaced at once.
    EXPECT_EQ(dec.push(3 + 0x80), "\xEF\xBF\xBD");
    // A sequence still incomplete at the end of the stream: one U+FFFD.
    EXPECT_EQ(dec.push(3 + 0xF0), "");
    EXPECT_EQ(dec.push(3 + 0x9F), "");
    EXPECT_EQ(dec.flush(), "\xEF\xBF\xBD");
    EXPECT_EQ(dec.pending(), 0u);
    // Control tokens render only when asked to.
    tok::StreamDecoder quiet(v), loud(v, true);
    EXPECT_EQ(quiet.push(2), "");
    EXPECT_EQ(loud.push(2), "</s>");
}

TEST(StreamDecoderSpm, ConcatenationEqualsSanitizedDecode) {
    const Vocab& v = llama_vocab();
    std::mt19937 rng(99);
    std::uniform_int_distribution<int32_t> any_id(0, v.n_tokens() - 1), byte_id(3, 258), coin(0, 2);
    for (int i = 0; i < 300; ++i) {
        std::vector<int32_t> ids;
        if (i % 3 == 0) {
            ids = v.encode(random_text(rng, 30, i % 2 == 0), false, false);
        } else {
            // Random ids, biased to byte tokens so that characters get split and broken.
            const int n = 1 + static_cast<int>(rng() % 20);
            for (int k = 0; k < n; ++k) ids.push_back(coin(rng) ? byte_id(rng) : any_id(rng));
        }
        for (bool strip : {false, true}) {
            tok::StreamDecoder dec(v, false, strip);
            std::string streamed;
            for (int32_t id : ids) {
                const std::string piece = dec.push(id);
                EXPECT_TRUE(tok::is_valid_utf8(piece));
                streamed += piece;
            }
            streamed += dec.flush();
            std::string whole = v.decode(ids);
            if (!strip && !ids.empty() && v.token_to_piece(ids[0]).starts_with(' ')) whole = " " + whole;
            EXPECT_EQ(streamed, tok::sanitize_utf8(whole)) << ids_str(ids);
        }
    }
}

TEST(StreamDecoderSpm, Utf8Rule) {
    using tok::sanitize_utf8;
    EXPECT_EQ(sanitize_utf8("plain \xC3\xA9 \xE4\xB8\xAD \xF0\x9F\x98\x80"), "plain \xC3\xA9 \xE4\xB8\xAD \xF0\x9F\x98\x80");
    const std::string R = "\xEF\xBF\xBD";
    EXPECT_EQ(sanitize_utf8("\x80"), R);
    EXPECT_EQ(sanitize_utf8("\xC0\xAF"), R + R);              // overlong: C0 can never start a sequence
    EXPECT_EQ(sanitize_utf8("\xE0\x80\x80"), R + R + R);      // overlong 3-byte: E0 needs A0..BF next
    EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), R + R + R);      // surrogate
    EXPECT_EQ(sanitize_utf8("\xF4\x90\x80\x80"), R + R + R + R);  // above U+10FFFF
    EXPECT_EQ(sanitize_utf8("\xE4\xB8" "A"), R + "A");        // truncated 3-byte sequence: one U+FFFD
    EXPECT_EQ(sanitize_utf8("\xF0\x9F\x98"), R);              // truncated at the end
    EXPECT_EQ(sanitize_utf8("\xFF\xFE"), R + R);
    EXPECT_TRUE(tok::is_valid_utf8("\xF0\x9F\x98\x80"));
    EXPECT_FALSE(tok::is_valid_utf8("\xF0\x9F\x98"));
    EXPECT_FALSE(tok::is_valid_utf8("\xED\xA0\x80"));
}

// ---- malformed vocabularies ----------------------------------------------------------------------------

struct SynthVocab {
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "<0x41>", "\xE2\x96\x81", "a", "\xE2\x96\x81" "a"};
    std::vector<float> scores = {0, 0, 0, 0, -1, -2, -3};
    std::vector<int32_t> types = {2, 3, 3, 6, 1, 1, 1};
    gguf::Writer writer() const {
        gguf::Writer w;
        w.set("general.architecture", gguf::Value::str("llama"));
        w.set("tokenizer.ggml.model", gguf::Value::str("llama"));
        w.set("tokenizer.ggml.tokens", gguf::Value::str_array(tokens));
        w.set("tokenizer.ggml.scores", gguf::Value::f32_array(scores));
        w.set("tokenizer.ggml.token_type", gguf::Value::i32_array(types));
        return w;
    }
};


TEST(VocabSpm, SyntheticVocabularyLoads) {
    const Vocab v = test::vocab_from_writer(SynthVocab{}.writer());
    EXPECT_EQ(v.n_tokens(), 7);
    EXPECT_EQ(v.bos(), 1);  // llama.cpp's defaults when the ids are absent
    EXPECT_EQ(v.eos(), 2);
    EXPECT_EQ(v.unk(), 0);
    EXPECT_EQ(v.encode("a a", true, false), (std::vector<int32_t>{1, 6, 6}));
    EXPECT_EQ(v.byte_token('A'), 3);
    EXPECT_EQ(v.byte_token('B'), -1);  // no <0x42>: the tokenizer uses unk
    EXPECT_EQ(v.encode("AB", false, false), (std::vector<int32_t>{4, 3, 0}));
}

TEST(VocabSpm, NonSpmModelGivesClearError) {
    SynthVocab s;
    gguf::Writer w = s.writer();
    w.set("tokenizer.ggml.model", gguf::Value::str("made-up-model"));
    EXPECT_THAT(test::vocab_load_error(w), HasSubstr("tokenizer model 'made-up-model' is not supported yet"));
    w.remove("tokenizer.ggml.model");
    EXPECT_THAT(test::vocab_load_error(w), HasSubstr("tokenizer.ggml.model is missing"));
}

TEST(VocabSpm, MalformedVocabulariesGiveErrors) {
    {
        SynthVocab s;
        s.types[5] = 9;
        EXPECT_THAT(test::vocab_load_error(s.writer()), HasSubstr("tokenizer.ggml.token_type[5] = 9"));
    }
    {
        SynthVocab s;
        s.scores.pop_back();
        EXPECT_THAT(test::vocab_load_error(s.writer()), HasSubstr("tokenizer.ggml.scores has 6 entries"));
    }
    {
        SynthVocab s;
        s.types.push_back(1);
        EXPECT_THAT(test::vocab_load_error(s.writer()), HasSubstr("tokenizer.ggml.token_type has 8 entries"));
    }
    {
        SynthVocab s;
        s.tokens[3] = "<0xZZ>";
        EXPECT_THAT(test::vocab_load_error(s.writer()), HasSubstr("token 3 is a byte token"));
    }
    {
        SynthVocab s;
        s.scores[4] = std::nanf("");
        EXPECT_THAT(test::vocab_load_error(s.writer()), HasSubstr("tokenizer.ggml.scores[4] is NaN"));
    }
    {
        gguf::Writer w = SynthVocab{}.writer();
        w.set("tokenizer.ggml.bos_token_id", gguf::Value::u32(7));
        EXPECT_THAT(test::vocab_load_error(w), HasSubstr("tokenizer.ggml.bos_token_id = 7 is out of range"));
    }
    {
        gguf::Writer w = SynthVocab{}.writer();
        w.set("tokenizer.ggml.eos_token_id", gguf::Value::str("2"));
        EXPECT_THAT(test::vocab_load_error(w), HasSubstr("tokenizer.ggml.eos_token_id has type"));
    }
    {
        gguf::Writer w = SynthVocab{}.writer();
        w.set("tokenizer.ggml.bos_token_id", gguf::Value::u32(4294967295u));
        EXPECT_THAT(test::vocab_load_error(w), HasSubstr("add_bos_token is true but the vocabulary has no BOS token"));
        w.set("tokenizer.ggml.add_bos_token", gguf::Value::boolean(false));
        const Vocab v = test::vocab_from_writer(w);
        EXPECT_EQ(v.bos(), -1);
        EXPECT_EQ(v.encode("a", true, false), (std::vector<int32_t>{6}));
    }
    {
        gguf::Writer w = SynthVocab{}.writer();
        w.set("tokenizer.ggml.padding_token_id", gguf::Value::u32(7));  // one past the end: ignored, as llama.cpp
        EXPECT_EQ(test::vocab_from_writer(w).pad(), -1);
    }
    {
        gguf::Writer w = SynthVocab{}.writer();
        w.remove("tokenizer.ggml.tokens");
        EXPECT_THAT(test::vocab_load_error(w), HasSubstr("tokenizer.ggml.tokens is missing"));
        w.set("tokenizer.ggml.tokens", gguf::Value::str_array({}));
        w.remove("tokenizer.ggml.scores");
        w.remove("tokenizer.ggml.token_type");
        EXPECT_THAT(test::vocab_load_error(w), HasSubstr("tokenizer.ggml.tokens is empty"));
    }
    {
        // No byte tokens and no unknown token: an unencodable byte is an error, not a crash.
        SynthVocab s;
        s.tokens = {"x", "<s>", "</s>"};
        s.scores = {0, 0, 0};
        s.types = {1, 3, 3};
        gguf::Writer w = s.writer();
        w.set("tokenizer.ggml.unknown_token_id", gguf::Value::u32(4294967295u));
        w.set("tokenizer.ggml.add_space_prefix", gguf::Value::boolean(false));
        const Vocab v = test::vocab_from_writer(w);
        EXPECT_EQ(v.encode("x", false, false), (std::vector<int32_t>{0}));
        try {
            v.encode("y", false, false);
            FAIL() << "no error";
        } catch (const Error& e) {
            EXPECT_THAT(e.what(), HasSubstr("cannot tokenize byte 0x79"));
        }
    }
}

TEST(VocabSpm, UserDefinedTokensAndSpecialPartition) {
    SynthVocab s;
    // 7: user-defined, 8/9: control tokens whose texts overlap.
    s.tokens.insert(s.tokens.end(), {"<|u|>", "<|ctl|>", "l|><|u"});
    s.scores.insert(s.scores.end(), {0, 0, 0});
    s.types.insert(s.types.end(), {4, 3, 3});
    const Vocab v = test::vocab_from_writer(s.writer());
    // User-defined tokens are recognised even without parse_special; control ones only with it.
    EXPECT_EQ(v.encode("a<|u|>a", false, false), (std::vector<int32_t>{6, 7, 6}));
    EXPECT_EQ(v.token_to_piece(7), "<|u|>");
    const std::vector<int32_t> ctl_plain = v.encode("<|ctl|>", false, false);
    EXPECT_EQ(std::count(ctl_plain.begin(), ctl_plain.end(), 8), 0);
    EXPECT_EQ(v.encode("<|ctl|>a", false, true), (std::vector<int32_t>{8, 6}));
    // Longest text first: "<|ctl|>" (7 bytes) claims its span before "l|><|u" (6) can overlap it, and the
    // leftover "<|u|>"... here "<|ctl|><|u|>" -> [ctl, u].
    EXPECT_EQ(v.encode("<|ctl|><|u|>", false, true), (std::vector<int32_t>{8, 7}));
    // Without parse_special the control tokens do not take part and the user-defined one still matches.
    // "<|ctl|>" is then plain text: "▁" plus seven characters this vocabulary lacks, one <unk> each.
    EXPECT_EQ(v.encode("<|ctl|><|u|>", false, false), (std::vector<int32_t>{4, 0, 0, 0, 0, 0, 0, 0, 7}));
    // Overlap resolution: the longer control text wins where the two overlap.
    EXPECT_EQ(v.encode("xl|><|ctl|>", false, true), (std::vector<int32_t>{4, 0, 0, 0, 0, 8}));
    EXPECT_EQ(v.encode("<|ctl|><|u", false, true), (std::vector<int32_t>{8, 4, 0, 0, 0}));
}

// ---- SentencePiece as the oracle -----------------------------------------------------------------------

const char* kOracleScript = R"PY(
import sys
import sentencepiece as spm
mode, model, inp, outp = sys.argv[1:5]
sp = spm.SentencePieceProcessor(model_file=model)
with open(inp) as f, open(outp, "w") as o:
    for line in f:
        text = bytes.fromhex(line.strip()).decode("utf-8", "replace")
        if mode == "encode":
            o.write(" ".join(str(i) for i in sp.encode(text)) + "\n")
        else:
            o.write(text.encode("utf-8").hex() + "\n")
)PY";

bool oracle_available() {
    return std::system("/usr/bin/python3 -c 'import sentencepiece' >/dev/null 2>&1") == 0;
}

// Runs the oracle on `inputs` (raw bytes); returns one output line per input.
std::vector<std::string> run_oracle(const std::string& mode, const std::vector<std::string>& inputs) {
    const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                                      ("hearth_spm_oracle_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::string script = (dir / "oracle.py").string(), in = (dir / "in.txt").string(),
                      out = (dir / "out.txt").string();
    std::ofstream(script) << kOracleScript;
    {
        std::ofstream f(in);
        for (const std::string& s : inputs) f << hex(s) << "\n";
    }
    const std::string cmd = "/usr/bin/python3 " + script + " " + mode + " " +
                            test::shared("tokenizers/llama2-spm/tokenizer.model") + " " + in + " " + out;
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::vector<std::string> lines;
    std::ifstream f(out);
    std::string line;
    while (std::getline(f, line)) lines.push_back(line);
    std::filesystem::remove_all(dir);
    return lines;
}

std::vector<std::string> oracle_corpus() {
    std::vector<std::string> c = {
        "Hello world",
        " Hello world",
        "Hello World!",
        "The quick brown fox jumps over the lazy dog.",
        "Once upon a time, there was a little girl named Lily.",
        "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it",
        "int main(int argc, char** argv) {\n    printf(\"%d\\n\", argc);\n    return 0;\n}\n",
        "def f(x):\n\tif x > 0:\n\t\treturn x ** 2\n\treturn -x  # comment\n",
        "{\"key\": [1, 2.5, true, null], \"nested\": {\"a\": \"b\"}}",
        "<html><body class=\"x\">&amp; &lt;tag&gt;</body></html>",
        "SELECT * FROM users WHERE id = 42 AND name LIKE '%bob%';",
        "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C\xEF\xBC\x81\xE4\xBB\x8A\xE5\xA4\xA9\xE5\xA4\xA9"
        "\xE6\xB0\x94\xE5\xBE\x88\xE5\xA5\xBD\xE3\x80\x82",                                   // 你好，世界！今天天气很好。
        "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83\x88",  // 日本語のテキスト
        "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4 \xED\x85\x8D\xEC\x8A\xA4\xED\x8A\xB8",         // 한국어 텍스트
        "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82, \xD0\xBC\xD0\xB8\xD1\x80!",       // Привет, мир!
        "\xCE\x9A\xCE\xB1\xCE\xBB\xCE\xB7\xCE\xBC\xCE\xAD\xCF\x81\xCE\xB1",                 // Καλημέρα
        "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7 \xD8\xA8\xD8\xA7\xD9\x84\xD8\xB9\xD8\xA7\xD9\x84\xD9\x85",  // Arabic
        "\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D \xD7\xA2\xD7\x95\xD7\x9C\xD7\x9D",                 // Hebrew
        "\xE0\xA4\xA8\xE0\xA4\xAE\xE0\xA4\xB8\xE0\xA5\x8D\xE0\xA4\xA4\xE0\xA5\x87",         // नमस्ते
        "\xE0\xB8\xAA\xE0\xB8\xA7\xE0\xB8\xB1\xE0\xB8\xAA\xE0\xB8\x94\xE0\xB8\xB5",         // สวัสดี
        "\xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D"
        "\xF0\x9F\x91\xA7 \xF0\x9F\x87\xBA\xF0\x9F\x87\xB8 \xE2\x9D\xA4\xEF\xB8\x8F",        // emoji, ZWJ, flags
        "caf\xC3\xA9 cafe\xCC\x81 na\xC3\xAFve \xC3\x85ngstr\xC3\xB6m",                     // precomposed + combining
        "   ",
        "\t\t\t",
        "\n\n\n\n",
        " \n \n  \t ",
        "trailing spaces   ",
        "   leading spaces",
        "multiple     internal      spaces",
        "\xC2\xA0nbsp\xE2\x80\x8Bzwsp\xEF\xBB\xBF" "bom",
        "<s> </s> <unk> <0x41> literal special texts",
        "\xE2\x96\x81 already escaped \xE2\x96\x81\xE2\x96\x81",
        "\xEF\xBF\xBD replacement char",
        "control \x01\x02\x7F chars",
        "3.14159 2718281828 1e-9 0xDEADBEEF 1,000,000",
        "!!!???...---===+++***",
        "\xF0\x90\x8D\x88 gothic, \xF0\x9D\x90\x80 math bold, \xE2\x88\x91 \xE2\x88\x9E",
        "a",
        " ",
        "\xE4\xB8\xAD",
    };
    // A longer document: everything above, joined.
    std::string doc;
    for (const std::string& s : c) doc += s + "\n";
    c.push_back(doc);
    std::mt19937 rng(12345);
    for (int i = 0; i < 400; ++i) c.push_back(random_text(rng, 50, false));
    // Invalid UTF-8: the oracle sees Python's errors="replace" decoding, hearth the same rule (sanitize_utf8).
    for (int i = 0; i < 60; ++i) c.push_back(random_text(rng, 30, true));
    c.push_back("\xFF\xFE invalid \xC3 lead \xE4\xB8 truncated \xED\xA0\x80 surrogate \xF0\x9F\x98");
    return c;
}

TEST(SpmOracle, MatchesSentencePieceOnCorpus) {
    if (!oracle_available()) GTEST_SKIP() << "needs Debian python3-sentencepiece (apt-get install python3-sentencepiece)";
    const Vocab& v = tiny_llama_vocab();
    const std::vector<std::string> corpus = oracle_corpus();
    const std::vector<std::string> want = run_oracle("encode", corpus);
    ASSERT_EQ(want.size(), corpus.size());
    size_t passed = 0, invalid = 0;
    for (size_t i = 0; i < corpus.size(); ++i) {
        invalid += !tok::is_valid_utf8(corpus[i]);
        const std::vector<int32_t> got = v.encode(tok::sanitize_utf8(corpus[i]), false, false);
        EXPECT_EQ(ids_str(got), want[i].empty() ? "" : " " + want[i]) << "input hex " << hex(corpus[i]);
        passed += ids_str(got) == (want[i].empty() ? "" : " " + want[i]);
    }
    EXPECT_GT(invalid, 20u);
    std::printf("[ sentencepiece oracle: %zu / %zu inputs agree (%zu with invalid UTF-8) ]\n", passed,
                corpus.size(), invalid);
}

TEST(SpmOracle, SanitizeMatchesPythonReplace) {
    if (!oracle_available()) GTEST_SKIP() << "needs Debian python3-sentencepiece (apt-get install python3-sentencepiece)";
    std::mt19937 rng(4242);
    std::uniform_int_distribution<int> len_d(1, 12), byte_d(0, 255), hi_d(0x80, 0xFF);
    std::vector<std::string> inputs;
    for (int i = 0; i < 2000; ++i) {
        std::string s;
        const int n = len_d(rng);
        for (int k = 0; k < n; ++k) s += static_cast<char>(i % 2 ? hi_d(rng) : byte_d(rng));
        inputs.push_back(s);
    }
    const std::vector<std::string> want = run_oracle("sanitize", inputs);
    ASSERT_EQ(want.size(), inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i)
        EXPECT_EQ(hex(tok::sanitize_utf8(inputs[i])), want[i]) << "input hex " << hex(inputs[i]);
}

}  // namespace
}  // namespace hearth
