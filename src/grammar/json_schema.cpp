#include "grammar/json_schema.h"

#include <algorithm>
#include <bitset>
#include <cctype>
#include <cmath>
#include <deque>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <string_view>
#include <tuple>
#include <unordered_map>

#include <fmt/format.h>

#include "base/error.h"
#include "grammar/check.h"
#include "grammar/matcher.h"
#include "grammar/regex.h"

namespace hearth::grammar {

namespace {

using Json = nlohmann::ordered_json;

constexpr int kNever = -1;                        // a schema that no JSON value satisfies
constexpr size_t kMaxElements = 1'000'000;        // grammar size, in elements plus alternatives
constexpr int kMaxDepth = 200;                    // nested subschemas / references being worked on at once
constexpr size_t kMaxAlternatives = 256;          // anyOf/oneOf/allOf combinations of one schema
constexpr size_t kMaxWork = 200'000;              // schema expansions (flatten calls), so that no schema hangs us
constexpr uint64_t kMaxCount = 100'000;           // minLength/maxLength/minItems/maxItems, as Grammar::add_repeat
constexpr int64_t kIntMax = 9'007'199'254'740'991;  // 2^53 - 1: every integer up to it is exact in a double
constexpr int kFracDigits = 16;
constexpr int kExpDigits = 3;
constexpr int kIndent = 40;  // Flexible whitespace: spaces/tabs after a newline

enum : unsigned { kNull = 1, kBool = 2, kObject = 4, kArray = 8, kString = 16, kInteger = 32, kNumber = 64 };
constexpr unsigned kAllTypes = 127;

// Fraction kinds of a number's digits after the integer part, as a bit set: intersection is &.
enum : unsigned { kFracNone = 0, kFracZero = 1, kFracNonZero = 2, kFracAny = 3 };

const std::set<std::string_view> kAnnotations = {
    "title",         "description", "examples",       "default",     "$comment",         "$schema",
    "$id",           "deprecated",  "readOnly",       "writeOnly",   "contentMediaType", "contentEncoding",
    "contentSchema", "$anchor",     "$dynamicAnchor", "$vocabulary", "$recursiveAnchor", "$defs",
    "definitions"};

const std::set<std::string_view> kEnforced = {
    "type",       "enum",        "const",    "properties", "required",         "additionalProperties",
    "items",      "prefixItems", "minItems", "maxItems",   "minLength",        "maxLength",
    "pattern",    "format",      "minimum",  "maximum",    "exclusiveMinimum", "exclusiveMaximum",
    "anyOf",      "oneOf",       "allOf",    "$ref",       "minProperties",    "maxProperties",
    "uniqueItems", "additionalItems", "patternProperties", "multipleOf", "not",          "if",
    "then",       "else",        "dependentRequired", "dependentSchemas", "dependencies", "propertyNames"};

const std::map<std::string_view, std::string_view> kRefused = {
    {"contains", "'contains' would need the grammar to count matching items"},
    {"minContains", "'contains' would need the grammar to count matching items"},
    {"maxContains", "'contains' would need the grammar to count matching items"},
    {"unevaluatedItems", "unevaluated* keywords are not supported"},
    {"unevaluatedProperties", "unevaluated* keywords are not supported"},
    {"$dynamicRef", "dynamic references are not supported"},
    {"$recursiveRef", "dynamic references are not supported"},
};

// The formats the grammar enforces; the other formats JSON Schema defines (kSpecFormats) are refused, since
// validators that assert formats check them; any other format name is an annotation.
const std::set<std::string_view> kFormats = {"date", "time",     "date-time", "uuid",     "email", "uri",
                                             "ipv4", "hostname", "ipv6",      "duration", "uri-reference", "regex"};
const std::set<std::string_view> kSpecFormats = {
    "date-time", "date",          "time",         "duration",      "email", "idn-email",    "hostname",
    "idn-hostname", "ipv4",       "ipv6",         "uri",           "uri-reference", "iri", "iri-reference",
    "uuid",      "uri-template",  "json-pointer", "relative-json-pointer", "regex"};

// The drafts whose meaning differs in what hearth compiles, named by the root's $schema (none: 2020-12, as
// validators default): draft 4's `id` and boolean exclusiveMinimum/exclusiveMaximum; drafts 4-7's $ref, which
// replaces the schema object it sits in (its siblings are ignored). The array form of `items` with
// `additionalItems` (drafts 4-2019-09) means the same in every draft that has it, and is read as such in all.
enum class Draft { D4, D6, D7, D2019, D2020 };

Draft draft_of(const Json& root) {
    if (!root.is_object()) return Draft::D2020;
    const auto it = root.find("$schema");
    if (it == root.end()) return Draft::D2020;
    if (!it->is_string()) fail("'$schema' at #/$schema must be a string");
    const std::string& uri = it->get_ref<const std::string&>();
    const auto names = [&](const char* d) { return uri.find(d) != std::string::npos; };
    if (names("draft-03") || names("draft-02") || names("draft-01"))
        fail("'$schema' at #/$schema: {} is older than draft 4, which is not supported (draft 4 and later are)", uri);
    if (names("draft-04")) return Draft::D4;
    if (names("draft-06")) return Draft::D6;
    if (names("draft-07")) return Draft::D7;
    if (names("2019-09")) return Draft::D2019;
    return Draft::D2020;
}

// Equality as JSON Schema has it (uniqueItems, const): objects whatever their key order (ordered_json compares
// it), numbers by value (1 and 1.0 are equal).
bool same_value(const Json& a, const Json& b) {
    if (!a.is_structured() || !b.is_structured()) return a == b;
    return nlohmann::json(a) == nlohmann::json(b);
}
bool holds_value(const std::vector<Json>& values, const Json& v) {
    return std::any_of(values.begin(), values.end(), [&](const Json& w) { return same_value(w, v); });
}

// Whether a "$ref" (with a string value) appears anywhere inside a JSON value.
bool holds_ref(const Json& v) {
    if (v.is_object()) {
        for (const auto& [k, x] : v.items())
            if ((k == "$ref" && x.is_string()) || holds_ref(x)) return true;
    } else if (v.is_array()) {
        for (const Json& x : v)
            if (holds_ref(x)) return true;
    }
    return false;
}

// A subschema and where it is in the document (a JSON pointer, "#/..."), for error messages.
struct Sub {
    const Json* node;
    std::string ptr;
};
// Subschemas that must all hold (allOf, merged lazily: see Flat). Empty: any value.
using Conj = std::vector<Sub>;

void append_conj(Conj& to, const Conj& from) {
    for (const Sub& s : from)
        if (std::none_of(to.begin(), to.end(), [&](const Sub& t) { return t.node == s.node; })) to.push_back(s);
}

struct Bound {
    long double value = 0;
    bool exclusive = false;
};

// One branch of a schema with its applicators ($ref, allOf, anyOf, oneOf) expanded: the keywords of the
// schema itself, each typed. Subschemas (properties, items, ...) stay as conjunctions of document nodes
// (Conj), so that merging two Flats (allOf) is exact and cheap: the conjunctions are concatenated and only
// compiled when their turn comes.
struct Flat {
    std::string ptr;
    unsigned types = kAllTypes;
    bool has_enum = false;  // enum/const: the value must be one of `values`
    std::vector<Json> values;
    std::vector<Json> excluded;  // `not` over const/enum: the value must not be one of these
    std::optional<Bound> lower, upper;
    std::optional<long double> multiple_of;  // multipleOf, the least common multiple where several meet
    uint64_t min_length = 0;
    std::optional<uint64_t> max_length;
    std::optional<std::string> pattern, format;
    std::vector<Conj> prefix;
    Conj items;
    uint64_t min_items = 0;
    std::optional<uint64_t> max_items;
    std::vector<std::pair<std::string, Conj>> props;  // in declaration order
    Conj additional;
    bool additional_set = false;
    std::vector<std::pair<std::string, Conj>> pattern_props;  // patternProperties: (regex, schema) in order
    // patternProperties met another schema's patternProperties or additionalProperties through allOf / $ref:
    // which keys each side's additionalProperties covers would need the patterns' complements.
    bool patterns_merged = false;
    std::vector<std::string> required;
    uint64_t min_props = 0;
    std::optional<uint64_t> max_props;
    Conj property_names;        // propertyNames: every key, as a string, satisfies these
    bool unique_items = false;  // uniqueItems true
    std::map<std::string, std::string> where;  // keyword -> JSON pointer of the keyword, for error messages

    const Conj* prop(const std::string& name) const {
        for (const auto& [k, c] : props)
            if (k == name) return &c;
        return nullptr;
    }
    std::string at(const std::string& keyword) const {
        auto it = where.find(keyword);
        return it != where.end() ? it->second : ptr;
    }
};

std::string escape_pointer_token(std::string_view key) {
    std::string out;
    for (char c : key) {
        if (c == '~')
            out += "~0";
        else if (c == '/')
            out += "~1";
        else
            out += c;
    }
    return out;
}

std::string child(const std::string& ptr, std::string_view key) { return ptr + "/" + escape_pointer_token(key); }
std::string child(const std::string& ptr, std::string_view key, size_t index) {
    return child(ptr, key) + "/" + std::to_string(index);
}

std::string dump_json(const Json& v) {
    try {
        return v.dump();
    } catch (const nlohmann::json::exception&) {
        fail("JSON Schema holds a string that is not valid UTF-8");
    }
}

// Code points of valid UTF-8 (nlohmann's parser has checked it; values built in code may not be).
std::u32string decode_utf8(std::string_view s) {
    std::u32string out;
    for (size_t i = 0; i < s.size();) {
        const uint8_t c = static_cast<uint8_t>(s[i]);
        const int n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (n == 0 || i + n > s.size()) fail("JSON Schema holds a string that is not valid UTF-8");
        uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
        for (int k = 1; k < n; ++k) {
            if ((static_cast<uint8_t>(s[i + k]) & 0xC0) != 0x80)
                fail("JSON Schema holds a string that is not valid UTF-8");
            cp = cp << 6 | (static_cast<uint8_t>(s[i + k]) & 0x3F);
        }
        static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < kMin[n] || cp > kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF))
            fail("JSON Schema holds a string that is not valid UTF-8");
        out += static_cast<char32_t>(cp);
        i += n;
    }
    return out;
}

std::vector<CharRange> intersect(const std::vector<CharRange>& a, const std::vector<CharRange>& b) {
    std::vector<CharRange> out;
    for (size_t i = 0, j = 0; i < a.size() && j < b.size();) {
        const uint32_t lo = std::max(a[i].lo, b[j].lo), hi = std::min(a[i].hi, b[j].hi);
        if (lo <= hi) out.push_back({lo, hi});
        if (a[i].hi < b[j].hi)
            ++i;
        else
            ++j;
    }
    return out;
}

// Characters that a JSON string cannot hold raw.
const std::vector<CharRange> kSpecials = {{0, 0x1F}, {'"', '"'}, {'\\', '\\'}};

void lit(Sequence& s, std::string_view utf8) {
    for (char32_t cp : decode_utf8(utf8)) s.push_back(Element::codepoint(cp));
}
void cls(Sequence& s, std::vector<CharRange> ranges) { s.push_back(Element::chars(std::move(ranges))); }
void ref(Sequence& s, int rule) { s.push_back(Element::ref(rule)); }
void append(Sequence& s, const Sequence& more) { s.insert(s.end(), more.begin(), more.end()); }

const std::vector<CharRange> kDigit = {{'0', '9'}};
const std::vector<CharRange> kHex = {{'0', '9'}, {'A', 'F'}, {'a', 'f'}};

unsigned value_type(const Json& v) {
    switch (v.type()) {
        case Json::value_t::null:
            return kNull;
        case Json::value_t::boolean:
            return kBool;
        case Json::value_t::object:
            return kObject;
        case Json::value_t::array:
            return kArray;
        case Json::value_t::string:
            return kString;
        case Json::value_t::number_integer:
        case Json::value_t::number_unsigned:
            return kInteger;
        case Json::value_t::number_float: {
            const double d = v.get<double>();
            return std::isfinite(d) && d == std::floor(d) ? kInteger : kNumber;
        }
        default:
            return 0;
    }
}

long double number_of(const Json& v) {
    if (v.is_number_unsigned()) return static_cast<long double>(v.get<uint64_t>());
    if (v.is_number_integer()) return static_cast<long double>(v.get<int64_t>());
    return static_cast<long double>(v.get<double>());
}

// The decimal strings (no sign, no leading zero) of the integers in [a, b], as alternatives.
void fixed_range(const std::string& x, const std::string& y, Sequence prefix, std::vector<Sequence>& out) {
    const size_t n = x.size();
    if (n == 0 || x == y) {
        for (char c : x) prefix.push_back(Element::codepoint(static_cast<uint8_t>(c)));
        out.push_back(std::move(prefix));
        return;
    }
    const char dx = x[0], dy = y[0];
    if (dx == dy) {
        prefix.push_back(Element::codepoint(static_cast<uint8_t>(dx)));
        fixed_range(x.substr(1), y.substr(1), std::move(prefix), out);
        return;
    }
    const bool x_low = x.find_first_not_of('0', 1) == std::string::npos;
    const bool y_high = y.find_first_not_of('9', 1) == std::string::npos;
    char lo = dx, hi = dy;
    if (!x_low) {
        Sequence p = prefix;
        p.push_back(Element::codepoint(static_cast<uint8_t>(dx)));
        fixed_range(x.substr(1), std::string(n - 1, '9'), std::move(p), out);
        lo = static_cast<char>(dx + 1);
    }
    if (!y_high) hi = static_cast<char>(dy - 1);
    if (lo <= hi) {
        Sequence p = prefix;
        p.push_back(Element::chars({{static_cast<uint32_t>(lo), static_cast<uint32_t>(hi)}}));
        for (size_t k = 1; k < n; ++k) p.push_back(Element::chars(kDigit));
        out.push_back(std::move(p));
    }
    if (!y_high) {
        Sequence p = prefix;
        p.push_back(Element::codepoint(static_cast<uint8_t>(dy)));
        fixed_range(std::string(n - 1, '0'), y.substr(1), std::move(p), out);
    }
}

std::vector<Sequence> nonneg_range(int64_t a, int64_t b) {
    std::vector<Sequence> out;
    const size_t la = std::to_string(a).size(), lb = std::to_string(b).size();
    int64_t pow = 1;
    for (size_t k = 1; k < la; ++k) pow *= 10;
    for (size_t len = la; len <= lb; ++len, pow *= 10) {
        const int64_t lo = std::max(a, len == 1 ? int64_t{0} : pow);
        const int64_t hi = std::min(b, pow * 10 - 1);
        if (lo <= hi) fixed_range(std::to_string(lo), std::to_string(hi), {}, out);
    }
    return out;
}

class Compiler {
public:
    Compiler(const Json& root, const JsonSchemaOptions& options)
        : root_(root), opt_(options), draft_(draft_of(root)) {}

    Grammar run() {
        if (root_.is_object() && root_.contains("$id") && !root_["$id"].is_string())
            fail("'$id' at #/$id must be a string");
        const int value = compile_conj({Sub{&root_, "#"}}, "#");
        if (value == kNever) fail("JSON Schema at # matches no JSON value");
        Sequence s;
        ws(s);
        ref(s, value);
        ws(s);
        charge(s.size() + 1);
        g_.rules.push_back(Rule{"root", {s}});
        finish(static_cast<int>(g_.rules.size() - 1));
        return std::move(g_);
    }

private:
    // ---- grammar building ----

    void charge(size_t n) {
        elements_ += n;
        if (elements_ > kMaxElements)
            fail(
                "the grammar for this JSON Schema would exceed {} elements (lower maxLength/maxItems or simplify "
                "the schema)",
                kMaxElements);
    }
    // Names are made unique by the rule's index, which is quicker than Grammar::add_rule's lookups; add_regex's
    // names start with "pattern<N>" and never meet these.
    int add(std::string_view base, std::vector<Sequence> alts) {
        size_t n = 0;
        for (const Sequence& s : alts) n += s.size() + 1;
        charge(n);
        g_.rules.push_back(Rule{fmt::format("{}-{}", base, g_.rules.size()), std::move(alts)});
        return static_cast<int>(g_.rules.size() - 1);
    }
    void define(int rule, std::vector<Sequence> alts) {
        size_t n = 0;
        for (const Sequence& s : alts) n += s.size() + 1;
        charge(n);
        g_.rules[rule].alternatives = std::move(alts);
    }
    int star(std::string_view base, const Sequence& item) {
        const int r = add(base, {});
        Sequence loop = item;
        ref(loop, r);
        define(r, {loop, {}});
        return r;
    }
    // item{min,max} (max unset: unbounded): Grammar::add_repeat's expansion, with rules named by add().
    int repeat(std::string_view base, const Sequence& item, uint64_t min, std::optional<uint64_t> max) {
        const uint64_t copies = min + (max ? *max - min : 1);
        if (min > kMaxCount || (max && *max > kMaxCount) || copies * (item.size() + 2) > kMaxElements)
            charge(kMaxElements);  // fails with the size message
        if (!max) charge(item.size() + 2);  // the star's loop, which expand_repeat fills in place
        return expand_repeat(g_, item, static_cast<int>(min), max ? static_cast<int>(*max) : -1,
                             [&](std::string_view suffix, std::vector<Sequence> alts) {
                                 return add(std::string(base) + std::string(suffix), std::move(alts));
                             });
    }

    // Optional whitespace between tokens (nothing in compact mode).
    void ws(Sequence& s) {
        if (opt_.whitespace == JsonSchemaOptions::Whitespace::None) return;
        if (ws_ < 0) {
            Sequence indent_item;
            cls(indent_item, {{' ', ' '}, {'\t', '\t'}});
            const int indent = repeat("indent", indent_item, 0, kIndent);
            Sequence space, nl, crnl;
            lit(space, " ");
            lit(nl, "\n");
            ref(nl, indent);
            lit(crnl, "\r\n");
            ref(crnl, indent);
            ws_ = add("ws", {{}, space, nl, crnl});
        }
        ref(s, ws_);
    }

    // One character of a JSON string, escapes included; escaped surrogates only as valid pairs, so that each
    // unit is exactly one code point of the decoded string (minLength/maxLength count units).
    int json_char() {
        if (jchar_ < 0) {
            Sequence raw, simple, u, pair;
            raw.push_back(Element::chars(complement(kSpecials)));
            lit(simple, "\\");
            cls(simple,
                {{'"', '"'}, {'\\', '\\'}, {'/', '/'}, {'b', 'b'}, {'f', 'f'}, {'n', 'n'}, {'r', 'r'}, {'t', 't'}});
            // \uXXXX outside D800-DFFF: first digit 0-9/A-C, or D with 0-7 next.
            Sequence first_free, first_d;
            cls(first_free, {{'0', '9'}, {'a', 'c'}, {'A', 'C'}});
            cls(first_free, kHex);
            cls(first_d, {{'d', 'd'}, {'D', 'D'}});
            cls(first_d, {{'0', '7'}});
            const int bmp = add("bmp", {first_free, first_d});
            lit(u, "\\u");
            ref(u, bmp);
            cls(u, kHex);
            cls(u, kHex);
            lit(pair, "\\u");
            cls(pair, {{'d', 'd'}, {'D', 'D'}});
            cls(pair, {{'8', '9'}, {'a', 'b'}, {'A', 'B'}});
            cls(pair, kHex);
            cls(pair, kHex);
            lit(pair, "\\u");
            cls(pair, {{'d', 'd'}, {'D', 'D'}});
            cls(pair, {{'c', 'f'}, {'C', 'F'}});
            cls(pair, kHex);
            cls(pair, kHex);
            jchar_ = add("char", {raw, simple, u, pair});
        }
        return jchar_;
    }
    int json_chars() {
        if (jchars_ < 0) {
            Sequence item;
            ref(item, json_char());
            jchars_ = star("chars", item);
        }
        return jchars_;
    }
    // A string's text that begins past ASCII: [U+0080-] then any JSON characters (a shared rule: see key_not_in).
    int free_beyond_ascii() {
        if (free_beyond_ascii_ < 0) {
            Sequence s;
            s.push_back(Element::chars({{0x80, kMaxCodePoint}}));
            ref(s, json_chars());
            free_beyond_ascii_ = add("free-key", {s});
            g_.rules[static_cast<size_t>(free_beyond_ascii_)].shared = true;
        }
        return free_beyond_ascii_;
    }
    int any_string() {
        if (string_ < 0) {
            Sequence s;
            lit(s, "\"");
            ref(s, json_chars());
            lit(s, "\"");
            string_ = add("string", {s});
        }
        return string_;
    }

    // One decoded character from `ranges`, as a JSON string writes it: raw, or escaped when it must be (the
    // escapes of the characters that cannot appear raw, both \uXXXX and the short forms). The unit is a tiny
    // rule (raw class | escapes) that the lowering copies into its users, so raw characters stay in the caller's
    // automaton; the escapes are one rule per set of special characters (nearly always all of them), shared by
    // every unit: a key trie over a schema's property names has a unit per node, and a rule of 70 alternatives
    // per node made those schemas slow to compile and left every token after one character to the callers.
    Element char_unit(const std::vector<CharRange>& ranges) {
        const std::vector<CharRange> specials = intersect(ranges, kSpecials);
        if (specials.empty()) return Element::chars(ranges);
        std::vector<uint32_t> key;
        for (const CharRange& r : ranges) key.insert(key.end(), {r.lo, r.hi});
        if (auto it = units_.find(key); it != units_.end()) return Element::ref(it->second);
        const std::vector<CharRange> raw = intersect(ranges, complement(kSpecials));
        const int escapes = escapes_of(specials);
        const int r = raw.empty() ? escapes : add("unit", {{Element::chars(raw)}, {Element::ref(escapes)}});
        units_[key] = r;
        return Element::ref(r);
    }
    // The escaped spellings of the special characters `specials`: \" \\ \n ... and \u00XX in either case.
    int escapes_of(const std::vector<CharRange>& specials) {
        std::vector<uint32_t> key;
        for (const CharRange& r : specials) key.insert(key.end(), {r.lo, r.hi});
        if (auto it = escapes_.find(key); it != escapes_.end()) return it->second;
        std::vector<Sequence> alts;
        for (const CharRange& r : specials)
            for (uint32_t cp = r.lo; cp <= r.hi; ++cp) {
                static const std::map<uint32_t, char> kShort = {{'"', '"'}, {'\\', '\\'}, {8, 'b'}, {9, 't'},
                                                                {10, 'n'},  {12, 'f'},    {13, 'r'}};
                if (auto it = kShort.find(cp); it != kShort.end()) {
                    Sequence s;
                    lit(s, "\\");
                    s.push_back(Element::codepoint(static_cast<uint8_t>(it->second)));
                    alts.push_back(s);
                }
                Sequence u;
                lit(u, "\\u00");
                const uint32_t hi = cp >> 4, lo = cp & 15;
                const auto hex = [](uint32_t d) -> std::vector<CharRange> {
                    if (d < 10) return {{'0' + d, '0' + d}};
                    return {{'a' + d - 10, 'a' + d - 10}, {'A' + d - 10, 'A' + d - 10}};
                };
                cls(u, hex(hi));
                cls(u, hex(lo));
                alts.push_back(u);
            }
        const int r = add("esc", std::move(alts));
        escapes_[key] = r;
        return r;
    }

    int integer_digits() {  // 0 | [1-9][0-9]{0,14}
        if (int_digits_ < 0) int_digits_ = add("digits", nonneg_range(0, kIntMax));
        return int_digits_;
    }
    int frac_rule(unsigned kind) {
        int& memo = frac_[kind];
        if (memo >= 0) return memo;
        Sequence digit, zero;
        cls(digit, kDigit);
        lit(zero, "0");
        if (kind == kFracAny || kind == kFracZero) {
            Sequence s;
            lit(s, ".");
            ref(s, repeat("frac", kind == kFracAny ? digit : zero, 1, kFracDigits));
            memo = add("frac", {s, {}});
        } else {
            Sequence s;
            lit(s, ".");
            ref(s, repeat("frac", zero, 0, kFracDigits - 1));
            cls(s, {{'1', '9'}});
            ref(s, repeat("frac", digit, 0, kFracDigits - 1));
            memo = add("frac", {s});
        }
        return memo;
    }
    int any_number() {
        if (number_ < 0) {
            Sequence digit, e, s, neg;
            cls(digit, kDigit);
            cls(e, {{'e', 'e'}, {'E', 'E'}});
            const int sign = add("sign", {{Element::chars({{'+', '+'}, {'-', '-'}})}, {}});
            ref(e, sign);
            ref(e, repeat("exp", digit, 1, kExpDigits));
            const int exp = add("exp", {e, {}});
            ref(s, integer_digits());
            ref(s, frac_rule(kFracAny));
            ref(s, exp);
            lit(neg, "-");
            append(neg, s);
            number_ = add("number", {s, neg});
        }
        return number_;
    }

    // Any JSON value (the schema `true`).
    int any_value() {
        if (value_ >= 0) return value_;
        value_ = add("value", {});
        Sequence member, more, obj_empty, obj, item, arr_empty, arr;
        ref(member, any_string());
        ws(member);
        lit(member, ":");
        ws(member);
        ref(member, value_);
        ws(member);
        lit(more, ",");
        ws(more);
        append(more, member);
        lit(obj_empty, "{");
        ws(obj_empty);
        lit(obj_empty, "}");
        lit(obj, "{");
        ws(obj);
        append(obj, member);
        ref(obj, star("members", more));
        lit(obj, "}");
        const int object = add("object", {obj_empty, obj});
        ref(item, value_);
        ws(item);
        Sequence next;
        lit(next, ",");
        ws(next);
        append(next, item);
        lit(arr_empty, "[");
        ws(arr_empty);
        lit(arr_empty, "]");
        lit(arr, "[");
        ws(arr);
        append(arr, item);
        ref(arr, star("elements", next));
        lit(arr, "]");
        const int array = add("array", {arr_empty, arr});
        Sequence t, f, n;
        lit(t, "true");
        lit(f, "false");
        lit(n, "null");
        define(value_, {{Element::ref(object)},
                        {Element::ref(array)},
                        {Element::ref(any_string())},
                        {Element::ref(any_number())},
                        t,
                        f,
                        n});
        return value_;
    }

    // The JSON text of a value, with whitespace allowed between tokens per the options.
    void value_literal(Sequence& s, const Json& v) {
        if (v.is_object()) {
            lit(s, "{");
            ws(s);
            bool first = true;
            for (const auto& [k, x] : v.items()) {
                if (!first) {
                    lit(s, ",");
                    ws(s);
                }
                first = false;
                lit(s, dump_json(Json(k)));
                ws(s);
                lit(s, ":");
                ws(s);
                value_literal(s, x);
                ws(s);
            }
            lit(s, "}");
        } else if (v.is_array()) {
            lit(s, "[");
            ws(s);
            for (size_t i = 0; i < v.size(); ++i) {
                if (i > 0) {
                    lit(s, ",");
                    ws(s);
                }
                value_literal(s, v[i]);
                ws(s);
            }
            lit(s, "]");
        } else {
            // nlohmann prints a non-finite double as null; parsed JSON never holds one, built values can.
            if (v.is_number_float() && !std::isfinite(v.get<double>()))
                fail("JSON Schema holds a number that is not finite");
            lit(s, dump_json(v));
        }
    }

    // ---- schema documents ----

    struct DepthGuard {
        int& depth;
        explicit DepthGuard(int& d, const std::string& ptr) : depth(d) {
            if (++depth > kMaxDepth) {
                --depth;
                fail("JSON Schema at {} nests too deeply (more than {} levels of subschemas and references)", ptr,
                     kMaxDepth);
            }
        }
        ~DepthGuard() { --depth; }
    };

    void work(const std::string& ptr) {
        if (++work_ > kMaxWork)
            fail(
                "JSON Schema at {} is too complex to compile (its references and combinators expand past {} "
                "steps)",
                ptr, kMaxWork);
    }

    Sub resolve(const std::string& ref_text, const std::string& where) {
        if (ref_text.empty() || ref_text[0] != '#')
            fail("'$ref' at {}: only references within the document ('#...') are supported, not '{}'", where, ref_text);
        std::string frag;
        for (size_t i = 1; i < ref_text.size(); ++i) {
            const auto hex = [](char c) {
                return c >= '0' && c <= '9'   ? c - '0'
                       : c >= 'a' && c <= 'f' ? c - 'a' + 10
                       : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                              : -1;
            };
            if (ref_text[i] == '%' && i + 2 < ref_text.size() && hex(ref_text[i + 1]) >= 0 &&
                hex(ref_text[i + 2]) >= 0) {
                frag += static_cast<char>(hex(ref_text[i + 1]) * 16 + hex(ref_text[i + 2]));
                i += 2;
            } else {
                frag += ref_text[i];
            }
        }
        if (!frag.empty() && frag[0] != '/')
            fail("'$ref' at {}: anchors ('{}') are not supported, only JSON pointers", where, ref_text);
        const Json* node = &root_;
        std::string ptr = "#";
        for (size_t pos = 0; pos < frag.size();) {
            size_t end = frag.find('/', pos + 1);
            if (end == std::string::npos) end = frag.size();
            std::string token;
            for (size_t i = pos + 1; i < end; ++i) {
                if (frag[i] == '~' && i + 1 < end && (frag[i + 1] == '0' || frag[i + 1] == '1')) {
                    token += frag[i + 1] == '0' ? '~' : '/';
                    ++i;
                } else {
                    token += frag[i];
                }
            }
            pos = end;
            ptr = child(ptr, token);
            if (node->is_object()) {
                auto it = node->find(token);
                if (it == node->end()) fail("'$ref' at {}: '{}' points to nothing", where, ref_text);
                node = &*it;
            } else if (node->is_array()) {
                if (token.empty() || token.size() > 9 || token.find_first_not_of("0123456789") != std::string::npos ||
                    (token.size() > 1 && token[0] == '0'))
                    fail("'$ref' at {}: '{}' points to nothing", where, ref_text);
                const size_t index = std::stoul(token);
                if (index >= node->size()) fail("'$ref' at {}: '{}' points to nothing", where, ref_text);
                node = &(*node)[index];
            } else {
                fail("'$ref' at {}: '{}' points to nothing", where, ref_text);
            }
        }
        if (!node->is_object() && !node->is_boolean())
            fail("'$ref' at {}: '{}' points to a value that is not a schema", where, ref_text);
        return Sub{node, ptr};
    }

    // Keywords with no effect on validity: the annotations, draft 4's id, and (unless options.strict_keywords)
    // any keyword JSON Schema does not define, which validators ignore (2020-12 section 6.5).
    bool is_annotation(const std::string& k) const {
        if (kAnnotations.count(k) || (k == "id" && draft_ == Draft::D4)) return true;
        return !opt_.strict_keywords && !kEnforced.count(k) && !kRefused.count(k);
    }
    // A $ref in drafts 4-7 makes the whole schema object a reference, whatever sits beside it.
    bool ref_replaces_siblings() const { return draft_ <= Draft::D7; }
    bool only_annotations(const Json& node, bool allow_ref) const {
        if (allow_ref && node.contains("$ref") && ref_replaces_siblings()) return true;
        for (const auto& [k, v] : node.items())
            if (!is_annotation(k) && !(allow_ref && k == "$ref")) return false;
        return true;
    }
    // A $id (draft 4: id) below the root starts an embedded resource, against which the "#..." references
    // inside it resolve instead of against the document: refused only where such references exist. A $id that is
    // a bare fragment ("#name", drafts 6-7) names an anchor and moves no base.
    void check_embedded_id(const Json& node, const std::string& k, const Json& v, const std::string& at) {
        if (!v.is_string()) {
            if (k == "$id") fail("'$id' at {} must be a string", at);
            return;
        }
        const std::string& id = v.get_ref<const std::string&>();
        if (!id.empty() && id[0] == '#') return;
        auto it = holds_ref_.find(&node);
        if (it == holds_ref_.end()) it = holds_ref_.emplace(&node, holds_ref(node)).first;
        if (it->second)
            fail("'{}' at {}: embedded schema resources (a {} below the root with $ref inside it) are not supported",
                 k, at, k);
    }
    // Follows references that make up a whole schema ({"$ref": ...} with annotations only), which compile to
    // the referenced schema's rule: this is what makes shared definitions shared and recursive ones recursive.
    Sub deref(Sub s) {
        for (int hops = 0; s.node->is_object() && s.node->contains("$ref") && only_annotations(*s.node, true); ++hops) {
            if (hops > kMaxDepth) fail("'$ref' at {} is a cycle of references that never reaches a schema", s.ptr);
            const Json& r = (*s.node)["$ref"];
            if (!r.is_string()) fail("'$ref' at {} must be a string", child(s.ptr, "$ref"));
            s = resolve(r.get<std::string>(), child(s.ptr, "$ref"));
        }
        return s;
    }

    static uint64_t count_of(const Json& v, const std::string& where, const char* keyword) {
        if (v.is_number_unsigned()) return v.get<uint64_t>();
        if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
        if (v.is_number_float()) {
            const double d = v.get<double>();
            if (d >= 0 && d == std::floor(d)) return d >= 1.8e19 ? UINT64_MAX : static_cast<uint64_t>(d);
        }
        fail("'{}' at {} must be a non-negative integer", keyword, where);
    }
    static void set_lower(Flat& f, long double v, bool exclusive, const std::string& where) {
        if (!f.lower || v > f.lower->value || (v == f.lower->value && exclusive)) {
            f.lower = Bound{v, exclusive};
            f.where["lower"] = where;
        }
    }
    static void set_upper(Flat& f, long double v, bool exclusive, const std::string& where) {
        if (!f.upper || v < f.upper->value || (v == f.upper->value && exclusive)) {
            f.upper = Bound{v, exclusive};
            f.where["upper"] = where;
        }
    }
    static void intersect_values(Flat& f, const std::vector<Json>& values) {
        if (!f.has_enum) {
            f.has_enum = true;
            f.values = values;
            return;
        }
        std::vector<Json> kept;
        for (const Json& v : f.values)
            if (holds_value(values, v)) kept.push_back(v);
        f.values = std::move(kept);
    }

    // Checks every keyword of a schema object (refusing unsupported and unknown ones, at their pointers) and
    // reads the non-applicator keywords into a Flat.
    Flat read_flat(const Json& node, const std::string& ptr) {
        Flat f;
        f.ptr = ptr;
        bool exclusive_min = false, exclusive_max = false;  // draft 4's boolean forms
        for (const auto& [k, v] : node.items()) {
            const std::string at = child(ptr, k);
            if ((k == "$id" || (k == "id" && draft_ == Draft::D4)) && ptr != "#") {
                check_embedded_id(node, k, v, at);
                continue;
            }
            if (kAnnotations.count(k)) {
                if ((k == "$defs" || k == "definitions") && !v.is_object()) fail("'{}' at {} must be an object", k, at);
                continue;
            }
            if (auto it = kRefused.find(k); it != kRefused.end())
                fail("JSON Schema keyword '{}' at {} is not supported: {}", k, at, it->second);
            if (!kEnforced.count(k)) {
                if (is_annotation(k)) continue;
                fail("unknown JSON Schema keyword '{}' at {}", k, at);
            }
            f.where[k] = at;
            if (k == "type") {
                static const std::map<std::string, unsigned> kTypes = {
                    {"null", kNull},     {"boolean", kBool},    {"object", kObject},           {"array", kArray},
                    {"string", kString}, {"integer", kInteger}, {"number", kNumber | kInteger}};
                unsigned mask = 0;
                const auto one = [&](const Json& t) {
                    auto it = t.is_string() ? kTypes.find(t.get<std::string>()) : kTypes.end();
                    if (it == kTypes.end()) fail("'type' at {}: {} is not a JSON Schema type", at, dump_json(t));
                    mask |= it->second;
                };
                if (v.is_array()) {
                    if (v.empty()) fail("'type' at {} must not be an empty array", at);
                    for (const Json& t : v) one(t);
                } else {
                    one(v);
                }
                f.types = mask;
            } else if (k == "enum") {
                if (!v.is_array()) fail("'enum' at {} must be an array", at);
                intersect_values(f, std::vector<Json>(v.begin(), v.end()));
            } else if (k == "const") {
                intersect_values(f, {v});
            } else if ((k == "exclusiveMinimum" || k == "exclusiveMaximum") && v.is_boolean() &&
                       draft_ == Draft::D4) {
                (k == "exclusiveMinimum" ? exclusive_min : exclusive_max) = v.get<bool>();
            } else if (k == "minimum" || k == "maximum" || k == "exclusiveMinimum" || k == "exclusiveMaximum") {
                if (!v.is_number())
                    fail("'{}' at {} must be a number (the boolean form is draft 4's: name it in $schema)", k, at);
                const long double x = number_of(v);
                if (!std::isfinite(x)) fail("'{}' at {} must be a finite number", k, at);
                if (k == "minimum" || k == "exclusiveMinimum")
                    set_lower(f, x, k == "exclusiveMinimum", at);
                else
                    set_upper(f, x, k == "exclusiveMaximum", at);
            } else if (k == "multipleOf") {
                if (!v.is_number() || !(number_of(v) > 0) || !std::isfinite(number_of(v)))
                    fail("'multipleOf' at {} must be a number greater than 0", at);
                f.multiple_of = number_of(v);
            } else if (k == "minLength") {
                f.min_length = count_of(v, at, "minLength");
            } else if (k == "maxLength") {
                f.max_length = count_of(v, at, "maxLength");
            } else if (k == "pattern") {
                if (!v.is_string()) fail("'pattern' at {} must be a string", at);
                f.pattern = v.get<std::string>();
            } else if (k == "format") {
                if (!v.is_string()) fail("'format' at {} must be a string", at);
                // A format hearth cannot check is an annotation, as the format-annotation vocabulary (2020-12's
                // default) and every draft's validators without a format checker treat it.
                if (kSpecFormats.count(v.get<std::string>()) || opt_.strict_keywords) f.format = v.get<std::string>();
            } else if (k == "prefixItems") {
                if (!v.is_array()) fail("'prefixItems' at {} must be an array of schemas", at);
                for (size_t i = 0; i < v.size(); ++i) f.prefix.push_back({Sub{&v[i], child(ptr, k, i)}});
            } else if (k == "items") {
                if (v.is_array()) {  // drafts 4 to 2019-09: a tuple, the rest under additionalItems
                    if (node.contains("prefixItems"))
                        fail("'items' at {}: the array form (a tuple) cannot stand beside prefixItems", at);
                    for (size_t i = 0; i < v.size(); ++i) f.prefix.push_back({Sub{&v[i], child(ptr, k, i)}});
                } else {
                    f.items = {Sub{&v, at}};
                }
            } else if (k == "additionalItems") {
                // It constrains the items past a tuple; beside a schema-valued or absent items it does nothing.
                const auto items = node.find("items");
                if (items != node.end() && items->is_array()) f.items = {Sub{&v, at}};
            } else if (k == "minItems") {
                f.min_items = count_of(v, at, "minItems");
            } else if (k == "maxItems") {
                f.max_items = count_of(v, at, "maxItems");
            } else if (k == "uniqueItems") {
                if (!v.is_boolean()) fail("'uniqueItems' at {} must be a boolean", at);
                f.unique_items = v.get<bool>();
            } else if (k == "propertyNames") {
                if (!v.is_object() && !v.is_boolean()) fail("'propertyNames' at {} must be a schema", at);
                f.property_names = {Sub{&v, at}};
            } else if (k == "properties") {
                if (!v.is_object()) fail("'properties' at {} must be an object", at);
                for (const auto& [name, s] : v.items()) f.props.push_back({name, {Sub{&s, child(at, name)}}});
            } else if (k == "required") {
                if (!v.is_array()) fail("'required' at {} must be an array of strings", at);
                for (const Json& name : v) {
                    if (!name.is_string()) fail("'required' at {} must be an array of strings", at);
                    if (std::find(f.required.begin(), f.required.end(), name.get<std::string>()) == f.required.end())
                        f.required.push_back(name.get<std::string>());
                }
            } else if (k == "additionalProperties") {
                f.additional = {Sub{&v, at}};
                f.additional_set = true;
            } else if (k == "patternProperties") {
                if (!v.is_object()) fail("'patternProperties' at {} must be an object", at);
                for (const auto& [pattern, sub] : v.items())
                    f.pattern_props.push_back({pattern, {Sub{&sub, child(at, pattern)}}});
            } else if (k == "minProperties") {
                f.min_props = count_of(v, at, "minProperties");
            } else if (k == "maxProperties") {
                f.max_props = count_of(v, at, "maxProperties");
            } else if (k == "not" || k == "if" || k == "then" || k == "else") {
                if (!v.is_object() && !v.is_boolean()) fail("'{}' at {} must be a schema", k, at);
                if (k == "not")
                    if (const auto values = excluded_values(v, at)) f.excluded = *values;
            } else if (k == "dependentRequired" || k == "dependentSchemas" || k == "dependencies") {
                if (!v.is_object()) fail("'{}' at {} must be an object", k, at);
                for (const auto& [name, x] : v.items()) {
                    const bool names = x.is_array() && std::all_of(x.begin(), x.end(), [](const Json& n) {
                                           return n.is_string();
                                       });
                    const bool schema = x.is_object() || x.is_boolean();
                    if (k == "dependentRequired" ? !names : k == "dependentSchemas" ? !schema : !(names || schema))
                        fail("'{}' at {} must hold {}", k, child(at, name),
                             k == "dependentRequired"  ? "an array of property names"
                             : k == "dependentSchemas" ? "a schema"
                                                       : "an array of property names or a schema");
                }
            } else if (k == "anyOf" || k == "oneOf" || k == "allOf") {
                if (!v.is_array() || v.empty()) fail("'{}' at {} must be a non-empty array of schemas", k, at);
            } else if (k == "$ref") {
                if (!v.is_string()) fail("'$ref' at {} must be a string", at);
            }
        }
        if (exclusive_min && f.lower) f.lower->exclusive = true;
        if (exclusive_max && f.upper) f.upper->exclusive = true;
        return f;
    }

    // allOf of two flat branches; nullopt when obviously unsatisfiable.
    std::optional<Flat> merge(Flat a, const Flat& b) {
        a.types &= b.types;
        if (a.types == 0) return std::nullopt;
        if (b.has_enum) {
            intersect_values(a, b.values);
            if (a.values.empty()) return std::nullopt;
        }
        if (b.multiple_of) {
            if (!a.multiple_of) {
                a.multiple_of = b.multiple_of;
            } else if (*a.multiple_of != *b.multiple_of) {
                const long double x = *a.multiple_of, y = *b.multiple_of;
                // Whole numbers combine into their least common multiple; others are left to compile to refuse.
                if (x == std::floor(x) && y == std::floor(y) && x < 1e15 && y < 1e15) {
                    const auto ix = static_cast<uint64_t>(x), iy = static_cast<uint64_t>(y);
                    a.multiple_of = static_cast<long double>(ix / std::gcd(ix, iy) * iy);
                } else {
                    a.multiple_of = std::min(x, y) / 3;  // not whole: refused at compile, naming the keyword
                }
            }
        }
        a.excluded.insert(a.excluded.end(), b.excluded.begin(), b.excluded.end());
        if (b.lower) set_lower(a, b.lower->value, b.lower->exclusive, b.at("lower"));
        if (b.upper) set_upper(a, b.upper->value, b.upper->exclusive, b.at("upper"));
        a.min_length = std::max(a.min_length, b.min_length);
        if (b.max_length) a.max_length = a.max_length ? std::min(*a.max_length, *b.max_length) : *b.max_length;
        for (auto [field, name] : {std::pair{&Flat::pattern, "pattern"}, std::pair{&Flat::format, "format"}}) {
            if (!(b.*field)) continue;
            if ((a.*field) && *(a.*field) != *(b.*field))
                fail(
                    "'{}' at {} and '{}' at {} both apply (allOf, $ref or anyOf): two different {}s cannot be "
                    "combined in one grammar",
                    name, a.at(name), name, b.at(name), name);
            a.*field = b.*field;
        }
        const size_t n = std::max(a.prefix.size(), b.prefix.size());
        std::vector<Conj> prefix(n);
        for (size_t i = 0; i < n; ++i) {
            prefix[i] = i < a.prefix.size() ? a.prefix[i] : a.items;
            append_conj(prefix[i], i < b.prefix.size() ? b.prefix[i] : b.items);
        }
        a.prefix = std::move(prefix);
        append_conj(a.items, b.items);
        a.min_items = std::max(a.min_items, b.min_items);
        a.unique_items = a.unique_items || b.unique_items;
        append_conj(a.property_names, b.property_names);
        if (b.max_items) a.max_items = a.max_items ? std::min(*a.max_items, *b.max_items) : *b.max_items;
        // A property named by one side only is still constrained by the other side's additionalProperties.
        for (auto& [name, c] : a.props) {
            if (const Conj* other = b.prop(name))
                append_conj(c, *other);
            else if (b.additional_set)
                append_conj(c, b.additional);
        }
        for (const auto& [name, c] : b.props) {
            if (a.prop(name)) continue;
            Conj mine = a.additional_set ? a.additional : Conj{};
            append_conj(mine, c);
            a.props.push_back({name, std::move(mine)});
        }
        append_conj(a.additional, b.additional);
        a.patterns_merged = a.patterns_merged || b.patterns_merged ||
                            (!a.pattern_props.empty() && (b.additional_set || !b.pattern_props.empty())) ||
                            (!b.pattern_props.empty() && a.additional_set);
        a.pattern_props.insert(a.pattern_props.end(), b.pattern_props.begin(), b.pattern_props.end());
        a.additional_set = a.additional_set || b.additional_set;
        for (const std::string& r : b.required)
            if (std::find(a.required.begin(), a.required.end(), r) == a.required.end()) a.required.push_back(r);
        a.min_props = std::max(a.min_props, b.min_props);
        if (b.max_props) a.max_props = a.max_props ? std::min(*a.max_props, *b.max_props) : *b.max_props;
        for (const auto& [k, w] : b.where) a.where.emplace(k, w);
        return a;
    }

    std::vector<Flat> cross(const std::vector<Flat>& a, const std::vector<Flat>& b, const std::string& ptr) {
        if (a.size() * b.size() > kMaxAlternatives)
            fail("JSON Schema at {} combines too many alternatives (anyOf/oneOf across allOf/$ref: over {})", ptr,
                 kMaxAlternatives);
        std::vector<Flat> out;
        for (const Flat& x : a)
            for (const Flat& y : b)
                if (auto m = merge(x, y)) out.push_back(std::move(*m));
        return out;
    }

    // The branches of a schema: a union of Flats (empty: nothing matches).
    std::vector<Flat> flatten(const Sub& s, std::vector<const Json*>& stack) {
        work(s.ptr);
        DepthGuard guard(depth_, s.ptr);
        const Json& node = *s.node;
        if (node.is_boolean()) {
            if (!node.get<bool>()) return {};
            Flat f;
            f.ptr = s.ptr;
            return {f};
        }
        if (!node.is_object()) fail("JSON Schema at {} must be an object or a boolean", s.ptr);
        if (std::find(stack.begin(), stack.end(), &node) != stack.end())
            fail(
                "JSON Schema at {} refers to itself (through $ref, allOf, anyOf or oneOf) without an object or "
                "array in between",
                s.ptr);
        stack.push_back(&node);
        if (ref_replaces_siblings() && node.contains("$ref")) {
            const Json& r = node["$ref"];
            if (!r.is_string()) fail("'$ref' at {} must be a string", child(s.ptr, "$ref"));
            std::vector<Flat> out = flatten(resolve(r.get<std::string>(), child(s.ptr, "$ref")), stack);
            stack.pop_back();
            return out;
        }
        std::vector<Flat> out{read_flat(node, s.ptr)};
        if (auto it = node.find("$ref"); it != node.end()) {
            const Sub target = resolve(it->get<std::string>(), child(s.ptr, "$ref"));
            out = cross(out, flatten(target, stack), s.ptr);
        }
        if (auto it = node.find("allOf"); it != node.end())
            for (size_t i = 0; i < it->size(); ++i)
                out = cross(out, flatten(Sub{&(*it)[i], child(s.ptr, "allOf", i)}, stack), s.ptr);
        if (auto it = node.find("anyOf"); it != node.end()) {
            std::vector<Flat> branches;
            for (size_t i = 0; i < it->size(); ++i)
                for (Flat& f : flatten(Sub{&(*it)[i], child(s.ptr, "anyOf", i)}, stack))
                    branches.push_back(std::move(f));
            out = cross(out, branches, s.ptr);
        }
        if (auto it = node.find("oneOf"); it != node.end()) {
            std::vector<std::vector<Flat>> per_branch;
            size_t total = 0;
            for (size_t i = 0; i < it->size(); ++i) {
                per_branch.push_back(cross(out, flatten(Sub{&(*it)[i], child(s.ptr, "oneOf", i)}, stack), s.ptr));
                total += per_branch.back().size();
            }
            if (total > kMaxAlternatives)
                fail("JSON Schema at {} combines too many alternatives (over {})", s.ptr, kMaxAlternatives);
            for (size_t i = 0; i < per_branch.size(); ++i)
                for (size_t j = i + 1; j < per_branch.size(); ++j)
                    for (const Flat& x : per_branch[i])
                        for (const Flat& y : per_branch[j])
                            if (!disjoint(x, y))
                                fail(
                                    "'oneOf' at {}: branches {} and {} may both match the same value, and a grammar "
                                    "cannot enforce 'exactly one'. oneOf is accepted only when its branches are "
                                    "evidently disjoint: different types, different const/enum values, or objects "
                                    "with a required property whose const/enum values differ. Use anyOf otherwise",
                                    child(s.ptr, "oneOf"), i, j);
            out.clear();
            for (auto& b : per_branch)
                for (Flat& f : b) out.push_back(std::move(f));
        }
        if (auto it = node.find("not"); it != node.end() && !excluded_values(*it, child(s.ptr, "not")))
            out = cross(out, flatten(Sub{&negation(*it, child(s.ptr, "not")), child(s.ptr, "not")}, stack), s.ptr);
        if (auto it = node.find("if"); it != node.end() && (node.contains("then") || node.contains("else"))) {
            // (if and then) or (not if, and else); a missing then or else holds for anything.
            const auto branch = [&](const Sub& condition, const char* keyword) {
                std::vector<Flat> b = flatten(condition, stack);
                if (auto x = node.find(keyword); x != node.end())
                    b = cross(b, flatten(Sub{&*x, child(s.ptr, keyword)}, stack), s.ptr);
                return b;
            };
            const std::string at = child(s.ptr, "if");
            std::vector<Flat> either = branch(Sub{&*it, at}, "then");
            for (Flat& f : branch(Sub{&negation(*it, at), at}, "else")) either.push_back(std::move(f));
            out = cross(out, either, s.ptr);
        }
        for (const char* keyword : {"dependentRequired", "dependentSchemas", "dependencies"}) {
            const auto it = node.find(keyword);
            if (it == node.end()) continue;
            for (const auto& item : it->items()) {
                // Not a structured binding: clang (the fuzz build) refuses lambdas that capture one.
                const std::string& name = item.key();
                const Json& x = item.value();
                // The property absent, or present with what it brings (more required names, or a schema).
                const std::string at = child(child(s.ptr, keyword), name);
                std::vector<Flat> either =
                    flatten(Sub{&synthetic(&x, "absent", [&] { return Json{{"properties", {{name, false}}}}; }), at},
                            stack);
                Json required = Json::array({name});
                if (x.is_array())
                    for (const Json& n : x) required.push_back(n);
                std::vector<Flat> present = flatten(
                    Sub{&synthetic(&x, "present", [&] { return Json{{"required", required}}; }), at}, stack);
                if (!x.is_array()) present = cross(present, flatten(Sub{&x, at}, stack), s.ptr);
                for (Flat& f : present) either.push_back(std::move(f));
                out = cross(out, either, s.ptr);
            }
        }
        stack.pop_back();
        return out;
    }
    std::vector<Flat> flatten(const Sub& s) {
        std::vector<const Json*> stack;
        return flatten(s, stack);
    }
    std::vector<Flat> flatten(const Conj& c, const std::string& ptr) {
        Flat any;
        any.ptr = ptr;
        std::vector<Flat> out{any};
        for (const Sub& s : c) out = cross(out, flatten(s), ptr);
        return out;
    }

    // ---- negation (not, if/then/else) and dependencies, through schemas hearth writes itself ----

    // A schema made here (a negation, one side of a dependency), kept for the compiler's lifetime so that Subs
    // and the memo may point into it; made once per (source node, tag).
    const Json& synthetic(const Json* source, const std::string& tag, const std::function<Json()>& make) {
        const auto key = std::make_pair(source, tag);
        if (auto it = synthetic_memo_.find(key); it != synthetic_memo_.end()) return *it->second;
        synthetic_.push_back(make());
        synthetic_memo_[key] = &synthetic_.back();
        return synthetic_.back();
    }

    // The values `not` forbids when it holds only const or enum (besides annotations), else nullopt.
    std::optional<std::vector<Json>> excluded_values(const Json& v, const std::string& at) const {
        if (!v.is_object()) return std::nullopt;
        std::optional<std::vector<Json>> values;
        for (const auto& [k, x] : v.items()) {
            if (is_annotation(k)) continue;
            if ((k != "const" && k != "enum") || values) return std::nullopt;
            if (k == "enum" && !x.is_array()) fail("'enum' at {} must be an array", child(at, "enum"));
            values = k == "const" ? std::vector<Json>{x} : std::vector<Json>(x.begin(), x.end());
        }
        return values;
    }

    // A schema that holds exactly where `v` fails, for schemas made of type, const, enum, required, properties
    // (of such schemas), anyOf, allOf and not: the negation of a conjunction is the anyOf of its parts'
    // negations, and each part's is written as a schema hearth compiles (const and enum as the value exclusions
    // `not` keeps). Anything else is refused, naming the keyword: a grammar cannot take a complement in general.
    const Json& negation(const Json& v, const std::string& at) {
        return synthetic(&v, "not", [&] { return negate(v, at); });
    }
    Json negate(const Json& v, const std::string& at) {
        DepthGuard guard(depth_, at);
        if (v.is_boolean()) return !v.get<bool>();
        if (!v.is_object()) fail("JSON Schema at {} must be an object or a boolean", at);
        if (ref_replaces_siblings() && v.contains("$ref")) {
            const Json& r = v["$ref"];
            if (!r.is_string()) fail("'$ref' at {} must be a string", child(at, "$ref"));
            const Sub target = resolve(r.get<std::string>(), child(at, "$ref"));
            return negate(*target.node, target.ptr);
        }
        Json parts = Json::array();
        for (const auto& [k, x] : v.items()) {
            const std::string where = child(at, k);
            if (k == "$id" || k == "id" || is_annotation(k)) continue;
            if (k == "$ref") {
                if (!x.is_string()) fail("'$ref' at {} must be a string", where);
                const Sub target = resolve(x.get<std::string>(), where);
                parts.push_back(negate(*target.node, target.ptr));
            } else if (k == "type") {
                Flat f = read_flat(Json{{"type", x}}, at);
                // What is not an integer includes the numbers with a fraction, which the type mask cannot say
                // apart from integers: they are left out (narrower, never wrong).
                static const std::vector<std::pair<const char*, unsigned>> kNames = {
                    {"null", kNull}, {"boolean", kBool}, {"object", kObject}, {"array", kArray}, {"string", kString}};
                Json names = Json::array();
                for (const auto& [name, bit] : kNames)
                    if (!(f.types & bit)) names.push_back(name);
                if (!(f.types & (kInteger | kNumber))) names.push_back("number");
                parts.push_back(names.empty() ? Json(false) : Json{{"type", names}});
            } else if (k == "const" || k == "enum") {
                parts.push_back(Json{{"not", {{k, x}}}});
            } else if (k == "required") {
                if (!x.is_array()) fail("'required' at {} must be an array of strings", where);
                for (const Json& name : x) {
                    if (!name.is_string()) fail("'required' at {} must be an array of strings", where);
                    parts.push_back(Json{{"type", "object"}, {"properties", {{name.get<std::string>(), false}}}});
                }
            } else if (k == "properties") {
                if (!x.is_object()) fail("'properties' at {} must be an object", where);
                for (const auto& [name, sub] : x.items())
                    parts.push_back(Json{{"type", "object"},
                                         {"required", {name}},
                                         {"properties", {{name, negate(sub, child(where, name))}}}});
            } else if (k == "anyOf" || k == "allOf") {
                if (!x.is_array() || x.empty()) fail("'{}' at {} must be a non-empty array of schemas", k, where);
                Json each = Json::array();
                for (size_t i = 0; i < x.size(); ++i) each.push_back(negate(x[i], child(at, k, i)));
                parts.push_back(Json{{k == "anyOf" ? "allOf" : "anyOf", each}});
            } else if (k == "not") {
                parts.push_back(x);
            } else {
                fail(
                    "'{}' at {} cannot be negated ('not', or the 'if' of if/then/else): hearth negates only type, "
                    "const, enum, required, properties, anyOf, allOf and not",
                    k, where);
            }
        }
        if (parts.empty()) return false;  // v holds for everything
        return parts.size() == 1 ? parts[0] : Json{{"anyOf", parts}};
    }

    // ---- validation of values (enum/const filtering, oneOf disjointness) ----

    bool accepts(const Json& v, const Conj& c) {
        for (const Sub& s : c) {
            bool any = false;
            for (const Flat& f : flatten(s))
                if (accepts(v, f, false)) {
                    any = true;
                    break;
                }
            if (!any) return false;
        }
        return true;
    }
    bool accepts(const Json& v, const Flat& f, bool skip_enum) {
        DepthGuard guard(depth_, f.ptr);
        const unsigned t = value_type(v);
        if (!(f.types & t) && !(t == kInteger && (f.types & kNumber))) return false;
        if (!skip_enum && f.has_enum && !holds_value(f.values, v)) return false;
        if (holds_value(f.excluded, v)) return false;
        if (v.is_number()) {
            const long double x = number_of(v);
            // multipleOf: only whole multiples of whole numbers are judged here; anything else counts as rejected
            // (narrower, never wrong).
            if (f.multiple_of && !(x == std::floor(x) && std::fmod(x, *f.multiple_of) == 0)) return false;
            if (f.lower && (x < f.lower->value || (f.lower->exclusive && x == f.lower->value))) return false;
            if (f.upper && (x > f.upper->value || (f.upper->exclusive && x == f.upper->value))) return false;
        } else if (v.is_string()) {
            if (f.pattern)
                fail(
                    "'pattern' at {} cannot be checked against enum/const values or used to tell oneOf branches "
                    "apart",
                    f.at("pattern"));
            if (f.format)
                fail(
                    "'format' at {} cannot be checked against enum/const values or used to tell oneOf branches "
                    "apart",
                    f.at("format"));
            const size_t n = decode_utf8(v.get<std::string>()).size();
            if (n < f.min_length || (f.max_length && n > *f.max_length)) return false;
        } else if (v.is_array()) {
            if (v.size() < f.min_items || (f.max_items && v.size() > *f.max_items)) return false;
            if (f.unique_items)
                for (size_t i = 0; i < v.size(); ++i)
                    for (size_t j = i + 1; j < v.size(); ++j)
                        if (same_value(v[i], v[j])) return false;
            for (size_t i = 0; i < v.size(); ++i)
                if (!accepts(v[i], i < f.prefix.size() ? f.prefix[i] : f.items)) return false;
        } else if (v.is_object()) {
            if (v.size() < f.min_props || (f.max_props && v.size() > *f.max_props)) return false;
            for (const std::string& r : f.required)
                if (!v.contains(r)) return false;
            for (const auto& [k, x] : v.items()) {
                if (!f.property_names.empty() && !name_allowed(f, k)) return false;
                bool matched = false;
                for (const auto& [pattern, c] : f.pattern_props) {
                    if (!pattern_matches(pattern, k, f.at("patternProperties"))) continue;
                    matched = true;
                    if (!accepts(x, c)) return false;
                }
                if (const Conj* c = f.prop(k)) {
                    if (!accepts(x, *c)) return false;
                } else if (matched) {
                    continue;
                } else if (f.additional_set) {
                    if (!accepts(x, f.additional)) return false;
                } else if (!opt_.allow_additional_properties) {
                    return false;
                }
            }
        }
        return true;
    }

    // The values a branch can take when it is a finite set (enum/const), else nullopt.
    std::optional<std::vector<Json>> finite_values(const std::vector<Flat>& flats) {
        std::vector<Json> out;
        for (const Flat& f : flats) {
            if (!f.has_enum) return std::nullopt;
            for (const Json& v : f.values)
                if (accepts(v, f, true)) out.push_back(v);
        }
        return out;
    }
    bool none_accepted(const std::vector<Json>& values, const std::vector<Flat>& by) {
        for (const Json& v : values)
            for (const Flat& f : by)
                if (accepts(v, f, false)) return false;
        return true;
    }

    static unsigned type_mask(const Flat& f) {
        if (!f.has_enum) return f.types;
        unsigned m = 0;
        for (const Json& v : f.values) m |= value_type(v);
        return m;
    }

    // Whether no value can satisfy both branches, by the evidence oneOf's documentation names. Any error while
    // looking (a pattern we cannot check) counts as "not evidently disjoint".
    bool disjoint(const Flat& a, const Flat& b) {
        unsigned ta = type_mask(a), tb = type_mask(b);
        if (ta & kNumber) ta |= kInteger;
        if (tb & kNumber) tb |= kInteger;
        if ((ta & tb) == 0) return true;
        try {
            if (a.has_enum && none_accepted(finite_values({a}).value(), {b})) return true;
            if (b.has_enum && none_accepted(finite_values({b}).value(), {a})) return true;
            if ((ta & tb) == kObject) {
                for (const std::string& p : a.required) {
                    if (std::find(b.required.begin(), b.required.end(), p) == b.required.end()) continue;
                    const Conj* ca = a.prop(p);
                    const Conj* cb = b.prop(p);
                    const Conj empty;
                    const std::vector<Flat> fa = flatten(ca ? *ca : a.additional_set ? a.additional : empty, a.ptr);
                    const std::vector<Flat> fb = flatten(cb ? *cb : b.additional_set ? b.additional : empty, b.ptr);
                    if (auto va = finite_values(fa); va && none_accepted(*va, fb)) return true;
                    if (auto vb = finite_values(fb); vb && none_accepted(*vb, fa)) return true;
                }
            }
        } catch (const Error&) {
        }
        return false;
    }

    // ---- compiling ----

    int compile_conj(const Conj& in, const std::string& ptr) {
        Conj c;
        for (const Sub& s : in) {
            const Sub d = deref(s);
            if (d.node->is_boolean() && !d.node->get<bool>()) return kNever;
            if ((d.node->is_boolean() && d.node->get<bool>()) ||
                (d.node->is_object() && only_annotations(*d.node, false))) {
                if (d.node->is_object()) read_flat(*d.node, d.ptr);  // still refuse a bad $id or $defs
                continue;
            }
            append_conj(c, {d});
        }
        if (c.empty()) return any_value();
        if (c.size() == 1) return compile_node(c[0]);
        // Merged subschemas recur as the same set of nodes when two recursive definitions are combined (allOf of
        // trees): one rule per set, as compile_node does per node.
        std::vector<const Json*> key;
        for (const Sub& s : c) key.push_back(s.node);
        std::sort(key.begin(), key.end());
        if (auto it = conj_memo_.find(key); it != conj_memo_.end()) return it->second;
        DepthGuard guard(depth_, ptr);
        const int placeholder = add("all-of", {});
        conj_memo_[key] = placeholder;
        const int r = compile_flats(flatten(c, ptr), placeholder);
        conj_memo_[key] = r;
        return r;
    }

    // A document node's rule, compiled once: $refs to it, and recursion through it, share the rule.
    int compile_node(const Sub& s) {
        if (auto it = memo_.find(s.node); it != memo_.end()) return it->second;
        DepthGuard guard(depth_, s.ptr);
        const int placeholder = add("schema", {});
        memo_[s.node] = placeholder;
        const int r = compile_flats(flatten(s), placeholder);
        memo_[s.node] = r;
        return r;
    }

    // A rule for the union of branches (into `into` when given); kNever if none can match. A recursive reference
    // to a schema that turns out to match nothing leaves an empty rule behind, which finish() prunes.
    int compile_flats(const std::vector<Flat>& flats, int into) {
        std::vector<Sequence> alts;
        for (const Flat& f : flats)
            for (Sequence& s : compile_flat(f)) alts.push_back(std::move(s));
        if (alts.empty()) return kNever;
        if (into < 0) return add("any-of", std::move(alts));
        define(into, std::move(alts));
        return into;
    }

    std::vector<Sequence> compile_flat(const Flat& f) {
        std::vector<Sequence> out;
        if (f.has_enum) {
            std::vector<Json> seen;
            for (const Json& v : f.values) {
                if (std::find(seen.begin(), seen.end(), v) != seen.end() || !accepts(v, f, true)) continue;
                seen.push_back(v);
                Sequence s;
                value_literal(s, v);
                out.push_back(std::move(s));
            }
            return out;
        }
        const auto is_excluded = [&](const Json& v) {
            return holds_value(f.excluded, v);
        };
        for (const Json& v : f.excluded)
            if (((v.is_number() && (f.types & (kInteger | kNumber))) || (v.is_object() && (f.types & kObject)) ||
                 (v.is_array() && (f.types & kArray))))
                fail(
                    "'not' at {}: excluding particular numbers, objects or arrays is not supported (null, booleans "
                    "and strings are)",
                    f.at("not"));
        if ((f.types & kNull) && !is_excluded(nullptr)) {
            Sequence s;
            lit(s, "null");
            out.push_back(s);
        }
        if (f.types & kBool)
            for (const bool b : {true, false})
                if (!is_excluded(b)) {
                    Sequence t;
                    lit(t, b ? "true" : "false");
                    out.push_back(t);
                }
        if (f.types & (kInteger | kNumber))
            if (int r = number_piece(f); r != kNever) out.push_back({Element::ref(r)});
        if (f.types & kString)
            if (int r = string_piece(f); r != kNever) out.push_back({Element::ref(r)});
        if (f.types & kArray)
            if (int r = array_piece(f); r != kNever) out.push_back({Element::ref(r)});
        if (f.types & kObject)
            if (int r = object_piece(f); r != kNever) out.push_back({Element::ref(r)});
        return out;
    }

    // The digits of a bound's fraction (|b| - floor(|b|)), from the shortest decimal that reads back as the same
    // double, without trailing zeros ("" for an integral bound).
    static std::string fraction_digits(long double b) {
        // The shortest round-trip form: ddd[.ddd] or d[.ddd]e±XX.
        const std::string text = fmt::format("{}", static_cast<double>(std::fabs(b)));
        std::string mantissa = text, digits;
        int exp10 = 0;
        if (const size_t e = text.find_first_of("eE"); e != std::string::npos) {
            mantissa = text.substr(0, e);
            exp10 = std::stoi(text.substr(e + 1));
        }
        const size_t dot = mantissa.find('.');
        int int_len = static_cast<int>(dot == std::string::npos ? mantissa.size() : dot);
        for (char c : mantissa)
            if (c != '.') digits += c;
        int_len += exp10;  // digits[0, int_len) is the integer part
        std::string frac;
        for (int k = std::max(int_len, 0); k < static_cast<int>(digits.size()); ++k) frac += digits[k];
        if (int_len < 0) frac = std::string(-int_len, '0') + frac;
        while (!frac.empty() && frac.back() == '0') frac.pop_back();
        return frac;
    }

    // A fraction bound: the fraction's digits F must be >= (lower) or <= (upper) `digits`, compared as decimals
    // (`digits` padded with zeros), strictly when exclusive.
    struct FracBound {
        std::string digits;
        bool exclusive = false;
    };

    // The fraction of a number whose integer part is fixed: "" or "." and 1..max_digits digits, its value within
    // the bounds. kNever if no fraction (not even none) is within them.
    int frac_between(const std::optional<FracBound>& lo, const std::optional<FracBound>& hi, int max_digits) {
        const std::string key = fmt::format("{}|{}|{}|{}|{}", lo ? lo->digits : "-", lo && lo->exclusive,
                                            hi ? hi->digits : "-", hi && hi->exclusive, max_digits);
        if (auto it = frac_between_.find(key); it != frac_between_.end()) return it->second;
        // state (i digits written, still equal to lo's first i digits, still equal to hi's first i digits).
        std::map<std::tuple<int, bool, bool>, int> rules;
        const auto digit_of = [](const std::optional<FracBound>& b, int i) {
            return i < static_cast<int>(b->digits.size()) ? b->digits[i] - '0' : 0;
        };
        // May the fraction end here (the digits after it all zero)?
        const auto may_end = [&](int i, bool lo_tight, bool hi_tight) {
            const bool lo_ok = !lo_tight || (i >= static_cast<int>(lo->digits.size()) && !lo->exclusive);
            const bool hi_ok = !hi_tight || !hi->exclusive || i < static_cast<int>(hi->digits.size());
            return lo_ok && hi_ok;
        };
        const std::function<int(int, bool, bool)> state = [&](int i, bool lo_tight, bool hi_tight) -> int {
            const auto k = std::make_tuple(i, lo_tight, hi_tight);
            if (auto it = rules.find(k); it != rules.end()) return it->second;
            std::vector<Sequence> alts;
            if (i > 0 && may_end(i, lo_tight, hi_tight)) alts.push_back({});
            if (i < max_digits) {
                const int l = lo_tight ? digit_of(lo, i) : 0, h = hi_tight ? digit_of(hi, i) : 9;
                // Digits that leave both bounds behind, then the tight ones (equal to a bound's digit).
                for (int d = l; d <= h;) {
                    const bool lt = lo_tight && d == l, ht = hi_tight && d == h;
                    int e = d;
                    if (!lt && !ht) e = (hi_tight ? h - 1 : 9);
                    const int next = state(i + 1, lt, ht);
                    if (next != kNever) {
                        Sequence q;
                        q.push_back(Element::chars({{static_cast<uint32_t>('0' + d), static_cast<uint32_t>('0' + e)}}));
                        ref(q, next);
                        alts.push_back(std::move(q));
                    }
                    d = e + 1;
                }
            }
            const int r = alts.empty() ? kNever : add("frac", std::move(alts));
            rules[k] = r;
            return r;
        };
        const bool lo_tight = lo.has_value(), hi_tight = hi.has_value();
        std::vector<Sequence> alts;
        if (may_end(0, lo_tight, hi_tight)) alts.push_back({});  // no fraction at all: value I exactly
        if (max_digits > 0)
            if (const int digits = state(0, lo_tight, hi_tight); digits != kNever) {
                Sequence q;
                lit(q, ".");
                ref(q, digits);
                alts.push_back(std::move(q));
            }
        const int r = alts.empty() ? kNever : add("frac", std::move(alts));
        frac_between_[key] = r;
        return r;
    }

    // Non-negative numbers u = I.F without exponent, the bounds on u; alternatives without sign. `negative`: the
    // side written with '-', where "-0" is left out. integer_only: no fraction at all. A number has at most 15
    // significant digits (integer part and fraction together): any two such decimals are different doubles, in
    // the same order, so comparing the text with the bound's shortest decimal is what a validator's comparison
    // of doubles decides (a longer fraction could round onto an exclusive bound).
    void number_side(std::optional<Bound> lower, std::optional<Bound> upper, bool negative, bool integer_only,
                     std::vector<Sequence>& out, const char* sign) {
        constexpr int kSignificant = 15;
        const auto floor_of = [](const Bound& b) { return std::floor(b.value); };
        // The fraction allowed after integer part i, where i is one of the points the bounds single out.
        const auto fraction_at = [&](int64_t i, int int_digits) {
            const long double x = static_cast<long double>(i);
            std::optional<FracBound> lo, hi;
            if (lower) {
                if (x < floor_of(*lower)) return kNever;
                if (x == floor_of(*lower)) {
                    const std::string digits = fraction_digits(lower->value);
                    if (!digits.empty() || lower->exclusive) lo = FracBound{digits, lower->exclusive};
                }
            }
            if (upper) {
                if (x > upper->value || (x == upper->value && upper->exclusive)) return kNever;
                if (x == floor_of(*upper)) hi = FracBound{fraction_digits(upper->value), upper->exclusive};
            }
            if (negative && i == 0 && (!lo || (lo->digits.empty() && !lo->exclusive))) lo = FracBound{"", true};
            const int max_digits = integer_only ? 0 : i == 0 ? kSignificant : std::max(kSignificant - int_digits, 0);
            return frac_between(lo, hi, max_digits);
        };
        std::vector<int64_t> specials = {0};
        for (const auto& b : {lower, upper})
            if (b && b->value >= 0 && b->value <= kIntMax) specials.push_back(static_cast<int64_t>(floor_of(*b)));
        std::sort(specials.begin(), specials.end());
        specials.erase(std::unique(specials.begin(), specials.end()), specials.end());
        const auto inside = [&](int64_t i) {  // a whole gap between special points is inside the bounds or not
            const long double x = static_cast<long double>(i);
            return (!lower || x > lower->value) && (!upper || x < upper->value);
        };
        // Integer parts of each length in [lo, hi] (all inside the bounds), each with its fraction.
        const auto emit = [&](int64_t lo, int64_t hi, bool special) {
            if (integer_only) {  // no fraction, so no need to count the integer part's digits
                if (special && fraction_at(lo, 1) == kNever) return;
                Sequence s;
                lit(s, sign);
                ref(s, lo == 0 && hi == kIntMax ? integer_digits() : add("int-range", nonneg_range(lo, hi)));
                out.push_back(std::move(s));
                return;
            }
            int64_t pow = 1;
            for (int len = 1; len <= 16; ++len, pow *= 10) {  // kIntMax has 16 digits
                const int64_t a = std::max(lo, len == 1 ? int64_t{0} : pow), b = std::min(hi, pow * 10 - 1);
                if (a > b) continue;
                const int frac = special ? fraction_at(a, len)
                                         : frac_between(std::nullopt, std::nullopt,
                                                        integer_only ? 0 : a == 0 ? kSignificant : std::max(kSignificant - len, 0));
                if (frac == kNever) continue;
                Sequence s;
                lit(s, sign);
                ref(s, add("int-range", nonneg_range(a, b)));
                ref(s, frac);
                out.push_back(std::move(s));
            }
        };
        int64_t start = 0;
        for (int64_t sp : specials) {
            if (start <= sp - 1 && inside(start)) emit(start, sp - 1, false);
            emit(sp, sp, true);
            start = sp + 1;
        }
        if (start <= kIntMax && inside(start)) emit(start, kIntMax, false);
        // Bounded only by 0 from below (minimum 0 or exclusiveMinimum 0, no maximum): the sign is the whole
        // condition, so an exponent may follow, with at most 2 digits so that no nonzero value underflows to 0.
        if (!integer_only && !upper && lower && lower->value == 0) {
            Sequence digit, exp;
            cls(digit, kDigit);
            cls(exp, {{'e', 'e'}, {'E', 'E'}});
            ref(exp, add("exp-sign", {{Element::chars({{'+', '+'}, {'-', '-'}})}, {}}));
            ref(exp, repeat("exp", digit, 1, 2));
            // A nonzero mantissa: [1-9]... with any fraction, or 0 with a nonzero one.
            const FracBound nonzero{"", true};
            Sequence whole;
            lit(whole, sign);
            ref(whole, add("int-range", nonneg_range(1, kIntMax)));
            ref(whole, frac_between(std::nullopt, std::nullopt, kSignificant));
            append(whole, exp);
            out.push_back(std::move(whole));
            Sequence small;
            lit(small, sign);
            lit(small, "0");
            ref(small, frac_between(nonzero, std::nullopt, kSignificant));
            append(small, exp);
            out.push_back(std::move(small));
            if (!lower->exclusive && !negative) {  // 0e5 is 0
                Sequence zero;
                lit(zero, "0");
                ref(zero, frac_between(std::nullopt, FracBound{"", false}, kSignificant));
                append(zero, exp);
                out.push_back(std::move(zero));
            }
        }
    }

    // multipleOf K for a whole K: integers (a whole multiple is an integer; spelled without fraction or exponent).
    // K = 1 is any integer, within the bounds. For K > 1 a grammar follows the remainder digit by digit (K states
    // per digit position, at most 15 digits as every integer hearth writes), without bounds or with minimum 0.
    // A decimal K is refused: validators test it in floating point (0.07 / 0.01 is not a whole number there),
    // which a grammar cannot follow.
    int multiple_piece(const Flat& f) {
        constexpr long double kMaxModulus = 100;
        const long double k = *f.multiple_of;
        if (k != std::floor(k))
            fail(
                "'multipleOf' at {} is not a whole number: validators test decimal multiples in floating point, "
                "which a grammar cannot follow",
                f.at("multipleOf"));
        Flat whole = f;
        whole.multiple_of.reset();
        whole.types = (f.types & ~kNumber) | kInteger;
        if (k == 1) return number_piece(whole);
        if (k > kMaxModulus)
            fail("'multipleOf' at {}: whole multiples of more than {} are not supported", f.at("multipleOf"),
                 static_cast<int>(kMaxModulus));
        // A lower bound must let every positive multiple through (they are all >= k); then 0 passes or not, and
        // negative ones only without a bound.
        const std::optional<Bound>& lo = f.lower;
        if (f.upper || (lo && (lo->value > k || (lo->value == k && lo->exclusive) || lo->value <= -1)))
            fail("'multipleOf' at {} above 1 is supported without bounds or with a lower bound between -1 and itself",
                 f.at("multipleOf"));
        const bool nonneg = lo.has_value();
        const bool zero = !lo || lo->value < 0 || (lo->value == 0 && !lo->exclusive);
        const int mod = static_cast<int>(k);
        const int variant = (nonneg ? 1 : 0) + (zero ? 2 : 0);
        if (auto it = multiples_.find({mod, variant}); it != multiples_.end()) return it->second;
        // state[len][r]: len digits written (the first nonzero), remainder r; may end where r == 0.
        constexpr int kDigits = 15;
        std::vector<std::vector<int>> state(kDigits + 1, std::vector<int>(mod, kNever));
        for (int len = kDigits; len >= 1; --len)
            for (int r = 0; r < mod; ++r) {
                std::vector<Sequence> alts;
                if (len < kDigits)
                    for (int d = 0; d <= 9; ++d) {
                        const int next = state[len + 1][(r * 10 + d) % mod];
                        if (next == kNever) continue;
                        Sequence q;
                        q.push_back(Element::chars({{static_cast<uint32_t>('0' + d), static_cast<uint32_t>('0' + d)}}));
                        ref(q, next);
                        alts.push_back(std::move(q));
                    }
                if (r == 0) alts.push_back({});
                if (!alts.empty()) state[len][r] = add("multiple", std::move(alts));
            }
        std::vector<Sequence> positive;
        for (int d = 1; d <= 9; ++d) {
            const int next = state[1][d % mod];
            if (next == kNever) continue;
            Sequence q;
            q.push_back(Element::chars({{static_cast<uint32_t>('0' + d), static_cast<uint32_t>('0' + d)}}));
            ref(q, next);
            positive.push_back(std::move(q));
        }
        const int pos = add("multiple-positive", std::move(positive));
        std::vector<Sequence> alts;
        if (zero) {
            Sequence z;
            lit(z, "0");
            alts.push_back(z);
        }
        alts.push_back({Element::ref(pos)});
        if (!nonneg) {
            Sequence neg;
            lit(neg, "-");
            ref(neg, pos);
            alts.push_back(std::move(neg));
        }
        const int r = add("multiple-of", std::move(alts));
        multiples_[{mod, variant}] = r;
        return r;
    }

    int number_piece(const Flat& f) {
        if (f.multiple_of) return multiple_piece(f);
        const bool integer_only = !(f.types & kNumber);
        if (!f.lower && !f.upper) {
            if (!integer_only) return any_number();
            if (int_ < 0) {
                std::vector<Sequence> alts;
                number_side(std::nullopt, std::nullopt, false, true, alts, "");
                number_side(std::nullopt, std::nullopt, true, true, alts, "-");
                int_ = add("integer", std::move(alts));
            }
            return int_;
        }
        std::optional<Bound> lower = f.lower, upper = f.upper;
        if (integer_only) {
            // Integers in the bounds, as inclusive integral bounds.
            if (lower) lower = Bound{lower->exclusive ? std::floor(lower->value) + 1 : std::ceil(lower->value), false};
            if (upper) upper = Bound{upper->exclusive ? std::ceil(upper->value) - 1 : std::floor(upper->value), false};
        }
        std::vector<Sequence> alts;
        number_side(lower, upper, false, integer_only, alts, "");
        const auto neg = [](const std::optional<Bound>& b) {
            return b ? std::optional<Bound>(Bound{-b->value, b->exclusive}) : std::nullopt;
        };
        number_side(neg(upper), neg(lower), true, integer_only, alts, "-");
        if (alts.empty()) return kNever;
        return add(integer_only ? "integer" : "number", std::move(alts));
    }

    int string_piece(const Flat& f) {
        if (f.max_length && *f.max_length < f.min_length) return kNever;
        int content;
        std::vector<std::string> excluded;
        for (const Json& v : f.excluded)
            if (v.is_string()) excluded.push_back(v.get<std::string>());
        if (!excluded.empty()) {
            if (f.pattern || f.format || f.min_length > 0 || f.max_length)
                fail(
                    "'not' at {}: excluding strings is supported only for strings without pattern, format, "
                    "minLength or maxLength",
                    f.at("not"));
            content = key_not_in(excluded);
        } else if (f.pattern) {
            if (f.min_length > 0 || f.max_length)
                fail(
                    "'pattern' at {} cannot be combined with minLength/maxLength ({}): one grammar cannot intersect "
                    "them; put the length into the pattern",
                    f.at("pattern"), f.min_length > 0 ? f.at("minLength") : f.at("maxLength"));
            if (f.format)
                fail("'pattern' at {} cannot be combined with 'format' at {}", f.at("pattern"), f.at("format"));
            content = pattern_rule(*f.pattern, f.at("pattern"));
        } else if (f.format) {
            if (!kFormats.count(*f.format))
                fail(
                    "'format' at {}: format '{}' is not supported (supported: date, time, date-time, duration, uuid, "
                    "email, hostname, ipv4, ipv6, uri, uri-reference, regex)",
                    f.at("format"), *f.format);
            // Lengths a format's strings can have; a length limit is accepted only when it cannot cut any.
            static const std::map<std::string, std::pair<uint64_t, uint64_t>> kLengths = {
                {"date", {10, 10}}, {"time", {9, 24}},          {"date-time", {20, 35}}, {"uuid", {36, 36}},
                {"ipv4", {7, 15}},  {"email", {5, UINT64_MAX}}, {"uri", {2, UINT64_MAX}}, {"hostname", {1, 251}},
                {"ipv6", {2, 45}},  {"duration", {3, UINT64_MAX}}, {"uri-reference", {0, UINT64_MAX}},
                {"regex", {0, UINT64_MAX}}};
            const auto [lo, hi] = kLengths.at(*f.format);
            if (f.min_length > lo || (f.max_length && *f.max_length < hi))
                fail("'format' at {} cannot be combined with minLength/maxLength ({}) that would cut its strings",
                     f.at("format"), f.min_length > lo ? f.at("minLength") : f.at("maxLength"));
            content = format_rule(*f.format);
        } else if (f.min_length == 0 && !f.max_length) {
            content = json_chars();
        } else {
            if (f.min_length > kMaxCount || (f.max_length && *f.max_length > kMaxCount))
                fail("'{}' at {} is over the limit of {}", f.min_length > kMaxCount ? "minLength" : "maxLength",
                     f.at(f.min_length > kMaxCount ? "minLength" : "maxLength"), kMaxCount);
            Sequence item;
            ref(item, json_char());
            content = repeat("str", item, f.min_length, f.max_length);
            // Called, not copied into the value's rule: a position's token cache is then walked in this small
            // frame, the same for every string of these lengths in any schema, instead of in the frame of the
            // object around it (a vocabulary walk per position and schema).
            g_.rules[static_cast<size_t>(content)].shared = true;
        }
        Sequence s;
        lit(s, "\"");
        ref(s, content);
        lit(s, "\"");
        return add("string", {s});
    }

    // A pattern's rules from add_regex, with each character class rewritten to its JSON string spelling: the
    // regex matches the decoded string, the grammar produces its JSON text.
    int pattern_rule(const std::string& pattern, const std::string& where, const char* keyword = "pattern") {
        if (auto it = patterns_.find(pattern); it != patterns_.end()) return it->second;
        const size_t before = g_.rules.size();
        int r;
        try {
            r = add_regex(g_, pattern, fmt::format("pattern{}", before), RegexMatch::Search);
        } catch (const Error& e) {
            fail("'{}' at {}: {}", keyword, where, e.what());
        }
        const size_t after = g_.rules.size();
        size_t n = 0;
        for (size_t i = before; i < after; ++i)
            for (const Sequence& s : g_.rules[i].alternatives) n += s.size() + 1;
        charge(n);
        for (size_t i = before; i < after; ++i)
            for (size_t a = 0; a < g_.rules[i].alternatives.size(); ++a)
                for (size_t e = 0; e < g_.rules[i].alternatives[a].size(); ++e) {
                    if (g_.rules[i].alternatives[a][e].kind != Element::Kind::Chars) continue;
                    const std::vector<CharRange> ranges = g_.rules[i].alternatives[a][e].ranges;
                    const Element unit = char_unit(ranges);  // may grow g_.rules
                    g_.rules[i].alternatives[a][e] = unit;
                }
        patterns_[pattern] = r;
        return r;
    }

    int format_rule(const std::string& name) {
        if (auto it = formats_.find(name); it != formats_.end()) return it->second;
        int r = -1;
        const auto digits = [](Sequence& s, int n) {
            for (int k = 0; k < n; ++k) s.push_back(Element::chars(kDigit));
        };
        if (name == "date") {
            r = date_rule();
        } else if (name == "time") {
            r = time_rule();
        } else if (name == "date-time") {
            Sequence s;
            ref(s, date_rule());
            cls(s, {{'T', 'T'}, {'t', 't'}});
            ref(s, time_rule());
            r = add("date-time", {s});
        } else if (name == "uuid") {
            Sequence s;
            for (int group : {8, 4, 4, 4, 12}) {
                if (!s.empty()) lit(s, "-");
                for (int k = 0; k < group; ++k) cls(s, kHex);
            }
            r = add("uuid", {s});
        } else if (name == "ipv4") {
            // 0-255 without leading zeros (Python's ipaddress refuses them too).
            Sequence a, b, c, d, e;
            lit(a, "25");
            cls(a, {{'0', '5'}});
            lit(b, "2");
            cls(b, {{'0', '4'}});
            digits(b, 1);
            lit(c, "1");
            digits(c, 2);
            cls(d, {{'1', '9'}});
            digits(d, 1);
            digits(e, 1);
            const int octet = add("octet", {a, b, c, d, e});
            Sequence s;
            for (int k = 0; k < 4; ++k) {
                if (k) lit(s, ".");
                ref(s, octet);
            }
            r = add("ipv4", {s});
        } else if (name == "email") {
            // dot-atom "@" domain of at least two labels (RFC 5321's common form; no quoted local parts, no
            // address literals, no length limits).
            Sequence atext;
            cls(atext, {{'A', 'Z'},
                        {'a', 'z'},
                        {'0', '9'},
                        {'!', '!'},
                        {'#', '\''},
                        {'*', '+'},
                        {'-', '-'},
                        {'/', '/'},
                        {'=', '='},
                        {'?', '?'},
                        {'^', '`'},
                        {'{', '~'}});
            Sequence atom = atext;
            ref(atom, star("atext", atext));
            Sequence dot_atom;
            lit(dot_atom, ".");
            append(dot_atom, atom);
            Sequence local = atom;
            ref(local, star("dot-atom", dot_atom));
            const std::vector<CharRange> alnum = {{'A', 'Z'}, {'a', 'z'}, {'0', '9'}};
            Sequence mid;
            cls(mid, {{'A', 'Z'}, {'a', 'z'}, {'0', '9'}, {'-', '-'}});
            Sequence tail_seq;
            ref(tail_seq, repeat("label-mid", mid, 0, 61));
            cls(tail_seq, alnum);
            const int tail = add("label-tail", {tail_seq, {}});
            Sequence label;
            cls(label, alnum);
            ref(label, tail);
            const int label_rule = add("label", {label});
            Sequence more;
            lit(more, ".");
            ref(more, label_rule);
            Sequence s = local;
            lit(s, "@");
            ref(s, label_rule);
            append(s, more);
            ref(s, star("labels", more));
            r = add("email", {s});
        } else if (name == "uri" || name == "uri-reference") {
            r = uri_rule(name == "uri-reference");
        } else if (name == "hostname") {
            r = hostname_rule();
        } else if (name == "ipv6") {
            r = ipv6_rule();
        } else if (name == "duration") {
            r = duration_rule();
        } else if (name == "regex") {
            r = regex_format_rule();
        }
        formats_[name] = r;
        return r;
    }

    // RFC 3339 full-date with the calendar's day counts (leap years included); years 0001-9999.
    int date_rule() {
        if (date_ >= 0) return date_;
        const auto c = [](std::vector<CharRange> r) { return Element::chars(std::move(r)); };
        const auto d = [](char x) { return Element::codepoint(static_cast<uint8_t>(x)); };
        const Element D = c(kDigit);
        const int year = add("year", {{c({{'1', '9'}}), D, D, D},
                                      {d('0'), c({{'1', '9'}}), D, D},
                                      {d('0'), d('0'), c({{'1', '9'}}), D},
                                      {d('0'), d('0'), d('0'), c({{'1', '9'}})}});
        // Two digits that are a non-zero multiple of 4.
        const int mult4 = add(
            "mult4", {{c({{'0', '0'}, {'2', '2'}, {'4', '4'}, {'6', '6'}, {'8', '8'}}), c({{'4', '4'}, {'8', '8'}})},
                      {c({{'1', '1'}, {'3', '3'}, {'5', '5'}, {'7', '7'}, {'9', '9'}}), c({{'2', '2'}, {'6', '6'}})},
                      {c({{'2', '2'}, {'4', '4'}, {'6', '6'}, {'8', '8'}}), d('0')}});
        const int leap = add("leap-year", {{D, D, Element::ref(mult4)}, {Element::ref(mult4), d('0'), d('0')}});
        const int month = add("month", {{d('0'), c({{'1', '9'}})}, {d('1'), c({{'0', '2'}})}});
        const int day28 = add("day", {{d('0'), c({{'1', '9'}})}, {d('1'), D}, {d('2'), c({{'0', '8'}})}});
        const int not_feb = add("month", {{d('0'), c({{'1', '1'}, {'3', '9'}})}, {d('1'), c({{'0', '2'}})}});
        const int long_month = add("month", {{d('0'), c({{'1', '1'}, {'3', '3'}, {'5', '5'}, {'7', '8'}})},
                                             {d('1'), c({{'0', '0'}, {'2', '2'}})}});
        Sequence md28, md30, md31, feb29;
        ref(md28, month);
        lit(md28, "-");
        ref(md28, day28);
        ref(md30, not_feb);
        lit(md30, "-30");
        Sequence md29;
        ref(md29, not_feb);
        lit(md29, "-29");
        ref(md31, long_month);
        lit(md31, "-31");
        const int month_day = add("month-day", {md28, md29, md30, md31});
        Sequence common, leap_day;
        ref(common, year);
        lit(common, "-");
        ref(common, month_day);
        ref(leap_day, leap);
        lit(leap_day, "-02-29");
        date_ = add("date", {common, leap_day});
        return date_;
    }

    // RFC 3339 full-time: partial-time with up to 9 fraction digits, then Z or a numeric offset. Seconds run to
    // 59: leap seconds are left out.
    int time_rule() {
        if (time_ >= 0) return time_;
        const auto c = [](std::vector<CharRange> r) { return Element::chars(std::move(r)); };
        const Element D = c(kDigit);
        const int hour = add("hour", {{c({{'0', '1'}}), D}, {Element::codepoint('2'), c({{'0', '3'}})}});
        const Element sixty = c({{'0', '5'}});
        Sequence frac;
        lit(frac, ".");
        ref(frac, repeat("time-frac", {D}, 1, 9));
        const int frac_rule = add("time-frac", {frac, {}});
        Sequence num_offset;
        cls(num_offset, {{'+', '+'}, {'-', '-'}});
        ref(num_offset, hour);
        lit(num_offset, ":");
        num_offset.push_back(sixty);
        num_offset.push_back(D);
        const int offset = add("offset", {{c({{'Z', 'Z'}, {'z', 'z'}})}, num_offset});
        Sequence s;
        ref(s, hour);
        lit(s, ":");
        s.push_back(sixty);
        s.push_back(D);
        lit(s, ":");
        s.push_back(sixty);
        s.push_back(D);
        ref(s, frac_rule);
        ref(s, offset);
        time_ = add("time", {s});
        return time_;
    }

    // RFC 3986 URI (scheme ":" hier-part ["?" query] ["#" fragment]) without IP-literal hosts ("[v6]").
    // RFC 1123 host names: dot-separated labels of letters, digits and hyphens, 1 to 63 characters, no hyphen
    // first or last. Names of at most 253 characters are what validators accept; the grammar keeps inside that
    // bound by admitting up to 4 labels of up to 62 characters, or 5 to 8 labels of up to 30 (a longer valid
    // name is refused, never an invalid one admitted).
    // format "regex": a subset of regular expressions valid in both ECMA-262 and Python's re (what validators
    // compile): alternatives of pieces, each a literal character, ".", an escape (\d \w \s and their negations,
    // or an escaped metacharacter), a class of single characters, escapes and ordered ranges within digits,
    // lower or upper case letters, a '-' last ("[a-z0-9_-]", "[^,]"), or a group "(...)" / "(?:...)"; each optionally
    // followed by *, +, ?, {n} or {n,}; "^" only first and "$" only last in an alternative. Backslashes are
    // written as JSON escapes them ("\\").
    int regex_format_rule() {
        const std::string plain = "!#%&',-/:;<=>@_`~ ";
        std::vector<CharRange> literal = {{'A', 'Z'}, {'a', 'z'}, {'0', '9'}};
        for (char c : plain) literal.push_back({static_cast<uint32_t>(c), static_cast<uint32_t>(c)});
        const auto backslash = [&](Sequence& q) { lit(q, "\\\\"); };
        Sequence escape;
        backslash(escape);
        cls(escape, {{'d', 'd'}, {'D', 'D'}, {'w', 'w'}, {'W', 'W'}, {'s', 's'}, {'S', 'S'}});
        Sequence escaped_meta;
        backslash(escaped_meta);
        std::vector<CharRange> meta;
        for (char c : std::string("^$.|?*+()[]{}/")) meta.push_back({static_cast<uint32_t>(c), static_cast<uint32_t>(c)});
        cls(escaped_meta, meta);
        Sequence meta_escape;
        backslash(meta_escape);
        lit(meta_escape, "\\\\");  // an escaped backslash: four characters in JSON
        // Class members: single characters (not ] \ ^ -), escapes, and ordered ranges.
        std::vector<Sequence> member;
        {
            std::vector<CharRange> singles;  // without '-', which could make a range out of order ("[z-a]")
            for (const CharRange& r : literal)
                if (!(r.lo == '-' && r.hi == '-')) singles.push_back(r);
            Sequence single;
            cls(single, singles);
            member.push_back(single);
            member.push_back(escape);
            member.push_back(escaped_meta);
            for (const auto& [lo, hi] : {std::pair{'0', '9'}, std::pair{'a', 'z'}, std::pair{'A', 'Z'}})
                for (char a = lo; a <= hi; ++a) {
                    Sequence range;
                    range.push_back(Element::codepoint(static_cast<uint8_t>(a)));
                    lit(range, "-");
                    cls(range, {{static_cast<uint32_t>(a), static_cast<uint32_t>(hi)}});
                    member.push_back(std::move(range));
                }
        }
        const int members = add("regex-class-member", std::move(member));
        Sequence cls_seq;
        lit(cls_seq, "[");
        ref(cls_seq, add("regex-class-negation", {{Element::chars({{'^', '^'}})}, {}}));
        ref(cls_seq, members);
        ref(cls_seq, star("regex-class", {Element::ref(members)}));
        ref(cls_seq, add("regex-class-dash", {{Element::chars({{'-', '-'}})}, {}}));  // a '-' last is literal
        lit(cls_seq, "]");
        const int alternatives = add("regex", {});  // defined below: groups nest
        Sequence group;
        lit(group, "(");
        ref(group, add("regex-group-kind", {{Element::chars({{'?', '?'}}), Element::chars({{':', ':'}})}, {}}));
        ref(group, alternatives);
        lit(group, ")");
        Sequence dot, any_literal;
        lit(dot, ".");
        cls(any_literal, literal);
        const int atom = add("regex-atom", {any_literal, dot, escape, escaped_meta, meta_escape, cls_seq, group});
        Sequence digit, count;
        cls(digit, kDigit);
        lit(count, "{");
        ref(count, repeat("regex-count", digit, 1, 3));
        ref(count, add("regex-count-open", {{Element::chars({{',', ','}})}, {}}));
        lit(count, "}");
        const int quantifier = add("regex-quantifier", {{Element::chars({{'*', '*'}, {'+', '+'}, {'?', '?'}})}, count, {}});
        Sequence piece;
        ref(piece, atom);
        ref(piece, quantifier);
        Sequence branch;
        ref(branch, add("regex-start", {{Element::chars({{'^', '^'}})}, {}}));
        ref(branch, star("regex-pieces", piece));
        ref(branch, add("regex-end", {{Element::chars({{'$', '$'}})}, {}}));
        const int b = add("regex-branch", {branch});
        Sequence more;
        lit(more, "|");
        ref(more, b);
        Sequence all;
        ref(all, b);
        ref(all, star("regex-branches", more));
        define(alternatives, {all});
        return alternatives;
    }

    int hostname_rule() {
        const std::vector<CharRange> alnum = {{'A', 'Z'}, {'a', 'z'}, {'0', '9'}};
        const auto label = [&](int max_len) {
            Sequence mid;
            cls(mid, {{'A', 'Z'}, {'a', 'z'}, {'0', '9'}, {'-', '-'}});
            Sequence tail;
            ref(tail, repeat("host-label-mid", mid, 0, max_len - 2));
            cls(tail, alnum);
            Sequence l;
            cls(l, alnum);
            ref(l, add("host-label-tail", {tail, {}}));
            return add("host-label", {l});
        };
        const auto labels = [&](int max_len, uint64_t min_more, uint64_t max_more) {
            const int l = label(max_len);
            Sequence more;
            lit(more, ".");
            ref(more, l);
            Sequence s;
            ref(s, l);
            ref(s, repeat("host-labels", more, min_more, max_more));
            return s;
        };
        return add("hostname", {labels(62, 0, 3), labels(30, 4, 7)});
    }

    // RFC 4291 text form as RFC 3986 writes it: eight groups of 1-4 hex digits, one "::" standing for one or more
    // zero groups, the last two groups possibly a dotted IPv4 address. No zone index ("%eth0").
    int ipv6_rule() {
        Sequence h16;
        cls(h16, kHex);
        ref(h16, repeat("h16-more", {Element::chars(kHex)}, 0, 3));
        const int h = add("h16", {h16});
        Sequence h_colon;
        ref(h_colon, h);
        lit(h_colon, ":");
        Sequence pair;
        ref(pair, h);
        lit(pair, ":");
        ref(pair, h);
        const int ls32 = add("ls32", {pair, {Element::ref(format_rule("ipv4"))}});
        // [ *k( h16 ":" ) h16 ]: up to k + 1 groups before "::".
        const auto before = [&](uint64_t k) {
            Sequence s;
            ref(s, repeat("h16-colon", h_colon, 0, k));
            ref(s, h);
            return add("ipv6-head", {s, {}});
        };
        const auto tail = [&](Sequence s, uint64_t groups, bool end_ls32) {
            if (groups) ref(s, repeat("h16-colon", h_colon, groups, groups));
            if (end_ls32) ref(s, ls32);
            return s;
        };
        std::vector<Sequence> alts;
        alts.push_back(tail({}, 6, true));
        Sequence lead;
        lit(lead, "::");
        alts.push_back(tail(lead, 5, true));
        for (uint64_t k = 0; k <= 6; ++k) {
            Sequence s;
            ref(s, before(k));
            lit(s, "::");
            if (k <= 4) {
                alts.push_back(tail(s, 4 - k, true));
            } else {
                if (k == 5) ref(s, h);
                alts.push_back(s);
            }
        }
        return add("ipv6", std::move(alts));
    }

    // RFC 3339 appendix A's ISO 8601 durations: P, then years/months/days (in that order, each optional after the
    // first present, as the ABNF nests them) and a T part, or weeks alone.
    int duration_rule() {
        const int num = add("dur-digits", {{Element::chars(kDigit), Element::ref(star("dur-digit", {Element::chars(kDigit)}))}});
        const auto unit = [&](const char* letter, int then) {
            Sequence s;
            ref(s, num);
            lit(s, letter);
            if (then >= 0) ref(s, add("dur-opt", {{Element::ref(then)}, {}}));
            return add(std::string("dur-") + letter, {s});
        };
        const int second = unit("S", -1), minute = unit("M", second), hour = unit("H", minute);
        Sequence t;
        lit(t, "T");
        ref(t, add("dur-time-part", {{Element::ref(hour)}, {Element::ref(minute)}, {Element::ref(second)}}));
        const int time = add("dur-time", {t});
        const int day = unit("D", -1), month = unit("M", day), year = unit("Y", month), week = unit("W", -1);
        Sequence date;
        ref(date, add("dur-date-part", {{Element::ref(day)}, {Element::ref(month)}, {Element::ref(year)}}));
        ref(date, add("dur-time-opt", {{Element::ref(time)}, {}}));
        Sequence s;
        lit(s, "P");
        ref(s, add("dur-body", {date, {Element::ref(time)}, {Element::ref(week)}}));
        return add("duration", {s});
    }

    // RFC 3986's URI (reference false) or URI-reference (a URI, or a relative reference).
    int uri_rule(bool reference) {
        const std::vector<CharRange> alpha = {{'A', 'Z'}, {'a', 'z'}};
        const std::vector<CharRange> unreserved = {{'A', 'Z'}, {'a', 'z'}, {'0', '9'},
                                                   {'-', '.'}, {'_', '_'}, {'~', '~'}};
        const std::vector<CharRange> sub_delims = {{'!', '!'}, {'$', '$'}, {'&', ','}, {';', ';'}, {'=', '='}};
        const auto join = [](std::vector<CharRange> a, const std::vector<CharRange>& b) {
            a.insert(a.end(), b.begin(), b.end());
            return a;
        };
        Sequence pct;
        lit(pct, "%");
        cls(pct, kHex);
        cls(pct, kHex);
        const std::vector<CharRange> pchar_set = join(join(unreserved, sub_delims), {{':', ':'}, {'@', '@'}});
        const int pchar = add("pchar", {{Element::chars(pchar_set)}, pct});
        const int reg_char = add("host-char", {{Element::chars(join(unreserved, sub_delims))}, pct});
        const int user_char =
            add("user-char", {{Element::chars(join(join(unreserved, sub_delims), {{':', ':'}}))}, pct});
        const int qchar = add("query-char", {{Element::chars(join(pchar_set, {{'/', '/'}, {'?', '?'}}))}, pct});
        Sequence scheme;
        cls(scheme, alpha);
        Sequence scheme_char;
        cls(scheme_char, join(alpha, {{'0', '9'}, {'+', '+'}, {'-', '.'}}));
        ref(scheme, star("scheme", scheme_char));
        const int segment = star("segment", {Element::ref(pchar)});
        Sequence seg_nz;
        ref(seg_nz, pchar);
        ref(seg_nz, segment);
        Sequence slash_seg;
        lit(slash_seg, "/");
        ref(slash_seg, segment);
        const int path_abempty = star("path", slash_seg);
        Sequence rootless = seg_nz;
        ref(rootless, path_abempty);
        Sequence absolute;
        lit(absolute, "/");
        ref(absolute, add("path-opt", {rootless, {}}));
        Sequence userinfo;
        ref(userinfo, star("userinfo", {Element::ref(user_char)}));
        lit(userinfo, "@");
        Sequence port;
        lit(port, ":");
        ref(port, star("port", {Element::chars(kDigit)}));
        Sequence authority;
        lit(authority, "//");
        ref(authority, add("userinfo-opt", {userinfo, {}}));
        ref(authority, star("host", {Element::ref(reg_char)}));
        ref(authority, add("port-opt", {port, {}}));
        ref(authority, path_abempty);
        const int hier = add("hier-part", {authority, absolute, rootless, {}});
        Sequence query, fragment;
        lit(query, "?");
        ref(query, star("query", {Element::ref(qchar)}));
        lit(fragment, "#");
        ref(fragment, star("fragment", {Element::ref(qchar)}));
        const int query_opt = add("query-opt", {query, {}});
        const int fragment_opt = add("fragment-opt", {fragment, {}});
        Sequence s = scheme;
        lit(s, ":");
        ref(s, hier);
        ref(s, query_opt);
        ref(s, fragment_opt);
        if (!reference) return add("uri", {s});
        // relative-ref: like hier-part, but a first segment without a colon (it would read as a scheme).
        const int nc_char = add("segment-nc-char", {{Element::chars(join(join(unreserved, sub_delims), {{'@', '@'}}))}, pct});
        Sequence noscheme;
        ref(noscheme, nc_char);
        ref(noscheme, star("segment-nc", {Element::ref(nc_char)}));
        ref(noscheme, path_abempty);
        Sequence relative;
        ref(relative, add("relative-part", {authority, absolute, noscheme, {}}));
        ref(relative, query_opt);
        ref(relative, fragment_opt);
        return add("uri-reference", {s, relative});
    }

    // The text every match of an anchored regex begins with: its leading literal characters, descending into
    // groups without alternatives ("^(title_(...))$": "title_"); "" when there is none.
    static std::string literal_prefix(const std::string& pattern) {
        if (pattern.empty() || pattern[0] != '^') return "";
        std::string out;
        for (size_t i = 1; i < pattern.size();) {
            const char c = pattern[i];
            if (c == '(') {
                // Only a group that must occur (no quantifier after it) and has no top-level alternative.
                size_t depth = 0, end = i;
                bool alternative = false;
                for (; end < pattern.size(); ++end) {
                    if (pattern[end] == '\\') {
                        ++end;
                        continue;
                    }
                    if (pattern[end] == '(') ++depth;
                    if (pattern[end] == ')' && --depth == 0) break;
                    if (pattern[end] == '|' && depth == 1) alternative = true;
                    if (pattern[end] == '[') {  // skip a class: its '(' and '|' are literal
                        while (end < pattern.size() && pattern[end] != ']') end += pattern[end] == '\\' ? 2 : 1;
                    }
                }
                if (alternative || end >= pattern.size()) break;
                if (end + 1 < pattern.size() && std::string_view("*?{").find(pattern[end + 1]) != std::string_view::npos)
                    break;
                i += pattern.compare(i, 3, "(?:") == 0 ? 3 : 1;
                continue;
            }
            const bool escaped = c == '\\' && i + 1 < pattern.size() &&
                                 std::ispunct(static_cast<unsigned char>(pattern[i + 1]));
            if (!escaped && (std::string_view(".[])*+?{}|^$\\").find(c) != std::string_view::npos ||
                             static_cast<unsigned char>(c) >= 128))
                break;
            const size_t next = i + (escaped ? 2 : 1);
            // A quantifier makes the character optional or repeatable: the prefix ends before it ('+' keeps one).
            if (next < pattern.size() && std::string_view("*?{").find(pattern[next]) != std::string_view::npos) break;
            out += escaped ? pattern[i + 1] : c;
            i = next;
        }
        return out;
    }

    // The characters each position of an anchored regex's matches may hold (ASCII ones, and bit 128 for any
    // other), for as long as the matches all have the same length so far: literals, escaped punctuation,
    // classes of ASCII characters and ranges (negated ones too), groups of
    // alternatives of one length ("(en|nl)"), and {1}. Stops at anything else (an over-approximation of the
    // language position by position, enough to prove two patterns disjoint).
    static std::vector<std::bitset<129>> fixed_positions(const std::string& pattern) {
        std::vector<std::bitset<129>> out;
        if (pattern.empty() || pattern[0] != '^') return out;
        size_t i = 1;
        // One single-character atom at i (advancing i), or nullopt.
        const auto atom = [&](size_t& k) -> std::optional<std::bitset<129>> {
            std::bitset<129> set;
            if (k >= pattern.size()) return std::nullopt;
            const unsigned char c = static_cast<unsigned char>(pattern[k]);
            if (c >= 128) return std::nullopt;
            if (c == '\\') {
                if (k + 1 >= pattern.size() || std::isalnum(static_cast<unsigned char>(pattern[k + 1])) ||
                    static_cast<unsigned char>(pattern[k + 1]) >= 128)
                    return std::nullopt;  // \d, \w ... : left alone
                set.set(static_cast<unsigned char>(pattern[k + 1]));
                k += 2;
                return set;
            }
            if (c == '[') {
                size_t e = k + 1;
                const bool negated = e < pattern.size() && pattern[e] == '^';
                if (negated) ++e;
                for (; e < pattern.size() && pattern[e] != ']'; ++e) {
                    const unsigned char x = static_cast<unsigned char>(pattern[e]);
                    if (x >= 128 || x == '\\' || x == '[') return std::nullopt;
                    if (e + 2 < pattern.size() && pattern[e + 1] == '-' && pattern[e + 2] != ']') {
                        const unsigned char y = static_cast<unsigned char>(pattern[e + 2]);
                        if (y >= 128 || y < x) return std::nullopt;
                        for (unsigned v = x; v <= y; ++v) set.set(v);
                        e += 2;
                    } else {
                        set.set(x);
                    }
                }
                if (e >= pattern.size() || set.none()) return std::nullopt;
                k = e + 1;
                if (negated) {
                    set.flip();  // every other ASCII character, and (bit 128) any character beyond ASCII
                    set.set(128);
                }
                return set;
            }
            if (std::string_view(".()*+?{}|^$]").find(static_cast<char>(c)) != std::string_view::npos) return std::nullopt;
            set.set(c);
            ++k;
            return set;
        };
        while (i < pattern.size()) {
            std::vector<std::bitset<129>> piece;
            size_t k = i;
            if (pattern[k] == '(') {  // alternatives of equal length, each a run of atoms
                ++k;
                if (pattern.compare(k, 2, "?:") == 0) k += 2;
                std::vector<std::vector<std::bitset<129>>> alts(1);
                while (k < pattern.size() && pattern[k] != ')') {
                    if (pattern[k] == '|') {
                        alts.emplace_back();
                        ++k;
                        continue;
                    }
                    const auto a = atom(k);
                    if (!a) return out;
                    if (pattern.compare(k, 3, "{1}") == 0) k += 3;
                    if (k < pattern.size() && std::string_view("*+?{").find(pattern[k]) != std::string_view::npos)
                        return out;
                    alts.back().push_back(*a);
                }
                if (k >= pattern.size()) return out;
                ++k;
                for (const auto& a : alts)
                    if (a.size() != alts[0].size() || a.empty()) return out;
                piece.resize(alts[0].size());
                for (const auto& a : alts)
                    for (size_t p = 0; p < a.size(); ++p) piece[p] |= a[p];
            } else {
                const auto a = atom(k);
                if (!a) return out;
                piece.push_back(*a);
            }
            if (pattern.compare(k, 3, "{1}") == 0) k += 3;
            if (k < pattern.size() && std::string_view("*+?{").find(pattern[k]) != std::string_view::npos)
                return out;  // the piece may be absent or repeated: the positions after it shift
            out.insert(out.end(), piece.begin(), piece.end());
            i = k;
        }
        return out;
    }
    // Whether no string can match both anchored regexes: at some position their possible characters differ, or
    // their literal prefixes do.
    static bool prefixes_differ(const std::string& a, const std::string& b) {
        const auto x = fixed_positions(a), y = fixed_positions(b);
        for (size_t i = 0; i < std::min(x.size(), y.size()); ++i)
            if ((x[i] & y[i]).none()) return true;
        const std::string p = literal_prefix(a), q = literal_prefix(b);
        for (size_t i = 0; i < std::min(p.size(), q.size()); ++i)
            if (p[i] != q[i]) return true;
        return false;
    }

    // ---- propertyNames ----

    // propertyNames read as the keys' string constraints. Refused: format, a pattern with lengths, and a union
    // (anyOf/oneOf) other than of enum/const values.
    std::vector<Flat> name_flats(const Flat& f) {
        const std::string at = f.at("propertyNames");
        std::vector<Flat> flats = flatten(f.property_names, at);
        for (const Flat& n : flats) {
            if (n.format) fail("'propertyNames' at {}: a format on property names is not supported", at);
            if (n.pattern && (n.min_length > 0 || n.max_length))
                fail("'propertyNames' at {}: a pattern together with minLength/maxLength is not supported", at);
        }
        if (flats.size() > 1 && !std::all_of(flats.begin(), flats.end(), [](const Flat& n) { return n.has_enum; }))
            fail("'propertyNames' at {}: alternatives (anyOf/oneOf) are supported only between enum/const values", at);
        return flats;
    }
    bool name_ok(const Flat& n, const std::string& name) {
        const Json v(name);
        if (!(n.types & kString)) return false;
        if (n.has_enum && !holds_value(n.values, v)) return false;
        if (holds_value(n.excluded, v)) return false;
        const size_t len = decode_utf8(name).size();
        if (len < n.min_length || (n.max_length && len > *n.max_length)) return false;
        return !n.pattern || pattern_matches(*n.pattern, name, n.at("pattern"), "propertyNames");
    }
    bool name_allowed(const Flat& f, const std::string& name) {
        return f.property_names.empty() || name_allowed(name_flats(f), name);
    }
    bool name_allowed(const std::vector<Flat>& flats, const std::string& name) {
        for (const Flat& n : flats)
            if (name_ok(n, name)) return true;
        return false;
    }
    // The keys of undeclared members (between the quotes): any name but the declared ones, narrowed by
    // propertyNames. kNever when there are none, or when they could not be kept apart from a declared name
    // that propertyNames allows (narrower, never wrong).
    int extra_key_rule(const Flat& f, const std::vector<std::string>& names) {
        if (f.property_names.empty()) return key_not_in(names);
        const std::vector<Flat> flats = name_flats(f);
        if (flats.empty()) return kNever;
        const auto declared = [&](const std::string& k) { return std::find(names.begin(), names.end(), k) != names.end(); };
        if (flats.size() > 1 || flats[0].has_enum) {  // a finite set of names: each spelled out
            std::vector<Sequence> alts;
            std::vector<std::string> seen;
            for (const Flat& n : flats)
                for (const Json& v : n.values) {
                    if (!v.is_string()) continue;
                    const std::string& k = v.get_ref<const std::string&>();
                    if (declared(k) || !name_ok(n, k) || std::find(seen.begin(), seen.end(), k) != seen.end()) continue;
                    seen.push_back(k);
                    const std::string text = dump_json(v);
                    Sequence q;
                    lit(q, text.substr(1, text.size() - 2));
                    alts.push_back(std::move(q));
                }
            return alts.empty() ? kNever : add("key", std::move(alts));
        }
        const Flat& n = flats[0];
        if (!(n.types & kString)) return kNever;
        const bool collides = std::any_of(names.begin(), names.end(), [&](const std::string& k) { return name_ok(n, k); });
        if (n.pattern) return collides ? kNever : pattern_rule(*n.pattern, n.at("pattern"), "propertyNames");
        std::vector<std::string> excluded = names;
        for (const Json& v : n.excluded)
            if (v.is_string()) excluded.push_back(v.get<std::string>());
        if (n.min_length > 0 || n.max_length) {
            if (excluded.size() > names.size() || collides) return kNever;
            if (n.min_length > kMaxCount || (n.max_length && *n.max_length > kMaxCount))
                fail("'propertyNames' at {}: a length over the limit of {}", f.at("propertyNames"), kMaxCount);
            if (n.max_length && *n.max_length < n.min_length) return kNever;
            Sequence item;
            ref(item, json_char());
            return repeat("key", item, n.min_length, n.max_length);
        }
        return key_not_in(excluded);
    }

    // ---- uniqueItems ----

    // Arrays of distinct values from a finite set (the items' enum/const values, booleans, null): the grammar
    // follows which values are used, one rule per subset, so at most 10 values.
    int unique_array_piece(const Flat& f) {
        constexpr size_t kMaxUniqueValues = 10;
        const std::string at = f.at("uniqueItems");
        if (!f.prefix.empty())
            fail("'uniqueItems' at {} is not supported together with prefixItems (or the array form of items)", at);
        std::vector<Json> values;
        for (const Flat& item : flatten(f.items, child(f.ptr, "items"))) {
            std::vector<Json> candidates;
            if (item.has_enum) {
                candidates = item.values;
            } else if ((item.types & ~(kNull | kBool)) == 0) {
                if (item.types & kNull) candidates.push_back(nullptr);
                if (item.types & kBool) candidates.insert(candidates.end(), {true, false});
            } else {
                fail(
                    "'uniqueItems' at {} is supported only when the items are a finite set of values (enum/const, "
                    "booleans, null): a grammar cannot compare other items with each other",
                    at);
            }
            for (const Json& v : candidates)
                if (accepts(v, item, true) && !holds_value(values, v)) values.push_back(v);
        }
        if (values.size() > kMaxUniqueValues)
            fail("'uniqueItems' at {}: the items can take {} values, over the limit of {}", at, values.size(),
                 kMaxUniqueValues);
        const size_t n = values.size();
        const uint64_t lo = f.min_items, hi = std::min<uint64_t>(f.max_items.value_or(n), n);
        if (lo > hi) return kNever;
        std::vector<int> rule(size_t{1} << n, -2);  // -2: not made yet
        const std::function<int(uint32_t)> after = [&](uint32_t used) -> int {
            if (rule[used] != -2) return rule[used];
            const auto count = static_cast<uint64_t>(__builtin_popcount(used));
            std::vector<Sequence> alts;
            if (count >= lo) alts.push_back({});
            if (count < hi)
                for (size_t i = 0; i < n; ++i) {
                    if (used & (1u << i)) continue;
                    const int next = after(used | (1u << i));
                    if (next == kNever) continue;
                    Sequence q;
                    lit(q, ",");
                    ws(q);
                    value_literal(q, values[i]);
                    ws(q);
                    ref(q, next);
                    alts.push_back(std::move(q));
                }
            rule[used] = alts.empty() ? kNever : add("unique-items", std::move(alts));
            return rule[used];
        };
        std::vector<Sequence> body;
        if (lo == 0) body.push_back({});
        if (hi > 0)
            for (size_t i = 0; i < n; ++i) {
                const int next = after(1u << i);
                if (next == kNever) continue;
                Sequence q;
                value_literal(q, values[i]);
                ws(q);
                ref(q, next);
                body.push_back(std::move(q));
            }
        if (body.empty()) return kNever;
        Sequence s;
        lit(s, "[");
        ws(s);
        ref(s, add("unique-items", std::move(body)));
        lit(s, "]");
        return add("array", {s});
    }

    int array_piece(const Flat& f) {
        // Arrays of at most one item are unique already.
        if (f.unique_items && !(f.max_items && *f.max_items <= 1)) return unique_array_piece(f);
        const uint64_t lo = f.min_items;
        std::optional<uint64_t> hi = f.max_items;
        std::vector<int> pre;
        for (size_t i = 0; i < f.prefix.size(); ++i) {
            if (hi && i >= *hi) break;
            const int r = compile_conj(f.prefix[i], child(f.ptr, "prefixItems", i));
            if (r == kNever) {
                hi = i;
                break;
            }
            pre.push_back(r);
        }
        const size_t k = pre.size();
        int item = kNever;
        if (!hi || *hi > k) {
            item = compile_conj(f.items, child(f.ptr, "items"));
            if (item == kNever) hi = k;
        }
        if (hi && lo > *hi) return kNever;
        if (lo > kMaxCount || (hi && *hi > kMaxCount))
            fail("'{}' at {} is over the limit of {}", lo > kMaxCount ? "minItems" : "maxItems",
                 f.at(lo > kMaxCount ? "minItems" : "maxItems"), kMaxCount);
        Sequence elem, more;
        if (item != kNever) {
            ref(elem, item);
            ws(elem);
            lit(more, ",");
            ws(more);
            append(more, elem);
        }
        Sequence body;
        if (k == 0) {
            if (!hi || *hi > 0) {
                Sequence first = elem;
                ref(first,
                    repeat("items", more, lo > 0 ? lo - 1 : 0, hi ? std::optional<uint64_t>(*hi - 1) : std::nullopt));
                if (lo >= 1)
                    body = first;
                else
                    ref(body, add("items", {first, {}}));
            }
        } else {
            int next = -1;
            if (!hi || *hi > k)
                next = repeat("items", more, lo > k ? lo - k : 0, hi ? std::optional<uint64_t>(*hi - k) : std::nullopt);
            for (size_t i = k; i-- > 0;) {
                Sequence s;
                if (i > 0) {
                    lit(s, ",");
                    ws(s);
                }
                ref(s, pre[i]);
                ws(s);
                if (next >= 0) ref(s, next);
                std::vector<Sequence> alts{s};
                if (i >= lo) alts.push_back({});
                next = add("prefix", std::move(alts));
            }
            ref(body, next);
        }
        Sequence s;
        lit(s, "[");
        ws(s);
        append(s, body);
        lit(s, "]");
        return add("array", {s});
    }

    // Strings (between the quotes) whose decoded text is none of `names`: a trie of the names, leaving it at the
    // first differing character. Characters on the trie's edges are written raw or with the escapes they need;
    // after leaving the trie any JSON string text follows.
    // With `prefixes`: nor any string that begins with one of them.
    int key_not_in(const std::vector<std::string>& names, const std::vector<std::string>& prefixes = {}) {
        struct Node {
            std::map<uint32_t, int> kids;
            bool end = false;
            bool prefix = false;  // a prefix ends here: nothing goes on
        };
        std::vector<Node> trie(1);
        const auto insert = [&](const std::string& text) {
            int at = 0;
            for (char32_t cp : decode_utf8(text)) {
                auto it = trie[at].kids.find(cp);
                if (it == trie[at].kids.end()) {
                    trie.push_back({});
                    it = trie[at].kids.emplace(cp, static_cast<int>(trie.size() - 1)).first;
                }
                at = it->second;
            }
            return at;
        };
        for (const std::string& name : names) trie[insert(name)].end = true;
        for (const std::string& p : prefixes) trie[insert(p)].prefix = true;
        // Children were created after their parents: going backwards, every child's rule exists.
        std::vector<int> rule(trie.size(), -1);
        for (size_t n = trie.size(); n-- > 0;) {
            if (trie[n].prefix) {  // no alternative: the rule derives nothing, and the parent leaves it out
                rule[n] = kNever;
                continue;
            }
            std::vector<Sequence> alts;
            if (!trie[n].end) alts.push_back({});
            std::vector<CharRange> used;
            for (const auto& [cp, kid] : trie[n].kids) {
                if (rule[kid] != kNever) alts.push_back({char_unit({{cp, cp}}), Element::ref(rule[kid])});
                used.push_back({cp, cp});
            }
            // Leaving the trie with a character no name has there: the rest of the key is free. Past ASCII
            // (where names rarely go) every node leaves through one shared rule, so that the walks of the
            // matcher's caches from the trie's nodes all meet in it after the first byte.
            static const std::vector<CharRange> kPastAscii = normalize({{0x80, kMaxCodePoint}});
            const std::vector<CharRange> rest = complement(used);
            const std::vector<CharRange> ascii = intersect(rest, {{0, 0x7F}});
            const std::vector<CharRange> beyond = intersect(rest, kPastAscii);
            if (!ascii.empty()) alts.push_back({char_unit(ascii), Element::ref(json_chars())});
            if (beyond == kPastAscii)
                alts.push_back({Element::ref(free_beyond_ascii())});
            else if (!beyond.empty())
                alts.push_back({char_unit(beyond), Element::ref(json_chars())});
            rule[n] = add("key", std::move(alts));
        }
        return rule[0];
    }

    // Whether a property name contains a match of a patternProperties regex (JSON Schema's unanchored search),
    // by the grammar hearth builds for the regex, so that names are judged as generated keys are.
    bool pattern_matches(const std::string& pattern, const std::string& name, const std::string& where,
                         const char* keyword = "patternProperties") {
        auto key = std::make_pair(pattern, name);
        if (auto it = pattern_match_memo_.find(key); it != pattern_match_memo_.end()) return it->second;
        auto& compiled = pattern_grammars_[pattern];
        if (!compiled) {
            Grammar g;
            try {
                g.root = add_regex(g, pattern, "pattern", RegexMatch::Search);
                compiled = compile(g, std::make_shared<TokenTable>());
            } catch (const Error& e) {
                fail("'{}' at {}: pattern '{}': {}", keyword, where, pattern, e.what());
            }
        }
        const bool m = check_bytes(compiled, name).accepted;
        pattern_match_memo_[key] = m;
        return m;
    }

    int object_piece(const Flat& f) {
        struct Member {
            std::string name;
            bool required;
            int value;
        };
        std::vector<Member> members;
        std::vector<std::string> names;
        const auto is_required = [&](const std::string& n) {
            return std::find(f.required.begin(), f.required.end(), n) != f.required.end();
        };
        if (f.patterns_merged)
            fail(
                "'patternProperties' at {} meets another schema's patternProperties or additionalProperties through "
                "allOf or $ref, which is not supported",
                f.at("patternProperties"));
        if (!f.property_names.empty() && !f.pattern_props.empty())
            fail("'propertyNames' at {} beside patternProperties is not supported", f.at("propertyNames"));
        // propertyNames read once for every name below (flattening it is not free).
        const std::vector<Flat> key_flats = f.property_names.empty() ? std::vector<Flat>{} : name_flats(f);
        for (const auto& [name, declared] : f.props) {
            names.push_back(name);
            // propertyNames rules the name out: the property must be absent.
            if (!f.property_names.empty() && !name_allowed(key_flats, name)) {
                if (is_required(name)) return kNever;
                continue;
            }
            Conj c = declared;  // a declared name a pattern matches must satisfy that pattern's schema too
            for (const auto& [pattern, sub] : f.pattern_props)
                if (pattern_matches(pattern, name, f.at("patternProperties"))) append_conj(c, sub);
            const int r = compile_conj(c, child(f.ptr, "properties"));
            if (r == kNever) {
                if (is_required(name)) return kNever;
                continue;  // the property must be absent; key_not_in keeps it out of the extra keys too
            }
            members.push_back({name, is_required(name), r});
        }
        int extra = kNever;
        if (f.additional_set)
            extra = compile_conj(f.additional, f.at("additionalProperties"));
        else if (opt_.allow_additional_properties)
            extra = any_value();
        // Every pattern's schema together: a value satisfying them all is right under any key, whichever patterns
        // the key matches (the grammar cannot tell which without the patterns' complements).
        Conj all_patterns;
        for (const auto& [pattern, sub] : f.pattern_props) append_conj(all_patterns, sub);
        for (const std::string& name : f.required) {
            if (f.prop(name)) continue;
            if (!f.property_names.empty() && !name_allowed(key_flats, name)) return kNever;
            // Required but not declared: its value is what the patterns it matches allow, or else what
            // additionalProperties allows (anything if unset).
            Conj c;
            bool matched = false;
            for (const auto& [pattern, sub] : f.pattern_props)
                if (pattern_matches(pattern, name, f.at("patternProperties"))) {
                    append_conj(c, sub);
                    matched = true;
                }
            const int r = matched ? compile_conj(c, f.at("patternProperties")) : f.additional_set ? extra : any_value();
            if (r == kNever) return kNever;
            names.push_back(name);
            members.push_back({name, true, r});
        }
        // Extra members: (key, value) alternatives, the key between its quotes.
        std::vector<std::pair<int, int>> extras;
        // Where every pattern's matches begin with some literal text, the keys that begin with none of those texts
        // match no pattern: additionalProperties alone rules them.
        std::vector<std::string> prefixes;
        for (const auto& [pattern, sub] : f.pattern_props) prefixes.push_back(literal_prefix(pattern));
        const bool keys_apart = !prefixes.empty() &&
                                std::none_of(prefixes.begin(), prefixes.end(), [](const std::string& p) { return p.empty(); });
        if (extra != kNever) {
            // Any undeclared key, its value under additionalProperties and (with patterns, unless the key begins
            // with none of their texts) every pattern's schema.
            Conj c = f.additional_set ? f.additional : Conj{};
            append_conj(c, all_patterns);
            const int value = f.pattern_props.empty() || keys_apart ? extra : compile_conj(c, f.at("patternProperties"));
            const int key = keys_apart ? key_not_in(names, prefixes) : extra_key_rule(f, names);
            if (value != kNever && key != kNever) extras.push_back({key, value});
        }
        if (!f.pattern_props.empty()) {
            // Keys a pattern matches, which additionalProperties does not cover, their values under every
            // pattern's schema, or under their own pattern's alone where no key can match two patterns (anchored
            // patterns whose characters differ at some position: fixed_positions). Where a pattern matches
            // declared names, its keys cannot be told from them: such a key may repeat a declared name, and JSON
            // keeps the last value, so the value must satisfy those names' schemas too.
            bool disjoint_patterns = true;
            for (size_t i = 0; i < f.pattern_props.size(); ++i)
                for (size_t j = i + 1; j < f.pattern_props.size(); ++j)
                    disjoint_patterns = disjoint_patterns &&
                                        prefixes_differ(f.pattern_props[i].first, f.pattern_props[j].first);
            const int all_value = compile_conj(all_patterns, f.at("patternProperties"));
            for (const auto& [pattern, sub] : f.pattern_props) {
                Conj c = disjoint_patterns ? sub : all_patterns;
                bool covers_declared = false;
                for (const std::string& n : names)
                    if (pattern_matches(pattern, n, f.at("patternProperties"))) {
                        covers_declared = true;
                        if (const Conj* declared = f.prop(n)) append_conj(c, *declared);
                    }
                const int value = !covers_declared ? (disjoint_patterns ? compile_conj(sub, sub[0].ptr) : all_value)
                                                   : compile_conj(c, sub[0].ptr);
                if (value != kNever) extras.push_back({pattern_rule(pattern, sub[0].ptr, "patternProperties"), value});
            }
        }
        // minProperties: the grammar counts the members still needed (0 .. need), one rule per member and count.
        constexpr uint64_t kMaxMinProperties = 64;
        size_t n_required = 0;
        for (const Member& m : members) n_required += m.required;
        const uint64_t need = f.min_props > n_required ? f.min_props : 0;
        if (need > kMaxMinProperties)
            fail("'minProperties' at {} above {} is not supported unless the required properties satisfy it",
                 f.at("minProperties"), kMaxMinProperties);
        if (need > members.size() + (extras.empty() ? 0 : 1)) return kNever;
        const auto member_text = [&](const Member& m) {
            Sequence kv;
            lit(kv, dump_json(Json(m.name)));
            ws(kv);
            lit(kv, ":");
            ws(kv);
            ref(kv, m.value);
            ws(kv);
            return kv;
        };
        const auto extra_text = [&] {
            std::vector<Sequence> alts;
            for (const auto& [key_text, value] : extras) {
                // The key's text is its own frame (called, not copied into the member): a mask inside the key
                // then depends on the key alone, and once the key is free text every object's key meets the
                // same walker state, so a schema's many objects share one walk of the vocabulary.
                g_.rules[static_cast<size_t>(key_text)].shared = true;
                Sequence m;
                lit(m, "\"");
                ref(m, key_text);
                lit(m, "\"");
                ws(m);
                lit(m, ":");
                ws(m);
                ref(m, value);
                ws(m);
                alts.push_back(std::move(m));
            }
            return Sequence{Element::ref(add("extra-member", std::move(alts)))};
        };
        // The object around its members (first: the members' rule from the first on), kNever if none can be.
        const auto object_of = [&](int first) {
            if (first == kNever) return kNever;
            Sequence s;
            lit(s, "{");
            ws(s);
            ref(s, first);
            lit(s, "}");
            return add("object", {s});
        };
        if (f.max_props && (!extras.empty() || members.size() > *f.max_props)) {
            // maxProperties: the grammar counts every member written, extra ones each as one (a repeated key
            // makes the object smaller, never larger), up to the limit.
            constexpr uint64_t kMaxMaxProperties = 64;
            const uint64_t max = *f.max_props;
            if (need > 0)
                fail("'maxProperties' at {} together with minProperties at {} is not supported",
                     f.at("maxProperties"), f.at("minProperties"));
            if (max > kMaxMaxProperties && !(extras.empty() && members.size() <= max))
                fail("'maxProperties' at {} above {} is not supported unless the declared properties satisfy it",
                     f.at("maxProperties"), kMaxMaxProperties);
            if (n_required > max) return kNever;
            const auto comma = [&](const Sequence& kv, int next) {
                Sequence c;
                lit(c, ",");
                ws(c);
                append(c, kv);
                if (next != kNever) ref(c, next);
                return c;
            };
            // rest[c]: c members written, the ones from here on to come; first: none written yet.
            std::vector<int> rest(max + 1, kNever);
            int first;
            {
                const Sequence kv = extras.empty() ? Sequence{} : extra_text();
                for (uint64_t c = max + 1; c-- > 1;) {
                    std::vector<Sequence> alts{{}};
                    if (!extras.empty() && c < max) alts.push_back(comma(kv, rest[c + 1]));
                    rest[c] = add("extra", std::move(alts));
                }
                std::vector<Sequence> alts{{}};
                if (!extras.empty() && max >= 1) {
                    Sequence q = kv;
                    if (max > 1) ref(q, rest[1]);
                    alts.push_back(std::move(q));
                }
                first = add("extra", std::move(alts));
            }
            for (size_t i = members.size(); i-- > 0;) {
                const Member& m = members[i];
                const Sequence kv = member_text(m);
                std::vector<int> next(max + 1, kNever);
                for (uint64_t c = 1; c <= max; ++c) {
                    std::vector<Sequence> alts;
                    if (c < max && rest[c + 1] != kNever) alts.push_back(comma(kv, rest[c + 1]));
                    if (!m.required && rest[c] != kNever) alts.push_back({Element::ref(rest[c])});
                    if (!alts.empty()) next[c] = add("more", std::move(alts));
                }
                std::vector<Sequence> alts;
                if (max >= 1 && rest[1] != kNever) {
                    Sequence q = kv;
                    ref(q, rest[1]);
                    alts.push_back(std::move(q));
                }
                if (!m.required && first != kNever) alts.push_back({Element::ref(first)});
                first = alts.empty() ? kNever : add("members", std::move(alts));
                rest = std::move(next);
            }
            return object_of(first);
        }

        // first: members from i on when none is written yet (need still to come); rest[k]: when one is, k more
        // needed (each member then begins with a comma). kNever: no way on.
        const auto seq_of = [](std::initializer_list<int> rules) {
            Sequence q;
            for (int r : rules) q.push_back(Element::ref(r));
            return q;
        };
        const int empty = add("empty", {Sequence{}});
        const auto comma_then = [&](const Sequence& kv) {
            Sequence c;
            lit(c, ",");
            ws(c);
            append(c, kv);
            return c;
        };
        std::vector<int> rest(need + 1, kNever);
        int first = kNever;
        {
            if (!extras.empty()) {
                const Sequence kv = extra_text();  // one extra member
                // Extra keys may repeat (the grammar cannot keep them distinct), so all of them together count as
                // one member: at least one distinct key.
                rest[0] = star("extra", comma_then(kv));
                if (need >= 1) {
                    Sequence c = comma_then(kv);
                    ref(c, rest[0]);
                    rest[1] = add("extra-needed", {c});
                }
                Sequence some = kv;
                ref(some, rest[0]);
                if (need <= 1) first = need == 1 ? add("extra", {some}) : add("extra", {some, {}});
            } else {
                rest[0] = empty;
                if (need == 0) first = empty;
            }
        }
        for (size_t i = members.size(); i-- > 0;) {
            const Member& m = members[i];
            const Sequence kv = member_text(m);
            std::vector<int> next_rest(need + 1, kNever);
            for (uint64_t k = 0; k <= need; ++k) {
                std::vector<Sequence> alts;
                const int after = rest[k > 0 ? k - 1 : 0];
                if (after != kNever) {
                    Sequence c = comma_then(kv);
                    ref(c, after);
                    alts.push_back(std::move(c));
                }
                if (!m.required && rest[k] != kNever) alts.push_back(seq_of({rest[k]}));
                if (!alts.empty()) next_rest[k] = add("more", std::move(alts));
            }
            std::vector<Sequence> first_alts;
            if (const int after = rest[need > 0 ? need - 1 : 0]; after != kNever) {
                Sequence c = kv;
                ref(c, after);
                first_alts.push_back(std::move(c));
            }
            if (!m.required && first != kNever) first_alts.push_back(seq_of({first}));
            first = first_alts.empty() ? kNever : add("members", std::move(first_alts));
            rest = std::move(next_rest);
        }
        return object_of(first);
    }

    // Drops what cannot derive a finite string (recursion with no way out, placeholders of schemas that match
    // nothing) and what the root cannot reach, renumbering the rest.
    void finish(int root) {
        const size_t n = g_.rules.size();
        const std::vector<char> productive = finishable_rules(g_);
        if (!productive[root]) fail("JSON Schema at # matches no finite JSON value (its recursion never ends)");
        for (Rule& r : g_.rules) {
            auto& alts = r.alternatives;
            alts.erase(std::remove_if(alts.begin(), alts.end(),
                                      [&](const Sequence& s) {
                                          return std::any_of(s.begin(), s.end(), [&](const Element& e) {
                                              return e.kind == Element::Kind::Rule && !productive[e.rule];
                                          });
                                      }),
                       alts.end());
        }
        std::vector<int> index(n, -1);
        std::vector<int> order{root};
        index[root] = 0;
        for (size_t k = 0; k < order.size(); ++k)
            for (const Sequence& s : g_.rules[order[k]].alternatives)
                for (const Element& e : s)
                    if (e.kind == Element::Kind::Rule && index[e.rule] < 0) {
                        index[e.rule] = static_cast<int>(order.size());
                        order.push_back(e.rule);
                    }
        Grammar out;
        out.rules.reserve(order.size());
        for (int i : order) {
            Rule r = std::move(g_.rules[i]);
            for (Sequence& s : r.alternatives)
                for (Element& e : s)
                    if (e.kind == Element::Kind::Rule) e.rule = index[e.rule];
            out.rules.push_back(std::move(r));
        }
        out.root = 0;
        g_ = std::move(out);
    }

    const Json& root_;
    JsonSchemaOptions opt_;
    Draft draft_;
    std::unordered_map<const Json*, bool> holds_ref_;
    Grammar g_;
    size_t elements_ = 0;
    size_t work_ = 0;
    int depth_ = 0;
    std::unordered_map<const Json*, int> memo_;
    std::map<std::vector<const Json*>, int> conj_memo_;
    std::map<std::vector<uint32_t>, int> units_, escapes_;
    std::map<std::string, int> patterns_, formats_;
    std::map<std::pair<int, int>, int> multiples_;  // (modulus, variant)
    std::map<std::string, int> frac_between_;
    std::deque<Json> synthetic_;  // schemas hearth made (negations, dependencies): stable addresses
    std::map<std::pair<const Json*, std::string>, const Json*> synthetic_memo_;
    std::map<std::string, std::shared_ptr<const CompiledGrammar>> pattern_grammars_;
    std::map<std::pair<std::string, std::string>, bool> pattern_match_memo_;
    int ws_ = -1, jchar_ = -1, jchars_ = -1, string_ = -1, number_ = -1, value_ = -1, int_ = -1, int_digits_ = -1;
    int date_ = -1, time_ = -1, free_beyond_ascii_ = -1;
    int frac_[4] = {-1, -1, -1, -1};
};

}  // namespace

Grammar compile_json_schema(const nlohmann::ordered_json& schema, const JsonSchemaOptions& options) {
    return Compiler(schema, options).run();
}

Grammar compile_json_schema(const nlohmann::json& schema, const JsonSchemaOptions& options) {
    return compile_json_schema(nlohmann::ordered_json(schema), options);
}

namespace {

// The schemas that apply to one value: each schema object with the subschemas its applicators bring along.
class SchemaOrder {
public:
    explicit SchemaOrder(const Json& root) : root_(root), legacy_ref_(draft_of_or_latest(root) <= Draft::D7) {}

    Json order(const Json& v, const std::vector<const Json*>& schemas, int depth) {
        if (depth > kMaxDepth || !(v.is_object() || v.is_array())) return v;
        std::vector<const Json*> all;
        for (const Json* s : schemas) expand(s, v, all, 0);
        if (v.is_array()) {
            Json out = Json::array();
            for (size_t i = 0; i < v.size(); ++i) {
                std::vector<const Json*> item;
                for (const Json* s : all) {
                    const auto prefix = s->find("prefixItems");
                    const auto items = s->find("items");
                    const bool tuple = items != s->end() && items->is_array();
                    const Json* p = prefix != s->end() && prefix->is_array() ? &*prefix : tuple ? &*items : nullptr;
                    if (p && i < p->size()) {
                        item.push_back(&(*p)[i]);
                    } else if (tuple) {
                        if (auto a = s->find("additionalItems"); a != s->end()) item.push_back(&*a);
                    } else if (items != s->end()) {
                        item.push_back(&*items);
                    }
                }
                out.push_back(order(v[i], item, depth + 1));
            }
            return out;
        }
        std::vector<std::string> names;
        for (const Json* s : all)
            if (auto p = s->find("properties"); p != s->end() && p->is_object())
                for (const auto& [k, x] : p->items())
                    if (std::find(names.begin(), names.end(), k) == names.end()) names.push_back(k);
        // Required names no schema declares come next, in the order `required` lists them (as the grammar has
        // them: members, before the other keys).
        for (const Json* s : all)
            if (auto r = s->find("required"); r != s->end() && r->is_array())
                for (const Json& k : *r)
                    if (k.is_string() && std::find(names.begin(), names.end(), k.get<std::string>()) == names.end())
                        names.push_back(k.get<std::string>());
        std::vector<std::string> keys;
        for (const std::string& k : names)
            if (v.contains(k)) keys.push_back(k);
        for (const auto& [k, x] : v.items())
            if (std::find(names.begin(), names.end(), k) == names.end()) keys.push_back(k);
        Json out = Json::object();
        for (const std::string& k : keys) {
            std::vector<const Json*> sub;
            for (const Json* s : all) {
                const auto p = s->find("properties");
                bool matched = p != s->end() && p->is_object() && p->contains(k);
                if (matched) sub.push_back(&(*p)[k]);
                if (auto pp = s->find("patternProperties"); pp != s->end() && pp->is_object())
                    for (const auto& [pattern, x] : pp->items())
                        if (search(pattern, k)) {
                            sub.push_back(&x);
                            matched = true;
                        }
                if (auto a = s->find("additionalProperties"); !matched && a != s->end()) sub.push_back(&*a);
            }
            out[k] = order(v[k], sub, depth + 1);
        }
        return out;
    }

private:
    static Draft draft_of_or_latest(const Json& root) {
        try {
            return draft_of(root);
        } catch (const Error&) {
            return Draft::D2020;
        }
    }
    // A "#..." JSON pointer reference, or null.
    const Json* resolve(const Json& ref) const {
        if (!ref.is_string()) return nullptr;
        const std::string& text = ref.get_ref<const std::string&>();
        if (text.empty() || text[0] != '#') return nullptr;
        const Json* node = &root_;
        size_t pos = 1;
        while (pos < text.size()) {
            if (text[pos] != '/') return nullptr;
            size_t end = text.find('/', pos + 1);
            if (end == std::string::npos) end = text.size();
            std::string token;
            for (size_t i = pos + 1; i < end; ++i) {
                if (text[i] == '~' && i + 1 < end) {
                    token += text[i + 1] == '1' ? '/' : '~';
                    ++i;
                } else if (text[i] == '%' && i + 2 < end && std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
                           std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
                    token += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
                    i += 2;
                } else {
                    token += text[i];
                }
            }
            if (node->is_object() && node->contains(token)) {
                node = &(*node)[token];
            } else if (node->is_array() && !token.empty() && token.size() < 10 &&
                       token.find_first_not_of("0123456789") == std::string::npos && std::stoul(token) < node->size()) {
                node = &(*node)[std::stoul(token)];
            } else {
                return nullptr;
            }
            pos = end;
        }
        return node;
    }
    // The schema objects that apply to value v: s, what its $ref and allOf bring, and of each anyOf / oneOf the
    // branch that declares most of v's keys (the first of equals): the branch v is written for, whose property
    // order the grammar follows.
    void expand(const Json* s, const Json& v, std::vector<const Json*>& out, int depth) {
        if (!s || !s->is_object() || depth > kMaxDepth || std::find(out.begin(), out.end(), s) != out.end()) return;
        const auto ref = s->find("$ref");
        if (ref != s->end() && legacy_ref_) {
            expand(resolve(*ref), v, out, depth + 1);
            return;
        }
        out.push_back(s);
        if (ref != s->end()) expand(resolve(*ref), v, out, depth + 1);
        if (auto a = s->find("allOf"); a != s->end() && a->is_array())
            for (const Json& x : *a) expand(&x, v, out, depth + 1);
        for (const char* k : {"anyOf", "oneOf"}) {
            const auto a = s->find(k);
            if (a == s->end() || !a->is_array()) continue;
            std::vector<const Json*> best;
            long best_score = -1;
            for (const Json& x : *a) {
                std::vector<const Json*> branch = out;
                expand(&x, v, branch, depth + 1);
                // A branch whose types admit the value first, then the one declaring most of its keys.
                long score = 0;
                bool fits = true;
                for (size_t i = out.size(); i < branch.size(); ++i)
                    if (auto t = branch[i]->find("type"); t != branch[i]->end()) fits = fits && admits(*t, v);
                if (fits) score += 1L << 40;
                if (v.is_object())
                    for (size_t i = out.size(); i < branch.size(); ++i)
                        if (auto p = branch[i]->find("properties"); p != branch[i]->end() && p->is_object())
                            for (const auto& [key, unused] : v.items()) score += p->contains(key);
                if (score > best_score) {
                    best_score = score;
                    best = std::move(branch);
                }
            }
            out = std::move(best);
        }
    }

    // Whether a "type" keyword's value admits the JSON value v (an integer is a number too).
    static bool admits(const Json& type, const Json& v) {
        const auto one = [&](const Json& t) {
            if (!t.is_string()) return true;
            const std::string& name = t.get_ref<const std::string&>();
            if (name == "number") return v.is_number();
            if (name == "integer")
                return v.is_number_integer() || (v.is_number_float() && v.get<double>() == std::floor(v.get<double>()));
            if (name == "string") return v.is_string();
            if (name == "object") return v.is_object();
            if (name == "array") return v.is_array();
            if (name == "boolean") return v.is_boolean();
            if (name == "null") return v.is_null();
            return true;
        };
        if (!type.is_array()) return one(type);
        return std::any_of(type.begin(), type.end(), one);
    }

    // Whether `name` holds a match of a patternProperties regex, as the compiler judges it; false for a pattern
    // hearth cannot compile (its schema is refused anyway).
    bool search(const std::string& pattern, const std::string& name) {
        auto& compiled = patterns_[pattern];
        if (!compiled.has_value()) {
            try {
                Grammar g;
                g.root = add_regex(g, pattern, "pattern", RegexMatch::Search);
                compiled = compile(g, std::make_shared<TokenTable>());
            } catch (const Error&) {
                compiled = nullptr;
            }
        }
        return *compiled && check_bytes(*compiled, name).accepted;
    }

    const Json& root_;
    bool legacy_ref_;
    std::map<std::string, std::optional<std::shared_ptr<const CompiledGrammar>>> patterns_;
};

}  // namespace

nlohmann::ordered_json in_schema_order(const nlohmann::ordered_json& instance, const nlohmann::ordered_json& schema) {
    return SchemaOrder(schema).order(instance, {&schema}, 0);
}

Grammar json_object_grammar(const JsonSchemaOptions& options) {
    JsonSchemaOptions o = options;
    o.allow_additional_properties = true;
    return compile_json_schema(nlohmann::ordered_json{{"type", "object"}}, o);
}

}  // namespace hearth::grammar
