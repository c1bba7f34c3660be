#include "grammar/regex.h"

#include <cstdint>
#include <optional>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/error.h"

namespace hearth::grammar {

namespace {

constexpr int kMaxDepth = 256;       // group nesting: bounds the parser's and the emitter's recursion
constexpr int kMaxCount = 100000;    // the same cap as Grammar::add_repeat
constexpr int64_t kMaxWeight = 1000000;

// A parsed pattern is a tree (groups disappear into their contents); it is lowered to rules only once it
// is complete, so that a refused pattern leaves the grammar untouched, and because a repeat of a part that
// can match the empty string needs that part's non-empty language, which is easier to derive from a tree.
struct Node {
    enum class Kind : uint8_t { Empty, Chars, Concat, Alt, Repeat };
    Kind kind = Kind::Empty;
    std::vector<CharRange> ranges;  // Chars: normalized, non-empty
    std::vector<int> kids;          // Concat, Alt: two or more; Repeat: one
    int min = 0, max = 0;           // Repeat; max < 0: unbounded
    bool nullable = false;
    // Size of the node with every repeat unrolled. The grammar itself is smaller (repeats of a rule copy a
    // reference), but the cap has to bound what a matcher may expand, and (a{1000}){1000} is a million
    // characters long however it is written down.
    int64_t weight = 0;
    // Emitter memo: rule of the whole language, rule of the language without the empty string, and for a
    // repeat the rules of its tail (the star, or chain[k] = item{0,k+1}).
    int rule = -1, nonempty_rule = -1;
    bool nonempty_done = false;
    int star = -1;
    std::vector<int> chain;
};

struct Branch {
    int node = -1;
    bool left = false, right = false;  // anchored by ^ / $
};

// One atom of a class, or an escape outside one: a code point, or a set (\d, \w, \s and their complements).
struct Atom {
    bool is_set = false;
    uint32_t cp = 0;
    std::vector<CharRange> set;
};

std::vector<CharRange> digit_set() { return {{'0', '9'}}; }
std::vector<CharRange> word_set() { return {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}; }
std::vector<CharRange> space_set() {
    // ECMA-262 WhiteSpace and LineTerminator; not Unicode's White_Space (which adds U+0085 and drops U+FEFF).
    return normalize({{0x09, 0x0D}, {0x20, 0x20}, {0xA0, 0xA0}, {0x1680, 0x1680}, {0x2000, 0x200A},
                      {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}, {0xFEFF, 0xFEFF}});
}
std::vector<CharRange> dot_set() { return complement({{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}}); }

bool is_hex(int c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int hex_value(int c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }
bool is_digit(int c) { return c >= '0' && c <= '9'; }
bool is_ascii_alnum(int c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'); }

class Parser {
public:
    explicit Parser(std::string_view pattern) : p_(pattern) {}

    std::vector<Branch> parse() {
        std::vector<Branch> branches;
        int64_t weight = 0;
        while (true) {
            branches.push_back(parse_branch(true));
            weight += nodes[branches.back().node].weight + 1;
            check_weight(weight, pos_);
            if (at_end()) break;
            if (peek() == ')') fail("regex: unmatched ')' at offset {}", pos_);
            ++pos_;  // '|'
        }
        return branches;
    }

    std::vector<Node> nodes;

private:
    bool at_end() const { return pos_ >= p_.size(); }
    // The byte at pos_ + k, or -1 past the end.
    int peek(size_t k = 0) const { return pos_ + k < p_.size() ? static_cast<uint8_t>(p_[pos_ + k]) : -1; }

    static void check_weight(int64_t weight, size_t at) {
        if (weight > kMaxWeight)
            fail("regex: pattern too large at offset {}: over {} characters with its repeats unrolled", at,
                 kMaxWeight);
    }

    int add(Node n) {
        nodes.push_back(std::move(n));
        return static_cast<int>(nodes.size() - 1);
    }
    int add_chars(std::vector<CharRange> ranges) {
        Node n;
        n.kind = Node::Kind::Chars;
        n.ranges = std::move(ranges);
        n.weight = 1;
        return add(std::move(n));
    }

    // One alternative. At the top level a leading ^ and a trailing $ are the branch's anchors; anywhere else
    // they would need the matcher to know its position in the text, which a grammar cannot express.
    Branch parse_branch(bool top) {
        Branch b;
        if (top && peek() == '^') {
            b.left = true;
            ++pos_;
        }
        std::vector<int> items;
        int64_t weight = 0;
        while (!at_end() && peek() != '|' && peek() != ')') {
            const size_t at = pos_;
            if (peek() == '^')
                fail("regex: '^' at offset {} is only supported at the start of the pattern or of a top-level "
                     "alternative",
                     at);
            if (peek() == '$') {
                if (top && (peek(1) == -1 || peek(1) == '|')) {
                    b.right = true;
                    ++pos_;
                    continue;
                }
                fail("regex: '$' at offset {} is only supported at the end of the pattern or of a top-level "
                     "alternative",
                     at);
            }
            const int atom = parse_quantified(parse_atom());
            weight += nodes[atom].weight;
            check_weight(weight, at);
            if (nodes[atom].kind == Node::Kind::Concat)
                items.insert(items.end(), nodes[atom].kids.begin(), nodes[atom].kids.end());
            else if (nodes[atom].kind != Node::Kind::Empty)
                items.push_back(atom);
        }
        if (items.empty()) {
            b.node = add(Node{});
            nodes[b.node].nullable = true;
        } else if (items.size() == 1) {
            b.node = items[0];
        } else {
            Node n;
            n.kind = Node::Kind::Concat;
            n.nullable = true;
            for (int k : items) n.nullable = n.nullable && nodes[k].nullable;
            n.weight = weight;
            n.kids = std::move(items);
            b.node = add(std::move(n));
        }
        return b;
    }

    int parse_alternation() {
        std::vector<int> alts;
        int64_t weight = 1;
        while (true) {
            const size_t at = pos_;
            alts.push_back(parse_branch(false).node);
            weight += nodes[alts.back()].weight + 1;
            check_weight(weight, at);
            if (peek() != '|') break;
            ++pos_;
        }
        if (alts.size() == 1) return alts[0];
        Node n;
        n.kind = Node::Kind::Alt;
        for (int k : alts) n.nullable = n.nullable || nodes[k].nullable;
        n.weight = weight;
        n.kids = std::move(alts);
        return add(std::move(n));
    }

    int parse_atom() {
        const size_t at = pos_;
        const int c = peek();
        switch (c) {
        case '(': return parse_group();
        case '[': return parse_class();
        case '.': ++pos_; return add_chars(dot_set());
        case '\\': {
            Atom a = parse_escape(false);
            return add_chars(a.is_set ? std::move(a.set) : std::vector<CharRange>{{a.cp, a.cp}});
        }
        case '*':
        case '+':
        case '?': fail("regex: quantifier '{}' at offset {} has nothing to repeat", static_cast<char>(c), at);
        case '{':
            // Annex B: a brace that does not start a quantifier is a literal, as real-world schemas expect.
            if (braced_quantifier(pos_)) fail("regex: quantifier '{{' at offset {} has nothing to repeat", at);
            ++pos_;
            return add_chars({{'{', '{'}});
        default: {
            const uint32_t cp = next_cp();
            return add_chars({{cp, cp}});
        }
        }
    }

    struct Quantifier {
        int64_t min = 0, max = 0;  // max < 0: unbounded
        size_t end = 0;            // offset past the quantifier
    };

    // {n}, {n,} or {n,m} at `at` (counts saturate: the caller refuses them anyway).
    std::optional<Quantifier> braced_quantifier(size_t at) const {
        size_t i = at + 1;
        const auto number = [&](int64_t& out) {
            const size_t from = i;
            out = 0;
            for (; i < p_.size() && is_digit(p_[i]); ++i) out = std::min<int64_t>(out * 10 + (p_[i] - '0'), 1 << 30);
            return i > from;
        };
        Quantifier q;
        if (!number(q.min)) return std::nullopt;
        q.max = q.min;
        if (i < p_.size() && p_[i] == ',') {
            ++i;
            if (!number(q.max)) q.max = -1;
        }
        if (i >= p_.size() || p_[i] != '}') return std::nullopt;
        q.end = i + 1;
        return q;
    }

    int parse_quantified(int atom) {
        const size_t at = pos_;
        Quantifier q;
        switch (peek()) {
        case '*': q = {0, -1, pos_ + 1}; break;
        case '+': q = {1, -1, pos_ + 1}; break;
        case '?': q = {0, 1, pos_ + 1}; break;
        case '{': {
            const std::optional<Quantifier> b = braced_quantifier(pos_);
            if (!b) return atom;
            q = *b;
            break;
        }
        default: return atom;
        }
        pos_ = q.end;
        if (peek() == '?') ++pos_;  // lazy: the same language
        if (q.min > kMaxCount || q.max > kMaxCount)
            fail("regex: repetition count {} at offset {} is over the limit of {}", std::max(q.min, q.max), at,
                 kMaxCount);
        if (q.max >= 0 && q.max < q.min)
            fail("regex: repetition {{{},{}}} at offset {} has max below min", q.min, q.max, at);
        const Node& item = nodes[atom];
        Node n;
        n.kind = Node::Kind::Repeat;
        n.min = static_cast<int>(q.min);
        n.max = static_cast<int>(q.max);
        n.nullable = n.min == 0 || item.nullable;
        n.weight = item.weight * (q.max < 0 ? q.min + 1 : q.max) + (q.max < 0 ? 2 : q.max - q.min + 1);
        check_weight(n.weight, at);
        n.kids = {atom};
        return add(std::move(n));
    }

    int parse_group() {
        const size_t open = pos_;
        if (++depth_ > kMaxDepth) fail("regex: groups nested more than {} deep at offset {}", kMaxDepth, open);
        ++pos_;
        if (peek() == '?') {
            const int c = peek(1);
            if (c == ':') {
                pos_ += 2;
            } else if (c == '=' || c == '!') {
                fail("regex: lookahead (?{} at offset {} is not supported", static_cast<char>(c), open);
            } else if (c == '<' && (peek(2) == '=' || peek(2) == '!')) {
                fail("regex: lookbehind (?<{} at offset {} is not supported", static_cast<char>(peek(2)), open);
            } else if (c == '<') {
                pos_ += 2;
                parse_group_name(open);
            } else {
                fail("regex: group syntax '(?{}' at offset {} is not supported (ECMA-262 patterns have no inline "
                     "flags)",
                     c < 0 ? std::string() : std::string(1, static_cast<char>(c)), open);
            }
        }
        const int node = parse_alternation();
        if (at_end()) fail("regex: group opened at offset {} is never closed", open);
        ++pos_;  // ')'
        --depth_;
        return node;
    }

    // The name of (?<name>...): only its syntax matters, nothing refers to it (\k is refused).
    void parse_group_name(size_t open) {
        const size_t from = pos_;
        while (!at_end() && peek() != '>') {
            const int c = peek();
            const bool ok = c >= 0x80 || c == '_' || c == '$' || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
                            (pos_ > from && is_digit(c));
            if (!ok) break;
            ++pos_;
        }
        if (pos_ == from || peek() != '>') fail("regex: bad group name in (?<...> at offset {}", open);
        ++pos_;
    }

    int parse_class() {
        const size_t open = pos_;
        ++pos_;
        bool negate = false;
        if (peek() == '^') {
            negate = true;
            ++pos_;
        }
        std::vector<CharRange> ranges;
        if (peek() == ']') {
            // ECMA: [] matches nothing, [^] anything. Refusing [] also catches the []a] typo, which would
            // otherwise quietly mean "nothing, then 'a]'".
            if (!negate) fail("regex: empty character class [] at offset {} matches nothing", open);
            ++pos_;
            return add_chars({{0, kMaxCodePoint}});
        }
        while (true) {
            if (at_end()) fail("regex: character class opened at offset {} is never closed", open);
            if (peek() == ']') {
                ++pos_;
                break;
            }
            const size_t at = pos_;
            Atom a = parse_class_atom(open);
            if (peek() == '-' && peek(1) != -1 && peek(1) != ']') {
                const size_t dash = pos_;
                ++pos_;
                const Atom b = parse_class_atom(open);
                if (a.is_set || b.is_set)
                    fail("regex: character class range at offset {} has a class escape (\\d, \\w, \\s...) as an end",
                         dash);
                if (a.cp > b.cp) fail("regex: character class range at offset {} is out of order", at);
                ranges.push_back({a.cp, b.cp});
            } else if (a.is_set) {
                ranges.insert(ranges.end(), a.set.begin(), a.set.end());
            } else {
                ranges.push_back({a.cp, a.cp});
            }
        }
        ranges = normalize(std::move(ranges));
        if (negate) ranges = complement(ranges);
        if (ranges.empty()) fail("regex: character class at offset {} matches no character", open);
        return add_chars(std::move(ranges));
    }

    Atom parse_class_atom(size_t open) {
        if (at_end()) fail("regex: character class opened at offset {} is never closed", open);
        if (peek() == '\\') return parse_escape(true);
        Atom a;
        a.cp = next_cp();
        return a;
    }

    uint32_t hex_digits(size_t n, size_t at, char what) {
        uint32_t v = 0;
        for (size_t k = 0; k < n; ++k) {
            if (!is_hex(peek())) fail("regex: bad escape \\{} at offset {}: expected {} hex digits", what, at, n);
            v = v * 16 + hex_value(peek());
            ++pos_;
        }
        return v;
    }

    // \uHHHH (a surrogate pair of two such escapes is one code point, as in ECMA's unicode mode) or \u{H...}.
    uint32_t parse_unicode_escape(size_t at) {
        if (peek() == '{') {
            ++pos_;
            uint32_t v = 0;
            size_t n = 0;
            for (; is_hex(peek()); ++pos_, ++n) {
                v = v * 16 + hex_value(peek());
                if (v > kMaxCodePoint) fail("regex: escape \\u{{...}} at offset {} is past U+10FFFF", at);
            }
            if (n == 0 || peek() != '}') fail("regex: bad escape \\u{{...}} at offset {}", at);
            ++pos_;
            return v;
        }
        const uint32_t hi = hex_digits(4, at, 'u');
        if (hi >= 0xD800 && hi <= 0xDBFF && peek() == '\\' && peek(1) == 'u' && is_hex(peek(2)) &&
            is_hex(peek(3)) && is_hex(peek(4)) && is_hex(peek(5))) {
            const size_t save = pos_;
            pos_ += 2;
            const uint32_t lo = hex_digits(4, at, 'u');
            if (lo >= 0xDC00 && lo <= 0xDFFF) return 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
            pos_ = save;
        }
        return hi;
    }

    Atom parse_escape(bool in_class) {
        const size_t at = pos_;
        ++pos_;
        if (at_end()) fail("regex: pattern ends with a lone backslash at offset {}", at);
        const int c = peek();
        Atom a;
        const auto set = [&](std::vector<CharRange> s) {
            ++pos_;
            a.is_set = true;
            a.set = std::move(s);
            return a;
        };
        const auto code = [&](uint32_t cp) {
            ++pos_;
            a.cp = cp;
            return a;
        };
        switch (c) {
        case 'd': return set(digit_set());
        case 'D': return set(complement(digit_set()));
        case 'w': return set(word_set());
        case 'W': return set(complement(word_set()));
        case 's': return set(space_set());
        case 'S': return set(complement(space_set()));
        case 'n': return code('\n');
        case 'r': return code('\r');
        case 't': return code('\t');
        case 'f': return code('\f');
        case 'v': return code('\v');
        case 'b':
            if (in_class) return code('\b');
            fail("regex: word boundary \\b at offset {} is not supported", at);
        case 'B':
            if (in_class) fail("regex: unknown escape \\B at offset {}", at);
            fail("regex: word boundary \\B at offset {} is not supported", at);
        case '0':
            if (is_digit(peek(1))) fail("regex: octal escape at offset {} is not supported", at);
            return code(0);
        case 'k': fail("regex: backreference \\k at offset {} is not supported", at);
        case 'p':
        case 'P':
            fail("regex: unicode property escape \\{} at offset {} is not supported", static_cast<char>(c), at);
        case 'c': {
            const int l = peek(1);
            if (!((l | 0x20) >= 'a' && (l | 0x20) <= 'z')) fail("regex: bad escape \\c at offset {}", at);
            pos_ += 2;
            a.cp = static_cast<uint32_t>(l) % 32;
            return a;
        }
        case 'x': ++pos_; a.cp = hex_digits(2, at, 'x'); return a;
        case 'u': {
            ++pos_;
            a.cp = parse_unicode_escape(at);
            // A lone surrogate can never occur in UTF-8 text; in a class it just adds nothing.
            if (!in_class && a.cp >= 0xD800 && a.cp <= 0xDFFF)
                fail("regex: escape of the lone surrogate U+{:04X} at offset {} matches no character", a.cp, at);
            return a;
        }
        default: break;
        }
        if (is_digit(c)) {
            if (in_class) fail("regex: octal escape at offset {} is not supported", at);
            fail("regex: backreference \\{} at offset {} is not supported", static_cast<char>(c), at);
        }
        // Identity escapes: any punctuation or non-ASCII character stands for itself (Annex B); an unknown
        // letter is more likely another dialect's escape (\A, \z, \h) than a wish for the letter.
        if (is_ascii_alnum(c)) fail("regex: unknown escape \\{} at offset {}", static_cast<char>(c), at);
        a.cp = next_cp();
        return a;
    }

    // The code point at pos_, advancing past it.
    uint32_t next_cp() {
        const size_t at = pos_;
        const uint8_t c = static_cast<uint8_t>(p_[pos_]);
        const int n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (n == 0 || pos_ + n > p_.size()) fail("regex: pattern is not valid UTF-8 at offset {}", at);
        uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
        for (int k = 1; k < n; ++k) {
            const uint8_t b = static_cast<uint8_t>(p_[pos_ + k]);
            if ((b & 0xC0) != 0x80) fail("regex: pattern is not valid UTF-8 at offset {}", at);
            cp = cp << 6 | (b & 0x3F);
        }
        static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < kMin[n] || cp > kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF))
            fail("regex: pattern is not valid UTF-8 at offset {}", at);
        pos_ += n;
        return cp;
    }

    std::string_view p_;
    size_t pos_ = 0;
    int depth_ = 0;
};

// Lowers the tree to rules. Rules are appended to g.rules directly, with names checked against a hash set:
// Grammar::add_rule looks each name up with a linear scan, and add_repeat gives all the optional tails of
// x{0,n} one base name, so x{0,4000} through add_repeat takes 20 seconds and x{0,100000} would not finish.
// The shapes are add_repeat's: right-recursive stars, nested optional tails.
class Emitter {
public:
    Emitter(Grammar& g, std::vector<Node>& nodes, std::string_view base) : g_(g), nodes_(nodes), base_(base) {
        for (const Rule& r : g.rules) names_.insert(r.name);
    }

    int root(const std::vector<Branch>& branches, RegexMatch mode) {
        std::string name(base_);
        for (int k = 1; names_.count(name); ++k) name = fmt::format("{}-{}", base_, k);
        const int root = new_rule_named(std::move(name));
        std::vector<Sequence> alts;
        for (const Branch& b : branches) {
            Sequence s;
            if (mode == RegexMatch::Search && !b.left) s.push_back(Element::ref(any()));
            append(s, b.node);
            if (mode == RegexMatch::Search && !b.right) s.push_back(Element::ref(any()));
            alts.push_back(std::move(s));
        }
        g_.rules[root].alternatives = std::move(alts);
        return root;
    }

private:
    int new_rule_named(std::string name) {
        names_.insert(name);
        g_.rules.push_back(Rule{std::move(name), {}});
        return static_cast<int>(g_.rules.size() - 1);
    }
    int new_rule(std::string_view kind, std::vector<Sequence> alts) {
        std::string name;
        do name = fmt::format("{}-{}-{}", base_, kind, ++serial_);
        while (names_.count(name));
        const int r = new_rule_named(std::move(name));
        g_.rules[r].alternatives = std::move(alts);
        return r;
    }

    // Any text: what an unanchored side of a Search pattern admits.
    int any() {
        if (any_ < 0) {
            any_ = new_rule("any", {});
            g_.rules[any_].alternatives = {{Element::chars({{0, kMaxCodePoint}}), Element::ref(any_)}, {}};
        }
        return any_;
    }

    // Appends the elements of the node's whole language.
    void append(Sequence& out, int id) {
        const Node& n = nodes_[id];
        switch (n.kind) {
        case Node::Kind::Empty: return;
        case Node::Kind::Chars: out.push_back(Element::chars(n.ranges)); return;
        case Node::Kind::Concat:
            for (int k : n.kids) append(out, k);
            return;
        case Node::Kind::Alt:
        case Node::Kind::Repeat: out.push_back(Element::ref(rule_of(id))); return;
        }
    }

    int rule_of(int id) {
        if (nodes_[id].rule >= 0) return nodes_[id].rule;
        int r;
        if (nodes_[id].kind == Node::Kind::Repeat) {
            r = repeat_rule(id);
        } else if (nodes_[id].kind == Node::Kind::Alt) {
            std::vector<Sequence> alts;
            for (int k : nodes_[id].kids) {
                Sequence s;
                append(s, k);
                alts.push_back(std::move(s));
            }
            r = new_rule("alt", std::move(alts));
        } else {
            Sequence s;
            append(s, id);
            r = new_rule("seq", {s});
        }
        nodes_[id].rule = r;
        return r;
    }

    // A repeat's item: one element (a character set or a rule) for the item's language, or for its non-empty
    // part when the item can match the empty string (then x{n,m} = x'{0,m}, and a star over a nullable item
    // would be left-recursive). nullopt: the item's non-empty part is empty, so the repeat only matches "".
    std::optional<Element> repeat_item(int id) {
        const int kid = nodes_[id].kids[0];
        if (nodes_[kid].nullable) {
            const int r = nonempty_rule_of(kid);
            if (r < 0) return std::nullopt;
            const std::vector<Sequence>& alts = g_.rules[r].alternatives;
            if (alts.size() == 1 && alts[0].size() == 1) return alts[0][0];
            return Element::ref(r);
        }
        Sequence s;
        append(s, kid);
        if (s.size() == 1) return s[0];
        return Element::ref(rule_of(kid));
    }

    // The rule for item{0,k} (k >= 1; k < 0: item*), built once per repeat node.
    int tail(int id, const Element& item, int k) {
        Node& n = nodes_[id];
        if (k < 0) {
            if (n.star < 0) {
                n.star = new_rule("star", {});
                g_.rules[n.star].alternatives = {{item, Element::ref(n.star)}, {}};
            }
            return n.star;
        }
        while (static_cast<int>(nodes_[id].chain.size()) < k) {
            Sequence more{item};
            if (!nodes_[id].chain.empty()) more.push_back(Element::ref(nodes_[id].chain.back()));
            const int r = new_rule("opt", {more, {}});
            nodes_[id].chain.push_back(r);
        }
        return nodes_[id].chain[k - 1];
    }

    int repeat_rule(int id) {
        const std::optional<Element> item = repeat_item(id);
        if (!item) return new_rule("empty", {{}});
        const Node& n = nodes_[id];
        const int min = n.nullable ? 0 : n.min, max = n.max;
        if (min == 0 && max != 0) return tail(id, *item, max);
        Sequence body(static_cast<size_t>(min), *item);
        if (max < 0)
            body.push_back(Element::ref(tail(id, *item, -1)));
        else if (max > min)
            body.push_back(Element::ref(tail(id, *item, max - min)));
        return new_rule("rep", {body});
    }

    // The node's language without the empty string, as alternatives (none: that language is empty).
    std::vector<Sequence> nonempty_alts(int id) {
        const Node& n = nodes_[id];
        if (!n.nullable) {
            Sequence s;
            append(s, id);
            return {s};
        }
        switch (n.kind) {
        case Node::Kind::Empty:
        case Node::Kind::Chars: return {};
        case Node::Kind::Alt: {
            std::vector<Sequence> out;
            for (int k : n.kids) {
                std::vector<Sequence> sub = nonempty_alts(k);
                for (Sequence& s : sub) out.push_back(std::move(s));
            }
            return out;
        }
        case Node::Kind::Repeat: {
            // x'{0,m} minus "" = x' x'{0,m-1}.
            const std::optional<Element> item = repeat_item(id);
            if (!item || n.max == 0) return {};
            Sequence s{*item};
            if (n.max < 0)
                s.push_back(Element::ref(tail(id, *item, -1)));
            else if (n.max > 1)
                s.push_back(Element::ref(tail(id, *item, n.max - 1)));
            return {s};
        }
        case Node::Kind::Concat: {
            // Every part is nullable: a non-empty string starts with part i's non-empty part, and all parts
            // before i match "". Suffix rules keep this linear in the number of parts.
            const std::vector<int> kids = n.kids;
            std::vector<Sequence> out;
            int suffix = -1;  // rule for kids[i+1..]
            for (size_t i = kids.size(); i-- > 0;) {
                const int r = nonempty_rule_of(kids[i]);
                if (r >= 0) {
                    Sequence s;
                    const std::vector<Sequence>& alts = g_.rules[r].alternatives;
                    if (alts.size() == 1)
                        s = alts[0];
                    else
                        s.push_back(Element::ref(r));
                    if (suffix >= 0) s.push_back(Element::ref(suffix));
                    out.push_back(std::move(s));
                }
                if (i > 0) {
                    Sequence s;
                    append(s, kids[i]);
                    if (suffix >= 0) s.push_back(Element::ref(suffix));
                    suffix = new_rule("suffix", {s});
                }
            }
            return out;
        }
        }
        return {};
    }

    int nonempty_rule_of(int id) {
        if (!nodes_[id].nonempty_done) {
            std::vector<Sequence> alts = nonempty_alts(id);
            nodes_[id].nonempty_rule = alts.empty() ? -1 : new_rule("some", std::move(alts));
            nodes_[id].nonempty_done = true;
        }
        return nodes_[id].nonempty_rule;
    }

    Grammar& g_;
    std::vector<Node>& nodes_;
    std::string_view base_;
    std::unordered_set<std::string> names_;
    int serial_ = 0;
    int any_ = -1;
};

}  // namespace

int add_regex(Grammar& g, std::string_view pattern, std::string_view name, RegexMatch mode) {
    Parser parser(pattern);
    const std::vector<Branch> branches = parser.parse();
    Emitter emitter(g, parser.nodes, name);
    return emitter.root(branches, mode);
}

Grammar regex_grammar(std::string_view pattern) {
    Grammar g;
    g.root = add_regex(g, pattern, "root", RegexMatch::Whole);
    return g;
}

}  // namespace hearth::grammar
