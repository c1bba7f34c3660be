// Tool calls in a model's generated text: each model family writes them in its own syntax (the one its chat
// template teaches it); parse_tool_calls turns that text into OpenAI's assistant message (content,
// reasoning_content, tool_calls with JSON-string arguments). Malformed calls throw hearth::Error.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace hearth {

enum class ToolCallFormat {
    Hermes,    // <tool_call>{"name":..., "arguments":...}</tool_call>  (Hermes 2/3, Qwen2.5, Qwen3, Granite 4)
    Llama3,    // {"name":..., "parameters":...}, optionally after <|python_tag|>; <|python_tag|>tool.call(k=v)
    Mistral,   // [TOOL_CALLS][{...}, ...]  or  [TOOL_CALLS]name[CALL_ID]id[ARGS]{...}  ([THINK]...[/THINK])
    GptOss,    // harmony: <|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{...}<|call|>
    DeepSeek,  // <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{...}\n```<｜tool▁call▁end｜>
               // (R1) or <｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜> (V3.1)
    Granite,   // <|tool_call|>[{"name":..., "arguments":...}]  (Granite 3.x)
};

// "Hermes", "Llama3", ... (used in error messages).
const char* tool_call_format_name(ToolCallFormat f);

// The tool-call format a chat template teaches, from the markers its text contains; nullopt when it
// uses none of the formats above (or one this parser does not handle, e.g. Qwen3-Coder's XML form).
std::optional<ToolCallFormat> detect_tool_call_format(std::string_view chat_template);

struct ToolCall {
    std::string id;         // the format's own id (Mistral), else "call_<n>" (n: 0-based index in the message)
    std::string name;
    std::string arguments;  // a JSON object, serialized compactly (as OpenAI returns it)
};

struct ParsedMessage {
    std::string content;            // text outside the calls and the thinking, trimmed
    std::string reasoning_content;  // <think>...</think>, [THINK]...[/THINK], harmony analysis channel
    std::vector<ToolCall> tool_calls;

    // OpenAI's assistant message: {"role":"assistant","content":...,["reasoning_content":...,]
    // ["tool_calls":[{"id","type":"function","function":{"name","arguments"}}]]}; content is null when
    // empty and there are tool calls.
    nlohmann::ordered_json to_json() const;
};

// Throws hearth::Error naming the format and the problem on malformed tool calls (truncated JSON,
// unterminated tags, missing name, arguments not an object, ...). Text without tool-call markers is
// returned as content only.
ParsedMessage parse_tool_calls(ToolCallFormat format, std::string_view text);

// End (one past) of the JSON object or array starting at s[pos] ('{' or '['), honouring strings and escapes;
// npos when the text ends first. (It only brackets the text: whether it is valid JSON is the parser's call.)
size_t json_extent(std::string_view s, size_t pos);

}  // namespace hearth
