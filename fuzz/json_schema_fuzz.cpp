// libFuzzer target for the JSON Schema compiler: any JSON document taken as a schema either compiles to a grammar
// that validates and prints as GBNF, or throws hearth::Error; never a crash, a hang or another exception. Each
// schema is compiled in both whitespace modes and with both additionalProperties defaults.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "grammar/grammar.h"
#include "grammar/json_schema.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    const nlohmann::ordered_json schema = nlohmann::ordered_json::parse(text, nullptr, false);
    if (schema.is_discarded()) return 0;
    using hearth::grammar::JsonSchemaOptions;
    for (int mode = 0; mode < 2; ++mode) {
        JsonSchemaOptions options;
        options.whitespace = mode ? JsonSchemaOptions::Whitespace::Flexible : JsonSchemaOptions::Whitespace::None;
        options.allow_additional_properties = mode == 1;
        try {
            const hearth::grammar::Grammar g = hearth::grammar::compile_json_schema(schema, options);
            g.validate();
            (void)hearth::grammar::to_gbnf(g);
        } catch (const hearth::Error&) {
        }
    }
    return 0;
}
