// JSON Schema compiled into the grammar IR, so that generated text is JSON that validates under the schema.
// Written by hand: the packaged JSON Schema libraries validate documents; none turns a schema into a grammar.
//
// Every keyword is either enforced by the grammar, or has no effect on validity, or is refused:
// compile_json_schema throws hearth::Error naming the keyword and where it is (a JSON pointer), so a request is
// never generated unconstrained when a constraint was asked for. No effect on validity: the annotations (title,
// description, examples, default, $comment, $schema, $id, ...) and, as JSON Schema says and validators do, any
// keyword the specification does not define (x-*, OpenAPI's nullable, links, ...) and any format hearth cannot
// check (the format-annotation vocabulary). options.strict_keywords refuses those two instead.
//
// Draft 2020-12, and the drafts before it as the root's $schema names them (draft 4, 6, 7, 2019-09; older ones
// are refused): draft 4's `id` is its $id and its boolean exclusiveMinimum/exclusiveMaximum make minimum/maximum
// exclusive; in drafts 4-7 a $ref replaces the schema object it sits in (its siblings are ignored); the array
// form of `items` is a tuple, the items after it under `additionalItems`, in any draft. What the grammar does,
// keyword by keyword:
// - Enforced exactly: type (and type arrays), enum/const (any values: the grammar is the values' JSON text,
//   compact, with whitespace between tokens per the options), properties/required/additionalProperties,
//   prefixItems/items/minItems/maxItems, minLength/maxLength (in code points; a \uXXXX escape is one, an
//   escaped surrogate pair is one, lone escaped surrogates are never produced), integer minimum/maximum/
//   exclusiveMinimum/exclusiveMaximum (digit-by-digit range grammars), anyOf, allOf (merged: types and value
//   sets intersect, bounds tighten, properties and items combine keyword by keyword), local $ref ("#",
//   "#/$defs/x", "#/definitions/x", any JSON pointer; recursion becomes recursive rules).
// - number minimum/maximum/exclusive*, integral or not: the integer part by range grammars, the fraction at a
//   bound's integer part compared digit by digit with the bound's shortest decimal. Bounded numbers have at
//   most 15 significant digits and no exponent (except when 0 is the only bound): see the text shape below.
// - multipleOf: whole numbers only (the integers divisible by it, with a remainder automaton for K <= 100,
//   without bounds or with a lower bound between -1 and K); decimal ones are refused (validators test them in
//   floating point).
// - not: over type (integers' complement leaves out numbers with a fraction too: narrower), const and enum (for
//   null, booleans and strings without other string keywords; particular numbers, objects and arrays are
//   refused), required, properties of such schemas, anyOf, allOf and not: rewritten into the schema of the
//   complement. if/then/else: (if and then) or (the complement of if, as for not, and else). dependentRequired,
//   dependentSchemas, dependencies: each property absent, or present with what it brings. Each doubles the
//   alternatives (at most 256 per schema).
// - pattern: the text must contain a match (add_regex, Search); refused together with minLength/maxLength or
//   format. enum/const beside pattern or format is refused (their values cannot be checked here).
// - format: date (RFC 3339 full-date, years 0001-9999, real day counts with leap years), time (RFC 3339
//   full-time, up to 9 fraction digits, seconds 00-59: no leap seconds), date-time, uuid (8-4-4-4-12 hex),
//   ipv4 (dotted decimal, no leading zeros), email (dot-atom local part "@" two or more DNS labels; no quoted
//   local parts, address literals or length limits), uri (RFC 3986 URI without IP-literal "[...]" hosts),
//   uri-reference (a uri or an RFC 3986 relative reference), hostname (RFC 1123 labels; up to 4 labels of up to
//   62 characters or 8 of up to 30, which keeps names within 253 characters), ipv6 (RFC 4291 text form, an
//   IPv4 tail allowed, no zone index), duration (RFC 3339 appendix A), regex (a subset valid in ECMA-262 and
//   Python's re: literals, ".", \d-style escapes, classes with ordered ranges, groups, alternation, the
//   quantifiers * + ? {n} {n,}). The other formats JSON Schema defines (iri, idn-email, json-pointer, ...) are
//   refused: validators that assert formats check them. Any
//   other format name is an annotation (refused with strict_keywords). Lengths beside a format are refused
//   unless they cannot cut the format's strings.
// - oneOf: compiled as anyOf when its branches are evidently disjoint (different types; enum/const values the
//   other branch rejects; objects with a property required by both whose enum/const values the other branch
//   rejects); refused otherwise.
// - minProperties: the grammar counts the declared members written, and the undeclared ones as one at most
//   (their keys may repeat, and JSON keeps one of each); up to 64. maxProperties: the grammar counts every
//   member written, up to 64 (not together with minProperties unless trivially satisfied). uniqueItems: for
//   items from a finite set (enum/const, booleans, null; at most 10 values), one rule per subset used; else
//   refused (unless maxItems <= 1). propertyNames: declared names it rules out must be absent; undeclared keys
//   follow its enum/const, its excluded values (not), its pattern or its lengths, with no undeclared keys
//   where they could not be told from a declared name it allows (narrower, never wider).
// - patternProperties: a declared property a pattern matches (found by running the pattern's own grammar
//   on the name) also satisfies that pattern's schema. Undeclared keys, where additionalProperties allows
//   them, carry values satisfying additionalProperties and every pattern's schema (right whichever patterns
//   the key matches: the grammar cannot tell without the patterns' complements), or additionalProperties
//   alone where every pattern's matches begin with a literal text and the key begins with none of them
//   ("^(title_(...))$"); besides, keys a pattern
//   matches carry values satisfying every pattern's schema, or their own pattern's alone where no key can
//   match two patterns (anchored patterns whose characters differ at some position); where a pattern matches
//   declared names, also those names' schemas (such a key may repeat a declared name, and JSON keeps the last
//   value). Narrower than the schema where patterns' schemas differ, never wider. Refused where
//   patternProperties meets another schema's patternProperties or
//   additionalProperties through allOf / $ref.
// - Refused: contains/minContains/maxContains, unevaluated*, $dynamicRef, $recursiveRef,
//   non-local or anchor $refs, a $id below the root with a $ref inside its subtree (an embedded resource: its
//   references would resolve against it), and with strict_keywords any unknown keyword or format.
//
// Shape of the text the grammar admits (all valid under the schema; other valid spellings are not admitted):
// - Objects list the declared properties in declaration order (nlohmann::json sorts keys: pass an
//   ordered_json to keep the schema's order), each optional one omitted or present; properties beyond them
//   (additionalProperties, or options.allow_additional_properties when the schema is silent) come after the
//   declared ones, under any key but the declared names (compared after unescaping).
// - Strings: raw characters except those JSON must escape; escapes \" \\ \/ \b \f \n \r \t and \uXXXX.
// - Integers: -?(0|[1-9][0-9]{0,15}) up to 2^53 - 1 = 9007199254740991, no "-0": all exact in a double.
//   Numbers: the same integer part, up to 16 fraction digits, exponent up to 3 digits; under minimum/maximum
//   bounds at most 15 significant digits (so that the text's order is the doubles' order) and no exponent,
//   except that a number bounded only by 0 (minimum or exclusiveMinimum 0, or the maximums on the negative
//   side) may have one of up to 2 digits.
// - Whitespace (Flexible): between tokens and around the value, nothing, one space, or a newline ("\n" or
//   "\r\n") followed by up to 40 spaces/tabs.
// Limits: at most 1,000,000 grammar elements, minLength/maxLength/minItems/maxItems up to 100,000, 200 levels
// of nesting, 256 anyOf/oneOf combinations per schema; past them compile_json_schema refuses.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "grammar/grammar.h"

namespace hearth::grammar {

struct JsonSchemaOptions {
    // Whitespace between tokens: None = compact JSON ({"a":1}); Flexible = optional spaces/newlines, bounded
    // to a few characters per gap so that a model cannot pad forever.
    enum class Whitespace { None, Flexible };
    Whitespace whitespace = Whitespace::Flexible;
    // When the schema does not say (no additionalProperties), may objects have properties beyond those
    // listed? true follows the JSON Schema spec; strict mode (OpenAI's strict: true) sets false.
    bool allow_additional_properties = true;
    // Refuse keywords JSON Schema does not define and formats hearth cannot check, instead of ignoring them as
    // validators do (for people who want to hear that part of their schema is not enforced).
    bool strict_keywords = false;
};

// A grammar whose root matches exactly the JSON documents valid under `schema` (plus optional whitespace
// per options). `true`/`{}` mean any JSON value. Throws hearth::Error for what it cannot enforce (see above).
Grammar compile_json_schema(const nlohmann::json& schema, const JsonSchemaOptions& options = {});
// The same, keeping the schema's property order (nlohmann::json sorts object keys).
Grammar compile_json_schema(const nlohmann::ordered_json& schema, const JsonSchemaOptions& options = {});

// `instance` with every object's keys in the order the grammar admits them: the properties the schema declares
// (through $ref, allOf, anyOf, oneOf, in the order compile_json_schema merges them), then the others in their
// own order. Values are unchanged; where the schema says nothing (or cannot be followed), the order stays. For
// checking an instance written by someone else (MaskBench serialises instances this way).
nlohmann::ordered_json in_schema_order(const nlohmann::ordered_json& instance, const nlohmann::ordered_json& schema);

// A grammar for any JSON object (response_format json_object), whitespace per options.
Grammar json_object_grammar(const JsonSchemaOptions& options = {});

}  // namespace hearth::grammar
