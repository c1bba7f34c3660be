// The Jinja2 interpreter (src/chat/jinja.h): language features against fixed expected strings, and every
// chat template in ../shared/templates rendered over a matrix of conversations, compared byte for byte with
// Debian's python3-jinja2 in transformers' environment (tests/oracle/render_template.py, run once per test
// run with all cases batched).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "chat/chat_template.h"
#include "chat/jinja.h"
#include "test_util.h"

namespace hearth {
namespace {

using ojson = nlohmann::ordered_json;

// The oracle's fixed clock: 2024-07-26 10:30:00 (a Friday).
std::tm fixed_now() {
    std::tm tm{};
    tm.tm_year = 2024 - 1900;
    tm.tm_mon = 6;
    tm.tm_mday = 26;
    tm.tm_hour = 10;
    tm.tm_min = 30;
    tm.tm_wday = 5;
    tm.tm_yday = 207;
    return tm;
}

std::string render(const std::string& src, const ojson& ctx = ojson::object()) {
    return jinja::Template(src).render(ctx, {}, fixed_now);
}

std::string render_error(const std::string& src, const ojson& ctx = ojson::object()) {
    try {
        render(src, ctx);
    } catch (const Error& e) {
        return e.what();
    }
    return "<no error>";
}

// ---------------------------------------------------------------- unit tests

TEST(JinjaLanguage, TextAndComments) {
    EXPECT_EQ(render("a{# c #}b"), "ab");
    EXPECT_EQ(render("{{ 'x' }}\n"), "x");  // one trailing newline dropped
    EXPECT_EQ(render("{{ 'x' }}\n\n"), "x\n");
    EXPECT_EQ(render("a\r\nb"), "a\nb");
}

TEST(JinjaLanguage, WhitespaceControl) {
    EXPECT_EQ(render("a  {{- 'b' -}}  c"), "abc");
    // trim_blocks removes the newline after a block tag, lstrip_blocks the indentation before it
    EXPECT_EQ(render("{% if true %}\n  x\n    {% endif %}\ny"), "  x\ny");
    EXPECT_EQ(render("  {{ 'v' }}\n"), "  v");
    EXPECT_EQ(render("a\n  {%+ if true %}b{% endif %}"), "a\n  b");
    EXPECT_EQ(render("{% if true +%}\nb{% endif %}"), "\nb");
    EXPECT_EQ(render("x {# c #}\ny"), "x y");
    EXPECT_EQ(render("x\n  {# c #}\ny"), "x\ny");
}

TEST(JinjaLanguage, Literals) {
    EXPECT_EQ(render("{{ 1 }} {{ 1.5 }} {{ 1e3 }} {{ 'a' \"b\" }} {{ true }} {{ none }} {{ 1_000 }}"),
              "1 1.5 1000.0 ab True None 1000");
    EXPECT_EQ(render("{{ [1, 'a', none, true, 2.0] }}"), "[1, 'a', None, True, 2.0]");
    EXPECT_EQ(render("{{ {'a': 1, 'b': [1, 2]} }}"), "{'a': 1, 'b': [1, 2]}");
    EXPECT_EQ(render("{{ (1,) }} {{ (1, 2) }} {{ () }}"), "(1,) (1, 2) ()");
    EXPECT_EQ(render("{{ \"it's\" }}|{{ [\"it's\", 'a\\nb'] }}"), "it's|[\"it's\", 'a\\nb']");
    EXPECT_EQ(render("{{ '\\u00e9\\x41\\t' }}"), "\xc3\xa9" "A\t");
}

TEST(JinjaLanguage, Arithmetic) {
    EXPECT_EQ(render("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 7 / 2 }} {{ 1 + 2 * 3 }}"),
              "3 -4 1 2 1024 3.5 7");
    EXPECT_EQ(render("{{ 'a' ~ 1 ~ none }} {{ 'ab' * 2 }} {{ [1] + [2] }} {{ 0.1 + 0.2 }}"),
              "a1None abab [1, 2] 0.30000000000000004");
    EXPECT_EQ(render("{{ -(3) }} {{ 1e20 }} {{ 1.5e-7 }} {{ 10 / 4 }}"), "-3 1e+20 1.5e-07 2.5");
}

TEST(JinjaLanguage, ComparisonsAndLogic) {
    EXPECT_EQ(render("{{ 1 < 2 < 3 }} {{ 1 == 1.0 }} {{ 'a' in 'cat' }} {{ 2 not in [1] }} {{ 'k' in {'k': 1} }}"),
              "True True True True True");
    EXPECT_EQ(render("{{ 0 or 'x' }} {{ 1 and 'y' }} {{ not [] }} {{ none or [] }}"), "x y True []");
    EXPECT_EQ(render("{{ 'a' if false else 'b' }}{{ 'c' if false }}"), "b");
}

TEST(JinjaLanguage, AccessAndSlicing) {
    ojson ctx = {{"m", {{"role", "user"}, {"content", "héllo"}}}, {"l", {1, 2, 3, 4, 5}}};
    EXPECT_EQ(render("{{ m.role }} {{ m['content'] }} {{ l[-1] }} {{ l.0 }}", ctx), "user héllo 5 1");
    EXPECT_EQ(render("{{ l[1:3] }} {{ l[::-1] }} {{ l[::2] }} {{ m.content[1:3] }} {{ m.content[::-1] }}", ctx),
              "[2, 3] [5, 4, 3, 2, 1] [1, 3, 5] él olléh");
    EXPECT_EQ(render("{{ m.missing }}|{{ m.missing is defined }}|{{ l[10] is defined }}", ctx), "|False|False");
}

TEST(JinjaLanguage, Undefined) {
    EXPECT_EQ(render("[{{ x }}]{{ x is defined }}{{ x | length }}{% for a in x %}no{% endfor %}"), "[]False0");
    EXPECT_EQ(render_error("{{ x.y }}"), "'x' is undefined");
    EXPECT_EQ(render_error("{{ m.a.b }}", {{"m", ojson::object()}}), "'dict object' has no attribute 'a'");
    EXPECT_EQ(render_error("{{ x + 1 }}"), "'x' is undefined");
    EXPECT_EQ(render_error("{{ l[3].a }}", {{"l", {1}}}), "list object has no element 3");
}

TEST(JinjaLanguage, IfAndFor) {
    EXPECT_EQ(render("{% if 0 %}a{% elif 1 %}b{% else %}c{% endif %}"), "b");
    EXPECT_EQ(render("{% for x in [1,2,3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}"
                     "{{ loop.length }}{{ loop.revindex }};{% endfor %}"),
              "10TrueFalse33;21FalseFalse32;32FalseTrue31;");
    EXPECT_EQ(render("{% for x in [1,2,3] %}{{ loop.previtem | default('-') }}{{ loop.nextitem | default('-') }} {% endfor %}"),
              "-2 13 2- ");
    EXPECT_EQ(render("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty");
    EXPECT_EQ(render("{% for x in range(10) if x % 3 == 0 %}{{ x }}{{ loop.length }} {% endfor %}"), "04 34 64 94 ");
    EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }} {% endfor %}"), "a=1 b=2 ");
    EXPECT_EQ(render("{% for x in range(5) %}{% if x == 3 %}{% break %}{% endif %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}"),
              "02");
    EXPECT_EQ(render("{% for x in 'ab' %}{{ loop.cycle('o', 'e') }}{{ x }}{% endfor %}"), "oaeb");
}

TEST(JinjaLanguage, SetAndScoping) {
    EXPECT_EQ(render("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}"), "21");
    EXPECT_EQ(render("{% set ns = namespace(x=1) %}{% for i in [1, 2] %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}"),
              "4");
    EXPECT_EQ(render("{% set a, b = [1, 2] %}{{ b }}{{ a }}"), "21");
    EXPECT_EQ(render("{% set t %}  in {{ 1 }} {% endset %}[{{ t }}]{% set u | trim %} x {% endset %}[{{ u }}]"),
              "[  in 1 ][x]");
}

TEST(JinjaLanguage, Macros) {
    EXPECT_EQ(render("{% macro f(a, b='B') %}{{ a }}-{{ b }}{% endmacro %}{{ f(1) }} {{ f(1, 2) }} {{ f(b=3, a=4) }}"),
              "1-B 1-2 4-3");
    EXPECT_EQ(render("{% macro w() %}<{{ caller() }}>{% endmacro %}{% call w() %}in{% endcall %}"), "<in>");
    EXPECT_EQ(render("{% set g = 'G' %}{% macro f() %}{{ g }}{% endmacro %}{{ f() }}"), "G");
    EXPECT_EQ(render("{% filter upper %}abc{% endfilter %}"), "ABC");
}

TEST(JinjaLanguage, StringMethods) {
    EXPECT_EQ(render("{{ ' a b '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ ' a'.lstrip() }}|{{ 'a '.rstrip() }}"),
              "a b|a|a|a");
    EXPECT_EQ(render("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }}"),
              "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b c']");
    EXPECT_EQ(render("{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'aXa'.replace('a', 'b') }}"),
              "True True bXb");
    EXPECT_EQ(render("{{ 'hello world'.title() }} {{ 'hELLO'.capitalize() }} {{ 'Ab'.upper() }}{{ 'Ab'.lower() }}"),
              "Hello World Hello ABab");
    EXPECT_EQ(render("{{ '-'.join(['a', 'b']) }} {{ {'a': 1}.get('a') }} {{ {'a': 1}.get('b', 2) }} {{ {'a': 1}.keys() | list }}"),
              "a-b 1 2 ['a']");
}

TEST(JinjaLanguage, Filters) {
    ojson ctx = {{"tools", {{{"name", "a"}, {"type", "function"}}, {{"name", "b"}, {"type", "x"}}}}};
    EXPECT_EQ(render("{{ '  x ' | trim }}|{{ [1, 2] | length }}|{{ 'abc' | count }}|{{ [3, 1] | first }}{{ [3, 1] | last }}"),
              "x|2|3|31");
    EXPECT_EQ(render("{{ tools | map(attribute='name') | join(', ') }}", ctx), "a, b");
    EXPECT_EQ(render("{{ tools | selectattr('type', 'equalto', 'function') | map(attribute='name') | list }}", ctx),
              "['a']");
    EXPECT_EQ(render("{{ tools | rejectattr('type', 'eq', 'function') | list | length }}", ctx), "1");
    EXPECT_EQ(render("{{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3] | reject('even') | list }}"), "[1, 3] [1, 3]");
    EXPECT_EQ(render("{{ x | default('d') }} {{ '' | default('e', true) }} {{ none | default('n') }}"), "d e None");
    EXPECT_EQ(render("{{ 'a' | upper }}{{ 'B' | lower }} {{ 'a-b' | replace('-', '+') }} {{ '3' | int + 1 }} {{ '2.5' | float }}"),
              "Ab a+b 4 2.5");
    EXPECT_EQ(render("{{ -3 | abs }} {{ 2.567 | round(2) }} {{ 3 | string }} {{ 'ab' | list }}"), "3 2.57 3 ['a', 'b']");
    EXPECT_EQ(render("{{ {'b': 1, 'A': 2} | dictsort }} {{ {'a': 1} | items | list }}"), "[('A', 2), ('b', 1)] [('a', 1)]");
    EXPECT_EQ(render("{{ ['a', 'A', 'b'] | unique | list }} {{ '<&>' | e }} {{ 'x' | safe }} {{ 'a b' | wordcount }}"),
              "['a', 'b'] &lt;&amp;&gt; x 2");
    EXPECT_EQ(render("{{ 'a\nb' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}"), "a\n  b|  a\n  b");
    EXPECT_EQ(render("{{ [1,2,3] | batch(2) | list }} {{ 'hello world' | title }} {{ 'hi' | capitalize }}"),
              "[[1, 2], [3]] Hello World Hi");
}

TEST(JinjaLanguage, ToJson) {
    ojson ctx = {{"v", {{"name", "é\"x"}, {"n", {1, 2.5, nullptr, true}}, {"e", ojson::object()}}}};
    EXPECT_EQ(render("{{ v | tojson }}", ctx), "{\"name\": \"é\\\"x\", \"n\": [1, 2.5, null, true], \"e\": {}}");
    EXPECT_EQ(render("{{ v.n | tojson(indent=2) }}", ctx), "[\n  1,\n  2.5,\n  null,\n  true\n]");
    EXPECT_EQ(render("{{ v | tojson(ensure_ascii=true) }}", {{"v", "é"}}), "\"\\u00e9\"");
}

TEST(JinjaLanguage, Tests) {
    EXPECT_EQ(render("{{ 'a' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 1 is number }}{{ none is none }}"
                     "{{ 1 is integer }}{{ 1.0 is float }}{{ true is boolean }}{{ x is not defined }}{{ [] is sequence }}"),
              "TrueTrueTrueTrueTrueTrueTrueTrueTrueTrue");
    EXPECT_EQ(render("{{ 3 is odd }}{{ 4 is even }}{{ 6 is divisibleby 3 }}{{ 1 is eq 1 }}{{ true is true }}{{ 1 is in [1] }}"),
              "TrueTrueTrueTrueTrueTrue");
}

TEST(JinjaErrors, SyntaxErrorsCarryLineAndColumn) {
    EXPECT_EQ(render_error("ok\n{% if %}"), "template syntax error at line 2, column 7: unexpected end of statement block");
    EXPECT_NE(render_error("{% for x in y %}").find("line 1"), std::string::npos);
    EXPECT_NE(render_error("a\nb {{ 1 +  }}").find("line 2, column 11"), std::string::npos);
    EXPECT_NE(render_error("{% frobnicate %}").find("unknown tag 'frobnicate'"), std::string::npos);
    EXPECT_NE(render_error("{{ 'abc }}").find("line 1"), std::string::npos);
    // unknown filters/tests fail at parse time, except inside if statements and inline ifs (as in jinja2)
    EXPECT_EQ(render_error("x\n{% for a in b %}{{ a | nofilter }}{% endfor %}"),
              "template syntax error at line 2, column 24: No filter named 'nofilter'.");
    EXPECT_NE(render_error("{{ 1 is notest }}").find("No test named 'notest'."), std::string::npos);
    EXPECT_EQ(render("{% if x %}{{ x | nofilter }}{% endif %}{{ x | e if not x else x | nof }}"), "");
    EXPECT_EQ(render_error("{{ x | e if x else x | nof }}"), "No filter named 'nof' found.");
}

TEST(JinjaErrors, RaiseExceptionAndSandbox) {
    EXPECT_EQ(render_error("{{ raise_exception('Only user and assistant roles are supported!') }}"),
              "Only user and assistant roles are supported!");
    EXPECT_EQ(render_error("{% set l = [] %}{{ l.append(1) }}"), "access to attribute 'append' of 'list' object is unsafe.");
    EXPECT_EQ(render_error("{% set x = 1 %}{% set x.a = 2 %}"), "cannot assign attribute on non-namespace object");
}

TEST(JinjaErrors, DeepExpressionsAreBounded) {
    std::string chain = "{{ 1";
    for (int i = 0; i < 300; ++i) chain += " + 1";
    EXPECT_EQ(render(chain + " }}"), "301");
    std::string filters = "{{ ' a '";
    for (int i = 0; i < 1990; ++i) filters += "|trim";  // the deepest tree the node limit allows
    EXPECT_NE(render_error(filters + " }}").find("depth limit"), std::string::npos);
    for (int i = 0; i < 100000; ++i) chain += " + 1";
    EXPECT_NE(render_error(chain + " }}").find("expression too complex"), std::string::npos);
    EXPECT_NE(render_error("{{ " + std::string(20000, '(') + "1" + std::string(20000, ')') + " }}").find("too deep"),
              std::string::npos);
    std::string nested;
    for (int i = 0; i < 5000; ++i) nested += "{% if true %}";
    EXPECT_NE(render_error(nested).find("too deep"), std::string::npos);
}

TEST(JinjaErrors, RunawayTemplatesAreBounded) {
    EXPECT_NE(render_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").find("depth limit"), std::string::npos);
    jinja::Limits lim;
    lim.max_steps = 10000;
    try {
        jinja::Template("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}").render(ojson::object(), lim);
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("step limit"), std::string::npos);
    }
    lim = {};
    lim.max_output = 1000;
    try {
        jinja::Template("{% for i in range(1000) %}xxxxxxxxxx{% endfor %}").render(ojson::object(), lim);
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("output exceeded"), std::string::npos);
    }
}

TEST(JinjaChat, StrftimeNowUsesInjectedClock) {
    EXPECT_EQ(render("{{ strftime_now('%Y-%m-%d %d %b %Y %B') }}"), "2024-07-26 26 Jul 2024 July");
}

TEST(JinjaChat, RendersAConversation) {
    ChatTemplate t("{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
                   "{% if add_generation_prompt %}<assistant>{% endif %}{{ tools is none }}");
    ChatInputs in;
    in.messages = ojson::parse(R"([{"role":"user","content":"hi"}])");
    in.add_generation_prompt = true;
    in.bos_token = "<s>";
    EXPECT_EQ(t.apply(in), "<s><user>hi<assistant>True");
}

TEST(JinjaErrors, TruncatedAndMutatedTemplatesFailCleanly) {
    // Every prefix cut and byte flip of the real templates either renders or raises hearth::Error.
    ChatInputs in;
    in.messages = ojson::parse(R"([{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                                   {"role": "assistant", "content": "a"}, {"role": "user", "content": "u2"}])");
    const ojson ctx = chat_context(in);
    int rendered = 0, failed = 0;
    for (auto& e : std::filesystem::directory_iterator(test::shared("templates"))) {
        const std::string src = test::read_file(e.path().string());
        for (size_t k = 1; k <= 16; ++k) {
            std::string variant = src.substr(0, src.size() * k / 17);
            if (k % 2 == 0 && !src.empty()) {
                variant = src;
                variant[(src.size() * k / 17) % src.size()] = "{}%#-()[]'\"|."[k % 14];
            }
            try {
                jinja::Template(variant).render(ctx, {}, fixed_now);
                ++rendered;
            } catch (const Error&) {
                ++failed;
            }
        }
    }
    EXPECT_GT(failed, 0);
    EXPECT_GT(rendered + failed, 500);
}

// ---------------------------------------------------------------- conformance with jinja2

// Language snippets rendered by both hearth and jinja2 (in the same batched oracle call as the templates).
struct Snippet {
    const char* src;
    const char* ctx;  // JSON object
};
const Snippet kSnippets[] = {
    {"{{ 1 }} {{ 1.5 }} {{ 1e3 }} {{ 1e20 }} {{ 1.5e-7 }} {{ 0.1 + 0.2 }} {{ 10 / 4 }} {{ 2 ** 0.5 }} {{ 1/3 }}", "{}"},
    {"{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ -3 | abs }} {{ -(3) }}", "{}"},
    {"{{ [1, 'a', none, true, 2.0, (1,), {'k': [1]}] }} {{ \"it's\" }} {{ [\"it's\", 'a\\nb', 'q\"'] }}", "{}"},
    {"{{ messages }}|{{ messages[0] }}|{{ messages | string }}", R"({"messages": [{"role": "user", "content": "héllo\n\"x\" 'y' \\ \t"}]})"},
    {"{{ 'a' ~ 1 ~ none ~ x }} {{ 'ab' * 2 }} {{ [1] + [2] }} {{ 1 < 2 < 3 }} {{ 1 == 1.0 }} {{ true == 1 }}", "{}"},
    {"{{ 0 or 'x' }} {{ 1 and 'y' }} {{ not [] }} {{ none or [] }} {{ 'a' if false else 'b' }}[{{ 'c' if false }}]", "{}"},
    {"{{ l[1:3] }} {{ l[::-1] }} {{ l[::2] }} {{ l[-2:] }} {{ l[:-1] }} {{ s[1:3] }} {{ s[::-1] }} {{ s[-1] }} {{ s | length }}",
     R"({"l": [1, 2, 3, 4, 5], "s": "héllo"})"},
    {"{% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}"
     "{{ loop.revindex0 }}{{ loop.previtem }}{{ loop.nextitem }};{% else %}E{% endfor %}", R"({"l": [1, 2, 3]})"},
    {"{% for x in range(10) if x % 3 == 0 %}{{ x }}{{ loop.length }} {% endfor %}{% for x in [] %}{% else %}E{% endfor %}", "{}"},
    {"{% for k, v in d.items() %}{{ k }}={{ v }} {% endfor %}{% for k in d %}{{ k }}{% endfor %}{{ d | dictsort }}",
     R"({"d": {"b": 1, "A": 2, "c": [1]}})"},
    {"{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = x + 1 %}{{ x }}{% endfor %}{{ x }}", "{}"},
    {"{% set ns = namespace(x=1, s='') %}{% for i in [1, 2] %}{% set ns.x = ns.x + i %}{% set ns.s = ns.s ~ i %}"
     "{% endfor %}{{ ns.x }}{{ ns.s }}", "{}"},
    {"{% macro f(a, b='B', c=none) %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ f(1) }} {{ f(1, 2) }} {{ f(b=3, a=4) }}", "{}"},
    {"{% macro w(x) %}<{{ caller() }}{{ x }}>{% endmacro %}{% call w(1) %}in{% endcall %}{% filter upper %}abc{% endfilter %}",
     "{}"},
    {"{% set t %}  in {{ 1 }} {% endset %}[{{ t }}]{% set a, b = [1, 2] %}{{ b }}{{ a }}", "{}"},
    {"{{ ' a b '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ ' a'.lstrip() }}|{{ 'a '.rstrip() }}|{{ 'a,b,,c'.split(',') }}"
     "|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.split(none, 1) }}", "{}"},
    {"{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'aXa'.replace('a', 'b') }} {{ 'hello wORLD'.title() }}"
     " {{ 'hELLO'.capitalize() }} {{ 'Ab'.upper() }}{{ 'Ab'.lower() }} {{ '-'.join(['a', 'b']) }} {{ 'abcb'.find('b') }}", "{}"},
    {"{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 2) }} {{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }}",
     R"({"d": {"a": 1, "b": null}})"},
    {"{{ '  x ' | trim }}|{{ [1, 2] | length }}|{{ 'abc' | count }}|{{ [3, 1] | first }}{{ [3, 1] | last }}|{{ x | default('d') }}"
     "|{{ '' | default('e', true) }}|{{ none | default('n') }}|{{ 'a-b' | replace('-', '+') }}|{{ '3' | int + 1 }}|{{ '2.5' | float }}",
     "{}"},
    {"{{ tools | map(attribute='name') | join(', ') }}|{{ tools | selectattr('type', 'equalto', 'function') | map(attribute='name') | list }}"
     "|{{ tools | rejectattr('type', 'eq', 'function') | list | length }}|{{ [1, 2, 3, 4] | select('odd') | list }}"
     "|{{ [1, 2, 3] | reject('even') | list }}|{{ tools | map(attribute='nope', default='?') | list }}|{{ ['a'] | map('upper') | list }}",
     R"({"tools": [{"name": "a", "type": "function"}, {"name": "b", "type": "x"}]})"},
    {"{{ 2.567 | round(2) }} {{ 3 | string }} {{ 'ab' | list }} {{ ['a', 'A', 'b'] | unique | list }} {{ '<&>\"' | e }}"
     " {{ 'x' | safe }} {{ 'a b' | wordcount }} {{ [3, 1, 2] | sort }} {{ ['b', 'A'] | sort(reverse=true) }} {{ [1, 2] | sum }}",
     "{}"},
    {"{{ 'a\nb\n\nc' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}|{{ [1,2,3] | batch(2) | list }}|{{ 'hello-world x' | title }}"
     "|{{ [1, 2] | reverse | list }}|{{ [1, 5, 3] | max }}{{ [4, 2] | min }}", "{}"},
    {"{{ v | tojson }}|{{ v.n | tojson(indent=2) }}|{{ v | tojson(indent=4) }}|{{ 'é' | tojson }}|{{ v | tojson(sort_keys=true) }}",
     R"({"v": {"name": "é\"x\n\u0001", "n": [1, 2.5, null, true, 1e100], "e": {}, "a": []}})"},
    {"{{ 'a' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 1 is number }}{{ none is none }}{{ 1 is integer }}"
     "{{ 1.0 is float }}{{ true is boolean }}{{ x is not defined }}{{ [] is sequence }}{{ x is iterable }}{{ 'a' is mapping }}"
     "{{ 3 is odd }}{{ 4 is even }}{{ 6 is divisibleby 3 }}{{ 1 is eq 1 }}{{ true is true }}{{ 1 is in [1] }}{{ true is number }}",
     "{}"},
    {"[{{ x }}]{{ x is defined }}{{ x | length }}{% for a in x %}no{% endfor %}{{ m.missing }}{{ m.missing is defined }}"
     "{{ l[10] is defined }}{{ m['items'] is defined }}{{ m.items is defined }}", R"({"m": {}, "l": [1]})"},
    {"{{ x.y }}", "{}"},
    {"{{ m.a.b }}", R"({"m": {}})"},
    {"{{ x + 1 }}", "{}"},
    {"{{ l[3].a }}", R"({"l": [1]})"},
    {"{{ raise_exception('Only user and assistant roles are supported!') }}", "{}"},
    {"{% set l = [] %}{{ l.append(1) }}", "{}"},
    {"{{ none | selectattr('a') | list }}{{ [1] | map('string') | tojson }}", "{}"},
    {"{{ 'x' | safe + '<y>' }} {{ 'x' + '<y>' | safe }} {{ '<a>' | e | trim }}", "{}"},
    {"{{ strftime_now('%Y-%m-%d %d %b %Y %B %A %H:%M') }}", "{}"},
    {"{% for x in 'ab' %}{{ loop.cycle('o', 'e') }}{{ x }}{% endfor %}{% for x in range(5) %}{% if x == 3 %}{% break %}{% endif %}"
     "{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}", "{}"},
    {"  {% if true %}\n  x\n    {% endif %}\ny\n  {{ 'v' }}\n  {%+ if true %}b{% endif %}\n{% if true +%}\nc{% endif %}{# z #}\n  {#- w -#}  q\n",
     "{}"},
    {"{{ d.items() }} {{ d.keys() }} {{ d.values() }} {{ d.items() | length }} {{ 'a' in d.keys() }}", R"({"d": {"a": 1}})"},
    {"{{ d.items() | tojson }}", R"({"d": {"a": 1}})"},
    {"{{ d.keys()[0] }}|{{ (d.values() | map('string'))[0] }}|{{ n[1] }}", R"({"d": {"a": 1}, "n": 5})"},
    {"{{ n[1:] }}", R"({"n": 5})"},
    {"{{ d.keys()[0].x }}", R"({"d": {"a": 1}})"},
    {"{{ (5)[1:2].x }}", "{}"},
    {"{{ [1] | map('string') | length }}", "{}"},
    {"{{ s | upper }}|{{ s | lower }}|{{ s | title }}|{{ s | capitalize }}|{{ s.title() }}|{{ s.upper() }}|{{ 'Ab' is lower }}",
     R"({"s": "élan VITAL straße ÀÉÎõü Привет мир ΑΒΓ αβγ Łódź ÿ-x (hi) [yo]"})"},
    {"a{% raw %}{{ x }}{% if %}{% endraw %}b\n  {% raw -%}  {{ y }}  {%- endraw %}c", "{}"},
    {"{{ 1 if x is none }}|{{ [] | first }}|{{ x | items | list }}|{{ none | string }}|{{ [none] | join(',') }}|{{ x ~ '' }}", "{}"},
};


ojson tools_json() {
    return ojson::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "description": "Get the current weather in a city.",
   "parameters": {"type": "object", "properties": {
     "location": {"type": "string", "description": "City name, e.g. Paris"},
     "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"}},
    "required": ["location"]}}},
  {"type": "function", "function": {"name": "search", "description": "Search the web.",
   "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "max_results": {"type": "integer"}},
    "required": ["query"]}}}
])");
}

struct Conversation {
    std::string name;
    ojson messages;
    bool tools = false;
    ojson extra = ojson::object();
};

std::vector<Conversation> conversations() {
    std::vector<Conversation> c;
    c.push_back({"system_user", ojson::parse(R"([
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello! What's 2+2?"}])")});
    c.push_back({"user_only", ojson::parse(R"([{"role": "user", "content": "  Bonjour, ça va ? 👋\nnew line  "}])")});
    c.push_back({"multi_turn", ojson::parse(R"([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."}])")});
    c.push_back({"multi_turn_no_system", ojson::parse(R"([
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Goodbye."}])")});
    c.push_back({"tools_declared", ojson::parse(R"([
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "What's the weather in Paris?"}])"), true});
    c.push_back({"tool_calls", ojson::parse(R"([
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function",
          "function": {"name": "get_weather", "arguments": {"location": "Paris", "unit": "celsius"}}}]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "{\"temperature\": 22}"}])"), true});
    c.push_back({"tool_calls_answered", ojson::parse(R"([
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "Weather in Paris and news?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
          {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"location": "Paris"}}},
          {"id": "call_2", "type": "function", "function": {"name": "search", "arguments": {"query": "news", "max_results": 3}}}]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "22 C"},
        {"role": "tool", "tool_call_id": "call_2", "name": "search", "content": "Nothing new."},
        {"role": "assistant", "content": "It is 22 C in Paris; no news."},
        {"role": "user", "content": "Thanks!"}])"), true});
    c.push_back({"reasoning", ojson::parse(R"([
        {"role": "user", "content": "What is 3*7?"},
        {"role": "assistant", "content": "21", "reasoning_content": "3 times 7 is 21."},
        {"role": "user", "content": "And 4*5?"}])")});
    c.push_back({"reasoning_no_thinking", ojson::parse(R"([
        {"role": "system", "content": "Think step by step."},
        {"role": "user", "content": "What is 3*7?"},
        {"role": "assistant", "content": "<think>\nEasy.\n</think>\n\n21", "reasoning_content": "3 times 7 is 21."},
        {"role": "user", "content": "And 4*5?"}])"), false, ojson{{"enable_thinking", false}}});
    c.push_back({"content_parts", ojson::parse(R"([
        {"role": "system", "content": [{"type": "text", "text": "You describe images."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in this picture?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
        {"role": "user", "content": [{"type": "text", "text": "Sure?"}]}])")});
    c.push_back({"tool_calls_string_args", ojson::parse(R"([
        {"role": "system", "content": "Use tools when needed."},
        {"role": "user", "content": "Search for \"llama\" — quick!"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "abcdefghi", "type": "function",
          "function": {"name": "search", "arguments": "{\"query\": \"llama\"}"}}]},
        {"role": "tool", "tool_call_id": "abcdefghi", "content": "Llamas are camelids."},
        {"role": "assistant", "content": "Llamas are camelids.", "reasoning_content": "The tool said so."}])"), true,
        ojson{{"enable_thinking", true}}});
    return c;
}

struct Case {
    std::string tmpl, conv;
    bool agp;
    ojson context;
};

std::string run_oracle(const ojson& request) {
    const std::string in = test::tmp_dir() + "/jinja_in.json";
    {
        std::ofstream f(in, std::ios::binary);
        f << request.dump();
    }
    const std::string cmd = "/usr/bin/python3 " + std::string(HEARTH_SOURCE_DIR) +
                            "/tests/oracle/render_template.py < '" + in + "'";
    const test::RunResult r = test::run_command(cmd);
    EXPECT_EQ(r.code, 0) << cmd << "\n" << r.err;
    return r.out;
}

TEST(JinjaConformance, AllTemplatesMatchJinja2) {
    std::vector<std::string> names;
    for (auto& e : std::filesystem::directory_iterator(test::shared("templates")))
        if (e.path().extension() == ".jinja") names.push_back(e.path().stem().string());
    std::sort(names.begin(), names.end());
    ASSERT_GE(names.size(), 50u);

    ojson request = {{"templates", ojson::object()}, {"cases", ojson::array()}};
    std::map<std::string, std::string> sources;
    for (auto& n : names) {
        sources[n] = test::read_file(test::shared("templates/" + n + ".jinja"));
        request["templates"][n] = sources[n];
    }
    std::vector<Case> cases;
    for (auto& n : names)
        for (auto& conv : conversations())
            for (bool agp : {false, true}) {
                ChatInputs in;
                in.messages = conv.messages;
                if (conv.tools) in.tools = tools_json();
                in.add_generation_prompt = agp;
                in.bos_token = "<s>";
                in.eos_token = "</s>";
                in.extra = conv.extra;
                Case c{n, conv.name, agp, chat_context(in)};
                request["cases"].push_back({{"template", n}, {"context", c.context}});
                cases.push_back(std::move(c));
            }
    if (const char* dump = std::getenv("HEARTH_JINJA_DUMP")) std::ofstream(dump) << request.dump();
    const size_t n_snippets = std::size(kSnippets);
    for (size_t i = 0; i < n_snippets; ++i) {
        const std::string name = "snippet " + std::to_string(i);
        request["templates"][name] = kSnippets[i].src;
        request["cases"].push_back({{"template", name}, {"context", ojson::parse(kSnippets[i].ctx)}});
    }
    const ojson results = ojson::parse(run_oracle(request));
    ASSERT_EQ(results.size(), cases.size() + n_snippets);
    for (size_t i = 0; i < n_snippets; ++i) {
        const ojson& want = results[cases.size() + i];
        std::string got;
        try {
            got = render(kSnippets[i].src, ojson::parse(kSnippets[i].ctx));
        } catch (const Error& e) {
            got = std::string("raised: ") + e.what();
        }
        const std::string expect = want.at("ok").get<bool>() ? want.at("out").get<std::string>()
                                                               : "raised: " + want.at("error").get<std::string>();
        EXPECT_EQ(got, expect) << "snippet " << i << ": " << kSnippets[i].src;
    }

    std::map<std::string, std::unique_ptr<jinja::Template>> compiled;
    std::map<std::string, std::string> compile_error;
    for (auto& n : names) {
        try {
            compiled[n] = std::make_unique<jinja::Template>(sources[n]);
        } catch (const Error& e) {
            compile_error[n] = e.what();
        }
    }
    std::map<std::string, std::string> first_mismatch;
    int raised = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
        const Case& c = cases[i];
        const ojson& want = results[i];
        std::string got, err;
        bool ok = true, template_error = false;
        if (compile_error.count(c.tmpl)) {
            ok = false;
            err = compile_error[c.tmpl];
        } else {
            try {
                got = compiled[c.tmpl]->render(c.context, {}, fixed_now);
            } catch (const jinja::TemplateError& e) {
                ok = false;
                template_error = true;
                err = e.what();
            } catch (const Error& e) {
                ok = false;
                err = e.what();
            }
        }
        std::string why;
        if (want.at("ok").get<bool>()) {
            if (!ok) why = "hearth raised: " + err;
            else if (got != want.at("out").get<std::string>())
                why = "output differs:\n--- jinja2\n" + want.at("out").get<std::string>() + "\n--- hearth\n" + got;
        } else {
            ++raised;
            const std::string type = want.at("type").get<std::string>();
            const std::string msg = want.at("error").get<std::string>();
            const bool jinja_error = type == "TemplateError" || type == "UndefinedError" || type == "SecurityError" ||
                                     type == "TemplateRuntimeError";
            // TemplateError family: same class and message. Python errors (TypeError, ...): same message.
            if (ok) why = "jinja2 raised " + type + " (" + msg + ") but hearth rendered";
            else if ((jinja_error && !template_error) || err != msg)
                why = "error differs: jinja2 " + type + ": " + msg + " | hearth: " + err;
        }
        if (!why.empty() && !first_mismatch.count(c.tmpl))
            first_mismatch[c.tmpl] = c.conv + (c.agp ? " +gen" : "") + ": " + why;
    }
    int pass = 0;
    for (auto& n : names) {
        const bool match = !first_mismatch.count(n);
        pass += match;
        EXPECT_TRUE(match) << n << " — " << first_mismatch[n].substr(0, 3000);
    }
    std::printf("[ info ] %d/%zu templates identical to jinja2 over %zu cases each (%d cases where jinja2 raised)\n",
                pass, names.size(), cases.size() / names.size(), raised);
}

}  // namespace
}  // namespace hearth
