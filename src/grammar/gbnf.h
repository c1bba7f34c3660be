// GBNF, llama.cpp's grammar format, parsed into the grammar IR. Written by hand: GBNF is llama.cpp's own
// format and no packaged library reads it.
//
// Accepted syntax (llama.cpp's grammars/README.md): `name ::= alternatives` rules (names of letters, digits
// and '-'; a rule may be used before it is defined); alternatives separated by '|'; sequences of "literals",
// [classes] ([^...] negated, a-z ranges, '-' before ']' is itself), '.' (any character), rule names, (groups);
// postfix *, +, ?, {m}, {m,}, {m,n} on the item before them (a whole literal, class, group or rule); escapes
// \n \r \t \\ \" \] \[ \- \^ \xHH \uHHHH \UHHHHHHHH; '#' comments to the end of the line. As in llama.cpp, a
// rule ends at a newline, except inside a group or right after '::=' or '|'. Text is UTF-8; each code point of
// a literal is one element. The root rule is `root`. Groups and repetitions become helper rules named after
// their rule (root-1, root-star, root-opt-2, ...), never clashing with a rule of the text.
//
// Limits, so that no input can exhaust memory or the stack: a repetition count of at most 100000 (as
// Grammar::add_repeat), at most 1,000,000 elements once repetitions are expanded (a class counts once per
// range), groups nested at most 256 deep.
#pragma once
#include <string_view>

#include "grammar/grammar.h"

namespace hearth::grammar {

// Parses GBNF text into a validated Grammar (root = the rule named `root`). Throws hearth::Error, its message
// "GBNF line:column: problem": unknown escape, bad hex, a code point past U+10FFFF or a surrogate, invalid
// UTF-8, unterminated literal, class, group or {...}, a class that matches nothing, undefined rule (named), a
// rule defined twice, left recursion, a limit above exceeded, anything after a rule's end. A missing root has
// no position: "GBNF: the grammar has no 'root' rule ...".
Grammar parse_gbnf(std::string_view text);

}  // namespace hearth::grammar
