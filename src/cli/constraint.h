// The output constraint a command is given (--grammar / --json-schema / --regex, at most one), shared by
// `hearth run` and `hearth grammar check` so that both read a constraint the same way.
#pragma once
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "grammar/grammar.h"

namespace hearth::cli {

struct ConstraintOptions {
    std::string grammar_file, schema_file, regex;
    bool strict_schema = false;  // refuse unknown JSON Schema keywords and formats instead of ignoring them
};

// Adds --grammar, --json-schema, --regex (mutually exclusive) and --strict-schema to a command.
void add_constraint_options(CLI::App* cmd, ConstraintOptions& o);

// The grammar asked for, or none. Throws hearth::Error naming the file (or --regex) and the problem.
std::optional<grammar::Grammar> constraint_grammar(const ConstraintOptions& o);

}  // namespace hearth::cli
