// libFuzzer target for the Jinja2 template engine: any input, used as a template source, must either fail to
// parse with hearth::Error or render (with a small chat context and tight limits) to a string or throw
// hearth::Error. Never a crash, a hang or a sanitizer report.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/error.h"
#include "chat/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const nlohmann::ordered_json context = [] {
        hearth::ChatInputs in;
        in.messages = nlohmann::ordered_json::parse(
            R"([{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function":
                  {"name": "f", "arguments": {"x": 1}}}]},
                {"role": "tool", "content": "42"}])");
        in.tools = nlohmann::ordered_json::parse(
            R"([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])");
        in.add_generation_prompt = true;
        in.bos_token = "<s>";
        in.eos_token = "</s>";
        return hearth::chat_context(in);
    }();
    hearth::jinja::Limits limits;
    limits.max_steps = 100000;
    limits.max_output = 1 << 20;
    limits.max_depth = 50;
    try {
        const hearth::jinja::Template t(std::string(reinterpret_cast<const char*>(data), size));
        const std::string out = t.render(context, limits, [] { return std::tm{}; });
        (void)out;
    } catch (const hearth::Error&) {
    }
    return 0;
}
