// JSON Schema to grammar (src/grammar/json_schema.h). The main table compiles each schema and runs the
// reference Recognizer (tests/grammar_oracle.h) over candidate texts, and checks every verdict against Debian's
// python3-jsonschema (tests/oracle/jsonschema_check.py, Draft 2020-12 with format checking, run once for the
// whole table): a text the grammar accepts must be valid, and a valid text written in the grammar's canonical
// form must be accepted. Formats the installed jsonschema does not really check are asserted against the
// expectations written here instead. Besides the written candidates, documents drawn at random from each
// grammar must all be valid. Then the refusals (each naming its keyword and JSON pointer), options,
// exhaustive range/calendar checks, and resource limits.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "grammar/gbnf.h"
#include "grammar/json_schema.h"
#include "grammar_oracle.h"
#include "jsonschema_oracle.h"
#include "test_util.h"

namespace hearth::grammar {
namespace {

using ojson = nlohmann::ordered_json;
using testing::Recognizer;

// Y: the grammar accepts and the text is valid. N: the grammar rejects and the text is invalid (or not JSON).
// V: valid, but spelled outside the grammar's canonical form or subset (key order, "1.0" for an integer, an
// exponent under bounds...): the grammar rejects it. F: the grammar rejects it; Python's verdict is not checked
// (email, which Python checks only for an "@"). S: drawn from the grammar at random, so accepted, and must be
// valid.
struct Cand {
    std::string text;
    char expect;
};
struct Case {
    std::string schema;
    std::vector<Cand> cands;
};

const std::vector<Case>& table() {
    static const std::vector<Case> cases = {
        // ---- types ----
        {R"({"type":"string"})",
         {{R"("")", 'Y'}, {R"("abc")", 'Y'}, {R"("a\"b\\c\/d\n\t\u00e9")", 'Y'}, {R"("\ud83d\ude00")", 'Y'},
          {"\"\xC3\xA9\xF0\x9F\x98\x80\"", 'Y'}, {"\"a\nb\"", 'N'}, {"1", 'N'}, {R"("abc)", 'N'},
          {R"("\ud83d")", 'V'}, {R"("\x41")", 'N'}, {"null", 'N'}}},
        {R"({"type":"integer"})",
         {{"0", 'Y'}, {"-17", 'Y'}, {"123456789012345", 'Y'}, {"-999999999999999", 'Y'}, {"1.5", 'N'}, {"1.0", 'V'},
          {"-0", 'V'}, {"01", 'N'}, {R"("1")", 'N'}, {"1234567890123456", 'Y'}, {"9007199254740991", 'Y'}, {"-9007199254740991", 'Y'},
          {"9007199254740992", 'V'}, {"+1", 'N'}, {"1e2", 'V'}}},
        {R"({"type":"number"})",
         {{"0", 'Y'}, {"-1.5", 'Y'}, {"1e10", 'Y'}, {"2.5E-3", 'Y'}, {"-0.0", 'Y'}, {"1E+308", 'Y'}, {".5", 'N'},
          {"1.", 'N'}, {"01", 'N'}, {"NaN", 'N'}, {"Infinity", 'N'}, {R"("1")", 'N'}, {"0.12345678901234567", 'V'}}},
        {R"({"type":"boolean"})", {{"true", 'Y'}, {"false", 'Y'}, {"null", 'N'}, {R"("true")", 'N'}, {"1", 'N'}}},
        {R"({"type":"null"})", {{"null", 'Y'}, {"false", 'N'}, {"0", 'N'}}},
        {R"({"type":"object"})",
         {{"{}", 'Y'}, {R"({"a":1,"b":[true,null]})", 'Y'}, {"[]", 'N'}, {R"({"a":1,})", 'N'}}},
        {R"({"type":"array"})", {{"[]", 'Y'}, {R"([1,"a",{},[]])", 'Y'}, {"{}", 'N'}, {"[1,]", 'N'}}},
        {R"({"type":["string","null"]})", {{R"("x")", 'Y'}, {"null", 'Y'}, {"1", 'N'}, {"[]", 'N'}}},
        {R"({"type":["integer","boolean"]})", {{"7", 'Y'}, {"true", 'Y'}, {"7.5", 'N'}, {"null", 'N'}}},
        {R"(true)", {{"1", 'Y'}, {R"({"a":[{}],"b":"s"})", 'Y'}, {R"("s")", 'Y'}, {"nul", 'N'}}},
        {R"({})", {{"null", 'Y'}, {R"([1,{"x":-2.5e3}])", 'Y'}, {"[1 2]", 'N'}}},
        // ---- whitespace (Flexible) ----
        {R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"array"}}})",
         {{R"({ "a": 1, "b": [1, 2] })", 'Y'},
          {"{\n  \"a\": 1,\n  \"b\": [\n    1\n  ]\n}", 'Y'},
          {"{\r\n\t\"a\" : 1\r\n}", 'Y'},
          {" {} ", 'Y'},
          {R"({"a":1,"b":2})", 'N'},
          {R"({"b":[],"a":1})", 'V'}}},
        // ---- const / enum ----
        {R"({"const":"hello"})", {{R"("hello")", 'Y'}, {R"("hell")", 'N'}, {"1", 'N'}}},
        {R"({"const":{"x":[1,2,{"y":null}],"z":"é"}})",
         {{R"({"x":[1,2,{"y":null}],"z":"é"})", 'Y'},
          {R"({ "x": [1, 2, {"y": null}], "z": "é" })", 'Y'},
          {R"({"x":[1,2,{"y":0}],"z":"é"})", 'N'},
          {R"({"z":"é","x":[1,2,{"y":null}]})", 'V'}}},
        {R"({"enum":["red","green",null,42,[1,"a"],{"k":true}]})",
         {{R"("red")", 'Y'}, {R"("green")", 'Y'}, {"null", 'Y'}, {"42", 'Y'}, {R"([1,"a"])", 'Y'},
          {R"({"k":true})", 'Y'}, {R"("blue")", 'N'}, {"43", 'N'}, {"42.0", 'V'}, {"[1]", 'N'}}},
        {R"({"type":"string","enum":["a","b",1]})", {{R"("a")", 'Y'}, {R"("b")", 'Y'}, {"1", 'N'}}},
        {R"({"enum":["ab","abcdef",7],"maxLength":3})", {{R"("ab")", 'Y'}, {R"("abcdef")", 'N'}, {"7", 'Y'}}},
        {R"({"const":1.5})", {{"1.5", 'Y'}, {"1.50", 'V'}, {"2", 'N'}}},
        {R"({"const":"a\"b\n"})", {{R"("a\"b\n")", 'Y'}, {R"("a\u0022b\n")", 'V'}, {R"("a\"b")", 'N'}}},
        // ---- objects ----
        {R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"},"c":{"type":"boolean"}},
             "required":["b"],"additionalProperties":false})",
         {{R"({"b":"x"})", 'Y'}, {R"({"a":1,"b":"x"})", 'Y'}, {R"({"a":1,"b":"x","c":true})", 'Y'},
          {R"({"b":"x","c":false})", 'Y'}, {"{}", 'N'}, {R"({"a":1})", 'N'}, {R"({"b":"x","d":1})", 'N'},
          {R"({"b":1})", 'N'}, {R"({"b":"x","a":1})", 'V'}, {R"({"a":1,"b":"x",})", 'N'}}},
        {R"({"properties":{"a":{},"b":{}},"additionalProperties":false})",
         {{"{}", 'Y'}, {R"({"b":2})", 'Y'}, {R"({"a":1,"b":2})", 'Y'}, {"5", 'Y'}, {R"({"c":1})", 'N'}}},
        {R"({"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":{"type":"string"}})",
         {{R"({"a":1,"x":"s"})", 'Y'}, {R"({"x":"s","y":"t"})", 'Y'}, {R"({"a":1,"ab":"s"})", 'Y'},
          {R"({"a":1,"x":2})", 'N'}, {R"({"a":"s"})", 'N'}, {R"({"\u0061":"s"})", 'N'}, {R"({"x":"s","a":1})", 'V'},
          {R"({"\"":"q","\\":"b","\n":"n"})", 'Y'}}},
        {R"({"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":true})",
         {{R"({"a":1,"z":[1]})", 'Y'}, {R"({"z":null})", 'Y'}, {R"({"a":null})", 'N'}}},
        {R"({"type":"object","properties":{"a":{"type":"integer"}}})",
         {{R"({"a":1,"extra":{}})", 'Y'}, {R"({"q":"r"})", 'Y'}, {R"({"a":"1"})", 'N'}}},
        {R"({"type":"object","required":["id"]})",
         {{R"({"id":1})", 'Y'}, {R"({"id":1,"x":2})", 'Y'}, {"{}", 'N'}, {R"({"x":2})", 'N'},
          {R"({"x":2,"id":1})", 'V'}}},
        {R"({"type":"object","properties":{"a":false,"b":{"type":"integer"}}})",
         {{R"({"b":1})", 'Y'}, {R"({"b":1,"c":2})", 'Y'}, {R"({"a":1})", 'N'}, {R"({"b":1,"a":1})", 'N'}}},
        {R"({"type":"object","properties":{"user":{"type":"object","properties":{"name":{"type":"string"},
             "age":{"type":"integer","minimum":0}},"required":["name"],"additionalProperties":false}},
             "required":["user"],"additionalProperties":false})",
         {{R"({"user":{"name":"Ann"}})", 'Y'}, {R"({"user":{"name":"Ann","age":31}})", 'Y'},
          {R"({"user":{"name":"Ann","age":-1}})", 'N'}, {R"({"user":{}})", 'N'}, {R"({})", 'N'}}},
        {R"({"type":"object","properties":{"a":{},"b":{}},"required":["a"],"minProperties":1})",
         {{R"({"a":1})", 'Y'}, {R"({"a":1,"b":2})", 'Y'}, {"{}", 'N'}}},
        {R"({"type":"object","properties":{"a":{},"b":{}},"additionalProperties":false,"maxProperties":2})",
         {{R"({"a":1,"b":2})", 'Y'}, {"{}", 'Y'}, {R"({"a":1,"b":2,"c":3})", 'N'}}},
        {R"({"type":"object","properties":{"a\"b":{"type":"integer"},"é/~":{"type":"null"}},"required":["a\"b"]})",
         {{R"({"a\"b":1,"é/~":null})", 'Y'}, {R"({"a\"b":1})", 'Y'}, {R"({"é/~":null})", 'N'}}},
        {R"({"type":"object","properties":{"ab":{"type":"integer"}},"additionalProperties":{"type":"boolean"}})",
         {{R"({"a":true})", 'Y'}, {R"({"abc":false})", 'Y'}, {R"({"ab":1,"b":true})", 'Y'}, {R"({"":true})", 'Y'},
          {R"({"ab":true})", 'N'}}},
        // ---- arrays ----
        {R"({"type":"array","items":{"type":"integer"}})",
         {{"[]", 'Y'}, {"[1,2,3]", 'Y'}, {"[1, 2]", 'Y'}, {R"([1,"a"])", 'N'}, {"[1,]", 'N'}}},
        {R"({"type":"array","items":{"type":"string"},"minItems":1,"maxItems":3})",
         {{R"(["a"])", 'Y'}, {R"(["a","b","c"])", 'Y'}, {"[]", 'N'}, {R"(["a","b","c","d"])", 'N'}}},
        {R"({"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}]})",
         {{"[]", 'Y'}, {R"(["a"])", 'Y'}, {R"(["a",1])", 'Y'}, {R"(["a",1,null,{}])", 'Y'}, {"[1]", 'N'},
          {R"(["a","b"])", 'N'}}},
        {R"({"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":false})",
         {{R"(["a",1])", 'Y'}, {R"(["a"])", 'Y'}, {R"(["a",1,2])", 'N'}}},
        {R"({"type":"array","prefixItems":[{"const":"x"}],"items":{"type":"boolean"},"minItems":2,"maxItems":3})",
         {{R"(["x",true])", 'Y'}, {R"(["x",true,false])", 'Y'}, {R"(["x"])", 'N'}, {R"(["x",true,true,true])", 'N'},
          {R"(["y",true])", 'N'}}},
        {R"({"type":"array","maxItems":0})", {{"[]", 'Y'}, {"[1]", 'N'}}},
        {R"({"type":"array","uniqueItems":false,"items":{"type":"null"}})", {{"[null,null]", 'Y'}, {"[0]", 'N'}}},
        {R"({"type":"array","items":{"type":"array","items":{"type":"number"},"minItems":2,"maxItems":2}})",
         {{"[[1,2],[3.5,-1]]", 'Y'}, {"[[1]]", 'N'}, {"[]", 'Y'}}},
        // ---- strings ----
        {R"({"type":"string","minLength":2,"maxLength":4})",
         {{R"("ab")", 'Y'}, {R"("abcd")", 'Y'}, {"\"\xC3\xA9\xF0\x9F\x98\x80\"", 'Y'}, {R"("\u00e9\ud83d\ude00")", 'Y'},
          {R"("\n\t")", 'Y'}, {R"("a")", 'N'}, {R"("abcde")", 'N'}, {R"("\ud83d\ude00")", 'N'}}},
        {R"({"type":"string","maxLength":0})", {{R"("")", 'Y'}, {R"("a")", 'N'}}},
        {R"({"type":"string","minLength":3})", {{R"("abc")", 'Y'}, {R"("abcdefgh")", 'Y'}, {R"("ab")", 'N'}}},
        {R"({"type":"string","pattern":"^[a-z]+-[0-9]{2}$"})",
         {{R"("abc-12")", 'Y'}, {R"("abc-1")", 'N'}, {R"("Abc-12")", 'N'}, {R"("abc-123")", 'N'}}},
        {R"({"type":"string","pattern":"[0-9]"})",
         {{R"("a1b")", 'Y'}, {R"("9")", 'Y'}, {R"("abc")", 'N'}, {R"("x\"9\\")", 'Y'}}},
        {R"({"type":"string","pattern":"^a\"b\\\\c$"})", {{R"("a\"b\\c")", 'Y'}, {R"("a\"bc")", 'N'}}},
        {R"({"type":"string","pattern":"^x\\ny$"})",
         {{R"("x\ny")", 'Y'}, {R"("x\u000Ay")", 'Y'}, {R"("x\\ny")", 'N'}}},
        {R"({"type":"string","pattern":"^\\d{3}-\\d{4}$"})", {{R"("555-1234")", 'Y'}, {R"("55-1234")", 'N'}}},
        // ---- formats ----
        {R"({"type":"string","format":"date"})",
         {{R"("2024-02-29")", 'Y'}, {R"("2023-12-31")", 'Y'}, {R"("2000-02-29")", 'Y'}, {R"("0001-01-01")", 'Y'},
          {R"("2023-11-30")", 'Y'}, {R"("1900-02-29")", 'N'}, {R"("2023-02-29")", 'N'}, {R"("2023-04-31")", 'N'},
          {R"("2023-13-01")", 'N'}, {R"("2023-1-01")", 'N'}, {R"("0000-01-01")", 'N'}, {R"("2023-02-30")", 'N'},
          {R"("2023-00-10")", 'N'}}},
        {R"({"type":"string","format":"time"})",
         {{R"("12:34:56Z")", 'Y'}, {R"("23:59:59.123+05:30")", 'Y'}, {R"("00:00:00-00:00")", 'Y'},
          {R"("12:34:56z")", 'Y'}, {R"("24:00:00Z")", 'N'}, {R"("12:34:56")", 'N'}, {R"("12:60:00Z")", 'N'}}},
        {R"({"type":"string","format":"date-time"})",
         {{R"("2024-01-15T10:30:00Z")", 'Y'}, {R"("2024-01-15t10:30:00.5+01:00")", 'Y'},
          {R"("2024-01-15 10:30:00Z")", 'N'}, {R"("2024-02-30T00:00:00Z")", 'N'}}},
        {R"({"type":"string","format":"uuid"})",
         {{R"("123e4567-e89b-12d3-a456-426614174000")", 'Y'}, {R"("123E4567-E89B-12D3-A456-426614174000")", 'Y'},
          {R"("123e4567e89b12d3a456426614174000")", 'N'}, {R"("123e4567-e89b-12d3-a456-42661417400g")", 'N'}}},
        {R"({"type":"string","format":"ipv4"})",
         {{R"("192.168.0.1")", 'Y'}, {R"("0.0.0.0")", 'Y'}, {R"("255.255.255.255")", 'Y'}, {R"("256.1.1.1")", 'N'},
          {R"("01.2.3.4")", 'N'}, {R"("1.2.3")", 'N'}}},
        {R"({"type":"string","format":"email"})",
         {{R"("john.doe@example.com")", 'Y'}, {R"("a+b@sub.example.org")", 'Y'}, {R"("john@")", 'F'},
          {R"("plainaddress")", 'N'}, {R"("a..b@example.com")", 'F'}}},
        {R"({"type":"string","format":"uri"})",
         {{R"("https://example.com/path?q=1#frag")", 'Y'}, {R"("mailto:john@example.com")", 'Y'},
          {R"("urn:isbn:0451450523")", 'Y'}, {R"("http://user:pw@host:8080/a/b%20c")", 'Y'},
          {R"("file:///etc/hosts")", 'Y'}, {R"("example.com")", 'N'}, {R"("http://exa mple.com")", 'N'},
          {R"("://x")", 'N'}}},
        {R"({"type":"string","format":"uri-reference"})",
         {{R"("")", 'Y'}, {R"("/a/b")", 'Y'}, {R"("../x?y#z")", 'Y'}, {R"("https://example.com/x")", 'Y'},
          {R"("#frag")", 'Y'}, {R"("//host:8/path")", 'Y'}, {R"("a/b:c")", 'Y'}, {R"("a b")", 'N'},
          {R"("%zz")", 'N'}, {R"(":x")", 'N'}, {R"("a|b")", 'N'}}},
        {R"({"type":"string","format":"ipv6"})",
         {{R"("::1")", 'Y'}, {R"("::")", 'Y'}, {R"("1:2:3:4:5:6:7:8")", 'Y'}, {R"("fe80::1")", 'Y'},
          {R"("::ffff:192.0.2.1")", 'Y'}, {R"("1:2:3:4:5:6:7::")", 'Y'}, {R"("2001:db8::8a2e:370:7334")", 'Y'},
          {R"("1::")", 'Y'}, {R"("1:2:3:4:5:6:1.2.3.4")", 'Y'}, {R"("1:2:3:4:5:6:7:8:9")", 'N'},
          {R"("1::2::3")", 'N'}, {R"(":1")", 'N'}, {R"("12345::")", 'N'}, {R"("1:2:3:4:5:6:7")", 'N'},
          {R"("::ffff:256.0.0.1")", 'N'}, {R"("fe80::1%eth0")", 'N'}, {R"("1.2.3.4")", 'N'}}},
        {R"({"type":"string","format":"hostname"})",
         {{R"("example.com")", 'Y'}, {R"("a")", 'Y'}, {R"("ns1.example.com")", 'Y'}, {R"("a-b.c-d.e9")", 'Y'},
          {R"("xn--bcher-kva.example")", 'Y'}, {R"("a.b.c.d.e.f.g.h")", 'Y'}, {R"("Invalid Hostname")", 'F'},
          {R"("-a.com")", 'F'}, {R"("a-.com")", 'F'}, {R"("a..b")", 'F'}, {R"("a.")", 'F'}, {R"("a_b.com")", 'F'},
          {R"("a.b.c.d.e.f.g.h.i")", 'F'}, {R"("")", 'F'}, {"1", 'N'}}},
        // regex: a subset valid in both ECMA-262 and Python's re.
        {R"({"type":"string","format":"regex"})",
         {{R"("^[a-z0-9_-]+$")", 'Y'}, {R"("a(b|c)*d?")", 'Y'}, {R"("\\d{3}-\\d{2,}")", 'Y'}, {R"("(?:x|)\\.")", 'Y'},
          {R"("[^,]+")", 'Y'}, {R"("")", 'Y'}, {R"("[a-]")", 'Y'}, {R"("[a-c-e]")", 'V'}, {R"("(")", 'N'},
          {R"("[z-a]")", 'N'}, {R"("a**")", 'N'}, {R"("*a")", 'N'}, {R"("[")", 'N'}, {R"("a{3,2}")", 'N'},
          {R"("\\")", 'N'}}},
        {R"({"type":"string","format":"duration"})",
         {{R"("P1Y")", 'Y'}, {R"("P1Y2M3DT4H5M6S")", 'Y'}, {R"("PT1H")", 'Y'}, {R"("P3W")", 'Y'},
          {R"("P1DT12H")", 'Y'}, {R"("PT0S")", 'Y'}, {R"("P1M")", 'Y'}, {R"("PT1M")", 'Y'}, {R"("P")", 'F'},
          {R"("1Y")", 'F'}, {R"("P1H")", 'F'}, {R"("PT")", 'F'}, {R"("P1W2D")", 'F'}, {R"("P1.5Y")", 'F'},
          {R"("P1D2M")", 'F'}}},
        {R"({"type":"integer","format":"int32"})", {{"5", 'Y'}, {R"("5")", 'N'}}},
        {R"({"type":"string","format":"date","minLength":10,"maxLength":12})", {{R"("2024-01-01")", 'Y'}}},
        // ---- numeric bounds ----
        {R"({"type":"integer","minimum":-17,"maximum":1234})",
         {{"-17", 'Y'}, {"0", 'Y'}, {"1234", 'Y'}, {"999", 'Y'}, {"-9", 'Y'}, {"100", 'Y'}, {"1199", 'Y'},
          {"-18", 'N'}, {"1235", 'N'}, {"10000", 'N'}, {"1240", 'N'}, {"-100", 'N'}}},
        {R"({"type":"integer","exclusiveMinimum":0})",
         {{"1", 'Y'}, {"999999999999999", 'Y'}, {"0", 'N'}, {"-1", 'N'}}},
        {R"({"type":"integer","maximum":-5})", {{"-5", 'Y'}, {"-100", 'Y'}, {"-4", 'N'}, {"0", 'N'}, {"5", 'N'}}},
        {R"({"type":"integer","minimum":1.5,"exclusiveMaximum":10.5})",
         {{"2", 'Y'}, {"10", 'Y'}, {"1", 'N'}, {"11", 'N'}}},
        {R"({"type":"integer","minimum":0,"maximum":0})", {{"0", 'Y'}, {"1", 'N'}, {"-1", 'N'}, {"-0", 'V'}}},
        {R"({"type":"number","minimum":0,"maximum":1})",
         {{"0", 'Y'}, {"1", 'Y'}, {"0.5", 'Y'}, {"1.0", 'Y'}, {"1.000", 'Y'}, {"0.001", 'Y'}, {"1.01", 'N'},
          {"-0.5", 'N'}, {"2", 'N'}, {"1e-1", 'V'}}},
        {R"({"type":"number","exclusiveMinimum":-2,"exclusiveMaximum":3})",
         {{"-1.99", 'Y'}, {"2.999", 'Y'}, {"0", 'Y'}, {"-0.5", 'Y'}, {"-2.0001", 'N'}, {"-2", 'N'}, {"3", 'N'},
          {"3.0", 'N'}, {"-2.0", 'N'}, {"-1.9999999", 'Y'}}},
        {R"({"type":"number","minimum":10})",
         {{"10", 'Y'}, {"10.5", 'Y'}, {"123456.789", 'Y'}, {"9.999", 'N'}, {"-10", 'N'}}},
        {R"({"type":"number","maximum":-1.0})", {{"-1", 'Y'}, {"-1.5", 'Y'}, {"-0.5", 'N'}, {"0", 'N'}}},
        {R"({"minimum":5})", {{R"("str")", 'Y'}, {"5", 'Y'}, {"4", 'N'}, {"null", 'Y'}, {"4.5", 'N'}}},
        // Non-integral bounds: the fraction compared digit by digit with the bound's shortest decimal.
        {R"({"type":"number","minimum":0.5,"exclusiveMaximum":2.25})",
         {{"0.5", 'Y'}, {"0.50", 'Y'}, {"0.51", 'Y'}, {"1", 'Y'}, {"2.2499", 'Y'}, {"2.2", 'Y'}, {"0.49", 'N'},
          {"0.4999999", 'N'}, {"0", 'N'}, {"2.25", 'N'}, {"2.250", 'N'}, {"2.26", 'N'}, {"3", 'N'}, {"-0.5", 'N'}}},
        {R"({"type":"number","minimum":-0.1,"maximum":0.1})",
         {{"-0.1", 'Y'}, {"0.1", 'Y'}, {"0", 'Y'}, {"-0.05", 'Y'}, {"0.09999", 'Y'}, {"-0.11", 'N'},
          {"0.10000001", 'N'}, {"0.2", 'N'}, {"-1", 'N'}}},
        {R"({"type":"number","exclusiveMinimum":1e-05,"maximum":1234.5})",
         {{"0.00002", 'Y'}, {"0.000010001", 'Y'}, {"1234.5", 'Y'}, {"1234.49", 'Y'}, {"0.00001", 'N'},
          {"0.000001", 'N'}, {"0", 'N'}, {"1234.51", 'N'}, {"1235", 'N'}}},
        // Bounded by 0 alone: exponents too (two digits at most, so that nothing nonzero underflows to 0).
        {R"({"type":"number","minimum":0})",
         {{"1e-06", 'Y'}, {"2.5E+10", 'Y'}, {"0e5", 'Y'}, {"0.0", 'Y'}, {"0.001e-99", 'Y'}, {"-1e-06", 'N'},
          {"-0.0", 'V'}, {"1e-400", 'V'}}},
        {R"({"type":"number","exclusiveMinimum":0})",
         {{"1e-06", 'Y'}, {"0.5e1", 'Y'}, {"0e5", 'N'}, {"0.000e-3", 'N'}, {"1e-999", 'N'}, {"-2e3", 'N'}}},
        {R"({"type":"number","exclusiveMaximum":0})", {{"-1e-06", 'Y'}, {"-3E2", 'Y'}, {"1e-06", 'N'}, {"-0e1", 'N'}}},
        // At most 15 significant digits under bounds: a longer fraction can round onto the bound as a double.
        {R"({"type":"number","exclusiveMinimum":5})",
         {{"5.00000000001", 'Y'}, {"6", 'Y'}, {"5.0000000000000001", 'N'}, {"5", 'N'}}},
        {R"({"type":"number","exclusiveMaximum":5})",
         {{"4.99999999999999", 'Y'}, {"4.9999999999999999", 'N'}, {"5", 'N'}}},
        {R"({"type":"integer","minimum":-1000000,"maximum":1000000})",
         {{"-1000000", 'Y'}, {"1000000", 'Y'}, {"999999", 'Y'}, {"1000001", 'N'}, {"-1000001", 'N'}}},
        // ---- combinators ----
        {R"({"anyOf":[{"type":"string","maxLength":2},{"type":"integer","minimum":10}]})",
         {{R"("ab")", 'Y'}, {"10", 'Y'}, {R"("abc")", 'N'}, {"9", 'N'}}},
        {R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},
             "anyOf":[{"required":["a"]},{"required":["b"]}],"additionalProperties":false})",
         {{R"({"a":1})", 'Y'}, {R"({"b":1})", 'Y'}, {R"({"a":1,"b":2})", 'Y'}, {"{}", 'N'}}},
        {R"({"anyOf":[{"type":"string"},{"type":"null"}]})", {{R"("s")", 'Y'}, {"null", 'Y'}, {"0", 'N'}}},
        {R"({"anyOf":[{"type":"integer"},{"type":"number","minimum":0}]})",
         {{"-3", 'Y'}, {"2.5", 'Y'}, {"-2.5", 'N'}}},
        {R"({"oneOf":[{"type":"string"},{"type":"integer"}]})", {{R"("x")", 'Y'}, {"1", 'Y'}, {"null", 'N'}}},
        {R"({"oneOf":[{"const":"a"},{"const":"b"}]})", {{R"("a")", 'Y'}, {R"("b")", 'Y'}, {R"("c")", 'N'}}},
        {R"({"oneOf":[{"type":"number"},{"enum":["x",null]}]})", {{"1.5", 'Y'}, {"null", 'Y'}, {"true", 'N'}}},
        {R"({"oneOf":[
             {"type":"object","properties":{"kind":{"const":"circle"},"r":{"type":"number"}},
              "required":["kind","r"],"additionalProperties":false},
             {"type":"object","properties":{"kind":{"const":"square"},"side":{"type":"number"}},
              "required":["kind","side"],"additionalProperties":false}]})",
         {{R"({"kind":"circle","r":1})", 'Y'}, {R"({"kind":"square","side":2})", 'Y'},
          {R"({"kind":"circle","side":2})", 'N'}, {R"({"kind":"tri"})", 'N'}}},
        {R"({"allOf":[{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]},
                      {"properties":{"b":{"type":"string"}},"required":["b"]}]})",
         {{R"({"a":1,"b":"x"})", 'Y'}, {R"({"a":1})", 'N'}, {R"({"b":"x"})", 'N'}, {R"({"a":1,"b":"x","c":3})", 'Y'},
          {R"({"a":1,"b":2})", 'N'}}},
        {R"({"allOf":[{"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":false},
                      {"properties":{"b":{"type":"string"}}}]})",
         {{R"({"a":1})", 'Y'}, {"{}", 'Y'}, {R"({"a":1,"b":"x"})", 'N'}}},
        {R"({"allOf":[{"type":"integer","minimum":0},{"type":"number","maximum":10}]})",
         {{"0", 'Y'}, {"10", 'Y'}, {"11", 'N'}, {"-1", 'N'}, {"5.5", 'N'}}},
        {R"({"allOf":[{"type":"string","minLength":2},{"maxLength":3}]})",
         {{R"("ab")", 'Y'}, {R"("a")", 'N'}, {R"("abcd")", 'N'}}},
        {R"({"allOf":[{"enum":[1,"a",null]},{"type":["integer","null"]}]})",
         {{"1", 'Y'}, {"null", 'Y'}, {R"("a")", 'N'}}},
        {R"({"allOf":[{"type":"array","prefixItems":[{"type":"integer"}]},{"items":{"type":"integer","maximum":5}}]})",
         {{"[9]", 'N'}, {"[1,2]", 'Y'}, {"[5,6]", 'N'}}},
        // ---- references ----
        {R"({"$defs":{"pos":{"type":"integer","minimum":1}},"type":"object",
             "properties":{"x":{"$ref":"#/$defs/pos"},"y":{"$ref":"#/$defs/pos"}},"required":["x","y"],
             "additionalProperties":false})",
         {{R"({"x":1,"y":2})", 'Y'}, {R"({"x":0,"y":2})", 'N'}}},
        {R"({"definitions":{"s":{"type":"string"}},"type":"array","items":{"$ref":"#/definitions/s"}})",
         {{R"(["a","b"])", 'Y'}, {"[1]", 'N'}}},
        {R"({"$defs":{"node":{"type":"object","properties":{"value":{"type":"integer"},
             "children":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["value"],
             "additionalProperties":false}},"$ref":"#/$defs/node"})",
         {{R"({"value":1})", 'Y'}, {R"({"value":1,"children":[{"value":2,"children":[]},{"value":3}]})", 'Y'},
          {R"({"value":1,"children":[{}]})", 'N'}}},
        {R"({"type":["array","integer"],"items":{"$ref":"#"}})",
         {{"1", 'Y'}, {"[1,[2,[]]]", 'Y'}, {R"(["a"])", 'N'}}},
        {R"({"type":"object","properties":{"a":{"type":"string"},"b":{"$ref":"#/properties/a"}}})",
         {{R"({"a":"x","b":"y"})", 'Y'}, {R"({"b":1})", 'N'}}},
        {R"({"$defs":{"base":{"type":"object","properties":{"id":{"type":"integer"}}}},"$ref":"#/$defs/base",
             "required":["id"]})",
         {{R"({"id":1})", 'Y'}, {"{}", 'N'}, {R"({"id":"x"})", 'N'}}},
        {R"({"$defs":{"a":{"type":"object","properties":{"x":{"$ref":"#/$defs/a"},"n":{"type":"integer"}}},
                      "b":{"type":"object","properties":{"x":{"$ref":"#/$defs/b"},"n":{"maximum":3}}}},
             "allOf":[{"$ref":"#/$defs/a"},{"$ref":"#/$defs/b"}]})",
         {{R"({"x":{"x":{"n":3}},"n":1})", 'Y'}, {R"({"x":{"x":{"n":4}}})", 'N'}, {R"({"x":{"n":1.5}})", 'N'}}},
        {R"({"$defs":{"a b":{"type":"null"},"c/d":{"type":"boolean"}},"type":"array",
             "prefixItems":[{"$ref":"#/$defs/a%20b"},{"$ref":"#/$defs/c~1d"}]})",
         {{"[null,true]", 'Y'}, {"[true,null]", 'N'}}},
        // ---- annotations ----
        {R"({"title":"T","description":"d","examples":[1],"default":2,"$comment":"c",
             "$schema":"https://json-schema.org/draft/2020-12/schema","$id":"https://example.com/s",
             "deprecated":false,"readOnly":true,"writeOnly":false,"contentMediaType":"text/plain","type":"integer"})",
         {{"3", 'Y'}, {R"("3")", 'N'}}},
        // ---- keywords JSON Schema does not define, and formats hearth cannot check: annotations ----
        {R"({"type":"object","x-kubernetes-preserve-unknown-fields":true,"links":[{"rel":"self"}],
             "properties":{"a":{"type":"integer","nullable":true,"markdownDescription":"m","readonly":true}},
             "required":["a"],"example":{"a":1}})",
         {{R"({"a":1})", 'Y'}, {R"({"a":null})", 'N'}, {"{}", 'N'}, {R"({"a":"1"})", 'N'}}},
        {R"({"type":"string","format":"x-product-code","_format":"x"})",
         {{R"("AB-1")", 'Y'}, {R"("")", 'Y'}, {"1", 'N'}}},
        {R"({"type":"object","properties":{"a":{"$ref":"#/$defs/s","x-order":1}},
             "$defs":{"s":{"type":"string","maxLength":2,"self":{"href":"x"}}}})",
         {{R"({"a":"ab"})", 'Y'}, {R"({"a":"abc"})", 'N'}, {R"({"a":1})", 'N'}}},
        // ---- not, if/then/else, dependencies ----
        {R"({"not":{"type":"string"}})",
         {{"1", 'Y'}, {"null", 'Y'}, {"{}", 'Y'}, {"[1]", 'Y'}, {"1.5", 'Y'}, {R"("a")", 'N'}}},
        // Numbers with a fraction are not integers, but the grammar's types cannot say so: left out.
        {R"({"not":{"type":"integer"}})", {{R"("s")", 'Y'}, {"true", 'Y'}, {"1", 'N'}, {"1.5", 'V'}}},
        {R"({"type":["string","null"],"not":{"const":null}})", {{R"("x")", 'Y'}, {"null", 'N'}}},
        {R"({"type":"boolean","not":{"const":true}})", {{"false", 'Y'}, {"true", 'N'}}},
        {R"({"type":"string","not":{"enum":["a","bc"]}})",
         {{R"("c")", 'Y'}, {R"("ab")", 'Y'}, {R"("b")", 'Y'}, {R"("bcd")", 'Y'}, {R"("")", 'Y'}, {R"("a")", 'N'},
          {R"("bc")", 'N'}, {R"("a")", 'N'}, {R"("bc")", 'N'}}},
        {R"({"type":"object","properties":{"a":{},"b":{}},"not":{"required":["a","b"]}})",
         {{R"({"a":1})", 'Y'}, {R"({"b":1})", 'Y'}, {"{}", 'Y'}, {R"({"a":1,"b":2})", 'N'}}},
        {R"({"type":"object","not":{"anyOf":[{"required":["a"]},{"required":["b"]}]}})",
         {{"{}", 'Y'}, {R"({"c":1})", 'Y'}, {R"({"a":1})", 'N'}, {R"({"b":1})", 'N'}}},
        {R"({"not":{"properties":{"k":{"const":"x"}}}})",
         {{R"({"k":"y"})", 'Y'}, {R"({"k":2})", 'Y'}, {R"({"k":"x"})", 'N'}, {"{}", 'N'}, {"3", 'N'}}},
        {R"({"type":"object","properties":{"kind":{"enum":["a","b"]},"x":{}},"required":["kind"],
             "if":{"properties":{"kind":{"const":"a"}}},"then":{"required":["x"]},
             "else":{"properties":{"x":{"type":"integer"}}}})",
         {{R"({"kind":"a","x":"s"})", 'Y'}, {R"({"kind":"b"})", 'Y'}, {R"({"kind":"b","x":1})", 'Y'},
          {R"({"kind":"a"})", 'N'}, {R"({"kind":"b","x":"s"})", 'N'}}},
        {R"({"if":{"type":"string"},"then":{"maxLength":2},"else":{"type":"integer"}})",
         {{R"("ab")", 'Y'}, {"3", 'Y'}, {R"("abc")", 'N'}, {"3.5", 'N'}, {"null", 'N'}}},
        {R"({"type":"object","properties":{"a":{},"b":{},"c":{}},"dependentRequired":{"a":["b"]}})",
         {{R"({"a":1,"b":2})", 'Y'}, {R"({"b":1})", 'Y'}, {"{}", 'Y'}, {R"({"a":1})", 'N'}, {R"({"a":1,"c":3})", 'N'}}},
        {R"({"type":"object","properties":{"a":{},"b":{}},
             "dependentSchemas":{"a":{"properties":{"b":{"type":"string"}},"required":["b"]}}})",
         {{R"({"a":1,"b":"x"})", 'Y'}, {R"({"b":2})", 'Y'}, {R"({"a":1,"b":2})", 'N'}, {R"({"a":1})", 'N'}}},
        {R"({"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"a":{},"b":{}},
             "dependencies":{"a":["b"],"b":{"properties":{"a":{"type":"integer"}}}}})",
         {{R"({"a":1,"b":2})", 'Y'}, {R"({"b":2})", 'Y'}, {R"({"a":1})", 'N'}, {R"({"a":"s","b":2})", 'N'}}},
        // ---- propertyNames, uniqueItems ----
        // Patterns no key can match both of (their characters differ at some position): each key's value under
        // its own schema.
        {R"({"type":"object","properties":{"foo":{"type":"string"}},
             "patternProperties":{"^S_":{"type":"string"},"^I_":{"type":"integer"}},"additionalProperties":false})",
         {{R"({"foo":"x","S_a":"x","I_b":1})", 'Y'}, {R"({"I_b":2,"S_a":"y"})", 'Y'}, {"{}", 'Y'},
          {R"({"S_a":1})", 'N'}, {R"({"I_b":"x"})", 'N'}, {R"({"x":1})", 'N'}}},
        {R"({"type":"object","patternProperties":{"^c:([0-3]{1}):a$":{"type":"string"},"^c:([0-3]{1}):b$":
             {"type":"integer"},"^n:(en|nl)$":{"type":"boolean"}},"additionalProperties":false})",
         {{R"({"c:1:a":"x","c:2:b":3,"n:nl":true})", 'Y'}, {R"({"c:1:a":3})", 'N'}, {R"({"c:1:b":"x"})", 'N'},
          {R"({"c:7:a":"x"})", 'N'}, {R"({"n:de":true})", 'N'}}},
        // Keys that begin with none of the patterns' literal texts match none: additionalProperties alone (here
        // anything) rules them; keys that begin with one but miss its pattern are left out (narrower).
        {R"({"type":"object","properties":{"a":{}},"patternProperties":{"^(title_([a-z]{2}))$":{"type":"string"},
             "^x\\.y":{"type":"integer"}}})",
         {{R"({"x":{"a":1}})", 'Y'}, {R"({"title_en":"x"})", 'Y'}, {R"({"x.yz":3,"tit":[]})", 'Y'},
          {R"({"title_en":1})", 'N'}, {R"({"x.y":"s"})", 'N'}, {R"({"title_e":{}})", 'V'}}},
        {R"({"type":"object","patternProperties":{"^/":{"type":"string"},"^[^/]":{"type":"integer"}}})",
         {{R"({"/a":"x","b":1})", 'Y'}, {R"({"é":2})", 'Y'}, {R"({"/a":1})", 'N'}, {R"({"b":"x"})", 'N'}}},
        {R"({"type":"object","propertyNames":{"pattern":"^[a-z]+$"}})",
         {{R"({"ab":1})", 'Y'}, {"{}", 'Y'}, {R"({"Ab":1})", 'N'}, {R"({"a1":2})", 'N'}}},
        {R"({"type":"object","properties":{"identifier":{}},"propertyNames":{"maxLength":3}})",
         {{R"({"abc":1})", 'Y'}, {R"({"ab":1,"c":2})", 'Y'}, {R"({"abcd":1})", 'N'}, {R"({"identifier":1})", 'N'}}},
        // A declared name propertyNames allows cannot be told from an extra key of the same length: no extras.
        {R"({"type":"object","properties":{"id":{}},"propertyNames":{"maxLength":3}})",
         {{R"({"id":1})", 'Y'}, {"{}", 'Y'}, {R"({"abc":1})", 'V'}, {R"({"abcd":1})", 'N'}}},
        {R"({"type":"object","propertyNames":{"enum":["a","b"]},"additionalProperties":{"type":"integer"}})",
         {{R"({"a":1,"b":2})", 'Y'}, {"{}", 'Y'}, {R"({"c":1})", 'N'}, {R"({"a":"x"})", 'N'}}},
        {R"({"type":"object","propertyNames":{"not":{"enum":["concurrent","chunkSize"]}}})",
         {{R"({"x":1})", 'Y'}, {R"({"chunk":1})", 'Y'}, {R"({"concurrent":1})", 'N'}, {R"({"chunkSize":1})", 'N'}}},
        {R"({"type":"array","items":{"enum":["r","g","b"]},"uniqueItems":true})",
         {{R"(["r","g"])", 'Y'}, {"[]", 'Y'}, {R"(["b","g","r"])", 'Y'}, {R"(["r","r"])", 'N'},
          {R"(["r","g","b","r"])", 'N'}, {R"(["x"])", 'N'}}},
        // Objects equal whatever their key order are one value.
        {R"({"type":"array","items":{"enum":[{"a":1,"b":2},{"b":2,"a":1},{"a":2}]},"uniqueItems":true})",
         {{R"([{"a":1,"b":2},{"a":2}])", 'Y'}, {R"([{"a":1,"b":2},{"b":2,"a":1}])", 'N'}}},
        {R"({"type":"array","items":{"type":"boolean"},"uniqueItems":true,"minItems":2})",
         {{"[true,false]", 'Y'}, {"[false,true]", 'Y'}, {"[true]", 'N'}, {"[false,false]", 'N'}}},
        {R"({"type":"array","items":{"enum":[1,2,3]},"uniqueItems":true,"maxItems":2})",
         {{"[1,2]", 'Y'}, {"[3]", 'Y'}, {"[1,2,3]", 'N'}, {"[2,2]", 'N'}, {"[2,2.0]", 'N'}}},
        {R"({"type":"array","items":{"type":"string"},"uniqueItems":true,"maxItems":1})",
         {{R"(["a"])", 'Y'}, {"[]", 'Y'}, {R"(["a","b"])", 'N'}}},
        // ---- multipleOf: whole multiples ----
        {R"({"type":"number","multipleOf":1,"minimum":1,"maximum":20})",
         {{"1", 'Y'}, {"20", 'Y'}, {"7", 'Y'}, {"1.5", 'N'}, {"0", 'N'}, {"21", 'N'}, {"2.0", 'V'}}},
        {R"({"type":"integer","multipleOf":12,"minimum":0})",
         {{"0", 'Y'}, {"12", 'Y'}, {"144", 'Y'}, {"999999999999996", 'Y'}, {"13", 'N'}, {"-12", 'N'}, {"6", 'N'},
          {"120", 'Y'}, {"1200000000", 'Y'}, {"1200000001", 'N'}}},
        {R"({"type":"integer","multipleOf":7})",
         {{"0", 'Y'}, {"-7", 'Y'}, {"49", 'Y'}, {"-50", 'N'}, {"7000000000007", 'Y'}, {"7000000000008", 'N'}}},
        {R"({"type":"integer","multipleOf":5,"exclusiveMinimum":0})", {{"0", 'N'}, {"5", 'Y'}, {"10", 'Y'}, {"-5", 'N'}}},
        // The same modulus with and without 0 in one document: two rules.
        {R"({"type":"object","properties":{"a":{"type":"integer","multipleOf":5,"minimum":0},
             "b":{"type":"integer","multipleOf":5,"exclusiveMinimum":0}},"required":["a","b"]})",
         {{R"({"a":0,"b":5})", 'Y'}, {R"({"a":0,"b":0})", 'N'}, {R"({"a":5,"b":10})", 'Y'}}},
        {R"({"allOf":[{"multipleOf":4},{"multipleOf":6}],"type":"integer"})",
         {{"12", 'Y'}, {"24", 'Y'}, {"8", 'N'}, {"6", 'N'}, {"0", 'Y'}}},
        {R"({"type":["number","string"],"multipleOf":3,"enum":[3,4,"a",6.5,9]})",
         {{"3", 'Y'}, {"9", 'Y'}, {"4", 'N'}, {R"("a")", 'Y'}, {"6.5", 'N'}}},
        // ---- minProperties: members counted ----
        {R"({"type":"object","minProperties":1,"additionalProperties":{"type":"string"}})",
         {{"{}", 'N'}, {R"({"a":"x"})", 'Y'}, {R"({"a":"x","b":"y"})", 'Y'}, {R"({"a":1})", 'N'}}},
        {R"({"type":"object","properties":{"a":{},"b":{},"c":{}},"minProperties":2,"additionalProperties":false})",
         {{R"({"a":1})", 'N'}, {R"({"a":1,"c":2})", 'Y'}, {R"({"a":1,"b":2,"c":3})", 'Y'}, {"{}", 'N'},
          {R"({"b":[],"c":{}})", 'Y'}}},
        {R"({"type":"object","properties":{"a":{},"b":{}},"required":["a"],"minProperties":2})",
         {{R"({"a":1})", 'N'}, {R"({"a":1,"x":2})", 'Y'}, {R"({"a":1,"b":2})", 'Y'}, {R"({"a":1,"x":2,"x":3})", 'Y'},
          {R"({"b":1,"x":2})", 'N'}}},
        {R"({"type":"object","properties":{"a":{"type":"object","minProperties":2,"maxProperties":2,
             "properties":{"p":{},"q":{}},"additionalProperties":false}}})",
         {{R"({"a":{"p":1,"q":2}})", 'Y'}, {R"({"a":{"p":1}})", 'N'}, {"{}", 'Y'}}},
        // maxProperties: every member written counts.
        {R"({"type":"object","properties":{"a":{},"b":{}},"maxProperties":1})",
         {{R"({"a":1})", 'Y'}, {"{}", 'Y'}, {R"({"c":1})", 'Y'}, {R"({"a":1,"b":2})", 'N'}, {R"({"c":1,"d":2})", 'N'},
          {R"({"a":1,"c":2})", 'N'}}},
        {R"({"type":"object","properties":{"a":{}},"required":["a"],"additionalProperties":{"type":"integer"},
             "maxProperties":3})",
         {{R"({"a":1,"x":1,"y":2})", 'Y'}, {R"({"a":"s"})", 'Y'}, {R"({"a":1,"x":1,"y":2,"z":3})", 'N'},
          {R"({"a":1,"x":"s"})", 'N'}, {R"({"x":1})", 'N'}}},
        // ---- patternProperties ----
        {R"({"type":"object","patternProperties":{"^x-":{"type":"integer"}},"additionalProperties":false})",
         {{"{}", 'Y'}, {R"({"x-a":1})", 'Y'}, {R"({"x-a":1,"x-b":2})", 'Y'}, {R"({"x-a":"s"})", 'N'},
          {R"({"y":1})", 'N'}, {R"({"ax-":1})", 'N'}}},
        {R"({"type":"object","properties":{"name":{"type":"string"}},"patternProperties":{"^[0-9]+$":{"type":"boolean"}}})",
         {{R"({"name":"a","12":true})", 'Y'}, {R"({"12":1})", 'N'}, {R"({"name":"a","other":true})", 'Y'},
          {R"({"name":"a","other":null})", 'V'}, {R"({"name":1})", 'N'}}},
        {R"({"properties":{"x-id":{"type":"integer"}},"patternProperties":{"^x-":{"minimum":5}}})",
         {{R"({"x-id":7})", 'Y'}, {R"({"x-id":3})", 'N'}, {R"({"x-other":6})", 'Y'}, {R"({"x-other":4})", 'N'}}},
        {R"({"patternProperties":{"^a":{"type":"integer"},"b$":{"type":"number","maximum":10}},
             "additionalProperties":false})",
         {{R"({"a1":3})", 'Y'}, {R"({"ab":3})", 'Y'}, {R"({"zb":2.5})", 'V'}, {R"({"a1":11})", 'V'},
          {R"({"ab":11})", 'N'}, {R"({"c":1})", 'N'}, {R"({"ab":1.5})", 'N'}}},
        {R"({"type":"object","patternProperties":{"é|\\.":{"const":1}},"additionalProperties":{"type":"string"}})",
         {{R"({"café":1})", 'Y'}, {R"({"a.b":1})", 'Y'}, {R"({"a.b":"s"})", 'N'}, {R"({"ab":"s"})", 'V'},
          {R"({"caf\u00e9":1})", 'V'}, {R"({"ab":1})", 'N'}}},
        {R"({"properties":{"x-a":{"type":"integer"}},"patternProperties":{"^x-":{}},"additionalProperties":false})",
         // A key the pattern matches may repeat x-a (JSON keeps the last value): it carries x-a's schema too.
         {{R"({"x-a":1})", 'Y'}, {"{}", 'Y'}, {R"({"x-b":1})", 'Y'}, {R"({"x-b":"s"})", 'V'}, {R"({"y":1})", 'N'},
          {R"({"x-a":"s"})", 'N'}, {R"({"x-a":1,"x-a":2})", 'Y'}, {R"({"x-a":1,"x-a":"s"})", 'N'}}},
        // ---- earlier drafts, as the root's $schema names them ----
        {R"({"$schema":"http://json-schema.org/draft-04/schema#","id":"http://example.com/s","type":"integer",
             "minimum":1,"exclusiveMinimum":true,"maximum":5,"exclusiveMaximum":true})",
         {{"2", 'Y'}, {"4", 'Y'}, {"1", 'N'}, {"5", 'N'}, {"0", 'N'}, {"6", 'N'}}},
        {R"({"$schema":"http://json-schema.org/draft-04/schema#","type":"number","minimum":1,
             "exclusiveMinimum":false,"maximum":3,"exclusiveMaximum":false})",
         {{"1", 'Y'}, {"3", 'Y'}, {"0.5", 'N'}, {"3.5", 'N'}}},
        {R"({"$schema":"http://json-schema.org/draft-04/schema#","type":"object",
             "properties":{"a":{"id":"#a","type":"string"},"b":{"id":"http://example.com/b","type":"integer"}}})",
         {{R"({"a":"x","b":1})", 'Y'}, {R"({"b":"x"})", 'N'}}},
        {R"({"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"s":{"type":"string"}},
             "type":"object","properties":{"a":{"$ref":"#/definitions/s","maxLength":1}}})",
         {{R"({"a":"long"})", 'Y'}, {R"({"a":"l"})", 'Y'}, {R"({"a":1})", 'N'}}},
        {R"({"$defs":{"s":{"type":"string"}},"type":"object","properties":{"a":{"$ref":"#/$defs/s","maxLength":1}}})",
         {{R"({"a":"l"})", 'Y'}, {R"({"a":"long"})", 'N'}, {R"({"a":1})", 'N'}}},
        {R"({"$schema":"http://json-schema.org/draft-07/schema#","type":"array",
             "items":[{"type":"integer"},{"type":"string"}],"additionalItems":false})",
         {{R"([1,"a"])", 'Y'}, {"[1]", 'Y'}, {"[]", 'Y'}, {R"([1,"a",2])", 'N'}, {R"(["a"])", 'N'}}},
        {R"({"$schema":"http://json-schema.org/draft-04/schema#","type":"array",
             "items":[{"type":"integer"}],"additionalItems":{"type":"boolean"},"maxItems":3})",
         {{"[1,true,false]", 'Y'}, {"[1]", 'Y'}, {"[1,1]", 'N'}, {"[1,true,true,true]", 'N'}}},
        {R"({"$schema":"http://json-schema.org/draft-07/schema#","type":"array","items":{"type":"integer"},
             "additionalItems":false})",
         {{"[1,2,3]", 'Y'}, {"[]", 'Y'}, {R"(["a"])", 'N'}}},
        {R"({"$schema":"https://json-schema.org/draft/2019-09/schema","type":"array","items":[{"const":1}]})",
         {{"[1]", 'Y'}, {"[1,{}]", 'Y'}, {"[2]", 'N'}}},
    };
    return cases;
}

test::JsonSchemaVerdicts run_oracle(const std::vector<Case>& cases) {
    std::vector<std::pair<ojson, std::vector<std::string>>> table;
    for (const Case& c : cases) {
        std::vector<std::string> texts;
        for (const Cand& x : c.cands) texts.push_back(x.text);
        table.emplace_back(ojson::parse(c.schema), std::move(texts));
    }
    return test::jsonschema_oracle(table);
}

// A random document of the grammar's language: random alternatives, turning to the shortest ones past a depth
// so that every walk ends; characters mostly near the start of their range (readable text), sometimes anywhere.
class Sampler {
public:
    Sampler(const Grammar& g, uint64_t seed) : g_(g), rng_(seed), min_len_(g.rules.size(), kInf) {
        for (bool changed = true; changed;) {
            changed = false;
            for (size_t r = 0; r < g.rules.size(); ++r)
                for (const Sequence& s : g.rules[r].alternatives) {
                    const size_t n = length(s);
                    if (n < min_len_[r]) {
                        min_len_[r] = n;
                        changed = true;
                    }
                }
        }
    }

    std::string sample() {
        std::string out;
        walk(g_.root, 0, out);
        return out;
    }

private:
    static constexpr size_t kInf = SIZE_MAX / 4;

    size_t length(const Sequence& s) const {
        size_t n = 0;
        for (const Element& e : s) n = std::min(kInf, n + (e.kind == Element::Kind::Chars ? 1 : min_len_[e.rule]));
        return n;
    }

    void walk(int rule, int depth, std::string& out) {
        const auto& alts = g_.rules[rule].alternatives;
        size_t pick = 0;
        if (depth < 12 && rng_() % 4 != 0) {
            pick = rng_() % alts.size();
        } else {
            for (size_t a = 1; a < alts.size(); ++a)
                if (length(alts[a]) < length(alts[pick])) pick = a;
        }
        for (const Element& e : alts[pick]) {
            if (e.kind == Element::Kind::Rule) {
                walk(e.rule, depth + 1, out);
                continue;
            }
            const CharRange& r = e.ranges[rng_() % e.ranges.size()];
            const uint64_t span = uint64_t{r.hi} - r.lo + 1;
            uint32_t cp = r.lo + static_cast<uint32_t>(rng_() % (rng_() % 8 ? std::min<uint64_t>(span, 95) : span));
            append_utf8(out, cp);
        }
    }

    const Grammar& g_;
    std::mt19937_64 rng_;
    std::vector<size_t> min_len_;
};

TEST(JsonSchemaConformance, TableAgreesWithPythonJsonschema) {
    std::vector<Case> cases = table();
    ASSERT_GE(cases.size(), 80u);
    std::vector<std::optional<Grammar>> grammars;
    for (size_t i = 0; i < cases.size(); ++i) {
        SCOPED_TRACE("schema " + std::to_string(i) + ": " + cases[i].schema);
        try {
            grammars.push_back(compile_json_schema(ojson::parse(cases[i].schema)));
        } catch (const Error& e) {
            ADD_FAILURE() << "refused: " << e.what();
            grammars.push_back(std::nullopt);
            continue;
        }
        Sampler sampler(*grammars.back(), 1000 + i);
        std::set<std::string> drawn;
        for (int k = 0; k < 60 && drawn.size() < 25; ++k) drawn.insert(sampler.sample());
        for (const std::string& text : drawn) cases[i].cands.push_back({text, 'S'});
    }
    const test::JsonSchemaVerdicts oracle = run_oracle(cases);
    ASSERT_EQ(oracle.results.size(), cases.size());
    size_t checked = 0, sampled = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
        const Case& c = cases[i];
        SCOPED_TRACE("schema " + std::to_string(i) + ": " + c.schema);
        if (!grammars[i]) continue;
        const Grammar& g = *grammars[i];
        EXPECT_NO_THROW(g.validate());
        EXPECT_NO_THROW(parse_gbnf(to_gbnf(g))) << to_gbnf(g);
        Recognizer rec(g);
        ASSERT_EQ(oracle.results[i].size(), c.cands.size());
        for (size_t k = 0; k < c.cands.size(); ++k) {
            const Cand& x = c.cands[k];
            const ojson& py = oracle.results[i][k];
            const bool accepted = rec.matches(x.text);
            const bool valid = py.is_boolean() && py.get<bool>();
            SCOPED_TRACE("candidate " + x.text);
            EXPECT_EQ(accepted, x.expect == 'Y' || x.expect == 'S');
            if (accepted) {
                EXPECT_TRUE(valid) << "the grammar accepts an invalid text";
            }
            if (x.expect == 'Y' || x.expect == 'V') {
                EXPECT_TRUE(valid) << "expected valid";
            }
            if (x.expect == 'N') {
                EXPECT_FALSE(valid) << "expected invalid";
            }
            ++checked;
            sampled += x.expect == 'S';
        }
    }
    EXPECT_GE(checked, 1500u);
    EXPECT_GE(sampled, 1000u);
    // The formats Python asserts here: jsonschema's own checkers, and for time/date-time either its checkers or
    // the script's RFC 3339 fallback.
    for (const char* f : {"date", "uuid", "ipv4", "uri", "email", "time", "date-time"})
        EXPECT_TRUE(oracle.checked_formats.count(f)) << f;
}

// ---- refusals: each names its keyword and the JSON pointer ----

struct Refusal {
    std::string schema, keyword, pointer;
};
// Each schema is refused with a message naming its keyword and JSON pointer.
void expect_refusals(const std::vector<Refusal>& refusals, const JsonSchemaOptions& options);

TEST(JsonSchemaRefusal, NamesKeywordAndPointer) {
    const std::vector<Refusal> refusals = {
        // Negation (not, and the if of if/then/else) only of what has a complement hearth can write.
        {R"({"not":{"minimum":3}})", "minimum", "#/not/minimum"},
        {R"({"type":"object","properties":{"a":{"if":{"pattern":"^x"},"then":{"maxLength":3}}}})", "pattern",
         "#/properties/a/if/pattern"},
        {R"({"not":{"properties":{"a":{"type":"string","maxLength":2}}}})", "maxLength",
         "#/not/properties/a/maxLength"},
        {R"({"type":"integer","not":{"const":3}})", "not", "#/not"},
        {R"({"type":"string","maxLength":4,"not":{"enum":["a","b"]}})", "not", "#/not"},
        {R"({"not":7})", "not", "#/not"},
        {R"({"dependentRequired":{"a":"b"}})", "dependentRequired", "#/dependentRequired/a"},
        {R"({"dependentSchemas":{"a":["b"]}})", "dependentSchemas", "#/dependentSchemas/a"},
        {R"({"dependencies":{"a":3}})", "dependencies", "#/dependencies/a"},
        // The same object written with its keys in another order: one value, so the branches overlap.
        {R"({"oneOf":[{"const":{"a":1,"b":2}},{"const":{"b":2,"a":1}}]})", "oneOf", "#/oneOf"},
        {R"({"propertyNames":{"format":"email"}})", "propertyNames", "#/propertyNames"},
        {R"({"type":"object","propertyNames":{"pattern":"^a","maxLength":3}})", "propertyNames", "#/propertyNames"},
        {R"({"type":"object","patternProperties":{"^x":{}},"propertyNames":{"maxLength":3}})", "propertyNames",
         "#/propertyNames"},
        {R"({"type":"array","items":{"type":"string"},"uniqueItems":true})", "uniqueItems", "#/uniqueItems"},
        {R"({"type":"array","items":{"type":"integer","maximum":20},"uniqueItems":true})", "uniqueItems",
         "#/uniqueItems"},
        {R"({"type":"array","contains":{"type":"integer"}})", "contains", "#/contains"},
        {R"({"minContains":1})", "minContains", "#/minContains"},
        {R"({"maxContains":1})", "maxContains", "#/maxContains"},
        {R"({"unevaluatedItems":false})", "unevaluatedItems", "#/unevaluatedItems"},
        {R"({"unevaluatedProperties":false})", "unevaluatedProperties", "#/unevaluatedProperties"},
        {R"({"type":"array","items":{"type":"number","multipleOf":0.01}})", "multipleOf", "#/items/multipleOf"},
        {R"({"type":"integer","multipleOf":3,"maximum":100})", "multipleOf", "#/multipleOf"},
        {R"({"type":"integer","multipleOf":7,"minimum":8})", "multipleOf", "#/multipleOf"},
        {R"({"type":"integer","multipleOf":101})", "multipleOf", "#/multipleOf"},
        {R"({"type":"integer","multipleOf":0})", "multipleOf", "#/multipleOf"},
        {R"({"$dynamicRef":"#meta"})", "$dynamicRef", "#/$dynamicRef"},
        {R"({"type":"array","uniqueItems":true})", "uniqueItems", "#/uniqueItems"},
        {R"({"oneOf":[{"type":"string"},{"type":"string","maxLength":3}]})", "oneOf", "#/oneOf"},
        {R"({"oneOf":[{"type":"integer"},{"type":"number"}]})", "oneOf", "#/oneOf"},
        {R"({"type":"string","pattern":"a","minLength":2})", "pattern", "#/pattern"},
        {R"({"type":"string","pattern":"a","format":"date"})", "pattern", "#/pattern"},
        {R"J({"type":"string","pattern":"a(?=b)"})J", "pattern", "#/pattern"},
        {R"({"type":"string","enum":["a"],"pattern":"a"})", "pattern", "#/pattern"},
        {R"({"type":"integer","exclusiveMinimum":true})", "exclusiveMinimum", "#/exclusiveMinimum"},
        {R"({"type":"object","minProperties":65})", "minProperties", "#/minProperties"},
        {R"({"type":"object","minProperties":1,"maxProperties":2})", "maxProperties", "#/maxProperties"},
        {R"({"type":"object","maxProperties":65})", "maxProperties", "#/maxProperties"},
        {R"({"type":"string","format":"date","maxLength":5})", "format", "#/format"},
        {R"({"type":"string","format":"iri"})", "format", "#/format"},
        {R"({"allOf":[{"patternProperties":{"^a":{}}},{"additionalProperties":false}]})", "patternProperties",
         "#/allOf/0/patternProperties"},
        {R"J({"patternProperties":{"(?=a)":{}}})J", "patternProperties", "#/patternProperties/(?=a)"},
        {R"({"type":"object","properties":{"a":{"format":"idn-email"}}})", "format", "#/properties/a/format"},
        {R"({"$ref":"https://example.com/s.json"})", "$ref", "#/$ref"},
        {R"({"$ref":"#foo"})", "$ref", "#/$ref"},
        {R"({"properties":{"a":{"$ref":"#/$defs/nope"}}})", "$ref", "#/properties/a/$ref"},
        {R"({"type":"array","items":[{"type":"integer"}],"prefixItems":[]})", "items", "#/items"},
        {R"({"allOf":[{"pattern":"a"},{"pattern":"b"}]})", "pattern", "#/allOf/0/pattern"},
        {R"({"type":"string","maxLength":200000})", "maxLength", "#/maxLength"},
        {R"({"type":"array","minItems":100001})", "minItems", "#/minItems"},
        {R"({"$defs":{"a":{}},"type":"object",
             "properties":{"x":{"$id":"https://example.com/x","items":{"$ref":"#/$defs/a"}}}})",
         "$id", "#/properties/x/$id"},
        {R"({"$schema":"http://json-schema.org/draft-04/schema#",
             "properties":{"x":{"id":"x.json","items":{"$ref":"#"}}}})",
         "id", "#/properties/x/id"},
        {R"({"type":"object","properties":{"x":{"$id":7}}})", "$id", "#/properties/x/$id"},
        {R"({"$schema":"http://json-schema.org/draft-03/schema#","type":"string"})", "$schema", "#/$schema"},
        {R"({"$schema":7})", "$schema", "#/$schema"},
        {R"({"$schema":"http://json-schema.org/draft-07/schema#","type":"integer","exclusiveMinimum":true})",
         "exclusiveMinimum", "#/exclusiveMinimum"},
        {R"({"type":"bogus"})", "type", "#/type"},
        {R"({"required":"a"})", "required", "#/required"},
    };
    expect_refusals(refusals, {});
}

// With strict_keywords, what validators ignore is refused instead: unknown keywords and unknown formats.
TEST(JsonSchemaRefusal, StrictKeywordsRefusesWhatValidatorsIgnore) {
    const std::vector<Refusal> refusals = {
        {R"({"type":"string","foo":1})", "foo", "#/foo"},
        {R"({"nullable":true,"type":"string"})", "nullable", "#/nullable"},
        {R"({"$defs":{"x":{"bar":1}},"$ref":"#/$defs/x"})", "bar", "#/$defs/x/bar"},
        {R"({"anyOf":[{"type":"null"},{"a~b/c":1}]})", "a~b/c", "#/anyOf/1/a~0b~1c"},
        {R"({"type":"string","format":"x-serial-number"})", "format", "#/format"},
        {R"({"type":"object","properties":{"a":{"x-kubernetes-int-or-string":true}}})", "x-kubernetes-int-or-string",
         "#/properties/a/x-kubernetes-int-or-string"},
    };
    JsonSchemaOptions strict;
    strict.strict_keywords = true;
    expect_refusals(refusals, strict);
    // The same schemas compile without it, and the known keywords beside the ignored ones still hold.
    for (const Refusal& r : refusals) EXPECT_NO_THROW(compile_json_schema(ojson::parse(r.schema))) << r.schema;
    const Grammar g = compile_json_schema(ojson::parse(R"({"type":"string","foo":1})"));
    EXPECT_TRUE(Recognizer(g).matches(R"("x")"));
    EXPECT_FALSE(Recognizer(g).matches("1"));
}

void expect_refusals(const std::vector<Refusal>& refusals, const JsonSchemaOptions& options) {
    for (const Refusal& r : refusals) {
        SCOPED_TRACE(r.schema);
        try {
            compile_json_schema(ojson::parse(r.schema), options);
            ADD_FAILURE() << "accepted";
        } catch (const Error& e) {
            const std::string msg = e.what();
            EXPECT_NE(msg.find("'" + r.keyword + "'"), std::string::npos) << msg;
            EXPECT_NE(msg.find(r.pointer), std::string::npos) << msg;
        }
    }
}

TEST(JsonSchemaRefusal, UnsatisfiableAndCyclicSchemas) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"false", "matches no JSON value"},
        {R"({"not":{}})", "matches no JSON value"},
        {R"({"type":"boolean","not":{"enum":[true,false]}})", "matches no JSON value"},
        {R"({"type":"integer","minimum":5,"maximum":4})", "matches no JSON value"},
        {R"({"type":"object","properties":{"a":{"$ref":"#"}},"required":["a"]})", "no finite JSON value"},
        {R"({"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"})", "$ref"},
        {R"({"anyOf":[{"$ref":"#"},{"type":"null"}]})", "refers to itself"},
        {R"({"allOf":[{"$ref":"#/allOf/1"},{"$ref":"#/allOf/0"}]})", "refers to itself"},
    };
    for (const auto& [schema, needle] : cases) {
        SCOPED_TRACE(schema);
        try {
            compile_json_schema(ojson::parse(schema));
            ADD_FAILURE() << "accepted";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    }
}

// ---- options and shapes ----

TEST(JsonSchemaOptions, StrictObjectsAndCompactWhitespace) {
    JsonSchemaOptions strict;
    strict.allow_additional_properties = false;
    const ojson s = ojson::parse(R"({"type":"object","properties":{"a":{"type":"integer"}},"required":["b"]})");
    {
        Grammar g = compile_json_schema(s, strict);
        Recognizer rec(g);
        EXPECT_TRUE(rec.matches(R"({"a":1,"b":true})"));
        EXPECT_TRUE(rec.matches(R"({"b":[]})"));
        EXPECT_FALSE(rec.matches(R"({"a":1,"b":1,"c":2})"));
    }
    JsonSchemaOptions compact;
    compact.whitespace = JsonSchemaOptions::Whitespace::None;
    Grammar g = compile_json_schema(
        ojson::parse(R"({"type":"object","properties":{"a":{"type":"array"}},"required":["a"]})"), compact);
    Recognizer rec(g);
    EXPECT_TRUE(rec.matches(R"({"a":[1,{"x":"y z"}]})"));
    EXPECT_FALSE(rec.matches(R"({ "a": [1] })"));
    EXPECT_FALSE(rec.matches(R"({"a":[1, 2]})"));
    EXPECT_FALSE(rec.matches(R"({"a":[1]} )"));
    for (const auto& e : g.rules)
        for (const auto& alt : e.alternatives)
            for (const auto& el : alt)
                if (el.kind == Element::Kind::Chars) {
                    for (const CharRange& r : el.ranges) EXPECT_FALSE(r.lo <= '\n' && '\n' <= r.hi && r.hi < 0x20);
                }
}

TEST(JsonSchemaOptions, FlexibleWhitespaceIsBounded) {
    Grammar g = compile_json_schema(ojson::parse(R"({"type":"array","items":{"type":"integer"}})"));
    Recognizer rec(g);
    EXPECT_TRUE(rec.matches("[\n" + std::string(40, ' ') + "1\n]"));
    EXPECT_FALSE(rec.matches("[\n" + std::string(41, ' ') + "1\n]"));
    EXPECT_FALSE(rec.matches("[\n\n1]"));
    EXPECT_FALSE(rec.matches("[  1]"));
    EXPECT_TRUE(rec.matches("[ 1 , 2 ]"));
}

TEST(JsonSchemaOptions, JsonObjectGrammar) {
    for (auto ws : {JsonSchemaOptions::Whitespace::None, JsonSchemaOptions::Whitespace::Flexible}) {
        JsonSchemaOptions o;
        o.whitespace = ws;
        o.allow_additional_properties = false;  // json_object means any object whatever the option
        Grammar g = json_object_grammar(o);
        EXPECT_NO_THROW(g.validate());
        Recognizer rec(g);
        EXPECT_TRUE(rec.matches("{}"));
        EXPECT_TRUE(rec.matches(R"({"a":[1,{"b":null}],"c":"d"})"));
        EXPECT_FALSE(rec.matches("[]"));
        EXPECT_FALSE(rec.matches("1"));
        EXPECT_EQ(rec.matches(R"({ "a": 1 })"), ws == JsonSchemaOptions::Whitespace::Flexible);
    }
}

TEST(JsonSchemaShape, DeclaredOrderNeedsOrderedJson) {
    const std::string text = R"({"type":"object","properties":{"b":{"type":"integer"},"a":{"type":"integer"}},
        "required":["a","b"],"additionalProperties":false})";
    Grammar ordered = compile_json_schema(ojson::parse(text));
    EXPECT_TRUE(Recognizer(ordered).matches(R"({"b":1,"a":2})"));
    EXPECT_FALSE(Recognizer(ordered).matches(R"({"a":2,"b":1})"));
    Grammar sorted = compile_json_schema(nlohmann::json::parse(text));  // std::map order: a, b
    EXPECT_TRUE(Recognizer(sorted).matches(R"({"a":2,"b":1})"));
}

// in_schema_order writes an instance the way the grammar admits it: declared properties first, in the order
// the compiler merges them ($ref, allOf), through arrays and nested objects; the rest keep their order.
TEST(JsonSchemaShape, InstancesReorderedAsTheGrammarAdmitsThem) {
    const ojson schema = ojson::parse(R"({"$defs":{"pt":{"type":"object","properties":{"x":{},"y":{}}}},
        "type":"object","properties":{"id":{"type":"integer"},"pts":{"type":"array","items":{"$ref":"#/$defs/pt"}},
        "pair":{"prefixItems":[{"properties":{"b":{},"a":{}}}],"items":{"properties":{"d":{},"c":{}}}}},
        "allOf":[{"properties":{"z":{"properties":{"q":{},"p":{}}}}}]})");
    const ojson instance = ojson::parse(
        R"({"extra":1,"z":{"p":1,"q":2},"pts":[{"y":1,"x":2,"w":3}],"id":7,"pair":[{"a":1,"b":2},{"c":1,"d":2}]})");
    const ojson ordered = in_schema_order(instance, schema);
    EXPECT_EQ(ordered.dump(),
              R"({"id":7,"pts":[{"x":2,"y":1,"w":3}],"pair":[{"b":2,"a":1},{"d":2,"c":1}],"z":{"q":2,"p":1},"extra":1})");
    EXPECT_EQ(nlohmann::json(ordered), nlohmann::json(instance));  // the same value, keys aside
    EXPECT_TRUE(Recognizer(compile_json_schema(schema)).matches(ordered.dump()));
    EXPECT_FALSE(Recognizer(compile_json_schema(schema)).matches(instance.dump()));
    // anyOf: the order of the branch the instance is written for (the one declaring most of its keys).
    const ojson any = ojson::parse(R"({"anyOf":[{"properties":{"a":{},"b":{}},"additionalProperties":false},
        {"properties":{"a":{},"c":{},"b":{}},"additionalProperties":false}]})");
    const ojson abc = in_schema_order(ojson::parse(R"({"b":1,"a":2,"c":3})"), any);
    EXPECT_EQ(abc.dump(), R"({"a":2,"c":3,"b":1})");
    EXPECT_TRUE(Recognizer(compile_json_schema(any)).matches(abc.dump()));
    EXPECT_EQ(in_schema_order(ojson::parse(R"({"b":1,"a":2})"), any).dump(), R"({"a":2,"b":1})");
    // Drafts 4-7: a $ref replaces its siblings, so their properties do not count.
    const ojson d7 = ojson::parse(R"({"$schema":"http://json-schema.org/draft-07/schema#",
        "definitions":{"a":{"properties":{"m":{},"n":{}}}},"$ref":"#/definitions/a","properties":{"n":{},"m":{}}})");
    EXPECT_EQ(in_schema_order(ojson::parse(R"({"n":1,"m":2})"), d7).dump(), R"({"m":2,"n":1})");
    // The branch whose type admits the value (an array here, though the object branch comes first), and the
    // schemas of the patternProperties a key matches.
    const ojson typed = ojson::parse(R"({"patternProperties":{"^h":{"oneOf":[
        {"type":"object","properties":{"@type":{},"@id":{}}},
        {"type":"array","items":{"type":"object","properties":{"@type":{},"@id":{}}}}]}}})");
    EXPECT_EQ(in_schema_order(ojson::parse(R"({"hobbies":[{"@id":"3","@type":"Hobby"}]})"), typed).dump(),
              R"({"hobbies":[{"@type":"Hobby","@id":"3"}]})");
    // Required names no schema declares: after the declared ones, in the order `required` lists them.
    const ojson req = ojson::parse(R"({"properties":{"a":{}},"required":["z","y"],"patternProperties":{"^.$":{}}})");
    const ojson zy = in_schema_order(ojson::parse(R"({"x":1,"y":2,"a":3,"z":4})"), req);
    EXPECT_EQ(zy.dump(), R"({"a":3,"z":4,"y":2,"x":1})");
    EXPECT_TRUE(Recognizer(compile_json_schema(req)).matches(zy.dump()));
}

TEST(JsonSchemaShape, ManyOptionalPropertiesStayLinear) {
    ojson s = {{"type", "object"}, {"properties", ojson::object()}, {"additionalProperties", false}};
    for (int i = 0; i < 200; ++i) s["properties"]["p" + std::to_string(i)] = {{"type", "integer"}};
    Grammar g = compile_json_schema(s);
    size_t elements = 0;
    for (const Rule& r : g.rules)
        for (const Sequence& a : r.alternatives) elements += a.size();
    EXPECT_LT(elements, 20000u);
    Recognizer rec(g);
    EXPECT_TRUE(rec.matches(R"({"p3":1,"p77":2,"p199":3})"));
    EXPECT_TRUE(rec.matches("{}"));
    EXPECT_FALSE(rec.matches(R"({"p77":2,"p3":1})"));
}

// ---- exhaustive checks of the arithmetic and calendar grammars ----

TEST(JsonSchemaRanges, IntegerRangesExactly) {
    struct R {
        std::optional<long long> lo, hi;
    };
    const std::vector<R> ranges = {{-17, 1234}, {0, 0},     {-1, 1},      {5, std::nullopt}, {std::nullopt, -5},
                                   {-999, -100}, {1, 9},    {10, 99},     {-10, 10},         {199, 2001},
                                   {std::nullopt, std::nullopt}};
    for (const R& r : ranges) {
        ojson s = {{"type", "integer"}};
        if (r.lo) s["minimum"] = *r.lo;
        if (r.hi) s["maximum"] = *r.hi;
        SCOPED_TRACE(s.dump());
        Grammar g = compile_json_schema(s, {JsonSchemaOptions::Whitespace::None, true});
        Recognizer rec(g);
        for (long long v = -2100; v <= 2100; ++v) {
            const bool in = (!r.lo || v >= *r.lo) && (!r.hi || v <= *r.hi);
            ASSERT_EQ(rec.matches(std::to_string(v)), in) << v;
        }
    }
    // Large bounds, probed at random and at the edges.
    std::mt19937_64 rng(7);
    for (int t = 0; t < 30; ++t) {
        long long a = static_cast<long long>(rng() % 2000000000000000ULL) - 1000000000000000LL + 1;
        long long b = static_cast<long long>(rng() % 2000000000000000ULL) - 1000000000000000LL + 1;
        if (a > b) std::swap(a, b);
        const ojson s = {{"type", "integer"}, {"minimum", a}, {"maximum", b}};
        Grammar g = compile_json_schema(s, {JsonSchemaOptions::Whitespace::None, true});
        Recognizer rec(g);
        std::vector<long long> probes = {a, b, a - 1, b + 1, a + 1, b - 1, (a + b) / 2};
        for (int k = 0; k < 20; ++k)
            probes.push_back(static_cast<long long>(rng() % 2000000000000000ULL) - 1000000000000000LL);
        for (long long v : probes) {
            if (v < -999999999999999LL || v > 999999999999999LL) continue;
            ASSERT_EQ(rec.matches(std::to_string(v)), v >= a && v <= b) << s.dump() << " " << v;
        }
    }
}

TEST(JsonSchemaRanges, NumberRangesExactly) {
    struct B {
        const char* key;
        double value;
    };
    const std::vector<std::vector<B>> bounds = {
        {{"minimum", 0}, {"maximum", 1}},         {{"exclusiveMinimum", -2}, {"exclusiveMaximum", 3}},
        {{"minimum", -3}},                        {{"exclusiveMaximum", 0}},
        {{"exclusiveMinimum", 0}},                {{"minimum", 2}, {"exclusiveMaximum", 2}},
        {{"minimum", -1}, {"maximum", -1}},     {{"minimum", 0.5}},
        {{"exclusiveMaximum", 2.25}},            {{"minimum", -1.05}, {"exclusiveMaximum", 3.999}},
        {{"exclusiveMinimum", 0.25}, {"maximum", 0.25}}, {{"exclusiveMinimum", -0.25}, {"maximum", 0.25}},
        {{"minimum", 4.05}, {"maximum", 4.5}},   {{"exclusiveMinimum", -5.5}, {"exclusiveMaximum", -4.05}}};
    const char* fracs[] = {"", ".0", ".00", ".5", ".25", ".05", ".999", ".2500", ".2501", ".049", ".0500001"};
    for (const auto& bs : bounds) {
        ojson s = {{"type", "number"}};
        for (const B& b : bs) s[b.key] = b.value;
        SCOPED_TRACE(s.dump());
        Grammar g;
        try {
            g = compile_json_schema(s, {JsonSchemaOptions::Whitespace::None, true});
        } catch (const Error& e) {
            // minimum 2 with exclusiveMaximum 2, and exclusiveMinimum 0.25 with maximum 0.25, are empty.
            EXPECT_NE(std::string(e.what()).find("matches no JSON value"), std::string::npos) << e.what();
            continue;
        }
        Recognizer rec(g);
        for (int i = 0; i <= 6; ++i)
            for (const char* f : fracs)
                for (int sign : {1, -1}) {
                    const std::string text = (sign < 0 ? "-" : "") + std::to_string(i) + f;
                    const double v = std::stod(text);
                    bool in = true;
                    for (const B& b : bs) {
                        const std::string k = b.key;
                        if (k == "minimum") in = in && v >= b.value;
                        if (k == "maximum") in = in && v <= b.value;
                        if (k == "exclusiveMinimum") in = in && v > b.value;
                        if (k == "exclusiveMaximum") in = in && v < b.value;
                    }
                    if (sign < 0 && v == 0) in = false;  // "-0", "-0.0": left out of the grammar
                    EXPECT_EQ(rec.matches(text), in) << text;
                }
    }
}

TEST(JsonSchemaRanges, DatesFollowTheCalendar) {
    Grammar g = compile_json_schema(ojson::parse(R"({"type":"string","format":"date"})"));
    Recognizer rec(g);
    const auto leap = [](int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; };
    for (int y : {1, 4, 100, 400, 1900, 1996, 2000, 2023, 2024, 2100, 9996, 9999})
        for (int m = 0; m <= 13; ++m)
            for (int d = 0; d <= 32; ++d) {
                static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
                const bool ok = m >= 1 && m <= 12 && d >= 1 && d <= kDays[m - 1] + (m == 2 && leap(y));
                const std::string text = fmt::format("\"{:04}-{:02}-{:02}\"", y, m, d);
                ASSERT_EQ(rec.matches(text), ok) << text;
            }
}

// ---- limits ----

TEST(JsonSchemaLimits, OversizedAndExplosiveSchemasAreRefusedQuickly) {
    const auto started = std::chrono::steady_clock::now();
    ojson big = {{"type", "object"}, {"properties", ojson::object()}};
    for (int i = 0; i < 6; ++i)
        big["properties"]["p" + std::to_string(i)] = {{"type", "string"}, {"maxLength", 100000}};
    try {
        compile_json_schema(big);
        ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("exceed"), std::string::npos) << e.what();
    }
    // Each definition is allOf of the next one twice, and anyOf of two variants: expansions double per level.
    ojson defs = ojson::object();
    for (int i = 0; i < 40; ++i) {
        const std::string next = "#/$defs/d" + std::to_string(i + 1);
        defs["d" + std::to_string(i)] = {{"anyOf", {{{"$ref", next}}, {{"$ref", next}, {"minLength", i}}}}};
    }
    defs["d40"] = {{"type", "string"}};
    try {
        compile_json_schema(ojson{{"$defs", defs}, {"$ref", "#/$defs/d0"}});
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("too"), std::string::npos) << e.what();
    }
    // Deep nesting.
    ojson deep = {{"type", "integer"}};
    for (int i = 0; i < 1000; ++i) deep = {{"type", "array"}, {"items", deep}};
    EXPECT_THROW(compile_json_schema(deep), Error);
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(20));
}

TEST(JsonSchemaLimits, LongStringsWithinTheLimitCompile) {
    Grammar g = compile_json_schema(ojson::parse(R"({"type":"string","minLength":3,"maxLength":100000})"));
    EXPECT_NO_THROW(g.validate());
    Recognizer rec(g);
    EXPECT_TRUE(rec.matches("\"" + std::string(500, 'x') + "\""));
    EXPECT_FALSE(rec.matches("\"xy\""));
}

}  // namespace
}  // namespace hearth::grammar
