#include "grammar/grammar.h"

#include "base/utf8.h"

#include <algorithm>

#include "base/error.h"

namespace hearth::grammar {

std::vector<CharRange> normalize(std::vector<CharRange> ranges) {
    for (const CharRange& r : ranges) {
        if (r.lo > r.hi) fail("character range U+{:04X}-U+{:04X} is reversed", r.lo, r.hi);
        if (r.hi > kMaxCodePoint) fail("character U+{:X} is past U+10FFFF", r.hi);
    }
    std::sort(ranges.begin(), ranges.end(), [](const CharRange& a, const CharRange& b) { return a.lo < b.lo; });
    std::vector<CharRange> merged;
    for (const CharRange& r : ranges) {
        if (!merged.empty() && r.lo <= merged.back().hi + 1)
            merged.back().hi = std::max(merged.back().hi, r.hi);
        else
            merged.push_back(r);
    }
    // Cut out the surrogates U+D800..U+DFFF.
    std::vector<CharRange> out;
    for (const CharRange& r : merged) {
        if (r.hi < 0xD800 || r.lo > 0xDFFF) {
            out.push_back(r);
            continue;
        }
        if (r.lo < 0xD800) out.push_back({r.lo, 0xD7FF});
        if (r.hi > 0xDFFF) out.push_back({0xE000, r.hi});
    }
    return out;
}

std::vector<CharRange> complement(const std::vector<CharRange>& ranges) {
    const std::vector<CharRange> in = normalize(ranges);
    std::vector<CharRange> out;
    uint32_t next = 0;
    for (const CharRange& r : in) {
        if (r.lo > next) out.push_back({next, r.lo - 1});
        next = r.hi + 1;
    }
    if (next <= kMaxCodePoint) out.push_back({next, kMaxCodePoint});
    return normalize(std::move(out));
}

Element Element::chars(std::vector<CharRange> ranges) {
    Element e;
    e.kind = Kind::Chars;
    e.ranges = normalize(std::move(ranges));
    if (e.ranges.empty()) fail("empty character class: it matches no character");
    return e;
}

Element Element::ref(int rule_index) {
    Element e;
    e.kind = Kind::Rule;
    e.rule = rule_index;
    return e;
}

int Grammar::find(std::string_view name) const {
    for (size_t i = 0; i < rules.size(); ++i)
        if (rules[i].name == name) return static_cast<int>(i);
    return -1;
}

int Grammar::intern(std::string_view name) {
    const int i = find(name);
    if (i >= 0) return i;
    rules.push_back(Rule{std::string(name), {}});
    return static_cast<int>(rules.size() - 1);
}

int Grammar::add_rule(std::string_view base, std::vector<Sequence> alternatives) {
    std::string name(base);
    for (int k = 1; find(name) >= 0; ++k) name = fmt::format("{}-{}", base, k);
    rules.push_back(Rule{std::move(name), std::move(alternatives)});
    return static_cast<int>(rules.size() - 1);
}

int Grammar::add_repeat(std::string_view base, const Sequence& item, int min_count, int max_count) {
    if (min_count < 0) fail("repetition count {} is negative", min_count);
    if (max_count >= 0 && max_count < min_count) fail("repetition {{{},{}}} has max below min", min_count, max_count);
    constexpr int kMaxRepeat = 100000;
    if (min_count > kMaxRepeat || max_count > kMaxRepeat)
        fail("repetition count {} is over the limit of {}", std::max(min_count, max_count), kMaxRepeat);
    return expand_repeat(*this, item, min_count, max_count, [&](std::string_view suffix, std::vector<Sequence> alts) {
        return add_rule(std::string(base) + std::string(suffix), std::move(alts));
    });
}

std::vector<char> finishable_rules(const Grammar& g) {
    // Worklist: each alternative counts the references it still waits for; a rule finishes once one of its
    // alternatives waits for none. Alternatives are numbered across the grammar and each rule's users are
    // kept in one flat array (JSON Schema grammars have thousands of rules: a vector per rule costs more in
    // allocations than the pass itself).
    const size_t n = g.rules.size();
    std::vector<int32_t> alt_begin(n + 1, 0);   // by rule: its first alternative's number
    std::vector<int32_t> user_begin(n + 2, 0);  // by rule: where its users start in `users`
    for (size_t r = 0; r < n; ++r) {
        alt_begin[r + 1] = alt_begin[r] + static_cast<int32_t>(g.rules[r].alternatives.size());
        for (const Sequence& s : g.rules[r].alternatives)
            for (const Element& e : s)
                if (e.kind == Element::Kind::Rule) ++user_begin[static_cast<size_t>(e.rule) + 2];
    }
    for (size_t r = 0; r < n; ++r) user_begin[r + 2] += user_begin[r + 1];
    std::vector<int32_t> users(static_cast<size_t>(user_begin[n + 1]));  // alternatives referring to each rule
    std::vector<int32_t> rule_of(static_cast<size_t>(alt_begin[n]));     // by alternative
    std::vector<int32_t> waiting(static_cast<size_t>(alt_begin[n]), 0);  // by alternative
    std::vector<char> done(n, 0);
    std::vector<int32_t> work;
    for (size_t r = 0; r < n; ++r) {
        const auto& alts = g.rules[r].alternatives;
        for (size_t a = 0; a < alts.size(); ++a) {
            const int32_t alt = alt_begin[r] + static_cast<int32_t>(a);
            rule_of[static_cast<size_t>(alt)] = static_cast<int32_t>(r);
            for (const Element& e : alts[a])
                if (e.kind == Element::Kind::Rule) {
                    ++waiting[static_cast<size_t>(alt)];
                    users[static_cast<size_t>(user_begin[static_cast<size_t>(e.rule) + 1]++)] = alt;
                }
            if (waiting[static_cast<size_t>(alt)] == 0 && !done[r]) {
                done[r] = 1;
                work.push_back(static_cast<int32_t>(r));
            }
        }
    }
    // user_begin[r + 1] advanced past rule r's users: rule r's users are [user_begin[r], user_begin[r + 1]).
    while (!work.empty()) {
        const size_t r = static_cast<size_t>(work.back());
        work.pop_back();
        for (int32_t k = user_begin[r]; k < user_begin[r + 1]; ++k) {
            const size_t alt = static_cast<size_t>(users[static_cast<size_t>(k)]);
            const size_t u = static_cast<size_t>(rule_of[alt]);
            if (--waiting[alt] == 0 && !done[u]) {
                done[u] = 1;
                work.push_back(static_cast<int32_t>(u));
            }
        }
    }
    return done;
}

void append_utf8(std::string& out, uint32_t cp) { utf8_append(out, cp); }

namespace {

// Decodes one code point of valid UTF-8 at s[i], advancing i; throws on invalid input.
uint32_t next_utf8(std::string_view s, size_t& i) {
    const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
    const uint8_t c = b(i);
    int n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || i + n > s.size()) fail("literal is not valid UTF-8 at byte {}", i);
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < n; ++k) {
        if ((b(i + k) & 0xC0) != 0x80) fail("literal is not valid UTF-8 at byte {}", i);
        cp = cp << 6 | (b(i + k) & 0x3F);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF))
        fail("literal is not valid UTF-8 at byte {}", i);
    i += n;
    return cp;
}

// GBNF spelling of one code point inside a literal or a class.
void append_escaped(std::string& out, uint32_t cp, bool in_class) {
    switch (cp) {
    case '\n': out += "\\n"; return;
    case '\r': out += "\\r"; return;
    case '\t': out += "\\t"; return;
    case '\\': out += "\\\\"; return;
    default: break;
    }
    if ((!in_class && cp == '"') || (in_class && (cp == ']' || cp == '-' || cp == '^'))) {
        out += '\\';
        out += static_cast<char>(cp);
    } else if (cp < 0x20 || cp == 0x7F) {
        out += fmt::format("\\x{:02X}", cp);
    } else if (cp > 0xFFFF) {
        out += fmt::format("\\U{:08X}", cp);
    } else if (cp >= 0x80 && cp <= 0x9F) {
        out += fmt::format("\\u{:04X}", cp);
    } else {
        append_utf8(out, cp);
    }
}

}  // namespace

int Grammar::add_literal(std::string_view base, std::string_view literal) {
    Sequence seq;
    for (size_t i = 0; i < literal.size();) seq.push_back(Element::codepoint(next_utf8(literal, i)));
    return add_rule(base, {seq});
}

void Grammar::validate() const {
    if (root < 0 || root >= static_cast<int>(rules.size())) fail("grammar has no root rule");
    for (const Rule& r : rules) {
        if (r.alternatives.empty()) fail("rule '{}' is used but never defined", r.name);
        for (const Sequence& s : r.alternatives)
            for (const Element& e : s) {
                if (e.kind == Element::Kind::Rule && (e.rule < 0 || e.rule >= static_cast<int>(rules.size())))
                    fail("rule '{}' refers to a rule that does not exist", r.name);
                if (e.kind == Element::Kind::Chars && e.ranges.empty())
                    fail("rule '{}' has an empty character class", r.name);
            }
    }
    // Nullable rules, to a fixed point; then left recursion = a cycle through leftmost references (a
    // reference is leftmost when every element before it is nullable).
    const size_t n = rules.size();
    std::vector<char> nullable(n, 0);
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t i = 0; i < n; ++i) {
            if (nullable[i]) continue;
            for (const Sequence& s : rules[i].alternatives) {
                bool all = true;
                for (const Element& e : s)
                    if (e.kind == Element::Kind::Chars || !nullable[e.rule]) {
                        all = false;
                        break;
                    }
                if (all) {
                    nullable[i] = 1;
                    changed = true;
                    break;
                }
            }
        }
    }
    std::vector<std::vector<int>> left(n);
    for (size_t i = 0; i < n; ++i)
        for (const Sequence& s : rules[i].alternatives)
            for (const Element& e : s) {
                if (e.kind == Element::Kind::Chars) break;
                left[i].push_back(e.rule);
                if (!nullable[e.rule]) break;
            }
    std::vector<int> state(n, 0);  // 0 unvisited, 1 on the stack, 2 done
    std::vector<std::pair<int, size_t>> stack;
    for (size_t s0 = 0; s0 < n; ++s0) {
        if (state[s0]) continue;
        stack.push_back({static_cast<int>(s0), 0});
        state[s0] = 1;
        while (!stack.empty()) {
            auto& [v, k] = stack.back();
            if (k < left[v].size()) {
                const int w = left[v][k++];
                if (state[w] == 1) fail("rule '{}' is left-recursive (it can start with itself)", rules[w].name);
                if (state[w] == 0) {
                    state[w] = 1;
                    stack.push_back({w, 0});
                }
            } else {
                state[v] = 2;
                stack.pop_back();
            }
        }
    }
}

std::string to_gbnf(const Grammar& g) {
    std::string out;
    std::vector<int> order;
    if (g.root >= 0) order.push_back(g.root);
    for (int i = 0; i < static_cast<int>(g.rules.size()); ++i)
        if (i != g.root) order.push_back(i);
    for (int i : order) {
        const Rule& r = g.rules[i];
        out += r.name;
        out += " ::=";
        for (size_t a = 0; a < r.alternatives.size(); ++a) {
            if (a > 0) out += " |";
            const Sequence& s = r.alternatives[a];
            if (s.empty()) out += " \"\"";
            for (size_t k = 0; k < s.size(); ++k) {
                const Element& e = s[k];
                out += ' ';
                if (e.kind == Element::Kind::Rule) {
                    out += g.rules[e.rule].name;
                } else if (e.ranges.size() == 1 && e.ranges[0].lo == e.ranges[0].hi) {
                    // Runs of single code points print as one literal.
                    out += '"';
                    for (; k < s.size() && s[k].kind == Element::Kind::Chars && s[k].ranges.size() == 1 &&
                           s[k].ranges[0].lo == s[k].ranges[0].hi;
                         ++k)
                        append_escaped(out, s[k].ranges[0].lo, false);
                    --k;
                    out += '"';
                } else {
                    out += '[';
                    for (const CharRange& cr : e.ranges) {
                        append_escaped(out, cr.lo, true);
                        if (cr.hi != cr.lo) {
                            out += '-';
                            append_escaped(out, cr.hi, true);
                        }
                    }
                    out += ']';
                }
            }
        }
        out += '\n';
    }
    return out;
}

}  // namespace hearth::grammar
