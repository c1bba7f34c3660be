// Regular expressions (the ECMA-262 subset JSON Schema's `pattern` uses, and `hearth run --regex`) compiled
// into grammar rules. Written by hand: packaged regex engines (PCRE2) match text, they do not expose the
// pattern's structure as a grammar a constrained decoder can follow.
//
// Supported: literals and escapes (\n \r \t \f \v \0 \cX \xHH \uHHHH -- a surrogate pair of two is one code
// point -- \u{H...} and escaped punctuation), '.' (any character but \n, \r, U+2028 and U+2029), classes
// [...] / [^...] with ranges and \d \w \s \D \W \S inside or outside ([^] is any character), groups (...)
// and (?:...) (named groups (?<n>...) too), alternation |, quantifiers * + ? {n} {n,} {n,m} with their lazy
// forms (same language), ^ at the start and $ at the end of the pattern or of a top-level alternative. As
// in ECMA's Annex B (and real-world schemas), a '{' that does not start a quantifier, a lone '}' and a lone
// ']' are literals. \d and \w are ASCII, \s is ECMA's whitespace set. Matching is over code points (ECMA's
// unicode mode), so '.' matches one emoji. Everything else -- backreferences, lookaround, \b \B, \p{...},
// ^ or $ elsewhere, inline flags, the empty class [], unknown letter escapes, counts over 100000, groups
// nested over 256 deep, patterns over a million characters with their repeats unrolled, invalid UTF-8 --
// throws hearth::Error naming the construct and its byte offset: a constraint is never silently dropped.
#pragma once
#include <string>
#include <string_view>

#include "grammar/grammar.h"

namespace hearth::grammar {

enum class RegexMatch {
    Whole,   // the text must match the pattern exactly (hearth run --regex)
    Search,  // JSON Schema semantics: the text must contain a match; unanchored sides admit any characters
};

// Adds rules to g for `pattern` and returns the index of the rule that matches the text it constrains.
// Rule names start with `name`. On error g is left unchanged (the whole pattern is parsed first).
int add_regex(Grammar& g, std::string_view pattern, std::string_view name, RegexMatch mode);

// A whole grammar whose root is the pattern (mode Whole): hearth run --regex.
Grammar regex_grammar(std::string_view pattern);

}  // namespace hearth::grammar
