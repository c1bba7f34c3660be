// grammar/check.h: instances walked byte by byte and token by token through the masks give the same verdicts
// and the same place of rejection, on texts whose verdicts python3-jsonschema gives.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "gguf/gguf.h"
#include "grammar/check.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar/regex.h"
#include "jsonschema_oracle.h"
#include "test_util.h"
#include "tokenizer/vocab.h"

namespace hearth::grammar {
namespace {

using ojson = nlohmann::ordered_json;

TEST(GrammarCheck, BytesWalkFindsTheFirstRefusedByte) {
    const auto g = compile(regex_grammar("ab+c"), std::make_shared<TokenTable>());
    CheckResult r = check_bytes(g, "abbc");
    EXPECT_TRUE(r.accepted);
    r = check_bytes(g, "abxc");
    EXPECT_FALSE(r.accepted);
    EXPECT_FALSE(r.incomplete);
    EXPECT_EQ(r.byte, 2u);
    r = check_bytes(g, "abb");
    EXPECT_FALSE(r.accepted);
    EXPECT_TRUE(r.incomplete);
    EXPECT_EQ(r.byte, 3u);
    r = check_bytes(g, "");
    EXPECT_TRUE(r.incomplete);
    r = check_bytes(g, "abcc");
    EXPECT_FALSE(r.accepted);
    EXPECT_EQ(r.byte, 3u);
}

TEST(GrammarCheck, TokenWalkAgreesWithBytesAndWithPython) {
    const tok::Vocab vocab = tok::Vocab::from_gguf(gguf::File::open(test::shared("models/stories260K.gguf")));
    const auto table = std::make_shared<TokenTable>(TokenTable::from_vocab(vocab));
    const ojson schema = ojson::parse(R"({"type":"object","properties":{"name":{"type":"string","maxLength":8},
        "age":{"type":"integer","minimum":0,"maximum":150},"tags":{"type":"array","items":{"enum":["a","b"]}}},
        "required":["name"],"additionalProperties":false})");
    const Grammar grammar = compile_json_schema(schema);
    const auto by_tokens = compile(grammar, table);
    const auto by_bytes = compile(grammar, std::make_shared<TokenTable>());
    const std::vector<std::string> texts = {
        R"({"name":"Ann"})",      R"({"name":"Ann","age":3})", R"({"name": "Bob", "age": -3})",
        R"({"age":3})",           R"({"name":"Ann","age":151})", R"({"name":"Ann","tags":["a","b","a"]})",
        R"({"name":"Ann","tags":["c"]})", R"({"name":"toolongname"})", R"({"name":"Ann","x":1})",
        R"({"name":"Ann")",       "{\n  \"name\": \"Zoë\"\n}", R"({"name":"Ann","age":1e2})"};
    const test::JsonSchemaVerdicts py = test::jsonschema_oracle({{schema, texts}});
    ASSERT_EQ(py.results.size(), 1u);
    for (size_t i = 0; i < texts.size(); ++i) {
        SCOPED_TRACE(texts[i]);
        const std::vector<int32_t> ids = vocab.encode(texts[i], false, false);
        // What the tokens spell: SentencePiece puts a space before the text (flexible whitespace allows it).
        std::string spelled;
        for (int32_t id : ids) spelled += table->bytes[static_cast<size_t>(id)];
        EXPECT_EQ(spelled, " " + texts[i]);
        const CheckResult b = check_bytes(by_bytes, spelled);
        const CheckResult t = check_tokens(by_tokens, ids, /*time_masks=*/true);
        EXPECT_EQ(t.accepted, b.accepted);
        EXPECT_EQ(t.incomplete, b.incomplete);
        EXPECT_EQ(t.byte, b.byte);
        const bool valid = py.results[0][i].is_boolean() && py.results[0][i].get<bool>();
        if (t.accepted) {
            EXPECT_TRUE(valid) << "accepted an invalid instance";
        }
        if (!valid) {
            EXPECT_FALSE(t.accepted);
        }
        if (t.accepted) {
            EXPECT_EQ(t.mask_us.size(), ids.size() + 1);
        }
        if (!t.accepted && !t.incomplete) {
            ASSERT_GE(t.token, 0);
            // The refused token holds the refused byte.
            size_t start = 0;
            for (int64_t k = 0; k < t.token; ++k) start += table->bytes[static_cast<size_t>(ids[static_cast<size_t>(k)])].size();
            EXPECT_GE(t.byte, start);
            EXPECT_LT(t.byte, start + table->bytes[static_cast<size_t>(ids[static_cast<size_t>(t.token)])].size());
        }
    }
    // The canonical spellings of the valid ones are accepted.
    EXPECT_TRUE(check_tokens(by_tokens, vocab.encode(texts[1], false, false)).accepted);
    EXPECT_THROW(check_tokens(by_tokens, {table->size()}), Error);
}

}  // namespace
}  // namespace hearth::grammar
