#include "grammar/gbnf.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/error.h"

namespace hearth::grammar {
namespace {

constexpr int kMaxDepth = 256;            // nested groups: the parser recurses once per level
constexpr int kMaxRepeat = 100000;        // the bound Grammar::add_repeat enforces
constexpr uint64_t kMaxSize = 1'000'000;  // elements in the whole grammar, a class counting once per range
constexpr size_t kNameBase = 64;          // helper names start with at most this much of their rule's name
constexpr size_t kNone = SIZE_MAX;

bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Strict UTF-8 decoding of one code point at s[i]; 0 (and cp untouched) when the bytes there are not one.
size_t decode_utf8(std::string_view s, size_t i, uint32_t& cp) {
    const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
    const uint8_t c = b(i);
    const size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return 0;
    uint32_t v = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < n; ++k) {
        if ((b(i + k) & 0xC0) != 0x80) return 0;
        v = v << 6 | (b(i + k) & 0x3F);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < kMin[n] || v > kMaxCodePoint || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    cp = v;
    return n;
}

uint64_t weight(const Element& e) { return e.kind == Element::Kind::Rule ? 1 : e.ranges.size(); }

uint64_t weight(const Sequence& s) {
    uint64_t w = 0;
    for (const Element& e : s) w += weight(e);
    return w;
}

class Parser {
public:
    explicit Parser(std::string_view src) : src_(src) {}

    Grammar parse() {
        skip_space(true);
        while (pos_ < src_.size()) {
            parse_rule();
            skip_space(true);
        }
        // Rules are interned on first mention, so the first undefined one is the earliest reference.
        for (size_t i = 0; i < info_.size(); ++i)
            if (!info_[i].helper && info_[i].at == kNone)
                error_at(info_[i].first_ref, "rule '{}' is used but never defined", g_.rules[i].name);
        const auto root = names_.find("root");
        if (root == names_.end()) fail("GBNF: the grammar has no 'root' rule (generation starts from 'root')");
        g_.root = root->second;
        name_helpers();
        try {
            g_.validate();
        } catch (const Error& e) {
            // validate() names the rule in quotes; point at where that rule (or the construct behind a helper
            // rule) is written.
            const std::string msg = e.what();
            const size_t q1 = msg.find('\'');
            const size_t q2 = q1 == std::string::npos ? q1 : msg.find('\'', q1 + 1);
            if (q2 != std::string::npos) {
                const std::string name = msg.substr(q1 + 1, q2 - q1 - 1);
                for (size_t i = 0; i < g_.rules.size(); ++i) {
                    if (g_.rules[i].name != name || info_[i].at == kNone) continue;
                    if (info_[i].helper) error_at(info_[i].at, "{} ('{}' is this group or repetition)", msg, name);
                    error_at(info_[i].at, "{}", msg);
                }
            }
            fail("GBNF: {}", msg);
        }
        return std::move(g_);
    }

private:
    struct RuleInfo {
        bool helper = false;
        size_t at = kNone;         // user rule: its definition; helper: the group or repetition it stands for
        size_t first_ref = kNone;  // user rule: its first reference
        std::string base;          // helper: what its name starts with (named once all user names are known)
    };

    std::string where(size_t pos) const {
        size_t line = 1, col = 1;
        for (size_t i = 0; i < pos && i < src_.size(); ++i) {
            const char c = src_[i];
            if (c == '\n' || (c == '\r' && (i + 1 >= src_.size() || src_[i + 1] != '\n'))) {
                ++line;
                col = 1;
            } else if ((static_cast<uint8_t>(c) & 0xC0) != 0x80 && c != '\r') {
                ++col;
            }
        }
        return fmt::format("{}:{}", line, col);
    }

    template <typename... Args>
    [[noreturn]] void error_at(size_t pos, fmt::format_string<Args...> f, Args&&... args) const {
        fail("GBNF {}: {}", where(pos), fmt::format(f, std::forward<Args>(args)...));
    }

    // What is at pos, for "found ..." messages.
    std::string describe(size_t pos) const {
        if (pos >= src_.size()) return "the end of the input";
        const char c = src_[pos];
        if (c == '\n' || c == '\r') return "a newline";
        if (c >= 0x20 && c < 0x7F) return fmt::format("'{}'", c);
        uint32_t cp = 0;
        const size_t n = decode_utf8(src_, pos, cp);
        if (n > 1) return fmt::format("'{}' (U+{:04X})", src_.substr(pos, n), cp);
        return fmt::format("byte 0x{:02X}", static_cast<uint8_t>(c));
    }

    bool at_char(char c) const { return pos_ < src_.size() && src_[pos_] == c; }

    // Spaces, tabs and comments; newlines too where a rule continues past them (llama.cpp: inside groups, and
    // right after '::=' or '|').
    void skip_space(bool newline_ok) {
        while (pos_ < src_.size()) {
            const char c = src_[pos_];
            if (c == ' ' || c == '\t' || (newline_ok && (c == '\n' || c == '\r'))) {
                ++pos_;
            } else if (c == '#') {
                while (pos_ < src_.size() && src_[pos_] != '\n' && src_[pos_] != '\r') ++pos_;
            } else {
                break;
            }
        }
    }

    void charge(uint64_t n, size_t at) {
        size_ += n;
        if (size_ > kMaxSize)
            error_at(at, "grammar too large: over {} elements once repetitions are expanded", kMaxSize);
    }

    std::string read_name() {
        const size_t start = pos_;
        while (pos_ < src_.size() && is_name_char(src_[pos_])) ++pos_;
        return std::string(src_.substr(start, pos_ - start));
    }

    // The user rule with this name, created on first mention (a reference or its definition).
    int user_rule(const std::string& name, size_t at, bool is_ref) {
        const auto [it, inserted] = names_.try_emplace(name, static_cast<int>(g_.rules.size()));
        if (inserted) {
            g_.rules.push_back(Rule{name, {}});
            info_.push_back(RuleInfo{});
        }
        RuleInfo& info = info_[it->second];
        if (is_ref && info.first_ref == kNone) info.first_ref = at;
        return it->second;
    }

    // Helper rules are named only at the end (name_helpers), so that a user rule defined later in the text can
    // never be mistaken for one.
    int helper_rule(int owner, std::string_view suffix, std::vector<Sequence> alternatives, size_t at) {
        const std::string& owner_name = g_.rules[owner].name;
        RuleInfo info;
        info.helper = true;
        info.at = at;
        info.base = owner_name.substr(0, kNameBase);
        info.base += suffix;
        g_.rules.push_back(Rule{"", std::move(alternatives)});
        info_.push_back(std::move(info));
        return static_cast<int>(g_.rules.size() - 1);
    }

    // Names are base, base-1, base-2, ... skipping any name taken. Grammar::add_rule would do the same with a
    // linear search per probe, which is cubic over the many helpers one repetition makes.
    void name_helpers() {
        std::unordered_set<std::string> taken;
        for (const auto& [name, index] : names_) taken.insert(name);
        std::unordered_map<std::string, int> next;
        for (size_t i = 0; i < g_.rules.size(); ++i) {
            if (!info_[i].helper) continue;
            int& k = next[info_[i].base];
            std::string name;
            do {
                name = k == 0 ? info_[i].base : fmt::format("{}-{}", info_[i].base, k);
                ++k;
            } while (!taken.insert(name).second);
            g_.rules[i].name = std::move(name);
        }
    }

    void parse_rule() {
        const size_t start = pos_;
        if (!is_name_char(src_[pos_])) error_at(pos_, "expected a rule name, found {}", describe(pos_));
        const std::string name = read_name();
        skip_space(false);
        if (src_.substr(pos_, 3) != "::=")
            error_at(pos_, "expected '::=' after the rule name '{}', found {}", name, describe(pos_));
        pos_ += 3;
        const int r = user_rule(name, start, false);
        if (info_[r].at != kNone) error_at(start, "rule '{}' is defined twice (first at {})", name, where(info_[r].at));
        info_[r].at = start;
        skip_space(true);
        std::vector<Sequence> alternatives = parse_alternates(r, 0);
        g_.rules[r].alternatives = std::move(alternatives);
        if (pos_ >= src_.size()) return;
        if (src_[pos_] == '\r')
            pos_ += pos_ + 1 < src_.size() && src_[pos_ + 1] == '\n' ? 2 : 1;
        else if (src_[pos_] == '\n')
            ++pos_;
        else
            error_at(pos_, "unexpected {} in the rule '{}'", describe(pos_), name);
    }

    std::vector<Sequence> parse_alternates(int owner, int depth) {
        std::vector<Sequence> alternatives;
        alternatives.push_back(parse_sequence(owner, depth));
        while (at_char('|')) {
            ++pos_;
            skip_space(true);
            alternatives.push_back(parse_sequence(owner, depth));
        }
        return alternatives;
    }

    Sequence parse_sequence(int owner, int depth) {
        const bool nested = depth > 0;
        Sequence seq;
        size_t last = kNone;  // where the last item starts in seq: what a postfix operator repeats
        while (pos_ < src_.size()) {
            const size_t at = pos_;
            const char c = src_[pos_];
            if (c == '"') {
                last = seq.size();
                parse_literal(seq);
            } else if (c == '[') {
                last = seq.size();
                seq.push_back(parse_class());
            } else if (c == '.') {
                ++pos_;
                last = seq.size();
                seq.push_back(Element::chars({{0, kMaxCodePoint}}));
                charge(weight(seq.back()), at);
            } else if (is_name_char(c)) {
                last = seq.size();
                seq.push_back(Element::ref(user_rule(read_name(), at, true)));
                charge(1, at);
            } else if (c == '(') {
                if (depth >= kMaxDepth) error_at(at, "groups are nested deeper than {} levels", kMaxDepth);
                ++pos_;
                skip_space(true);
                std::vector<Sequence> alternatives = parse_alternates(owner, depth + 1);
                if (pos_ >= src_.size()) error_at(at, "unterminated group: this '(' is never closed");
                if (src_[pos_] != ')')
                    error_at(pos_, "expected ')' to close the group at {}, found {}", where(at), describe(pos_));
                ++pos_;
                last = seq.size();
                seq.push_back(Element::ref(helper_rule(owner, "", std::move(alternatives), at)));
                charge(1, at);
            } else if (c == '*' || c == '+' || c == '?' || c == '{') {
                if (last == kNone || last == seq.size()) error_at(at, "'{}' has nothing before it to repeat", c);
                const auto [min_count, max_count] = parse_bounds(nested);
                Sequence item(seq.begin() + static_cast<std::ptrdiff_t>(last), seq.end());
                seq.resize(last);
                seq.push_back(Element::ref(repeat(owner, item, min_count, max_count, at)));
            } else {
                break;
            }
            skip_space(nested);
        }
        return seq;
    }

    // One character of a literal or a class: an escape or one UTF-8 code point.
    uint32_t parse_char(size_t open, const char* what) {
        const size_t at = pos_;
        if (src_[pos_] == '\\') {
            if (pos_ + 1 >= src_.size()) error_at(open, "unterminated {}", what);
            const char e = src_[pos_ + 1];
            pos_ += 2;
            switch (e) {
            case 'n': return '\n';
            case 'r': return '\r';
            case 't': return '\t';
            case '\\':
            case '"':
            case '[':
            case ']':
            case '-':
            case '^': return static_cast<uint8_t>(e);
            case 'x': return parse_hex(at, 2);
            case 'u': return parse_hex(at, 4);
            case 'U': return parse_hex(at, 8);
            default:
                if (e > 0x20 && e < 0x7F) error_at(at, "unknown escape '\\{}'", e);
                error_at(at, "unknown escape: '\\' followed by {}", describe(at + 1));
            }
        }
        uint32_t cp = 0;
        const size_t n = decode_utf8(src_, pos_, cp);
        if (n == 0) error_at(at, "invalid UTF-8 in a {} (byte 0x{:02X})", what, static_cast<uint8_t>(src_[at]));
        pos_ += n;
        return cp;
    }

    uint32_t parse_hex(size_t at, int digits) {
        uint32_t v = 0;
        for (int k = 0; k < digits; ++k) {
            const int h = pos_ < src_.size() ? hex_value(src_[pos_]) : -1;
            if (h < 0) error_at(at, "bad hex escape '{}': it needs {} hex digits", src_.substr(at, 2), digits);
            v = v << 4 | static_cast<uint32_t>(h);
            ++pos_;
        }
        if (v > kMaxCodePoint) error_at(at, "escape '{}' is past U+10FFFF", src_.substr(at, pos_ - at));
        if (v >= 0xD800 && v <= 0xDFFF)
            error_at(at, "escape '{}' is a UTF-16 surrogate, not a character", src_.substr(at, pos_ - at));
        return v;
    }

    void parse_literal(Sequence& seq) {
        const size_t open = pos_++;
        for (;;) {
            if (pos_ >= src_.size()) error_at(open, "unterminated string literal");
            if (src_[pos_] == '"') break;
            seq.push_back(Element::codepoint(parse_char(open, "string literal")));
            charge(1, open);
        }
        ++pos_;
    }

    Element parse_class() {
        const size_t open = pos_++;
        const bool negated = at_char('^');
        if (negated) ++pos_;
        std::vector<CharRange> ranges;
        for (;;) {
            if (pos_ >= src_.size()) error_at(open, "unterminated character class");
            if (src_[pos_] == ']') break;
            const size_t at = pos_;
            const uint32_t lo = parse_char(open, "character class");
            uint32_t hi = lo;
            // As in llama.cpp, '-' right before ']' is a literal '-'.
            if (at_char('-') && pos_ + 1 < src_.size() && src_[pos_ + 1] != ']') {
                ++pos_;
                hi = parse_char(open, "character class");
                if (hi < lo) error_at(at, "character range '{}' is reversed", src_.substr(at, pos_ - at));
            }
            ranges.push_back({lo, hi});
        }
        ++pos_;
        ranges = normalize(std::move(ranges));
        if (negated) ranges = complement(ranges);
        if (ranges.empty()) error_at(open, "character class '{}' matches no character", src_.substr(open, pos_ - open));
        charge(ranges.size(), open);
        return Element::chars(std::move(ranges));
    }

    // A postfix operator's repeat counts (max -1: unbounded).
    std::pair<int, int> parse_bounds(bool nested) {
        const size_t open = pos_;
        const char c = src_[pos_++];
        if (c == '*') return {0, -1};
        if (c == '+') return {1, -1};
        if (c == '?') return {0, 1};
        skip_space(nested);
        const int min_count = parse_count(open);
        int max_count = min_count;
        skip_space(nested);
        if (at_char(',')) {
            ++pos_;
            skip_space(nested);
            max_count = pos_ < src_.size() && is_digit(src_[pos_]) ? parse_count(open) : -1;
            skip_space(nested);
        }
        if (pos_ >= src_.size()) error_at(open, "unterminated repetition '{{'");
        if (src_[pos_] != '}')
            error_at(pos_, "expected '}}' to close the repetition at {}, found {}", where(open), describe(pos_));
        ++pos_;
        if (max_count >= 0 && max_count < min_count)
            error_at(open, "repetition {{{},{}}} has its maximum below its minimum", min_count, max_count);
        return {min_count, max_count};
    }

    int parse_count(size_t open) {
        if (pos_ >= src_.size() || !is_digit(src_[pos_]))
            error_at(pos_, "expected a number in the repetition at {}, found {}", where(open), describe(pos_));
        const size_t start = pos_;
        int64_t v = 0;
        for (; pos_ < src_.size() && is_digit(src_[pos_]); ++pos_)
            if (v <= kMaxRepeat) v = v * 10 + (src_[pos_] - '0');
        if (v > kMaxRepeat) {
            const std::string_view digits = src_.substr(start, pos_ - start);
            error_at(start, "repetition count {}{} is over the limit of {}", digits.substr(0, 20),
                     digits.size() > 20 ? "..." : "", kMaxRepeat);
        }
        return static_cast<int>(v);
    }

    // The expansion of Grammar::add_repeat (expand_repeat), with rules made here: add_repeat names its rules
    // through Grammar::add_rule's linear searches (x{0,100000} would take hours), and the whole expansion is
    // charged before it is built, so x{99999}{99999} fails fast.
    int repeat(int owner, const Sequence& item, int min_count, int max_count, size_t at) {
        const uint64_t w = weight(item);
        const uint64_t tail_cost = max_count < 0 ? w + 1 : static_cast<uint64_t>(max_count - min_count) * (w + 1);
        charge(static_cast<uint64_t>(min_count) * w + tail_cost + 1, at);
        return expand_repeat(g_, item, min_count, max_count, [&](std::string_view suffix, std::vector<Sequence> alts) {
            return helper_rule(owner, suffix, std::move(alts), at);
        });
    }

    std::string_view src_;
    size_t pos_ = 0;
    Grammar g_;
    uint64_t size_ = 0;
    std::unordered_map<std::string, int> names_;  // user rules by name
    std::vector<RuleInfo> info_;                  // parallel to g_.rules
};

}  // namespace

Grammar parse_gbnf(std::string_view text) { return Parser(text).parse(); }

}  // namespace hearth::grammar
