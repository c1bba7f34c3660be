// The grammar IR every constraint compiles to: GBNF text (gbnf.h), regular expressions (regex.h) and JSON
// Schema (json_schema.h) all build a Grammar, and the matcher (matcher.h) lowers it to bytes and runs it.
//
// A Grammar is a context-free grammar over Unicode code points, in the shape of llama.cpp's GBNF after its
// sugar is removed: rules of alternatives, each alternative a sequence of elements, each element a set of
// code points (one code point, a class, or "any") or a reference to a rule. Repetition and optional parts
// become helper rules (see add_repeat), so that the IR has one concept per type.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::grammar {

constexpr uint32_t kMaxCodePoint = 0x10FFFF;

// Inclusive range of code points.
struct CharRange {
    uint32_t lo = 0, hi = 0;
    bool operator==(const CharRange&) const = default;
};

struct Element {
    enum class Kind : uint8_t { Chars, Rule };
    Kind kind = Kind::Chars;
    // Chars: sorted, disjoint, non-adjacent ranges (see normalize); a non-empty set. Surrogates
    // (U+D800..U+DFFF) are never members: UTF-8 cannot encode them.
    std::vector<CharRange> ranges;
    int rule = -1;  // Rule: index into Grammar::rules

    static Element chars(std::vector<CharRange> ranges);  // normalizes; an empty set is an error
    static Element codepoint(uint32_t cp) { return chars({{cp, cp}}); }
    static Element ref(int rule_index);
    bool operator==(const Element&) const = default;
};

using Sequence = std::vector<Element>;  // empty: matches the empty string

struct Rule {
    std::string name;
    std::vector<Sequence> alternatives;  // at least one once the grammar is complete
    // Lowered once and called from every use, never copied into its callers: the callers' walks then meet the
    // same automaton states after it begins, so the matcher's token caches built from different callers share
    // their work (a hint for the matcher; the language is the same either way).
    bool shared = false;
};

struct Grammar {
    std::vector<Rule> rules;
    int root = -1;

    // Index of the rule with this name, or -1.
    int find(std::string_view name) const;
    // Index of the rule with this name, creating it (with no alternatives yet) if needed.
    int intern(std::string_view name);
    // A fresh rule named after `base` ("base", else "base-1", "base-2", ...), with the given alternatives.
    int add_rule(std::string_view base, std::vector<Sequence> alternatives);
    // A rule matching `item` repeated between min_count and max_count times (max_count < 0: unbounded).
    // Bounded repeats nest optional tails (x{0,3} = (x (x (x)?)?)?), so the matcher never has to track a
    // counter, and no two parses of one string exist.
    int add_repeat(std::string_view base, const Sequence& item, int min_count, int max_count);
    // A rule matching exactly the UTF-8 text `literal` (which must be valid UTF-8).
    int add_literal(std::string_view base, std::string_view literal);

    // Checks that the grammar is complete: a root exists, every rule has at least one alternative, every
    // reference is in range, every Chars element is non-empty, and no rule is left-recursive (the matcher
    // expands rules top-down). Throws hearth::Error naming the rule otherwise.
    void validate() const;
};

// The expansion behind Grammar::add_repeat, for builders that make their rules themselves (the GBNF parser
// names and charges its own): make(suffix, alternatives) adds a rule and returns its index; suffix is "-star"
// (x* = x star | empty, right-recursive: the matcher expands top-down), "-opt" (bounded tails nest:
// opt_k = x opt_{k-1} | empty) or "" (the mandatory copies followed by the tail). x*, x? and x{0,n} are their
// tail rule, without a wrapper. Counts must already be checked.
template <typename MakeRule>
int expand_repeat(Grammar& g, const Sequence& item, int min_count, int max_count, MakeRule&& make) {
    Sequence tail;
    if (max_count < 0) {
        const int star = make("-star", std::vector<Sequence>{});
        Sequence loop = item;
        loop.push_back(Element::ref(star));
        g.rules[static_cast<size_t>(star)].alternatives = {std::move(loop), Sequence{}};
        tail.push_back(Element::ref(star));
    } else if (max_count > min_count) {
        int inner = -1;
        for (int k = 0; k < max_count - min_count; ++k) {
            Sequence more = item;
            if (inner >= 0) more.push_back(Element::ref(inner));
            inner = make("-opt", std::vector<Sequence>{std::move(more), Sequence{}});
        }
        tail.push_back(Element::ref(inner));
    }
    if (min_count == 0 && tail.size() == 1) return tail[0].rule;
    Sequence body;
    body.reserve(static_cast<size_t>(min_count) * item.size() + tail.size());
    for (int k = 0; k < min_count; ++k) body.insert(body.end(), item.begin(), item.end());
    body.insert(body.end(), tail.begin(), tail.end());
    return make("", std::vector<Sequence>{std::move(body)});
}

// By rule: 1 if the rule can finish (derive some finite string), i.e. one of its alternatives refers only to
// rules that can; 0 for rules whose every alternative recurses without end. Linear in the grammar's size.
std::vector<char> finishable_rules(const Grammar& g);

// Sorts and merges ranges, removes surrogates; throws hearth::Error on a range past U+10FFFF or lo > hi.
std::vector<CharRange> normalize(std::vector<CharRange> ranges);
// The complement within [0, U+10FFFF] minus the surrogates.
std::vector<CharRange> complement(const std::vector<CharRange>& ranges);

// GBNF text of the grammar (root rule first), which gbnf.h parses back to an equivalent grammar.
std::string to_gbnf(const Grammar& g);

// UTF-8 encoding of one code point (appended).
void append_utf8(std::string& out, uint32_t cp);

}  // namespace hearth::grammar
