#include "cli/constraint.h"

#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "grammar/gbnf.h"
#include "grammar/json_schema.h"
#include "grammar/regex.h"

namespace hearth::cli {

void add_constraint_options(CLI::App* cmd, ConstraintOptions& o) {
    auto* g1 = cmd->add_option("--grammar", o.grammar_file, "Constrain the output to a GBNF grammar (file)");
    auto* g2 = cmd->add_option("--json-schema", o.schema_file, "Constrain the output to JSON valid under a schema (file)");
    auto* g3 = cmd->add_option("--regex", o.regex, "Constrain the output to match a regular expression");
    g1->excludes(g2)->excludes(g3);
    g2->excludes(g3);
    cmd->add_flag("--strict-schema", o.strict_schema,
                  "Refuse JSON Schema keywords and formats that hearth does not enforce, instead of ignoring them "
                  "as validators do");
}

std::optional<grammar::Grammar> constraint_grammar(const ConstraintOptions& o) {
    if (!o.grammar_file.empty()) {
        try {
            return grammar::parse_gbnf(read_text(o.grammar_file, "grammar"));
        } catch (const Error& e) {
            fail("grammar file '{}': {}", o.grammar_file, e.what());
        }
    }
    if (!o.schema_file.empty()) {
        const std::string text = read_text(o.schema_file, "JSON schema");
        nlohmann::ordered_json schema;
        try {
            schema = nlohmann::ordered_json::parse(text);
        } catch (const nlohmann::json::parse_error& e) {
            fail("JSON schema file '{}' is not valid JSON (at byte {})", o.schema_file, e.byte);
        }
        grammar::JsonSchemaOptions options;
        options.strict_keywords = o.strict_schema;
        try {
            return grammar::compile_json_schema(schema, options);
        } catch (const Error& e) {
            fail("JSON schema file '{}': {}", o.schema_file, e.what());
        }
    }
    if (!o.regex.empty()) {
        try {
            return grammar::regex_grammar(o.regex);
        } catch (const Error& e) {
            fail("--regex: {}", e.what());
        }
    }
    return std::nullopt;
}

}  // namespace hearth::cli
