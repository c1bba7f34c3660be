// Whether a text is in a grammar's language, found by walking it the way generation would: token by token
// through the token masks (MaskBench's method: a token the mask forbids is where the text is rejected), or byte
// by byte when there is no vocabulary. Used by `hearth grammar check` and bench/maskbench.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "grammar/json_schema.h"
#include "grammar/matcher.h"

namespace hearth::grammar {

struct CheckResult {
    bool accepted = false;
    // Every byte (token) was allowed but the grammar cannot end there: the text is a proper prefix of the language.
    bool incomplete = false;
    size_t byte = 0;          // where the rejection is: the first byte (or the first byte of the token) refused
    int64_t token = -1;       // token walks: the position of the refused token in the sequence; -1 otherwise
    // Token walks with timing asked for: the time each mask took, in microseconds (one per token, and one more at
    // the end, where the mask decides whether generation may stop).
    std::vector<double> mask_us;
};

// Walks the bytes of `text` one at a time.
CheckResult check_bytes(const std::shared_ptr<const CompiledGrammar>& g, std::string_view text);

// Walks `tokens` (ids of g's token table) through the masks: each token must be set in the mask of the state
// before it, and the grammar must be able to end after the last. Throws hearth::Error for an id outside the
// table, or if the mask and the walk disagree (an internal error).
CheckResult check_tokens(const std::shared_ptr<const CompiledGrammar>& g, const std::vector<int32_t>& tokens,
                         bool time_masks = false);

// One file of JSONSchemaBench (MaskBench's data): {"schema", "tests": [{"data", "valid", ...}, ...]}, judged as
// MaskBench judges an engine. The schema is compiled (timed: compile_json_schema and lowering for the table);
// each instance, written compactly in the schema's property order (in_schema_order), is walked through the
// masks (token by token with a vocabulary, else byte by byte); a valid one must be accepted, an invalid one
// rejected somewhere.
struct SuiteResult {
    bool compiled = false;
    std::string error;        // why the schema was refused
    double compile_us = 0;
    int instances = 0;
    int valid_rejected = 0;   // validation errors
    int invalid_accepted = 0; // invalidation errors: the grammar let through what the schema forbids
    std::vector<double> mask_us;  // token walks: every mask's time
    bool passing() const { return compiled && valid_rejected == 0 && invalid_accepted == 0; }
};
// Throws hearth::Error when `file` is not in that shape. `vocab` null: byte walks (table unused).
SuiteResult run_schema_suite(const nlohmann::ordered_json& file, const std::shared_ptr<const TokenTable>& table,
                             const tok::Vocab* vocab, const JsonSchemaOptions& options = {});

}  // namespace hearth::grammar
