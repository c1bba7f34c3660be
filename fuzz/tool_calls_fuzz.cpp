// libFuzzer target for the tool-call parsers: any model output, parsed in every format, must give a message
// whose tool-call arguments are a JSON object and whose to_json() serializes, or throw hearth::Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/error.h"
#include "chat/tool_calls.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    using F = hearth::ToolCallFormat;
    for (F f : {F::Hermes, F::Llama3, F::Mistral, F::GptOss, F::DeepSeek, F::Granite}) {
        try {
            const hearth::ParsedMessage m = hearth::parse_tool_calls(f, text);
            for (const auto& c : m.tool_calls)
                if (!nlohmann::json::parse(c.arguments).is_object()) __builtin_trap();
            (void)m.to_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        } catch (const hearth::Error&) {
        }
    }
    return 0;
}
