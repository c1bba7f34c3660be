// Regular expressions compiled to grammar rules (src/grammar/regex.h), checked with the reference recognizer
// (tests/grammar_oracle.h): realistic JSON Schema patterns against Python's `re` (Debian's /usr/bin/python3,
// run once with every case batched), the places where ECMA-262 and Python differ against fixed expectations,
// and every refused construct.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "grammar/regex.h"
#include "grammar_oracle.h"
#include "test_util.h"

namespace hearth::grammar {
namespace {

using testing::Recognizer;

Grammar search_grammar(std::string_view pattern) {
    Grammar g;
    g.root = add_regex(g, pattern, "root", RegexMatch::Search);
    return g;
}

bool whole_matches(std::string_view pattern, std::string_view text) {
    const Grammar g = regex_grammar(pattern);
    g.validate();
    return Recognizer(g).matches(text);
}

bool search_matches(std::string_view pattern, std::string_view text) {
    const Grammar g = search_grammar(pattern);
    g.validate();
    return Recognizer(g).matches(text);
}

// The message of the hearth::Error that compiling `pattern` throws ("" if it compiles).
std::string error_of(std::string_view pattern, RegexMatch mode = RegexMatch::Whole) {
    try {
        Grammar g;
        add_regex(g, pattern, "root", mode);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

std::string utf8(uint32_t cp) {
    std::string s;
    append_utf8(s, cp);
    return s;
}

size_t code_points(const std::string& s) {
    size_t n = 0;
    for (char c : s) n += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
    return n;
}

struct OracleCase {
    std::string pattern;
    std::vector<std::string> strings;  // the pattern's own candidates; generic ones and variants are added
};

// Patterns whose meaning is the same in ECMA-262 and in Python's `re` with re.ASCII (which makes \d and \w
// ASCII as in ECMA; \s then differs on non-ASCII spaces, so no candidate has one), and candidates that avoid
// the remaining differences: no \r, U+2028 or U+2029 (ECMA's '.' excludes them, Python's does not), and no
// text ending in \n (Python's $ also matches before a final newline).
std::vector<OracleCase> oracle_cases() {
    return {
        {R"(^[A-Z]{2,3}-\d{4}$)", {"AB-1234", "ABC-1234", "A-1234", "ABCD-1234", "AB-123", "ab-1234", "AB-12345"}},
        {R"(^(\([0-9]{3}\))?[0-9]{3}-[0-9]{4}$)", {"(555)123-4567", "123-4567", "(55)123-4567", "(555)1234567"}},
        {R"(^\+?[1-9]\d{1,14}$)", {"+14155552671", "14155552671", "+0123", "+1", "12", "1234567890123456"}},
        {R"(^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$)",
         {"john.doe@example.com", "a@b.co", "a@b.c", "@b.com", "a@.com", "a b@c.de", "x+y%z@h-1.org"}},
        {R"(^\d{4}-\d{2}-\d{2}$)", {"2024-01-31", "2024-1-31", "24-01-31", "2024-01-311", "2024/01/31"}},
        {R"(^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$)",
         {"2024-01-31", "2024-13-01", "2024-00-10", "2024-12-32", "2024-02-29", "2024-10-30"}},
        {R"(^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$)", {"#fff", "#FFFFFF", "#ffff", "#12345", "#12G", "fff", "#a1B2c3"}},
        {R"(^#?[0-9a-f]{6}$)", {"#a1b2c3", "a1b2c3", "#A1B2C3", "##a1b2c3", "a1b2c"}},
        {R"(^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))"
         R"((?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$)",
         {"1.2.3", "0.0.0", "01.2.3", "1.2", "1.2.3-alpha.1", "1.2.3-01", "1.2.3+build.5", "1.2.3-rc.1+b.2",
          "1.2.3-", "1.2.3-a..b", "10.20.30-0a.x-y"}},
        {R"(^[a-z0-9]+(?:-[a-z0-9]+)*$)", {"my-slug-2", "slug", "-slug", "slug-", "my--slug", "My-Slug"}},
        {R"(abc)", {"abc", "xxabcxx", "ab", "abxc", "ABC"}},
        {R"(^abc)", {"abc", "abcdef", "xabc"}},
        {R"(abc$)", {"abc", "xyzabc", "abcx"}},
        {R"(^a$|^b$)", {"a", "b", "ab", "ba", "aa", "xa"}},
        {R"(^cat|dog$)", {"cat", "catalog", "hotdog", "dogma", "a cat", "dog"}},
        {R"([\u00C0-\u024F]+)", {"é", "café", "Ωmega", "ž", "plain"}},
        {R"(^[\u4e00-\u9fff]{1,4}$)", {"日本", "日本語文字", "中", "日本x", "カタ"}},
        {R"(^[^\u0000-\u007F]+$)", {"日本", "é", "éa", "😀", "Ω😀"}},
        {R"(^(a|b)*c$)", {"c", "abababc", "abca", "ac", "bbbbc", "ab"}},
        {R"(^(a+)+$)", {"a", "aaaaaaaaaaaa", "aaaab", ""}},
        {R"(^(a*)*b$)", {"b", "aaab", "aaa", "ba"}},
        {R"(^(a?b?)*$)", {"", "abba", "aabbab", "abc", "c"}},
        {R"(^(?:a|)+x$)", {"x", "ax", "aaax", "bx", "a"}},
        {R"(^(?:(?:ab)*c?)+$)", {"", "ab", "abc", "cc", "abcabc", "aba", "ca"}},
        {R"(^a.*?b$)", {"ab", "axxb", "a\nb", "a", "ba", "a😀b"}},
        {R"(^a+?b{2,}?c??$)", {"abb", "aabbbc", "abc", "ab", "abbcc"}},
        {R"(^\{\d+\}$)", {"{12}", "{}", "{a}", "12"}},
        {R"(^a{b}$)", {"a{b}", "ab", "a{b"}},
        {R"(^x{1,a}$)", {"x{1,a}", "x", "xx"}},
        {R"(^a{$)", {"a{", "a", "a{{"}},
        {R"(^[a-c-e]+$)", {"abc", "a-e", "d", "e-", "b-c-"}},
        {R"(^[-a]+$)", {"-a-", "a", "b"}},
        {R"(^[a-]+$)", {"a-", "-", "ab"}},
        {R"(^[\w.-]+$)", {"file_name-1.txt", "a b", "é", "x.y"}},
        {R"(^\s*\S+\s*$)", {"  word  ", "word", "two words", "\tx\t", "   ", "\x0b\x0cx"}},
        {R"(^[^\s]+$)", {"abc", "a c", "a\tc", "é😀"}},
        {R"(^\W+$)", {"!@#", "a!", " ", "é", "_"}},
        {R"(^\D{2}$)", {"ab", "a1", "é!", "12"}},
        {R"(^(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d)?$)", {"23:59", "00:00:00", "24:00", "12:60", "12:30:5", "9:30"}},
        {R"(^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$)",
         {"192.168.0.1", "255.255.255.255", "256.1.1.1", "1.2.3", "01.2.3.4", "0.0.0.0", "1.2.3.4.5"}},
        {R"(^[A-Z][a-z]+(?: [A-Z][a-z]+)*$)", {"John Smith", "John", "john Smith", "John  Smith", "John S"}},
        {R"(^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$)",
         {"123e4567-e89b-12d3-a456-426614174000", "123e4567-e89b-62d3-a456-426614174000",
          "123e4567-e89b-12d3-c456-426614174000", "123e4567e89b12d3a456426614174000"}},
        {R"(^https?://[^\s/$.?#].[^\s]*$)", {"http://example.com", "https://a.b/c?d=e", "ftp://x.y", "http://",
                                             "http:// x", "https://.x"}},
        {R"(\d+)", {"abc123", "no digits", "٣", "1"}},
        {R"(^$)", {"", "a", " "}},
        {R"()", {"", "anything"}},
        {R"(^.{3,5}$)", {"abc", "abcdef", "ab", "a\nc", "😀😀😀", "ab😀de"}},
        {R"(^\$\d+(\.\d\d)?$)", {"$10", "$10.50", "$10.5", "10", "$", "$1.234"}},
        {R"(^a|b|c$)", {"a", "xb", "bx", "xc", "cx", "ax", "xa"}},
        {R"((?:foo|bar)baz)", {"foobaz", "xbarbazx", "baz", "fobaz"}},
        {R"(^(ab|a)(bc|c)?$)", {"ab", "abc", "abbc", "a", "ac", "abcc"}},
        {R"(^[\x41-\x5A]+$)", {"ABC", "abc", "AZ", "A1"}},
        {R"(^\t\n?x$)", {"\tx", "\t\nx", "x", "\t\n\nx"}},
        {"^[😀-😂]+$", {"😀", "😁😂", "😃", "😀x"}},
        {"^日本語?$", {"日本", "日本語", "日本語語", "日"}},
        {R"(^(?:\d{3}-){2}\d{4}$)", {"555-123-4567", "555-1234567", "55-123-4567"}},
        {R"(^a{3}$)", {"aaa", "aa", "aaaa"}},
        {R"(^a{2,}b{0}$)", {"aa", "aaaaa", "a", "aab"}},
        {R"(^a{0,2}$)", {"", "a", "aa", "aaa"}},
        {R"(^[0-9]{5}(?:-[0-9]{4})?$)", {"12345", "12345-6789", "1234", "12345-678"}},
        {R"(^[A-Za-z]{2}[0-9]{2}[A-Za-z0-9]{1,30}$)", {"DE89370400440532013000", "DE8", "D89370400", "de00x"}},
        {R"(^(\d+|[a-z]+)-(\d+|[a-z]+)$)", {"12-ab", "ab-12", "a1-b", "-", "x-y"}},
        {R"(colou?r)", {"color", "colour", "the colours", "colr"}},
        {R"(^\.\*\+\?\(\)\[\]\|\\\{\}\^\$$)", {R"(.*+?()[]|\{}^$)", "x", R"(.*+?()[]|\{}^)"}},
        {R"(^\/path\/\d+$)", {"/path/12", "/path/", "path/1"}},
        {R"(x*)", {"", "xxx", "abc"}},
        {R"(^(?:a{2}){2,3}$)", {"aaaa", "aaaaaa", "aaaaa", "aa", "aaaaaaaa"}},
        {R"(^[^a-z]*$)", {"ABC", "", "aBC", "123!"}},
        {R"(^\u00e9+$)", {"é", "éé", "e"}},
        {R"(^(?:(a)|b)+$)", {"abba", "", "abc"}},
        {R"(^[\d\s]+$)", {"1 2 3", "1\t2", "1a"}},
        {R"(^(?:[^"\\]|\\.)*$)", {R"(a\"b)", R"(a"b)", R"(a\\)", R"(a\)"}},
        {R"(^(a|ab)(c|bcd)(d*)$)", {"abcd", "abcdd", "acd", "abd"}},
        {R"(^a]b}$)", {"a]b}", "ab"}},
    };
}

// Shared candidates: empty, single characters of several scripts, near-misses of the patterns above.
const std::vector<std::string> kGeneric = {
    "", "a", "b", "abc", "123", "1234", "é", "日本", "😀", " ", "\t", "a b", "a\nb", "{", "AB-1234", "#fff", "1.2.3",
};

// The oracle: for each case, [fullmatch, search] per string, from Python's re (flags re.ASCII).
const char* kOracleScript = R"(import json, re, sys
out = []
for case in json.load(sys.stdin):
    r = re.compile(case["pattern"], re.ASCII)
    out.append([[r.fullmatch(s) is not None, r.search(s) is not None] for s in case["strings"]])
json.dump(out, sys.stdout)
)";

TEST(RegexOracle, MatchesPythonRe) {
    const std::vector<OracleCase> cases = oracle_cases();
    ASSERT_GE(cases.size(), 60u);
    nlohmann::json request = nlohmann::json::array();
    std::vector<std::vector<std::string>> strings;
    for (const OracleCase& c : cases) {
        std::vector<std::string> s = c.strings;
        // Variants that separate Search from Whole: a character around a match, a prefix of it.
        for (const std::string& x : c.strings) {
            s.push_back("x" + x);
            s.push_back(x + "!");
            if (!x.empty()) {
                size_t cut = x.size() - 1;
                while (cut > 0 && (static_cast<uint8_t>(x[cut]) & 0xC0) == 0x80) --cut;
                s.push_back(x.substr(0, cut));
            }
        }
        s.insert(s.end(), kGeneric.begin(), kGeneric.end());
        std::vector<std::string> kept;
        for (std::string& x : s)
            if (code_points(x) < 40 && (x.empty() || x.back() != '\n')) kept.push_back(std::move(x));
        request.push_back({{"pattern", c.pattern}, {"strings", kept}});
        strings.push_back(std::move(kept));
    }
    const std::string dir = test::tmp_dir();
    std::ofstream(dir + "/regex_oracle.py") << kOracleScript;
    std::ofstream(dir + "/regex_in.json", std::ios::binary) << request.dump();
    const test::RunResult r =
        test::run_command("/usr/bin/python3 '" + dir + "/regex_oracle.py' < '" + dir + "/regex_in.json'");
    ASSERT_EQ(r.code, 0) << r.err;
    const nlohmann::json verdicts = nlohmann::json::parse(r.out);
    ASSERT_EQ(verdicts.size(), cases.size());

    size_t checked = 0, whole_true = 0, search_true = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
        const std::string& p = cases[i].pattern;
        const Grammar whole = regex_grammar(p);
        const Grammar search = search_grammar(p);
        ASSERT_NO_THROW(whole.validate()) << p;
        ASSERT_NO_THROW(search.validate()) << p;
        Recognizer rw(whole), rs(search);
        for (size_t k = 0; k < strings[i].size(); ++k) {
            const std::string& s = strings[i][k];
            const bool want_whole = verdicts[i][k][0], want_search = verdicts[i][k][1];
            EXPECT_EQ(rw.matches(s), want_whole) << "Whole /" << p << "/ on \"" << s << "\"";
            EXPECT_EQ(rs.matches(s), want_search) << "Search /" << p << "/ on \"" << s << "\"";
            // Every prefix of a match is a viable prefix.
            if (want_whole) {
                for (size_t cut = 0; cut < s.size(); ++cut)
                    if ((static_cast<uint8_t>(s[cut]) & 0xC0) != 0x80) {
                        EXPECT_TRUE(rw.is_prefix(s.substr(0, cut))) << p << " on prefix of \"" << s << "\"";
                    }
            }
            ++checked;
            whole_true += want_whole;
            search_true += want_search;
        }
    }
    // The candidates must exercise both verdicts in both modes.
    EXPECT_GE(checked, 1800u);
    EXPECT_GE(whole_true, 200u);
    EXPECT_LE(whole_true, checked - 200);
    EXPECT_GE(search_true, 200u);
    EXPECT_LE(search_true, checked - 200);
}

TEST(RegexSemantics, DotExcludesEcmaLineTerminators) {
    for (uint32_t cp : {0x0Au, 0x0Du, 0x2028u, 0x2029u}) EXPECT_FALSE(whole_matches(".", utf8(cp))) << cp;
    for (uint32_t cp : {0x00u, 0x09u, 0x0Bu, 0x0Cu, 0x85u, 0xA0u, 0xFEFFu, 0x1F600u, 0x10FFFFu})
        EXPECT_TRUE(whole_matches(".", utf8(cp))) << cp;
    EXPECT_TRUE(whole_matches("[^]", "\n"));
    EXPECT_TRUE(whole_matches(R"([\s\S])", "\r"));
    // In Search mode the unanchored sides admit any character, line terminators included.
    EXPECT_TRUE(search_matches("b", "a\r\nb\u2028"));
    EXPECT_FALSE(search_matches("a.b", "a\rb"));
}

TEST(RegexSemantics, ClassEscapesAreEcmas) {
    const std::vector<uint32_t> spaces = {0x09,   0x0A,   0x0B,   0x0C,   0x0D,   0x20,   0xA0,   0x1680,
                                          0x2000, 0x2005, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF};
    for (uint32_t cp : spaces) {
        EXPECT_TRUE(whole_matches(R"(\s)", utf8(cp))) << cp;
        EXPECT_FALSE(whole_matches(R"(\S)", utf8(cp))) << cp;
        EXPECT_TRUE(whole_matches(R"([\s])", utf8(cp))) << cp;
        EXPECT_FALSE(whole_matches(R"([^\s])", utf8(cp))) << cp;
    }
    // Unicode White_Space members that ECMA leaves out, and neighbours of the ranges.
    for (uint32_t cp : {0x1Cu, 0x1Fu, 0x85u, 0x180Eu, 0x200Bu, 0x1FFFu, 0x08u, 0x0Eu}) {
        EXPECT_FALSE(whole_matches(R"(\s)", utf8(cp))) << cp;
        EXPECT_TRUE(whole_matches(R"(\S)", utf8(cp))) << cp;
    }
    // \d and \w are ASCII: no Arabic-Indic or fullwidth digits, no letters with accents.
    EXPECT_TRUE(whole_matches(R"(\d+)", "0123456789"));
    EXPECT_FALSE(whole_matches(R"(\d)", "\u0663"));
    EXPECT_FALSE(whole_matches(R"(\d)", "\uFF11"));
    EXPECT_TRUE(whole_matches(R"(\D)", "\u0663"));
    EXPECT_TRUE(whole_matches(R"(\w+)", "azAZ09_"));
    EXPECT_FALSE(whole_matches(R"(\w)", "é"));
    EXPECT_FALSE(whole_matches(R"(\w)", "-"));
    EXPECT_TRUE(whole_matches(R"(\W)", "é"));
    EXPECT_TRUE(whole_matches(R"([\W\d]+)", "é5-"));
    EXPECT_FALSE(whole_matches(R"([^\W\d])", "5"));
    EXPECT_TRUE(whole_matches(R"([^\W\d])", "_"));
}

TEST(RegexSemantics, Escapes) {
    EXPECT_TRUE(whole_matches(R"(\x41\u0042\u{43}\u{1F600})", "ABC😀"));
    EXPECT_TRUE(whole_matches(R"(\uD83D\uDE00)", "😀"));     // a surrogate pair is one code point
    EXPECT_TRUE(whole_matches(R"([\uD83D\uDE00-\uD83D\uDE02])", "😁"));
    EXPECT_TRUE(whole_matches(R"(\cJ\cm\t\v\f\0)", std::string("\n\r\t\v\f\0", 6)));
    EXPECT_TRUE(whole_matches(R"([\b])", "\b"));
    EXPECT_TRUE(whole_matches(R"(\/\-\.\,\ \"\'\@\#\%\&\~\`\<\>\=\!\:\;\_)", "/-., \"'@#%&~`<>=!:;_"));
    EXPECT_TRUE(whole_matches(R"([\]\\\-\^\[]+)", "]\\-^["));
    EXPECT_TRUE(whole_matches(R"(\é)", "é"));
    EXPECT_TRUE(whole_matches(R"([\d-])", "-"));       // a class escape then a dash before ']': a literal dash
    EXPECT_TRUE(whole_matches(R"([--/]+)", "-./"));    // the range '-'..'/'
}

TEST(RegexSemantics, AnnexBBracesAndBrackets) {
    // A brace that does not start a quantifier is a literal; {,5} is not a quantifier in ECMA (it is in Python).
    EXPECT_TRUE(whole_matches("a{,5}", "a{,5}"));
    EXPECT_FALSE(whole_matches("a{,5}", "aaa"));
    EXPECT_TRUE(whole_matches("{", "{"));
    EXPECT_TRUE(whole_matches("a{1", "a{1"));
    EXPECT_TRUE(whole_matches("a{1,", "a{1,"));
    EXPECT_TRUE(whole_matches("a{1,2", "a{1,2"));
    EXPECT_TRUE(whole_matches("}", "}"));
    EXPECT_TRUE(whole_matches("]", "]"));
    EXPECT_TRUE(whole_matches(R"(\{"a":\d+})", R"({"a":12})"));
    EXPECT_TRUE(whole_matches("x{1}{", "x{"));
}

TEST(RegexSemantics, GroupsAndQuantifiers) {
    EXPECT_TRUE(whole_matches(R"((?<year>\d{4})-(?<month>\d{2}))", "2024-07"));
    EXPECT_TRUE(whole_matches("(?<$n_1é>a)", "a"));
    EXPECT_TRUE(whole_matches("a{2}?", "aa"));
    EXPECT_TRUE(whole_matches("a{2,}?", "aaa"));
    EXPECT_TRUE(whole_matches("a{1,3}?b+?", "aab"));
    EXPECT_TRUE(whole_matches("a{0}", ""));
    EXPECT_FALSE(whole_matches("a{0}", "a"));
    EXPECT_TRUE(whole_matches("(a{0}){3}", ""));
    EXPECT_TRUE(whole_matches("()*", ""));
    EXPECT_TRUE(whole_matches("(|a)+", "aaa"));
    EXPECT_TRUE(whole_matches("(?:)+(?:a?)*(?:a*b?)*", "abab"));
    EXPECT_TRUE(whole_matches("((a?)?)*", "aa"));
    EXPECT_TRUE(whole_matches("(a?b?c?){2}", "cb"));
    EXPECT_FALSE(whole_matches("(a?b?c?){2}", "cbb"));
    EXPECT_TRUE(whole_matches("(a?){3,}", ""));
    EXPECT_TRUE(whole_matches("(a?){3,}", "aaaaa"));
    EXPECT_TRUE(whole_matches("(?:(?:a*)*)+", "aaa"));
    EXPECT_FALSE(whole_matches("(?:(?:a*)*)+", "b"));
}

TEST(RegexSemantics, AnchorsPerMode) {
    EXPECT_TRUE(search_matches("^abc", "abcxyz"));
    EXPECT_FALSE(search_matches("^abc", "xabc"));
    EXPECT_TRUE(search_matches("abc$", "xyzabc"));
    EXPECT_FALSE(search_matches("abc$", "abcx"));
    EXPECT_TRUE(search_matches("^abc$", "abc"));
    EXPECT_FALSE(search_matches("^abc$", "abc "));
    EXPECT_TRUE(search_matches("abc", "--abc--"));
    EXPECT_TRUE(search_matches("^$", ""));
    EXPECT_FALSE(search_matches("^$", "x"));
    EXPECT_TRUE(search_matches("^", "anything"));
    EXPECT_TRUE(search_matches("^a$|b", "xbx"));
    EXPECT_FALSE(search_matches("^a$|b", "xax"));
    // In Whole mode the anchors are redundant.
    for (const char* p : {"abc", "^abc", "abc$", "^abc$"}) {
        EXPECT_TRUE(whole_matches(p, "abc")) << p;
        EXPECT_FALSE(whole_matches(p, "abcd")) << p;
        EXPECT_FALSE(whole_matches(p, "xabc")) << p;
    }
    EXPECT_TRUE(whole_matches("^a$|^b$", "b"));
    // Escaped anchors are literals.
    EXPECT_TRUE(search_matches(R"(\^a\$)", "x^a$x"));
}

TEST(RegexGrammar, RulesAreNamedAndGrammarIsComplete) {
    Grammar g;
    const int a = add_regex(g, "[a-z]+(-[a-z]+)*", "slug", RegexMatch::Whole);
    const int b = add_regex(g, "x{2,5}|y*", "slug", RegexMatch::Search);
    EXPECT_EQ(g.rules[a].name, "slug");
    EXPECT_EQ(g.rules[b].name, "slug-1");
    for (const Rule& r : g.rules) EXPECT_EQ(r.name.rfind("slug", 0), 0u) << r.name;
    g.root = a;
    EXPECT_NO_THROW(g.validate());
    Recognizer rec(g);
    EXPECT_TRUE(rec.matches("ab-cd", a));
    EXPECT_TRUE(rec.matches("--xxx--", b));
    EXPECT_TRUE(rec.is_prefix("ab-"));
    EXPECT_FALSE(rec.is_prefix("ab--"));
    const std::string text = to_gbnf(g);
    EXPECT_EQ(text.rfind("slug ::=", 0), 0u) << text;

    // A refused pattern leaves the grammar as it was.
    const size_t before = g.rules.size();
    EXPECT_THROW(add_regex(g, "abc(", "bad", RegexMatch::Whole), Error);
    EXPECT_EQ(g.rules.size(), before);
}

TEST(RegexGrammar, LargeCountsAreFast) {
    const auto t0 = std::chrono::steady_clock::now();
    const Grammar g = regex_grammar(R"(^[\s\S]{0,100000}$)");
    EXPECT_NO_THROW(g.validate());
    const Grammar h = regex_grammar(R"((ab){50000,}c{99999,100000})");
    EXPECT_NO_THROW(h.validate());
    const Grammar k = regex_grammar(R"((x{0,499}){0,999})");  // just under the unrolled-size cap
    EXPECT_NO_THROW(k.validate());
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
    // The recognizer recurses once per optional tail: check a smaller one.
    const Grammar small = regex_grammar("a{2,300}");
    Recognizer rec(small);
    EXPECT_FALSE(rec.matches("a"));
    EXPECT_TRUE(rec.matches(std::string(2, 'a')));
    EXPECT_TRUE(rec.matches(std::string(300, 'a')));
    EXPECT_FALSE(rec.matches(std::string(301, 'a')));
}

struct ErrorCase {
    std::string pattern;
    std::vector<std::string> words;  // each must occur in the message
};

TEST(RegexErrors, RefusedConstructsNameThemselvesAndTheirOffset) {
    const std::vector<ErrorCase> cases = {
        {R"((a)\1)", {"backreference \\1", "offset 3"}},
        {R"((?<n>a)\k<n>)", {"backreference \\k", "offset 7"}},
        {"a(?=b)", {"lookahead (?=", "offset 1"}},
        {"a(?!b)", {"lookahead (?!", "offset 1"}},
        {"(?<=a)b", {"lookbehind (?<=", "offset 0"}},
        {"(?<!a)b", {"lookbehind (?<!", "offset 0"}},
        {R"(\bword)", {"word boundary \\b", "offset 0"}},
        {R"(a\B)", {"word boundary \\B", "offset 1"}},
        {R"(\p{L}+)", {"unicode property escape \\p", "offset 0"}},
        {R"(x[\P{L}])", {"unicode property escape \\P", "offset 2"}},
        {"*a", {"quantifier '*'", "nothing to repeat", "offset 0"}},
        {"a|+", {"quantifier '+'", "nothing to repeat", "offset 2"}},
        {"(?)", {"group syntax '(?)'", "offset 0"}},
        {"(?i)abc", {"group syntax '(?i'", "offset 0"}},
        {"(?P<n>a)", {"group syntax '(?P'", "offset 0"}},
        {"(?<1>a)", {"group name", "offset 0"}},
        {"a**", {"nothing to repeat", "offset 2"}},
        {"a*??", {"nothing to repeat", "offset 3"}},
        {"a*+", {"nothing to repeat", "offset 2"}},
        {"{2}", {"quantifier '{'", "nothing to repeat", "offset 0"}},
        {"a{2}{3}", {"nothing to repeat", "offset 4"}},
        {"^*", {"nothing to repeat", "offset 1"}},
        {"(a", {"group opened at offset 0 is never closed"}},
        {"((a)", {"group opened at offset 0 is never closed"}},
        {"a)", {"unmatched ')'", "offset 1"}},
        {"(a))", {"unmatched ')'", "offset 3"}},
        {"[abc", {"class opened at offset 0 is never closed"}},
        {"x[a-", {"class opened at offset 1 is never closed"}},
        {"[]", {"empty character class", "offset 0"}},
        {"[]a]", {"empty character class", "offset 0"}},
        {"a[b-a]", {"out of order", "offset 2"}},
        {R"([\d-z])", {"range", "class escape", "offset 3"}},
        {R"([a-\w])", {"range", "class escape", "offset 2"}},
        {R"([^\s\S])", {"matches no character", "offset 0"}},
        {R"(\q)", {"unknown escape \\q", "offset 0"}},
        {R"(ab\z)", {"unknown escape \\z", "offset 2"}},
        {R"([\B])", {"unknown escape \\B", "offset 1"}},
        {R"(\x4g)", {"bad escape \\x", "offset 0"}},
        {R"(\u12)", {"bad escape \\u", "offset 0"}},
        {R"(\u{})", {"bad escape \\u{", "offset 0"}},
        {R"(\u{110000})", {"past U+10FFFF", "offset 0"}},
        {R"(\uD800)", {"lone surrogate U+D800", "offset 0"}},
        {R"(\c1)", {"bad escape \\c", "offset 0"}},
        {R"(\01)", {"octal escape", "offset 0"}},
        {R"([\1])", {"octal escape", "offset 1"}},
        {"abc\\", {"lone backslash", "offset 3"}},
        {"a^b", {"'^' at offset 1"}},
        {"(^a)", {"'^' at offset 1"}},
        {"a$b", {"'$' at offset 1"}},
        {"(a$)", {"'$' at offset 2"}},
        {"a$$", {"'$' at offset 1"}},
        {"^^a", {"'^' at offset 1"}},
        {std::string(257, '(') + std::string(257, ')'), {"nested more than 256", "offset 256"}},
        {"a{100001}", {"repetition count 100001", "offset 1", "limit of 100000"}},
        {"a{1,100001}", {"repetition count 100001", "offset 1"}},
        {"a{99999999999999999999}", {"repetition count", "offset 1"}},
        {"a{3,2}", {"{3,2}", "max below min", "offset 1"}},
        {"(a{1000}){1000}", {"too large", "offset 9"}},
        {"(?:(?:(?:a{100}){100}){100}){100}", {"too large"}},
        {"x\xff", {"not valid UTF-8", "offset 1"}},
        {"x\xc3", {"not valid UTF-8", "offset 1"}},
        {"\xed\xa0\x80", {"not valid UTF-8", "offset 0"}},  // an encoded surrogate
    };
    for (const ErrorCase& c : cases)
        for (RegexMatch mode : {RegexMatch::Whole, RegexMatch::Search}) {
            const std::string msg = error_of(c.pattern, mode);
            EXPECT_FALSE(msg.empty()) << "compiled: " << c.pattern;
            for (const std::string& w : c.words) EXPECT_NE(msg.find(w), std::string::npos) << c.pattern << ": " << msg;
        }
    // 256 levels are still fine.
    EXPECT_EQ(error_of(std::string(256, '(') + "a" + std::string(256, ')')), "");
}

}  // namespace
}  // namespace hearth::grammar
