// Byte-level BPE ("gpt2") tokenizer and its pre-tokenizers: llama.cpp's test vectors for every vocabulary
// that is available (the vocab GGUFs, and the two stand-ins imported from encoder.json + vocab.bpe and from a
// Hugging Face tokenizer.json), round trips, ignore_merges, special tokens, malformed vocabularies, invalid
// UTF-8.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>
#include <fstream>
#include <string>
#include <vector>

#include "base/error.h"
#include "gguf/gguf.h"
#include "test_util.h"
#include "vocab_test_util.h"
#include "tokenizer/bpe.h"
#include "tokenizer/import.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/vocab.h"

namespace hearth {
namespace {

using tok::Vocab;
using ::testing::HasSubstr;

using test::kVocabDir;


Vocab load_gguf(const std::string& name) {
    return Vocab::from_gguf(gguf::File::open(test::shared(kVocabDir + name)));
}

// A stand-in vocabulary: imported into GGUF metadata, then loaded as any GGUF.
Vocab load_imported(const std::string& rel, const std::string& pre) {
    gguf::Writer w;
    tok::import_tokenizer(test::shared(rel), w, pre);
    return test::vocab_from_writer(w);
}

const Vocab& llama_bpe() {
    static const Vocab v = load_imported("tokenizers/llama3.2-bpe/encoder.json", "llama-bpe");
    return v;
}
const Vocab& qwen2() {
    static const Vocab v = load_imported("tokenizers/qwen3-npm/tokenizer.json", "qwen2");
    return v;
}
const Vocab& gpt2() {
    static const Vocab v = load_gguf("ggml-vocab-gpt-2.gguf");
    return v;
}

using test::ids_str;


// ---- llama.cpp test vectors ----------------------------------------------------------------------------

TEST(TokenizerBpeVectors, Gpt2) { test::check_vocab_vectors(gpt2(), "ggml-vocab-gpt-2.gguf"); }
TEST(TokenizerBpeVectors, Falcon) { test::check_vocab_vectors(load_gguf("ggml-vocab-falcon.gguf"), "ggml-vocab-falcon.gguf"); }
TEST(TokenizerBpeVectors, Mpt) { test::check_vocab_vectors(load_gguf("ggml-vocab-mpt.gguf"), "ggml-vocab-mpt.gguf"); }
TEST(TokenizerBpeVectors, Starcoder) {
    test::check_vocab_vectors(load_gguf("ggml-vocab-starcoder.gguf"), "ggml-vocab-starcoder.gguf");
}
TEST(TokenizerBpeVectors, Refact) { test::check_vocab_vectors(load_gguf("ggml-vocab-refact.gguf"), "ggml-vocab-refact.gguf"); }
TEST(TokenizerBpeVectors, DeepseekLlm) {
    test::check_vocab_vectors(load_gguf("ggml-vocab-deepseek-llm.gguf"), "ggml-vocab-deepseek-llm.gguf");
}
TEST(TokenizerBpeVectors, DeepseekCoder) {
    test::check_vocab_vectors(load_gguf("ggml-vocab-deepseek-coder.gguf"), "ggml-vocab-deepseek-coder.gguf");
}
// Stand-ins (Llama 3.2's encoder.json + vocab.bpe for ggml-vocab-llama-bpe, Qwen3's tokenizer.json for
// ggml-vocab-qwen2): further below.

// ---- loading -------------------------------------------------------------------------------------------

TEST(TokenizerBpe, LoadsMetadataAndDefaults) {
    EXPECT_EQ(gpt2().model(), tok::TokenizerModel::Bpe);
    EXPECT_EQ(gpt2().pre(), "gpt-2");
    EXPECT_FALSE(gpt2().add_bos());
    EXPECT_FALSE(gpt2().add_space_prefix());
    EXPECT_EQ(gpt2().bos(), 50256);
    // gpt-neox has no tokenizer.ggml.pre: llama.cpp's default expressions.
    const Vocab neox = load_gguf("ggml-vocab-gpt-neox.gguf");
    EXPECT_EQ(neox.pre(), "");
    const std::string text = "Hello world, 12345 \xE2\x80\x94 caf\xC3\xA9!";
    EXPECT_EQ(neox.decode(neox.encode(text, false, false)), text);
}

TEST(TokenizerBpe, ByteLevelMapping) {
    EXPECT_EQ(tok::bpe_byte_encode(" "), "\xC4\xA0");  // U+0120 'Ġ'
    EXPECT_EQ(tok::bpe_byte_encode("\n"), "\xC4\x8A");  // U+010A 'Ċ'
    EXPECT_EQ(tok::bpe_byte_encode("a!"), "a!");
    std::string all;
    for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
    EXPECT_EQ(tok::bpe_byte_decode(tok::bpe_byte_encode(all)), all);
    EXPECT_EQ(gpt2().token_to_piece(gpt2().find("\xC4\xA0world")), " world");
}

// ---- pre-tokenizer -------------------------------------------------------------------------------------

std::vector<std::string> split(const std::string& pre, const std::string& text) {
    const tok::PreTokenizer p(tok::pre_tokenizer_info(pre).regexes);
    std::vector<std::string> out;
    for (std::string_view s : p.split(text)) out.emplace_back(s);
    return out;
}

TEST(TokenizerPretokenize, Expressions) {
    using V = std::vector<std::string>;
    EXPECT_EQ(split("gpt-2", "Hello world's  end"), (V{"Hello", " world", "'s", " ", " end"}));
    EXPECT_EQ(split("llama-bpe", "12345 abc\n\nx"), (V{"123", "45", " abc", "\n\n", "x"}));
    EXPECT_EQ(split("qwen2", "12 ab"), (V{"1", "2", " ab"}));
    EXPECT_EQ(split("starcoder", "x 12"), (V{"x", " ", "1", "2"}));
    // Nothing is dropped: the pieces always concatenate to the input.
    for (const char* pre : {"", "gpt-2", "llama3", "qwen2", "deepseek-llm", "deepseek-coder", "falcon", "mpt",
                            "starcoder", "refact", "smollm", "command-r", "deepseek-v3", "poro-chat", "viking"}) {
        const std::string text = "A \xE4\xB8\xAD\xE6\x96\x87 text\n\n 3.14159 !!?? \xF0\x9F\x98\x80  \t end  ";
        std::string joined;
        for (const std::string& s : split(pre, text)) joined += s;
        EXPECT_EQ(joined, text) << pre;
    }
}

TEST(TokenizerPretokenize, InvalidUtf8IsKeptAsItsOwnPieces) {
    const std::string text = "ab\xFF" "cd \xE4\xB8" "e";
    const std::vector<std::string> pieces = split("gpt-2", text);
    EXPECT_EQ(pieces, (std::vector<std::string>{"ab", "\xFF", "cd", " ", "\xE4\xB8", "e"}));
}

// ---- encode / decode -----------------------------------------------------------------------------------

TEST(TokenizerBpe, RoundTripArbitraryBytes) {
    // Only vocabularies whose byte-level characters are all normal tokens are lossless for any bytes: e.g.
    // deepseek-llm also has control tokens with the texts of the never-valid bytes C0, C1, F5..FF (the last
    // of duplicate texts wins, as in llama.cpp), and falcon lacks some byte characters.
    std::mt19937 rng(7);
    for (const Vocab* v : {&gpt2()}) {
        for (int t = 0; t < 200; ++t) {
            std::string s(rng() % 24, '\0');
            for (char& c : s) c = static_cast<char>(rng() % 4 == 0 ? rng() % 256 : "ab \n1\xC3\xA9"[rng() % 7]);
            const std::vector<int32_t> ids = v->encode(s, false, false);
            EXPECT_EQ(v->decode(ids), s);
        }
    }
}

// Bytes, including invalid UTF-8, round-trip.
void check_round_trip(const Vocab& x) {
    std::mt19937 rng(11);
    for (const std::string& s : {std::string("\xFF\xFE"), std::string("a\xC3"), std::string("\xED\xA0\x80 x"),
                                 std::string("\xF0\x9F\x98"), std::string("\0\x80z", 3)})
        EXPECT_EQ(x.decode(x.encode(s, true, true), false, true), s);
    for (int t = 0; t < 100; ++t) {
        std::string s(rng() % 24, '\0');
        for (char& c : s) c = static_cast<char>(rng() % 4 == 0 ? rng() % 256 : "ab \n1\xC3\xA9"[rng() % 7]);
        EXPECT_EQ(x.decode(x.encode(s, false, false)), s);
    }
}

// The stand-ins take a while to import (an 11 MB tokenizer.json; seconds under ASan), and ctest runs every test
// in its own process: each is loaded by one test only, which checks its vectors and the rest.
TEST(TokenizerBpeVectors, LlamaBpeStandIn) {
    const Vocab& v = llama_bpe();
    test::check_vocab_vectors(v, "ggml-vocab-llama-bpe.gguf");
    // Llama 3: llama.cpp adds BOS for this pre-tokenizer.
    EXPECT_TRUE(v.add_bos());
    EXPECT_EQ(v.bos(), 128000);
    EXPECT_EQ(v.encode("Hello", true, false), (std::vector<int32_t>{128000, 9906}));
    const std::string text = "<|start_header_id|>user<|end_header_id|>";
    const std::vector<int32_t> parsed = v.encode(text, false, true);
    EXPECT_EQ(parsed.front(), v.find("<|start_header_id|>"));
    EXPECT_EQ(parsed.back(), v.find("<|end_header_id|>"));
    EXPECT_EQ(parsed.size(), 3u);
    const std::vector<int32_t> plain = v.encode(text, false, false);
    for (int32_t id : plain) EXPECT_NE(v.attr(id), tok::TokenAttr::Control) << id;
    EXPECT_EQ(v.decode(plain), text);
    // Control tokens render only with special = true.
    EXPECT_EQ(v.decode(parsed), "user");
    EXPECT_EQ(v.decode(parsed, true), text);
    check_round_trip(v);
}

TEST(TokenizerBpeVectors, Qwen2StandIn) {
    const Vocab& q = qwen2();
    test::check_vocab_vectors(q, "ggml-vocab-qwen2.gguf");
    // <think> is an added, non-special (user-defined) token: always matched.
    const int32_t think = q.find("<think>");
    ASSERT_GE(think, 0);
    EXPECT_EQ(q.encode("a<think>b", false, false)[1], think);
    const std::vector<int32_t> im = q.encode("<|im_start|>hi", false, true);
    EXPECT_EQ(im.front(), q.find("<|im_start|>"));
    EXPECT_NE(q.encode("<|im_start|>hi", false, false).front(), q.find("<|im_start|>"));
    check_round_trip(q);
}

// ignore_merges: with the llama3 pre-tokenizer, a pre-token that is a token is emitted whole even when no
// merge path leads to it.
gguf::Writer synth_bpe(const std::string& pre, std::vector<std::string> merges = {"b c"}) {
    gguf::Writer w;
    w.set("tokenizer.ggml.model", gguf::Value::str("gpt2"));
    w.set("tokenizer.ggml.pre", gguf::Value::str(pre));
    w.set("tokenizer.ggml.tokens", gguf::Value::str_array({"a", "b", "c", "bc", "abc"}));
    w.set("tokenizer.ggml.merges", gguf::Value::str_array(merges));
    w.set("tokenizer.ggml.bos_token_id", gguf::Value::u32(0));
    w.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(0));
    return w;
}

TEST(TokenizerBpe, IgnoreMerges) {
    EXPECT_EQ(test::vocab_from_writer(synth_bpe("gpt-2")).encode("abc", false, false), (std::vector<int32_t>{0, 3}));
    EXPECT_EQ(test::vocab_from_writer(synth_bpe("llama-bpe")).encode("abc", false, false), (std::vector<int32_t>{4}));
    EXPECT_EQ(test::vocab_from_writer(synth_bpe("gpt-2", {"a b", "b c"})).encode("abc", false, false),
              (std::vector<int32_t>{0, 1, 2}));  // "a b" (rank 0) gives "ab", no token: its bytes, as llama.cpp
}

TEST(TokenizerBpe, MalformedVocabulariesGiveErrors) {
    EXPECT_THAT(test::vocab_load_error(synth_bpe("made-up-pre")), HasSubstr("unknown pre-tokenizer type 'made-up-pre'"));
    EXPECT_THAT(test::vocab_load_error(synth_bpe("gpt-2", {"b x"})),
                HasSubstr("tokenizer.ggml.merges[0] = 'b x' refers to 'x', which is not a token"));
    EXPECT_THAT(test::vocab_load_error(synth_bpe("gpt-2", {"b c", "bc"})),
                HasSubstr("tokenizer.ggml.merges[1] = 'bc' is not two tokens separated by a space"));
    gguf::Writer w = synth_bpe("gpt-2");
    w.remove("tokenizer.ggml.merges");
    EXPECT_THAT(test::vocab_load_error(w), HasSubstr("tokenizer.ggml.merges is missing"));
    w = synth_bpe("gpt-2");
    w.set("tokenizer.ggml.model", gguf::Value::str("rwkv"));
    EXPECT_THAT(test::vocab_load_error(w), HasSubstr("tokenizer model 'rwkv' is not supported yet"));
}

TEST(TokenizerBpe, InvalidUtf8DoesNotCrash) {
    const Vocab ds = load_gguf("ggml-vocab-deepseek-llm.gguf");  // six chained expressions: no crash
    for (const std::string& s : {std::string("\xFF\xFE"), std::string("a\xC3"), std::string("\xED\xA0\x80 x\n")})
        EXPECT_FALSE(ds.encode(s, true, true).empty());
    for (const Vocab* v : {&gpt2()}) {
        for (const std::string& s : {std::string("\xFF\xFE"), std::string("a\xC3"), std::string("\xED\xA0\x80 x"),
                                    std::string("\xF0\x9F\x98"), std::string("\0\x80z", 3)}) {
            const std::vector<int32_t> ids = v->encode(s, true, true);
            EXPECT_EQ(v->decode(ids, false, true), s);
        }
    }
}

TEST(TokenizerBpe, LongInputIsFast) {
    // 256 KiB of words, digits, punctuation and long whitespace runs (the expressions' "\\s*[\\r\\n]+" and
    // "\\s+(?!\\S)" backtrack over whitespace runs; the runs here are long).
    std::mt19937 rng(3);
    std::string text;
    while (text.size() < (256u << 10)) {
        switch (rng() % 5) {
            case 0: text += "hello "; break;
            case 1: text += "12345, "; break;
            case 2: text += std::string(rng() % 2000, ' '); break;
            case 3: text += "caf\xC3\xA9\n\n"; break;
            default: text += "world!? "; break;
        }
    }
    // The 256 byte-level characters and runs of spaces: the cost under test is the pre-tokenizer's.
    std::vector<std::string> tokens;
    for (int b = 0; b < 256; ++b) tokens.push_back(tok::bpe_byte_encode(std::string(1, static_cast<char>(b))));
    std::vector<std::string> merges;
    std::string run = "\xC4\xA0";
    for (int k = 0; k < 4; ++k) {
        merges.push_back(run + " " + run);
        run += run;
        tokens.push_back(run);
    }
    gguf::Writer w;
    w.set("tokenizer.ggml.model", gguf::Value::str("gpt2"));
    w.set("tokenizer.ggml.pre", gguf::Value::str("llama-bpe"));
    w.set("tokenizer.ggml.tokens", gguf::Value::str_array(tokens));
    w.set("tokenizer.ggml.merges", gguf::Value::str_array(merges));
    w.set("tokenizer.ggml.bos_token_id", gguf::Value::u32(0));
    const Vocab v = test::vocab_from_writer(w);
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<int32_t> ids = v.encode(text, false, false);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(v.decode(ids), text);
    EXPECT_LT(s, 5.0) << "encoding 256 KiB took " << s << " s";
    std::printf("[ llama3 expressions: 256 KiB in %.3f s, %zu tokens ]\n", s, ids.size());
}

// The per-thread cache of tokenized pre-tokens: switching vocabularies (and copies of one) never serves ids of
// another, and a cached word gives the ids the merge loop gives.
TEST(TokenizerBpe, WordCacheFollowsTheVocabulary) {
    const std::string text = "Hello hello world, the the the quick brown fox 12345 caf\xC3\xA9 foo_bar()";
    const Vocab& a = gpt2();
    const Vocab b = load_gguf("ggml-vocab-starcoder.gguf");
    const std::vector<int32_t> a1 = a.encode(text, false, false), b1 = b.encode(text, false, false);
    ASSERT_NE(a1, b1);
    EXPECT_EQ(a.encode(text, false, false), a1);
    EXPECT_EQ(b.encode(text, false, false), b1);
    EXPECT_EQ(a.encode(text + text, false, false).size(), 2 * a1.size()) << "repeated words, same ids";
    // A fresh load of the same vocabulary (a new model) starts with its own cache and agrees.
    const Vocab a_again = load_gguf("ggml-vocab-gpt-2.gguf");
    EXPECT_EQ(a_again.encode(text, false, false), a1);
}

// tokenizer.json import: the pre-tokenizer is read from the file (smollm2 -> smollm, qwen3 -> qwen2), and one
// hearth cannot run is an error naming it, never a guess.
TEST(TokenizerImport, PreTokenizerFromTokenizerJson) {
    auto pre_of = [](const std::string& path) {
        gguf::Writer w;
        tok::import_tokenizer(path, w);
        const std::vector<uint8_t> bytes = w.to_bytes();
        return gguf::File::from_memory(bytes.data(), bytes.size(), "t.gguf").get_str("tokenizer.ggml.pre");
    };
    EXPECT_EQ(pre_of(test::shared("tokenizers/smollm2/tokenizer.json")), "smollm");
    EXPECT_EQ(pre_of(test::shared("tokenizers/qwen3-npm/tokenizer.json")), "qwen2");
    const std::string dir = ::testing::TempDir();
    auto write = [&](const std::string& name, const std::string& pre_tokenizer) {
        const std::string path = dir + "/" + name;
        std::ofstream(path) << R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
                                    "pre_tokenizer": )" << pre_tokenizer << "}";
        return path;
    };
    auto error_of = [&](const std::string& path) {
        try {
            gguf::Writer w;
            tok::import_tokenizer(path, w);
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    EXPECT_EQ(pre_of(write("gpt2.json", R"({"type": "ByteLevel", "use_regex": true})")), "gpt-2");
    EXPECT_THAT(error_of(write("meta.json", R"({"type": "Metaspace", "replacement": "_"})")),
                ::testing::HasSubstr("'Metaspace' is not supported"));
    EXPECT_THAT(error_of(write("split.json", R"({"type": "Sequence", "pretokenizers": [{"type": "Split",
                 "pattern": {"Regex": "\\w+"}}, {"type": "ByteLevel", "use_regex": false}]})")),
                ::testing::HasSubstr("regex '\\w+' is not one hearth recognises"));
}

TEST(TokenizerBpe, StreamDecoderReassemblesSplitCharacters) {
    const Vocab& v = gpt2();
    const std::string text = "caf\xC3\xA9 \xF0\x9F\x98\x80 \xE4\xB8\xAD\xE6\x96\x87";
    tok::StreamDecoder d(v);
    std::string out;
    for (int32_t id : v.encode(text, false, false)) out += d.push(id);
    out += d.flush();
    EXPECT_EQ(out, text);
}

}  // namespace
}  // namespace hearth
