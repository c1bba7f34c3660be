// WordPiece ("bert") tokenizer: llama.cpp's test vectors for bert-bge, word splitting (lower-casing, accents,
// punctuation, CJK), [CLS] / [SEP], unknown words, special tokens, invalid UTF-8.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "base/error.h"
#include "gguf/gguf.h"
#include "test_util.h"
#include "vocab_test_util.h"
#include "tokenizer/vocab.h"
#include "tokenizer/wpm.h"

namespace hearth {
namespace {

using tok::Vocab;
using ::testing::HasSubstr;

using test::kVocabDir;

const Vocab& bge() {
    static const Vocab v = Vocab::from_gguf(gguf::File::open(test::shared(kVocabDir + "ggml-vocab-bert-bge.gguf")));
    return v;
}

using test::ids_str;

TEST(TokenizerWpmVectors, BertBge) {
    const std::string name = "ggml-vocab-bert-bge.gguf";
    const auto [inputs, outputs] = test::read_vocab_vectors(name);
    ASSERT_EQ(inputs.size(), 46u);
    ASSERT_EQ(inputs.size(), outputs.size());
    size_t passed = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
        const std::vector<int32_t> got = bge().encode(inputs[i], false, false);
        EXPECT_EQ(got, outputs[i]) << "vector " << i << " input '" << inputs[i] << "'\n got:" << ids_str(got)
                                   << "\nwant:" << ids_str(outputs[i]);
        passed += got == outputs[i];
    }
    std::printf("[ %s: %zu / %zu vectors pass ]\n", name.c_str(), passed, inputs.size());
}

TEST(TokenizerWpm, LoadsMetadata) {
    const Vocab& v = bge();
    EXPECT_EQ(v.model(), tok::TokenizerModel::Wpm);
    EXPECT_EQ(v.bos(), 101);  // [CLS]
    EXPECT_EQ(v.sep(), 102);
    EXPECT_EQ(v.unk(), 100);
    EXPECT_EQ(v.pad(), 0);
    EXPECT_TRUE(v.add_bos());
    EXPECT_TRUE(v.add_sep());
    EXPECT_FALSE(v.add_eos());
    EXPECT_EQ(v.text(v.find("\xE2\x96\x81hello")), "\xE2\x96\x81hello");  // word-initial pieces carry U+2581
}

TEST(TokenizerWpm, Words) {
    using V = std::vector<std::string>;
    EXPECT_EQ(tok::wpm_words("Hello, World!"), (V{"hello", ",", "world", "!"}));
    EXPECT_EQ(tok::wpm_words("  Caf\xC3\xA9\tna\xC3\xAFve  "), (V{"cafe", "naive"}));  // accents dropped
    EXPECT_EQ(tok::wpm_words("Cafe\xCC\x81"), (V{"cafe"}));  // a decomposed accent (U+0301) too
    EXPECT_EQ(tok::wpm_words("\xE4\xB8\xAD\xE6\x96\x87x"), (V{"\xE4\xB8\xAD", "\xE6\x96\x87", "x"}));  // CJK
    EXPECT_EQ(tok::wpm_words("a$b"), (V{"a", "$", "b"}));  // ASCII symbols split
    EXPECT_EQ(tok::wpm_words("a\x01" "b\xE2\x80\x8B" "c"), (V{"abc"}));  // controls (Cc, Cf) dropped
    EXPECT_EQ(tok::wpm_words("\xFF" "ab\xC3"), (V{"ab"}));  // invalid UTF-8 -> U+FFFD -> dropped
    EXPECT_TRUE(tok::wpm_words("").empty());
}

TEST(TokenizerWpm, EncodeDecode) {
    const Vocab& v = bge();
    const std::vector<int32_t> ids = v.encode("Hello world", true, false);
    ASSERT_EQ(ids.size(), 4u);
    EXPECT_EQ(ids.front(), 101);
    EXPECT_EQ(ids.back(), 102);
    EXPECT_EQ(ids[1], v.find("\xE2\x96\x81hello"));
    EXPECT_EQ(v.decode(ids), "hello world");  // control tokens render only with special = true
    EXPECT_EQ(v.decode(ids, true), "[CLS] hello world[SEP]");  // pieces are concatenated as they are
    EXPECT_EQ(v.decode(ids, true, true), "hello world");  // remove_special drops [CLS] and [SEP]
    tok::StreamDecoder d(v, false, true);
    std::string streamed;
    for (int32_t id : ids) streamed += d.push(id);
    EXPECT_EQ(streamed + d.flush(), v.decode(ids));
    // Continuation pieces are bare.
    const std::vector<int32_t> sub = v.encode("tokenization", false, false);
    ASSERT_GE(sub.size(), 2u);
    EXPECT_EQ(v.decode(sub), "tokenization");
    // A word with no match is one [UNK].
    EXPECT_EQ(v.encode("\xF0\x9F\x98\x80", false, false), (std::vector<int32_t>{100}));
}

TEST(TokenizerWpm, SpecialTokens) {
    const Vocab& v = bge();
    EXPECT_EQ(v.encode("a [SEP] b", false, true),
              (std::vector<int32_t>{v.find("\xE2\x96\x81" "a"), 102, v.find("\xE2\x96\x81" "b")}));
    const std::vector<int32_t> plain = v.encode("a [SEP] b", false, false);
    EXPECT_EQ(std::count(plain.begin(), plain.end(), 102), 0);
    EXPECT_EQ(v.decode(plain), "a [ sep ] b");
}

TEST(TokenizerWpm, InvalidUtf8DoesNotCrash) {
    const Vocab& v = bge();
    for (const std::string& s : {std::string("\xFF\xFE"), std::string("a\xC3"), std::string("\xED\xA0\x80 x"),
                                 std::string("\xF0\x9F\x98"), std::string("\0\x80z", 3)}) {
        const std::vector<int32_t> ids = v.encode(s, true, true);
        EXPECT_GE(ids.size(), 2u);
    }
}

TEST(TokenizerWpm, MissingSepIsAnError) {
    gguf::Writer w;
    w.set("tokenizer.ggml.model", gguf::Value::str("bert"));
    w.set("tokenizer.ggml.tokens", gguf::Value::str_array({"[UNK]", "[CLS]", "\xE2\x96\x81" "a"}));
    w.set("tokenizer.ggml.unknown_token_id", gguf::Value::u32(0));
    w.set("tokenizer.ggml.cls_token_id", gguf::Value::u32(1));
    const std::vector<uint8_t> bytes = w.to_bytes();
    try {
        Vocab::from_gguf(gguf::File::from_memory(bytes.data(), bytes.size(), "synthetic.gguf"));
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_THAT(e.what(), HasSubstr("adds a SEP token but has none"));
    }
    w.set("tokenizer.ggml.add_sep_token", gguf::Value::boolean(false));
    const std::vector<uint8_t> bytes2 = w.to_bytes();
    const Vocab v = Vocab::from_gguf(gguf::File::from_memory(bytes2.data(), bytes2.size(), "synthetic.gguf"));
    EXPECT_EQ(v.encode("A b", true, false), (std::vector<int32_t>{1, 2, 0}));
}

}  // namespace
}  // namespace hearth
