// The grammar IR (normalize, complement, add_repeat, add_literal, validate, to_gbnf) and the GBNF parser, each
// checked by the language it accepts: the reference recognizer of tests/grammar_oracle.h decides, for concrete
// strings, whether a grammar matches them.
#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "grammar/gbnf.h"
#include "grammar/grammar.h"
#include "grammar_oracle.h"

namespace hearth::grammar {
namespace {

using testing::Recognizer;

void expect_language(const Grammar& g, const std::vector<std::string>& yes, const std::vector<std::string>& no) {
    Recognizer r(g);
    int wrong = 0;
    for (const std::string& s : yes)
        if (!r.matches(s)) ADD_FAILURE() << "should match: \"" << s << "\"" << (++wrong, "");
    for (const std::string& s : no)
        if (r.matches(s)) ADD_FAILURE() << "should not match: \"" << s << "\"" << (++wrong, "");
    if (wrong > 0) ADD_FAILURE() << "in the grammar:\n" << to_gbnf(g);
}

void expect_gbnf(std::string_view gbnf, const std::vector<std::string>& yes, const std::vector<std::string>& no) {
    SCOPED_TRACE(std::string(gbnf));
    expect_language(parse_gbnf(gbnf), yes, no);
}

// The message parse_gbnf throws for `gbnf` (a test failure when it throws none).
std::string gbnf_error(std::string_view gbnf) {
    try {
        parse_gbnf(gbnf);
    } catch (const Error& e) {
        return e.what();
    }
    ADD_FAILURE() << "no error for:\n" << gbnf;
    return "";
}

std::string validate_error(const Grammar& g) {
    try {
        g.validate();
    } catch (const Error& e) {
        return e.what();
    }
    ADD_FAILURE() << "validate() accepted:\n" << to_gbnf(g);
    return "";
}

#define EXPECT_CONTAINS(haystack, needle)                                                                    \
    do {                                                                                                     \
        const std::string h_ = (haystack);                                                                   \
        EXPECT_NE(h_.find(needle), std::string::npos) << "'" << h_ << "' does not contain '" << (needle) << "'"; \
    } while (0)

// Random strings over `alphabet` (whole UTF-8 pieces), lengths 0..max_len, plus the empty string.
std::vector<std::string> random_strings(const std::vector<std::string>& alphabet, int count, int max_len,
                                        uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<std::string> out{""};
    for (int i = 0; i < count; ++i) {
        const int len = static_cast<int>(rng() % static_cast<uint32_t>(max_len + 1));
        std::string s;
        for (int k = 0; k < len; ++k) s += alphabet[rng() % alphabet.size()];
        out.push_back(std::move(s));
    }
    return out;
}

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// Both grammars accept, and have as prefixes, the same strings among `samples`.
void expect_same_language(const Grammar& a, const Grammar& b, const std::vector<std::string>& samples) {
    Recognizer ra(a), rb(b);
    int matched = 0;
    for (const std::string& s : samples) {
        const bool m = ra.matches(s);
        matched += m;
        EXPECT_EQ(m, rb.matches(s)) << "\"" << s << "\"";
        EXPECT_EQ(ra.is_prefix(s), rb.is_prefix(s)) << "prefix \"" << s << "\"";
    }
    EXPECT_GT(matched, 0) << "the samples never exercise an accepting path";
}

// parse_gbnf(to_gbnf(g)) is g's language.
void expect_round_trip(const Grammar& g, const std::vector<std::string>& samples) {
    const std::string text = to_gbnf(g);
    SCOPED_TRACE(text);
    const Grammar back = parse_gbnf(text);
    expect_same_language(g, back, samples);
    // Printing again gives the same rules (parse_gbnf may number them in another order).
    EXPECT_EQ(back.rules.size(), g.rules.size());
}

// ---------------------------------------------------------------------------------------------------------------
// The IR.

TEST(GrammarIr, NormalizeSortsMergesAndCutsSurrogates) {
    EXPECT_EQ(normalize({{'x', 'z'}, {'a', 'c'}, {'d', 'f'}, {'b', 'b'}}),
              (std::vector<CharRange>{{'a', 'f'}, {'x', 'z'}}));
    EXPECT_EQ(normalize({{'a', 'm'}, {'c', 'z'}}), (std::vector<CharRange>{{'a', 'z'}}));
    EXPECT_EQ(normalize({{0xD000, 0xE100}}), (std::vector<CharRange>{{0xD000, 0xD7FF}, {0xE000, 0xE100}}));
    EXPECT_TRUE(normalize({{0xD800, 0xDFFF}}).empty());
    EXPECT_TRUE(normalize({}).empty());
    EXPECT_EQ(normalize({{kMaxCodePoint, kMaxCodePoint}}), (std::vector<CharRange>{{kMaxCodePoint, kMaxCodePoint}}));
}

TEST(GrammarIr, NormalizeRejectsBadRanges) {
    EXPECT_THROW(normalize({{'z', 'a'}}), Error);
    EXPECT_THROW(normalize({{'a', kMaxCodePoint + 1}}), Error);
    EXPECT_THROW(Element::chars({}), Error);
    EXPECT_THROW(Element::chars({{0xD800, 0xDBFF}}), Error);  // only surrogates: empty once cut
}

TEST(GrammarIr, Complement) {
    const std::vector<CharRange> all{{0, 0xD7FF}, {0xE000, kMaxCodePoint}};
    EXPECT_EQ(complement({}), all);
    EXPECT_TRUE(complement(all).empty());
    EXPECT_TRUE(complement({{0, kMaxCodePoint}}).empty());
    EXPECT_EQ(complement({{'a', 'z'}}),
              (std::vector<CharRange>{{0, 'a' - 1}, {'z' + 1, 0xD7FF}, {0xE000, kMaxCodePoint}}));
    EXPECT_EQ(complement({{0, 9}, {kMaxCodePoint, kMaxCodePoint}}),
              (std::vector<CharRange>{{10, 0xD7FF}, {0xE000, kMaxCodePoint - 1}}));
    const std::vector<CharRange> some{{'0', '9'}, {0xE9, 0xE9}, {0x1F600, 0x1F64F}};
    EXPECT_EQ(complement(complement(some)), some);
}

TEST(GrammarIr, AddLiteral) {
    Grammar g;
    g.root = g.add_literal("root", "a\"é日😀");
    EXPECT_EQ(g.rules[g.root].alternatives[0].size(), 5u);  // one element per code point
    expect_language(g, {"a\"é日😀"}, {"", "a", "a\"é日", "a\"é日😀!", "A\"é日😀"});
    Grammar e;
    e.root = e.add_literal("root", "");
    expect_language(e, {""}, {"a"});
    EXPECT_THROW(e.add_literal("bad", "\xC3"), Error);
    EXPECT_THROW(e.add_literal("bad", "\xED\xA0\x80"), Error);  // a surrogate
    EXPECT_THROW(e.add_literal("bad", "\xC0\x80"), Error);      // overlong
}

TEST(GrammarIr, AddRuleMakesFreshNames) {
    Grammar g;
    const int a = g.add_rule("x", {{}});
    const int b = g.add_rule("x", {{}});
    const int c = g.add_rule("x", {{}});
    EXPECT_EQ(g.rules[a].name, "x");
    EXPECT_EQ(g.rules[b].name, "x-1");
    EXPECT_EQ(g.rules[c].name, "x-2");
    EXPECT_EQ(g.find("x-1"), b);
    EXPECT_EQ(g.find("y"), -1);
    EXPECT_EQ(g.intern("x"), a);
    EXPECT_EQ(g.intern("y"), 3);
}

Grammar repeat_grammar(const Sequence& item, int min_count, int max_count) {
    Grammar g;
    g.root = g.add_repeat("root", item, min_count, max_count);
    g.validate();
    return g;
}

TEST(GrammarIr, AddRepeatBounded) {
    const Grammar g = repeat_grammar({Element::codepoint('a'), Element::codepoint('b')}, 2, 4);
    expect_language(g, {"abab", "ababab", "abababab"}, {"", "ab", "aba", "ababa", "ababababab", "ba"});
    expect_round_trip(g, random_strings({"a", "b"}, 300, 12, 1));
}

TEST(GrammarIr, AddRepeatUnbounded) {
    const Grammar star = repeat_grammar({Element::codepoint('a')}, 0, -1);
    expect_language(star, {"", "a", "aaaaaaaaaa"}, {"b", "ab"});
    const Grammar plus = repeat_grammar({Element::chars({{'0', '9'}})}, 1, -1);
    expect_language(plus, {"0", "123", "9999999"}, {"", "1a"});
    const Grammar three_up = repeat_grammar({Element::codepoint('x')}, 3, -1);
    expect_language(three_up, {"xxx", "xxxx", "xxxxxxxx"}, {"", "x", "xx"});
    expect_round_trip(three_up, random_strings({"x", "y"}, 200, 10, 2));
}

TEST(GrammarIr, AddRepeatZeroZeroAndExact) {
    const Grammar none = repeat_grammar({Element::codepoint('a')}, 0, 0);
    expect_language(none, {""}, {"a"});
    const Grammar three = repeat_grammar({Element::codepoint('a')}, 3, 3);
    expect_language(three, {"aaa"}, {"", "a", "aa", "aaaa"});
    const Grammar opt = repeat_grammar({Element::codepoint('a')}, 0, 1);
    expect_language(opt, {"", "a"}, {"aa"});
    expect_round_trip(three, random_strings({"a"}, 20, 6, 3));
}

TEST(GrammarIr, AddRepeatRejectsBadCounts) {
    Grammar g;
    EXPECT_THROW(g.add_repeat("r", {Element::codepoint('a')}, -1, 2), Error);
    EXPECT_THROW(g.add_repeat("r", {Element::codepoint('a')}, 3, 2), Error);
    EXPECT_THROW(g.add_repeat("r", {Element::codepoint('a')}, 100001, -1), Error);
    EXPECT_THROW(g.add_repeat("r", {Element::codepoint('a')}, 0, 100001), Error);
}

TEST(GrammarIr, ValidateErrors) {
    {
        Grammar g;
        g.add_literal("a", "x");
        EXPECT_CONTAINS(validate_error(g), "root");
    }
    {
        Grammar g;
        g.root = g.add_rule("root", {{Element::ref(1)}});
        g.intern("missing");
        EXPECT_CONTAINS(validate_error(g), "'missing'");
    }
    {
        Grammar g;
        g.root = g.add_rule("root", {{Element::ref(7)}});
        EXPECT_CONTAINS(validate_error(g), "'root'");
    }
    {
        Grammar g;
        Element empty;  // bypasses Element::chars' check
        g.root = g.add_rule("root", {{empty}});
        EXPECT_CONTAINS(validate_error(g), "empty character class");
    }
    {
        Grammar g;  // direct: root ::= root "a" | "b"
        g.root = g.add_rule("root", {{Element::ref(0), Element::codepoint('a')}, {Element::codepoint('b')}});
        EXPECT_CONTAINS(validate_error(g), "'root' is left-recursive");
    }
    {
        Grammar g;  // through a nullable prefix: root ::= e root "a" | "b"; e ::= ""
        g.root = g.add_rule("root", {{Element::ref(1), Element::ref(0), Element::codepoint('a')}, {}});
        g.add_rule("e", {{}});
        EXPECT_CONTAINS(validate_error(g), "left-recursive");
    }
    {
        Grammar g;  // indirect: root ::= a; a ::= root "x"
        g.root = g.add_rule("root", {{Element::ref(1)}});
        g.add_rule("a", {{Element::ref(0), Element::codepoint('x')}});
        EXPECT_CONTAINS(validate_error(g), "left-recursive");
    }
    {
        Grammar g;  // right recursion is fine: root ::= "a" root | ""
        g.root = g.add_rule("root", {{Element::codepoint('a'), Element::ref(0)}, {}});
        EXPECT_NO_THROW(g.validate());
    }
}

// to_gbnf must escape everything parse_gbnf treats specially, in literals and in classes.
TEST(GrammarIr, ToGbnfRoundTripsSpecialCharacters) {
    Grammar g;
    const int lit = g.add_literal("lit", "\"\\\n\r\t[]-^#|()*+?{}. é\x7F\u0085日😀");
    Sequence zero{Element::codepoint(0), Element::codepoint(0x1F)};
    const int ctl = g.add_rule("ctl", {zero});
    const int cls = g.add_rule(
        "cls", {{Element::chars({{']', ']'}, {'-', '-'}, {'^', '^'}, {'\\', '\\'}, {'[', '['}, {'"', '"'}})},
                {Element::chars({{0, 0x1F}, {0x80, 0x9F}, {0x10000, 0x10FFFF}})},
                {Element::chars(complement({{'a', 'z'}}))},
                {}});
    g.root = g.add_rule("root", {{Element::ref(lit)}, {Element::ref(ctl)}, {Element::ref(cls), Element::ref(cls)}});
    g.validate();
    expect_round_trip(g, {"\"\\\n\r\t[]-^#|()*+?{}. é\x7F\u0085日😀", std::string("\0\x1F", 2), "]-", "^\\", "[\"",
                          std::string("\0", 1), "\u0090", "😀😀", "A!", "aa", "a", "", "]", "\x7F", "\U0010FFFF"});
    const Grammar back = parse_gbnf(to_gbnf(g));
    expect_language(back, {"]]", "-^", "\\\"", "AB", "\U00010000", "]"}, {"ab", "a", "]a"});
}

TEST(GrammarIr, ToGbnfRoundTripsRandomStrings) {
    const Grammar g = parse_gbnf(R"g(
        root ::= (item ("," item)*)? ";"
        item ::= [a-c]+ | "\"" [^"\\]* "\"" | "(" root ")" | "é"{2,3}
    )g");
    expect_round_trip(g, random_strings({"a", "b", "d", ",", ";", "\"", "\\", "(", ")", "é"}, 2000, 10, 4));
}

// ---------------------------------------------------------------------------------------------------------------
// GBNF: what each construct accepts.

TEST(GbnfParse, Literals) {
    expect_gbnf(R"(root ::= "hello")", {"hello"}, {"", "hell", "hello!", "Hello"});
    expect_gbnf(R"(root ::= "a" "b" "c")", {"abc"}, {"ab", "a b c"});
    expect_gbnf(R"(root ::= "")", {""}, {"a"});
    expect_gbnf(R"(root ::= "a" "" "b")", {"ab"}, {"a"});
    expect_gbnf(R"(root ::= "# not a comment")", {"# not a comment"}, {""});
}

TEST(GbnfParse, Escapes) {
    expect_gbnf(R"(root ::= "\n\r\t\\\"\[\]\-\^")", {"\n\r\t\\\"[]-^"}, {"nrt"});
    expect_gbnf(R"(root ::= "\x41\x7a\u00E9\u65e5\U0001F600\x00")", {std::string("Az\u00e9\u65e5\U0001F600\0", 12)},
                {"Az"});
    expect_gbnf(R"(root ::= [\x30-\x39\]])", {"0", "9", "]"}, {"a", "\\"});
    expect_gbnf(R"(root ::= [\[\^\-\\])", {"[", "^", "-", "\\"}, {"a", "]"});
}

TEST(GbnfParse, MultiByteUtf8IsOneCodePointPerElement) {
    const Grammar g = parse_gbnf(R"(root ::= "é日本😀")");
    EXPECT_EQ(g.rules[g.root].alternatives.at(0).size(), 4u);
    expect_language(g, {"é日本😀"}, {"e日本😀", "é日本", "é日本😀😀"});
    expect_gbnf(R"(root ::= "日本"+)", {"日本", "日本日本"}, {"日", "日本日", ""});
    expect_gbnf("root ::= \"\U0001F600\"?", {"", "😀"}, {"😀😀"});
}

TEST(GbnfParse, Classes) {
    expect_gbnf("root ::= [a-z]", {"a", "m", "z"}, {"", "A", "aa", "0"});
    expect_gbnf("root ::= [a-zA-Z0-9_]", {"a", "Z", "5", "_"}, {"-", " "});
    expect_gbnf("root ::= [abc]", {"a", "b", "c"}, {"d"});
    expect_gbnf("root ::= [a-]", {"a", "-"}, {"b"});  // '-' before ']' is itself
    expect_gbnf("root ::= [-a]", {"a", "-"}, {"b"});
    expect_gbnf("root ::= [a^]", {"a", "^"}, {"b"});  // '^' only negates first
    expect_gbnf("root ::= [é日-本]", {"é", "日", "本", "昨"}, {"e", "人"});
    expect_gbnf("root ::= [α-ω]+", {"αβγ", "ω"}, {"a", "Α"});
    expect_gbnf("root ::= [\U0001F600-\U0001F64F]", {"😀", "🙏"}, {"🚀"});
    expect_gbnf("root ::= [[]", {"["}, {"]"});
}

TEST(GbnfParse, NegatedClasses) {
    expect_gbnf("root ::= [^a-z]", {"A", "0", "é", "😀", "\n"}, {"a", "z", "", "AB"});
    expect_gbnf("root ::= [^\"\\\\]*", {"", "abc", "日本"}, {"\"", "a\\"});
    expect_gbnf("root ::= [^é]", {"e", "日"}, {"é"});
    expect_gbnf("root ::= [^\U0001F600]", {"😁", "a"}, {"😀"});
    expect_gbnf("root ::= [^]", {"a", "😀"}, {"", "ab"});  // nothing excluded: any character
}

TEST(GbnfParse, AnyChar) {
    expect_gbnf("root ::= .", {"a", "é", "日", "😀", "\n", std::string("\0", 1), "\U0010FFFF"}, {"", "ab", "😀😀"});
    expect_gbnf(R"(root ::= "<" .* ">")", {"<>", "<a>", "<<>>", "<日本>"}, {"<", "a>"});
}

TEST(GbnfParse, AlternativesAndGroups) {
    expect_gbnf(R"(root ::= "a" | "b" | "cd")", {"a", "b", "cd"}, {"c", "ab", ""});
    expect_gbnf(R"(root ::= "x" ("a" | "b") "y")", {"xay", "xby"}, {"xy", "xaby"});
    expect_gbnf(R"(root ::= ("a" ("b" ("c" | "d")) | "e") "!")", {"abc!", "abd!", "e!"}, {"ab!", "e", "abce!"});
    expect_gbnf(R"(root ::= () "a" ( ) ("" | "b"))", {"a", "ab"}, {"b"});
    expect_gbnf(R"(root ::= | "a")", {"", "a"}, {"b"});
    expect_gbnf(R"(root ::= "a" | )", {"", "a"}, {"b"});
}

TEST(GbnfParse, RuleReferences) {
    expect_gbnf("root ::= greeting \" \" name\ngreeting ::= \"hi\" | \"hello\"\nname ::= [A-Z] [a-z]*",
                {"hi Bob", "hello X"}, {"hi bob", "hey Bob"});
    // Forward references, names with digits and dashes.
    expect_gbnf("root ::= a-1 b2\nb2 ::= \"2\"\na-1 ::= \"1\"", {"12"}, {"21"});
    // Right recursion.
    expect_gbnf(R"g(root ::= "(" root ")" | "")g", {"", "()", "((()))"}, {"(", "())"});
}

// A user rule named like the helpers the parser makes for groups and repetitions keeps its own meaning.
TEST(GbnfParse, UserRulesNamedLikeHelpers) {
    const Grammar g = parse_gbnf("root ::= (\"a\")* root-1 root-star root-opt\nroot-1 ::= \"1\"\n"
                                 "root-star ::= \"*\"\nroot-opt ::= \"?\" \"x\"?");
    expect_language(g, {"1*?", "aa1*?x"}, {"a", "1*", "1*?xx"});
    for (size_t i = 0; i < g.rules.size(); ++i)
        for (size_t j = i + 1; j < g.rules.size(); ++j) EXPECT_NE(g.rules[i].name, g.rules[j].name);
}

TEST(GbnfParse, Repetitions) {
    expect_gbnf(R"(root ::= "a"*)", {"", "a", "aaaa"}, {"b"});
    expect_gbnf(R"(root ::= "a"+)", {"a", "aaaa"}, {""});
    expect_gbnf(R"(root ::= "a"?)", {"", "a"}, {"aa"});
    expect_gbnf(R"(root ::= "a"{3})", {"aaa"}, {"aa", "aaaa"});
    expect_gbnf(R"(root ::= "a"{2,})", {"aa", "aaa", "aaaaaaa"}, {"", "a"});
    expect_gbnf(R"(root ::= "a"{1,3})", {"a", "aa", "aaa"}, {"", "aaaa"});
    expect_gbnf(R"(root ::= "a"{0,2} "b")", {"b", "ab", "aab"}, {"aaab"});
    expect_gbnf(R"(root ::= "a"{0,0} "b")", {"b"}, {"ab"});
    expect_gbnf(R"(root ::= "a"{0} "b")", {"b"}, {"ab"});
    expect_gbnf(R"(root ::= "a"{ 1 , 2 })", {"a", "aa"}, {"aaa"});
    expect_gbnf(R"(root ::= "a"{0,})", {"", "aaa"}, {"b"});
    // A postfix operator repeats the whole literal, group, class or rule before it.
    expect_gbnf(R"(root ::= "ab"{2})", {"abab"}, {"abb", "aabb"});
    expect_gbnf(R"(root ::= ("a" | "b")+)", {"a", "abba"}, {"", "c"});
    expect_gbnf(R"(root ::= [0-9]{2,3})", {"12", "123"}, {"1", "1234"});
    expect_gbnf("root ::= d{2}\nd ::= [0-9]", {"42"}, {"4"});
    expect_gbnf(R"(root ::= .{2})", {"ab", "日😀"}, {"a", "abc"});
    // Postfix operators stack: (x{2}){3}.
    expect_gbnf(R"(root ::= "x"{2}{3})", {"xxxxxx"}, {"xxxx", "xxxxxxx"});
    expect_gbnf(R"(root ::= "x"{2}?)", {"", "xx"}, {"x", "xxx"});
    expect_gbnf(R"(root ::= ("a" "b"?)+ "c")", {"ac", "abac", "aaabc"}, {"c", "bc"});
    expect_gbnf(R"(root ::= (("a"{2})* "b")+)", {"b", "aab", "baabb"}, {"ab", ""});
}

TEST(GbnfParse, LargeRepetitionsStayCheap) {
    const auto t0 = std::chrono::steady_clock::now();
    const Grammar bounded = parse_gbnf(R"(root ::= "x"{0,100000})");
    const Grammar exact = parse_gbnf(R"(root ::= "x"{100000})");
    const Grammar stacked = parse_gbnf(R"(root ::= "x"{99999}{9})");
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 20.0);
    expect_language(parse_gbnf(R"(root ::= "x"{0,1000})"), {"", "x", std::string(1000, 'x')},
                    {std::string(1001, 'x')});
    // root ::= helper, helper ::= "x" "x" ... (one element per copy).
    const Sequence& top = exact.rules[exact.root].alternatives.at(0);
    ASSERT_EQ(top.size(), 1u);
    EXPECT_EQ(exact.rules[top[0].rule].alternatives.at(0).size(), 100000u);
    EXPECT_GT(bounded.rules.size(), 100000u);
    EXPECT_EQ(stacked.rules.size(), 3u);
}

TEST(GbnfParse, CommentsAndLayout) {
    expect_gbnf("# leading comment\n\nroot ::= \"a\" # trailing comment\n  # another\n\n", {"a"}, {""});
    expect_gbnf("root ::= \"a\"#no space\n", {"a"}, {});
    expect_gbnf("root ::= [#] \"#\"", {"##"}, {"#"});
    expect_gbnf("root ::= \"a\"\r\nb ::= \"c\"\r\n", {"a"}, {});
    expect_gbnf("root ::= \"a\"", {"a"}, {});  // no newline at the end
    expect_gbnf("root\t::=\t\"a\"\t\"b\"", {"ab"}, {});
}

TEST(GbnfParse, MultiLineRules) {
    // After '::=', after '|', and anywhere inside a group, a rule goes on past newlines (and comments).
    expect_gbnf("root ::=\n  \"a\"", {"a"}, {""});
    expect_gbnf("root ::= \"a\" |\n  \"b\" |  # comment\n\n  \"c\"", {"a", "b", "c"}, {"d"});
    expect_gbnf("root ::= (\n  \"a\"\n  # inside\n  \"b\"\n  | \"c\"\n)+\nx ::= \"q\"", {"ab", "c", "abcab"},
                {"a", "q"});
    expect_gbnf("root ::= (\"a\"{\n2\n})", {"aa"}, {"a"});
}

// ---------------------------------------------------------------------------------------------------------------
// GBNF: errors, each naming the problem and where it is.

TEST(GbnfErrors, UnterminatedLiteralClassGroup) {
    std::string e = gbnf_error("root ::= \"abc");
    EXPECT_CONTAINS(e, "1:10");
    EXPECT_CONTAINS(e, "unterminated string literal");
    e = gbnf_error("root ::= \"abc\\");
    EXPECT_CONTAINS(e, "unterminated string literal");
    e = gbnf_error("root ::= \"a\"\nx ::= [a-z");
    EXPECT_CONTAINS(e, "2:7");
    EXPECT_CONTAINS(e, "unterminated character class");
    e = gbnf_error("root ::= [a-");
    EXPECT_CONTAINS(e, "unterminated character class");
    e = gbnf_error("root ::= [^");
    EXPECT_CONTAINS(e, "unterminated character class");
    e = gbnf_error("root ::= (\"a\" (\"b\")");
    EXPECT_CONTAINS(e, "1:10");
    EXPECT_CONTAINS(e, "unterminated group");
    e = gbnf_error("root ::= (\"a\" ::= )");
    EXPECT_CONTAINS(e, "expected ')'");
    e = gbnf_error("root ::= \"a\"{2");
    EXPECT_CONTAINS(e, "unterminated repetition");
    e = gbnf_error("root ::= \"a\"{2,x}");
    EXPECT_CONTAINS(e, "expected '}'");
    e = gbnf_error("root ::= \"a\"{,2}");
    EXPECT_CONTAINS(e, "expected a number");
}

TEST(GbnfErrors, Escapes) {
    std::string e = gbnf_error(R"(root ::= "a\qb")");
    EXPECT_CONTAINS(e, "1:12");
    EXPECT_CONTAINS(e, "unknown escape '\\q'");
    e = gbnf_error(R"(root ::= [\d])");
    EXPECT_CONTAINS(e, "unknown escape '\\d'");
    e = gbnf_error("root ::= \"\\\xC3\xA9\"");
    EXPECT_CONTAINS(e, "unknown escape");
    e = gbnf_error(R"(root ::= "\x4")");
    EXPECT_CONTAINS(e, "bad hex escape '\\x'");
    e = gbnf_error(R"(root ::= "\u12G4")");
    EXPECT_CONTAINS(e, "bad hex escape '\\u'");
    e = gbnf_error(R"(root ::= "\U0001F60")");
    EXPECT_CONTAINS(e, "1:11");
    EXPECT_CONTAINS(e, "bad hex escape '\\U'");
    e = gbnf_error(R"(root ::= "\U00110000")");
    EXPECT_CONTAINS(e, "past U+10FFFF");
    e = gbnf_error(R"(root ::= "\UFFFFFFFF")");
    EXPECT_CONTAINS(e, "past U+10FFFF");
    e = gbnf_error(R"(root ::= "\uD800")");
    EXPECT_CONTAINS(e, "surrogate");
    e = gbnf_error(R"(root ::= [\uDFFF-\uE000])");
    EXPECT_CONTAINS(e, "surrogate");
}

TEST(GbnfErrors, BadCharacters) {
    std::string e = gbnf_error("root ::= \"\xC3\"");
    EXPECT_CONTAINS(e, "invalid UTF-8");
    e = gbnf_error("root ::= [\xED\xA0\x80]");  // a UTF-8-encoded surrogate
    EXPECT_CONTAINS(e, "invalid UTF-8");
    e = gbnf_error("root ::= \"\xC0\xAF\"");  // overlong
    EXPECT_CONTAINS(e, "invalid UTF-8");
    e = gbnf_error("root ::= [z-a]");
    EXPECT_CONTAINS(e, "1:11");
    EXPECT_CONTAINS(e, "reversed");
    e = gbnf_error("root ::= [^\\x00-\\U0010FFFF]");
    EXPECT_CONTAINS(e, "1:10");
    EXPECT_CONTAINS(e, "matches no character");
    e = gbnf_error("root ::= []");
    EXPECT_CONTAINS(e, "matches no character");
}

TEST(GbnfErrors, Rules) {
    std::string e = gbnf_error("root ::= item \"x\"\n");
    EXPECT_CONTAINS(e, "'item'");
    EXPECT_CONTAINS(e, "1:10");
    EXPECT_CONTAINS(e, "never defined");
    e = gbnf_error("root ::= \"a\"\nx ::= \"b\"\nroot ::= \"c\"");
    EXPECT_CONTAINS(e, "'root' is defined twice");
    EXPECT_CONTAINS(e, "3:1");
    EXPECT_CONTAINS(e, "first at 1:1");
    e = gbnf_error("start ::= \"a\"");
    EXPECT_CONTAINS(e, "no 'root' rule");
    e = gbnf_error("");
    EXPECT_CONTAINS(e, "no 'root' rule");
    e = gbnf_error("# only a comment\n");
    EXPECT_CONTAINS(e, "no 'root' rule");
    e = gbnf_error("root = \"a\"");
    EXPECT_CONTAINS(e, "expected '::=' after the rule name 'root'");
    e = gbnf_error("root ::= \"a\"\n::= \"b\"");
    EXPECT_CONTAINS(e, "2:1");
    EXPECT_CONTAINS(e, "expected a rule name");
    e = gbnf_error("root_x ::= \"a\"");
    EXPECT_CONTAINS(e, "expected '::='");
}

TEST(GbnfErrors, NewlineEndsARule) {
    // An alternative on the next line needs the '|' before the newline (llama.cpp's rule).
    const std::string e = gbnf_error("root ::= \"a\"\n  | \"b\"");
    EXPECT_CONTAINS(e, "2:3");
    EXPECT_CONTAINS(e, "expected a rule name, found '|'");
}

TEST(GbnfErrors, TrailingGarbage) {
    std::string e = gbnf_error("root ::= \"a\" )");
    EXPECT_CONTAINS(e, "1:14");
    EXPECT_CONTAINS(e, "unexpected ')'");
    e = gbnf_error("root ::= \"a\" @");
    EXPECT_CONTAINS(e, "unexpected '@'");
    e = gbnf_error("root ::= \"a\" }");
    EXPECT_CONTAINS(e, "unexpected '}'");
    e = gbnf_error(std::string("root ::= \"a\" \0", 14));
    EXPECT_CONTAINS(e, "byte 0x00");
}

TEST(GbnfErrors, NothingToRepeat) {
    for (const char* text : {"root ::= *", "root ::= \"a\" | +", "root ::= \"\"*", "root ::= (?)", "root ::= {2}"}) {
        SCOPED_TRACE(text);
        EXPECT_CONTAINS(gbnf_error(text), "nothing before it to repeat");
    }
}

TEST(GbnfErrors, RepetitionBounds) {
    std::string e = gbnf_error(R"(root ::= "a"{100001})");
    EXPECT_CONTAINS(e, "1:14");
    EXPECT_CONTAINS(e, "over the limit of 100000");
    e = gbnf_error(R"(root ::= "a"{1,99999999999999999999999999})");
    EXPECT_CONTAINS(e, "over the limit");
    e = gbnf_error(R"(root ::= "a"{3,2})");
    EXPECT_CONTAINS(e, "maximum below its minimum");
    // Each count is within the limit, but the expansion is not.
    e = gbnf_error(R"(root ::= "0123456789"{100000})");
    EXPECT_CONTAINS(e, "too large");
    // Stacked repetitions repeat a reference to the rule below, so each level costs its count, not a product.
    EXPECT_NO_THROW(parse_gbnf(R"(root ::= ("x"{99999}){99999}{99999})"));
    std::string stacked = R"(root ::= "x")";
    for (int k = 0; k < 11; ++k) stacked += "{99999}";
    e = gbnf_error(stacked);
    EXPECT_CONTAINS(e, "too large");
    e = gbnf_error(R"(root ::= [acegikmoqsuwy]{100000})");  // a class counts once per range
    EXPECT_CONTAINS(e, "too large");
}

TEST(GbnfErrors, Nesting) {
    const auto nested = [](int depth) {
        return "root ::= " + std::string(depth, '(') + "\"a\"" + std::string(depth, ')');
    };
    expect_gbnf(nested(256), {"a"}, {"aa"});
    std::string e = gbnf_error(nested(257));
    EXPECT_CONTAINS(e, "nested deeper than 256");
    EXPECT_CONTAINS(e, "1:266");
    // Deep enough to overflow the stack of a parser that did not stop.
    e = gbnf_error("root ::= " + std::string(1000000, '('));
    EXPECT_CONTAINS(e, "nested deeper than 256");
}

TEST(GbnfErrors, LeftRecursion) {
    std::string e = gbnf_error("root ::= expr\nexpr ::= expr \"+\" num | num\nnum ::= [0-9]+");
    EXPECT_CONTAINS(e, "'expr' is left-recursive");
    EXPECT_CONTAINS(e, "2:1");
    e = gbnf_error("root ::= a \"x\"\na ::= b? root\nb ::= \"b\"");
    EXPECT_CONTAINS(e, "left-recursive");
    // A star over something that can be empty loops on the empty string.
    e = gbnf_error("root ::= \"a\" (\"b\"?)*");
    EXPECT_CONTAINS(e, "left-recursive");
    EXPECT_CONTAINS(e, "1:20");
    EXPECT_CONTAINS(e, "is this group or repetition");
}

// ---------------------------------------------------------------------------------------------------------------
// Grammars in the style of llama.cpp's grammars/ directory.

constexpr std::string_view kJsonGrammar = R"g(# JSON, as llama.cpp's json.gbnf writes it
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws

# Optional space: by convention, applied in this grammar after literal chars when allowed
ws ::= | " " | "\n" [ \t]{0,20}
)g";

constexpr std::string_view kArithmeticGrammar = R"g(root  ::= (expr "=" ws term "\n")+
expr  ::= term ([-+*/] term)*
term  ::= ident | num | "(" ws expr ")" ws
ident ::= [a-z] [a-z0-9_]* ws
num   ::= [0-9]+ ws
ws    ::= [ \t\n]*
)g";

constexpr std::string_view kListGrammar = R"g(root ::= item+

# Excludes various line break characters
item ::= "- " [^\r\n\x0b\x0c\x85\u2028\u2029]+ "\n"
)g";

TEST(GbnfGrammars, Json) {
    const Grammar g = parse_gbnf(kJsonGrammar);
    expect_language(g,
                    {"{}", "{ }", R"({"a":1})", R"({"a": [1, 2.5, -3e5, true, false, null]})",
                     R"({"k": {"nested": "v\n\"q\"\u00e9"}, "e": "日本😀"})", "{\n  \"a\": \"b\"\n}", R"({"x":[]} )",
                     R"({"n": -0.5E+7})"},
                    {"", "[]", "1", R"({"a"})", R"({"a":})", R"({"a":1,})", R"({'a':1})", R"({"a":"\x"})",
                     "{\"a\":\"\x01\"}", R"({"a":01})", R"({"a":tru})", "{}}", R"({"u":"\u12"})",
                     // llama.cpp's json.gbnf only takes [1-9] after an exponent's first digit.
                     R"({"a":1e10})"});
}

TEST(GbnfGrammars, Arithmetic) {
    const Grammar g = parse_gbnf(kArithmeticGrammar);
    expect_language(g, {"1+2=3\n", "x = 5\n", "a*(b+c)=d\ny=2\n", "(1 +2) *3 = n9_\n", "( x )=1\n"},
                    {"", "1+2=3", "1+=3\n", "=3\n", "X=1\n", "(1=2\n", "1=2+3\n"});
}

TEST(GbnfGrammars, List) {
    const Grammar g = parse_gbnf(kListGrammar);
    expect_language(g, {"- a\n", "- milk\n- eggs 日本\n", "- -\n"},
                    {"", "- \n", "-a\n", "- a", "- a\nb\n", "- a\u2028b\n", "- a\x0b\n", "- a\u0085\n"});
}

TEST(GbnfGrammars, RoundTripThroughToGbnf) {
    expect_round_trip(parse_gbnf(kJsonGrammar),
                      {"{}", R"({"a": [1, {"b": null}]})", R"({"a":"\u00e9"})", R"({"a":)", R"({"a":1,})", "[1]"});
    expect_round_trip(parse_gbnf(kArithmeticGrammar),
                      with({"1=1\n", "x+(y) = 2\n", "1=2\nx=y\n"},
                           random_strings({"1", "x", "+", "*", "(", ")", "=", " ", "\n"}, 1500, 9, 5)));
    expect_round_trip(parse_gbnf(kListGrammar),
                      with({"- a\n", "- a\n- -\n"}, random_strings({"- ", "a", "\n", "\u2028", "-"}, 1000, 8, 6)));
}

}  // namespace
}  // namespace hearth::grammar
