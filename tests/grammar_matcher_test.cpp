// The grammar matcher against two independent references: the memoised recognizer of tests/grammar_oracle.h
// (is this byte string a prefix of / a sentence of the language?) and, for token masks, the token-by-token
// walk (accept each token, roll back) over a real 151,643-token vocabulary (Qwen3's).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "gguf/gguf.h"
#include "grammar/gbnf.h"
#include "grammar/grammar.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar_oracle.h"
#include "test_util.h"
#include "tokenizer/import.h"
#include "tokenizer/vocab.h"

namespace hearth::grammar {
namespace {

using testing::Recognizer;

std::shared_ptr<const TokenTable> qwen3_tokens() {
    static const std::shared_ptr<const TokenTable> t = [] {
        const tok::Vocab v = tok::import_vocab(test::shared("tokenizers/qwen3-npm/tokenizer.json"), "qwen2");
        return std::make_shared<const TokenTable>(TokenTable::from_vocab(v));
    }();
    return t;
}

// A table of the given byte strings (ids in order), for small exact tests.
std::shared_ptr<const TokenTable> table(const std::vector<std::string>& pieces) {
    auto t = std::make_shared<TokenTable>();
    t->bytes = pieces;
    t->excluded.assign(pieces.size(), 0);
    return t;
}

// JSON-like grammar with nesting (recursion through rules), UTF-8 classes and optional whitespace.
const char* kJsonish = R"G(
root   ::= object
value  ::= object | array | string | number | "true" | "false" | "null"
object ::= "{" ws ( pair ( "," ws pair )* )? "}" ws
pair   ::= string ":" ws value
array  ::= "[" ws ( value ( "," ws value )* )? "]" ws
string ::= "\"" ( [^"\\\x00-\x1F] | "\\" ["\\/bfnrt] )* "\"" ws
number ::= "-"? ( "0" | [1-9] [0-9]{0,5} ) ( "." [0-9]+ )? ws
ws     ::= [ \n]{0,2}
)G";

bool bit(const std::vector<uint64_t>& m, int32_t t) { return (m[t >> 6] >> (t & 63)) & 1; }

TEST(GrammarMatcher, BytesAgreeWithTheRecognizer) {
    const Grammar g = parse_gbnf(kJsonish);
    auto cg = compile(g, table({"x"}));
    Recognizer rec(g);
    // Random strings over an alphabet that makes both valid and invalid text likely; every prefix checked.
    const std::vector<std::string> alphabet = {"{", "}", "[", "]", "\"", ":", ",", " ", "\n", "a", "é", "日",
                                               "😀", "\\", "n", "0", "1", "-", ".", "true", "null", "\x01"};
    std::mt19937 rng(7);
    int accepted_full = 0, checked = 0;
    for (int iter = 0; iter < 2000; ++iter) {
        GrammarMatcher m(cg);
        std::string text;
        const int len = 1 + static_cast<int>(rng() % 12);
        for (int k = 0; k < len; ++k) {
            // Bias towards valid continuations: half the time pick a piece the matcher accepts.
            std::string piece = alphabet[rng() % alphabet.size()];
            if (rng() % 2) {
                for (int tries = 0; tries < 8; ++tries) {
                    const std::string& p = alphabet[rng() % alphabet.size()];
                    GrammarMatcher probe = GrammarMatcher(cg);
                    if (probe.accept_bytes(text + p)) {
                        piece = p;
                        break;
                    }
                }
            }
            const bool ok = m.accept_bytes(piece);
            ASSERT_EQ(ok, rec.is_prefix(text + piece)) << "text: " << text + piece;
            ++checked;
            if (!ok) break;
            text += piece;
            ASSERT_EQ(m.can_end(), rec.matches(text)) << "text: " << text;
            accepted_full += m.can_end();
        }
    }
    EXPECT_GT(accepted_full, 20);
    EXPECT_GT(checked, 1500);
}

TEST(GrammarMatcher, SplitsMultiByteCharactersAcrossTokens) {
    Grammar g = parse_gbnf(R"G(root ::= "é" [α-ω]+ "!")G");
    // "é" = C3 A9; "α" = CE B1: tokens that end or start inside a character.
    auto cg = compile(g, table({"\xC3", "\xA9", "\xC3\xA9\xCE", "\xB1", "\xB1!", "!", "a"}));
    GrammarMatcher m(cg);
    std::vector<uint64_t> mask = m.mask();
    EXPECT_TRUE(bit(mask, 0));
    EXPECT_TRUE(bit(mask, 2));
    EXPECT_FALSE(bit(mask, 1));
    EXPECT_FALSE(bit(mask, 6));
    ASSERT_TRUE(m.accept_token(2));
    mask = m.mask();
    EXPECT_TRUE(bit(mask, 3));
    EXPECT_TRUE(bit(mask, 4));
    EXPECT_FALSE(bit(mask, 5));  // "!" would cut "α" in half
    ASSERT_TRUE(m.accept_token(4));
    EXPECT_TRUE(m.can_end());
    EXPECT_TRUE(m.must_end());
}

// The matcher's mask at its current state equals the token-by-token walk (accept each token, roll back) over
// the whole vocabulary; the tokens allowed go to `allowed`. `after` names the state in messages.
void expect_mask_equals_walk(GrammarMatcher& m, const TokenTable& tokens, const std::string& after,
                             std::vector<int32_t>& allowed) {
    const std::vector<uint64_t> mask = m.mask();
    allowed.clear();
    for (int32_t t = 0; t < tokens.size(); ++t) {
        const bool walk = m.accept_token(t);
        if (walk) m.rollback(1);
        ASSERT_EQ(bit(mask, t), walk) << "token " << t << " '" << tokens.bytes[t] << "' after '" << after << "'";
        if (walk) allowed.push_back(t);
    }
}

// The mask against the token-by-token walk, at many states reached by random generation under the mask.
void check_masks_against_walk(const std::string& gbnf, int steps, uint32_t seed, bool precompute = false) {
    const Grammar g = parse_gbnf(gbnf);
    auto tokens = qwen3_tokens();
    auto compiled = std::make_shared<CompiledGrammar>(g, tokens);
    if (precompute) compiled->precompute_all();
    std::shared_ptr<const CompiledGrammar> cg = compiled;
    Recognizer rec(g);
    GrammarMatcher m(cg);
    std::mt19937 rng(seed);
    std::string text;
    for (int step = 0; step < steps && !m.must_end(); ++step) {
        std::vector<int32_t> allowed;
        expect_mask_equals_walk(m, *tokens, text, allowed);
        if (::testing::Test::HasFatalFailure()) return;
        ASSERT_FALSE(allowed.empty()) << "after '" << text << "'";
        const int32_t pick = allowed[rng() % allowed.size()];
        ASSERT_TRUE(m.accept_token(pick));
        text += tokens->bytes[pick];
        ASSERT_TRUE(rec.is_prefix(text)) << "'" << text << "' (seed " << seed << ")";
        if (m.can_end()) {
            ASSERT_TRUE(rec.matches(text)) << text;
        }
    }
}

TEST(GrammarMatcher, MaskEqualsTokenByTokenWalkJson) { check_masks_against_walk(kJsonish, 12, 1); }

TEST(GrammarMatcher, MaskEqualsTokenByTokenWalkNested) {
    check_masks_against_walk(R"G(
root ::= item ( ", " item )* "."
item ::= "(" ( [a-z]+ | item ) ")" | [0-9]{2,4}
)G",
                             12, 2);
}

// A character rule too big to inline, called once per position of a bounded repetition: alone, its node
// leaves every multi-character token undecided (the rule finishes after one character), so masks use its
// caches in each caller's frame (CompiledGrammar::cache_in_context), lazily or from precompute_all. The
// repetition sits in a called rule (item, recursive), so tokens that close the string and go on (\"] \",)
// leave that frame too and are checked against the frames below.
const char* kBoundedStrings = R"G(
root ::= "[" item ( "," item )* "]"
item ::= "\"" char{0,12} "\"" | "{\"k\":" item "}"
char ::= [^"\\\x00-\x1F] | "\\" ["\\/bfnrt] | "\\u" hex hex hex hex | "\\x" hex hex
hex  ::= [0-9a-fA-F]
)G";

TEST(GrammarMatcher, MaskEqualsTokenByTokenWalkBoundedStrings) {
    check_masks_against_walk(kBoundedStrings, 24, 3);
    check_masks_against_walk(kBoundedStrings, 24, 4, /*precompute=*/true);
}

// Node caches are shared between grammars with the same automaton below a node and the same bytes after it:
// masks stay exact where the same rules sit in other contexts, and a grammar met again adds no cache.
TEST(GrammarMatcher, CachesSharedAcrossGrammarsKeepMasksExact) {
    check_masks_against_walk(kBoundedStrings, 10, 5);
    check_masks_against_walk(R"G(
root ::= "(" item ( ";" item )* ")"
item ::= "\"" char{0,12} "\"" | "{\"k\":" item "}"
char ::= [^"\\\x00-\x1F] | "\\" ["\\/bfnrt] | "\\u" hex hex hex hex | "\\x" hex hex
hex  ::= [0-9a-fA-F]
)G",
                             10, 6);
    check_masks_against_walk(kJsonish, 8, 7);
    const size_t before = CompiledGrammar::shared_cache_entries();
    EXPECT_GT(before, 0u);
    check_masks_against_walk(kBoundedStrings, 10, 5);  // the same walk: every cache found
    EXPECT_EQ(CompiledGrammar::shared_cache_entries(), before);
}

// The mask at the state after `prefix` against the token-by-token walk.
void check_mask_after(const std::shared_ptr<const CompiledGrammar>& cg, const std::string& prefix) {
    GrammarMatcher m(cg);
    ASSERT_TRUE(m.accept_bytes(prefix)) << prefix;
    std::vector<int32_t> allowed;
    expect_mask_equals_walk(m, cg->tokens(), prefix, allowed);
    if (::testing::Test::HasFatalFailure()) return;
    EXPECT_FALSE(allowed.empty()) << prefix;
}

// Cache builds from different nodes reuse each other's walks of the subtrees they enter in the same state: a
// key trie's nodes (additionalProperties beside declared names), once a character leaves the trie, are all
// inside a free key, whether that character is ASCII or not. Reused results must be exact, and reused.
TEST(GrammarMatcher, SubtreeMemoKeepsMasksExact) {
    const auto schema = nlohmann::ordered_json::parse(R"({"type": "object",
        "properties": {"alpha": {"type": "integer"}, "alps": {"type": "string", "maxLength": 6},
                       "b\u00e9ta": {"type": "boolean"}},
        "additionalProperties": {"type": "string"}})");
    const auto cg = compile(compile_json_schema(schema), qwen3_tokens());
    for (const char* prefix : {"{\"", "{\"a", "{\"al", "{\"alp", "{\"alph", "{\"x", "{\"b", "{\"b\xC3\xA9", "{\"\xC3\xA9",
                               "{\"alpha\":1,\"", "{\"alps\":\"ab", "{\"alps\":\"abc"})
        check_mask_after(cg, prefix);
    const CompiledGrammar::BuildStats stats = cg->build_stats();
    EXPECT_GT(stats.subtrees_reused, stats.subtrees_walked)
        << stats.builds << " builds walked " << stats.subtrees_walked << " first-byte subtrees";
}

// A token's walk reaches at most its length into an automaton, so positions of a long bounded repetition whose
// end is further away than the longest token share one cache (here and in any grammar with such a chain):
// forty positions deep into x{0,300}, masks are still exact and only a few caches were ever built. (x is a
// called rule, as JSON Schema's string character is: a copied class would put ~10 nodes per position.)
TEST(GrammarMatcher, LongRepetitionPositionsShareCaches) {
    const Grammar g = parse_gbnf(R"G(
root ::= "\"" c{0,300} "\""
c    ::= [^"\\\x00-\x1F] | "\\" ["\\/bfnrt] | "\\u" hex hex hex hex
hex  ::= [0-9a-fA-F]
)G");
    const auto cg = compile(g, qwen3_tokens());
    std::string prefix = "\"";
    GrammarMatcher m(cg);
    ASSERT_TRUE(m.accept_bytes(prefix));
    for (int k = 0; k < 40; ++k) {
        (void)m.mask();
        ASSERT_TRUE(m.accept_bytes("a"));
        prefix += "a";
        if (k == 0 || k == 39) check_mask_after(cg, prefix);
    }
    EXPECT_LE(cg->build_stats().builds, 3u);
    check_mask_after(cg, "\"" + std::string(299, 'b'));  // one character left: long tokens no longer fit
}

// A cache's accepted tokens, found by position in the vocabulary's byte order, become ids where few are accepted
// (most nodes outside free text accept a handful), else a bit per token of the vocabulary; either way a mask
// gets exactly the accepted tokens (excluded tokens never).
TEST(GrammarMatcher, NodeCacheAcceptedSetsFromPositions) {
    const auto tokens = qwen3_tokens();
    const TokenOrder& order = *tokens->order;
    const size_t words = (static_cast<size_t>(tokens->size()) + 63) / 64, n_sorted = order.sorted.size();
    for (const size_t n_accepted : {size_t{0}, size_t{3}, size_t{500}, size_t{40000}, n_sorted - 100, n_sorted}) {
        std::vector<uint64_t> positions((n_sorted + 63) / 64, 0), expected(words, 0);
        std::vector<size_t> all(n_sorted);
        for (size_t p = 0; p < n_sorted; ++p) all[p] = p;
        std::shuffle(all.begin(), all.end(), std::mt19937(static_cast<unsigned>(n_accepted)));
        for (size_t k = 0; k < n_accepted; ++k) {
            const size_t p = all[k];
            positions[p >> 6] |= uint64_t{1} << (p & 63);
            const int32_t id = order.sorted[p];
            expected[static_cast<size_t>(id >> 6)] |= uint64_t{1} << (id & 63);
        }
        CompiledGrammar::NodeCache c;
        c.set_accepted(positions, n_accepted, order, tokens->size());
        EXPECT_EQ(c.accepted.empty(), n_accepted <= 500) << n_accepted;
        EXPECT_EQ(c.accepted_ids.size(), n_accepted <= 500 ? n_accepted : 0) << n_accepted;
        std::vector<uint64_t> mask(words, 0);
        mask[0] |= 1;  // bits already set stay set
        expected[0] |= 1;
        c.add_accepted(mask.data(), words);
        EXPECT_EQ(mask, expected) << n_accepted;
    }
}

TEST(GrammarMatcher, RandomGenerationAlwaysCompletesValidText) {
    const Grammar g = parse_gbnf(kJsonish);
    auto tokens = qwen3_tokens();
    auto cg = compile(g, tokens);
    Recognizer rec(g);
    std::mt19937 rng(11);
    int finished = 0;
    for (int run = 0; run < 20; ++run) {
        GrammarMatcher m(cg);
        std::string text;
        for (int step = 0; step < 60; ++step) {
            if (m.can_end() && (m.must_end() || rng() % 4 == 0)) break;
            const std::vector<uint64_t> mask = m.mask();
            std::vector<int32_t> allowed;
            for (int32_t t = 0; t < tokens->size(); ++t)
                if (bit(mask, t)) allowed.push_back(t);
            ASSERT_FALSE(allowed.empty());
            const int32_t pick = allowed[rng() % allowed.size()];
            ASSERT_TRUE(m.accept_token(pick));
            text += tokens->bytes[pick];
        }
        if (m.can_end()) {
            ++finished;
            EXPECT_TRUE(rec.matches(text)) << text;
        } else {
            EXPECT_TRUE(rec.is_prefix(text)) << text;
        }
    }
    EXPECT_GT(finished, 0);
}

TEST(GrammarMatcher, RollbackRestoresEarlierStates) {
    const Grammar g = parse_gbnf(R"G(root ::= "ab" ( "c" | "d" )+)G");
    auto cg = compile(g, table({"a", "b", "c", "d", "ab", "cd"}));
    GrammarMatcher m(cg);
    const std::vector<uint64_t> m0 = m.mask();
    ASSERT_TRUE(m.accept_token(4));
    const std::vector<uint64_t> m1 = m.mask();
    ASSERT_TRUE(m.accept_token(5));
    EXPECT_TRUE(m.can_end());
    EXPECT_FALSE(m.accept_token(0));  // rejected: the state is unchanged
    EXPECT_EQ(m.history_size(), 2);
    m.rollback(1);
    EXPECT_EQ(m.mask(), m1);
    EXPECT_FALSE(m.can_end());
    m.rollback(1);
    EXPECT_EQ(m.mask(), m0);
    EXPECT_THROW(m.rollback(1), Error);
}

TEST(GrammarMatcher, ApplyKeepsEndOfGenerationOnlyWhereTheGrammarMayEnd) {
    const Grammar g = parse_gbnf(R"G(root ::= "a"+)G");
    auto t = std::make_shared<TokenTable>();
    t->bytes = {"a", "b", "aa", ""};
    t->excluded = {0, 0, 0, 1};  // id 3: the end-of-generation token
    auto cg = compile(g, t);
    GrammarMatcher m(cg);
    std::vector<float> logits = {1, 2, 3, 4};
    ASSERT_TRUE(m.apply(logits.data(), 4, {3}));
    EXPECT_EQ(logits[0], 1);
    EXPECT_TRUE(std::isinf(logits[1]));
    EXPECT_EQ(logits[2], 3);
    EXPECT_TRUE(std::isinf(logits[3]));  // "" is not a sentence: no end yet
    ASSERT_TRUE(m.accept_token(0));
    logits = {1, 2, 3, 4};
    ASSERT_TRUE(m.apply(logits.data(), 4, {3}));
    EXPECT_EQ(logits[3], 4);
}

TEST(GrammarMatcher, RefusesRulesThatCanNeverFinish) {
    Grammar g;
    const int a = g.intern("root");
    g.root = a;
    g.rules[a].alternatives = {{Element::codepoint('x'), Element::ref(a)}};
    try {
        (void)compile(g, table({"x"}));
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("root"), std::string::npos) << e.what();
    }
}

// Nested loops ("a" followed by 24 "+": each byte may end or continue any of them) multiply the parse stacks
// with every byte. The walker refuses past its bounds with an error naming the cause, instead of eating memory
// without end, and stays consistent: shorter texts still run, on the same compiled grammar.
TEST(GrammarMatcher, RefusesGrammarsTooAmbiguousToRun) {
    const auto cg = compile(parse_gbnf("root ::= \"a\"" + std::string(24, '+') + " \"b\""), table({"a", "b", "aa"}));
    GrammarMatcher m(cg);
    try {
        for (int i = 0; i < 64; ++i) ASSERT_TRUE(m.accept_bytes("a"));
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("too ambiguous"), std::string::npos) << e.what();
    }
    GrammarMatcher short_text(cg);
    EXPECT_TRUE(short_text.accept_bytes("a"));
    EXPECT_TRUE(short_text.accept_bytes("b"));
    EXPECT_TRUE(short_text.can_end());
    EXPECT_FALSE(short_text.accept_bytes("a"));
}

}  // namespace
}  // namespace hearth::grammar
