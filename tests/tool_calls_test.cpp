// Tool-call parsing (chat/tool_calls.h): per format, realistic model outputs (single, parallel, after
// content, with thinking), arguments that parse back to the same JSON, format detection from the real
// templates in ../shared/templates, malformed outputs that must name the problem, and random corruptions
// of valid outputs that must parse or throw hearth::Error (never crash).
#include <gtest/gtest.h>

#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "chat/chat_template.h"
#include "chat/tool_calls.h"
#include "test_util.h"

namespace hearth {
namespace {

using ojson = nlohmann::ordered_json;
using F = ToolCallFormat;

void expect_call(const ToolCall& c, const std::string& name, const std::string& args_json, const std::string& id) {
    EXPECT_EQ(c.name, name);
    EXPECT_EQ(c.id, id);
    // Round trip: the arguments string parses back to the same JSON object.
    EXPECT_EQ(nlohmann::json::parse(c.arguments), nlohmann::json::parse(args_json)) << c.arguments;
    EXPECT_TRUE(nlohmann::json::parse(c.arguments).is_object());
}

void expect_error(F f, const std::string& text, const std::string& needle) {
    try {
        const ParsedMessage m = parse_tool_calls(f, text);
        ADD_FAILURE() << "no error for: " << text << "\n got " << m.to_json().dump();
    } catch (const Error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find(tool_call_format_name(f)), std::string::npos) << what;
        EXPECT_NE(what.find(needle), std::string::npos) << "expected '" << needle << "' in: " << what;
    }
}

// ---------------------------------------------------------------- Hermes / Qwen

TEST(ToolCallHermes, SingleCall) {
    const auto m = parse_tool_calls(
        F::Hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>");
    EXPECT_EQ(m.content, "");
    EXPECT_EQ(m.reasoning_content, "");
    ASSERT_EQ(m.tool_calls.size(), 1u);
    expect_call(m.tool_calls[0], "get_weather", R"({"location":"Paris","unit":"celsius"})", "call_0");
    EXPECT_EQ(m.tool_calls[0].arguments, R"({"location":"Paris","unit":"celsius"})");  // key order kept, compact
}

TEST(ToolCallHermes, ParallelCallsAfterContent) {
    const auto m = parse_tool_calls(F::Hermes,
                                    "I'll look both up.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\"}}\n</tool_call>\n"
                                    "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"Europe/Paris\"}}\n</tool_call>");
    EXPECT_EQ(m.content, "I'll look both up.");
    ASSERT_EQ(m.tool_calls.size(), 2u);
    expect_call(m.tool_calls[0], "get_weather", R"({"location":"Paris"})", "call_0");
    expect_call(m.tool_calls[1], "get_time", R"({"tz":"Europe/Paris"})", "call_1");
}

TEST(ToolCallHermes, Qwen3Thinking) {
    const auto m = parse_tool_calls(F::Hermes,
                                    "<think>\nThe user wants the weather; call get_weather.\n</think>\n\n<tool_call>\n"
                                    "{\"name\": \"get_weather\", \"arguments\": {\"location\": \"東京\", \"days\": 3, \"detail\": {\"wind\": true}}}\n</tool_call>");
    EXPECT_EQ(m.reasoning_content, "The user wants the weather; call get_weather.");
    EXPECT_EQ(m.content, "");
    ASSERT_EQ(m.tool_calls.size(), 1u);
    expect_call(m.tool_calls[0], "get_weather", R"({"location":"東京","days":3,"detail":{"wind":true}})", "call_0");
    // Opening <think> in the prompt (generation starts inside the thought).
    const auto m2 = parse_tool_calls(F::Hermes, "hmm, just greet.\n</think>\n\nHello! How can I help?");
    EXPECT_EQ(m2.reasoning_content, "hmm, just greet.");
    EXPECT_EQ(m2.content, "Hello! How can I help?");
    EXPECT_TRUE(m2.tool_calls.empty());
}

TEST(ToolCallHermes, PlainTextAndJsonShape) {
    const auto m = parse_tool_calls(F::Hermes, "  The capital of France is Paris.\n");
    EXPECT_EQ(m.content, "The capital of France is Paris.");
    EXPECT_TRUE(m.tool_calls.empty());
    EXPECT_EQ(m.to_json().dump(), R"({"role":"assistant","content":"The capital of France is Paris."})");

    const auto c = parse_tool_calls(F::Hermes, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": \"x\\\"y\"}}\n</tool_call>");
    EXPECT_EQ(c.to_json().dump(),
              R"({"role":"assistant","content":null,"tool_calls":[{"id":"call_0","type":"function","function":{"name":"f","arguments":"{\"a\":\"x\\\"y\"}"}}]})");
}

TEST(ToolCallHermes, Malformed) {
    expect_error(F::Hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"loc", "unterminated <tool_call>");
    expect_error(F::Hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"loc\n</tool_call>", "not valid JSON");
    expect_error(F::Hermes, "<tool_call>\n{\"arguments\": {\"location\": \"Paris\"}}\n</tool_call>", "no \"name\"");
    expect_error(F::Hermes, "<tool_call>\n{\"name\": \"f\", \"arguments\": [1, 2]}\n</tool_call>", "not a JSON object");
    expect_error(F::Hermes, "<tool_call>\n{\"name\": \"f\", \"arguments\": \"not json\"}\n</tool_call>", "not valid JSON");
    expect_error(F::Hermes, "<tool_call>\n{\"name\": 42, \"arguments\": {}}\n</tool_call>", "not a string");
    expect_error(F::Hermes, "<tool_call>\n{\"name\": \"bad name!\", \"arguments\": {}}\n</tool_call>", "invalid tool name");
    expect_error(F::Hermes, "<tool_call></tool_call>", "empty");
    expect_error(F::Hermes, "<tool_call>\"just a string\"</tool_call>", "not a JSON object");
    expect_error(F::Hermes, "<think>\nstill thinking...", "unterminated <think>");
    expect_error(F::Hermes, "oops</tool_call>", "without a matching");
}

// ---------------------------------------------------------------- Llama 3.x

TEST(ToolCallLlama3, JsonCall) {
    auto m = parse_tool_calls(F::Llama3, "{\"name\": \"get_weather\", \"parameters\": {\"location\": \"Paris\"}}");
    ASSERT_EQ(m.tool_calls.size(), 1u);
    expect_call(m.tool_calls[0], "get_weather", R"({"location":"Paris"})", "call_0");
    EXPECT_EQ(m.content, "");
    m = parse_tool_calls(F::Llama3, "<|python_tag|>{\"type\": \"function\", \"name\": \"get_weather\", \"parameters\": {\"location\": \"Paris\", \"n\": 2.5}}<|eom_id|>");
    ASSERT_EQ(m.tool_calls.size(), 1u);
    expect_call(m.tool_calls[0], "get_weather", R"({"location":"Paris","n":2.5})", "call_0");
}

TEST(ToolCallLlama3, ParallelAndAfterContent) {
    auto m = parse_tool_calls(F::Llama3,
                              "{\"name\": \"get_weather\", \"parameters\": {\"location\": \"Paris\"}}; "
                              "{\"name\": \"get_time\", \"parameters\": {\"tz\": \"CET\"}}");
    ASSERT_EQ(m.tool_calls.size(), 2u);
    expect_call(m.tool_calls[0], "get_weather", R"({"location":"Paris"})", "call_0");
    expect_call(m.tool_calls[1], "get_time", R"({"tz":"CET"})", "call_1");
    m = parse_tool_calls(F::Llama3, "Let me search.\n<|python_tag|>{\"name\": \"search\", \"parameters\": {\"q\": \"llama\"}}");
    EXPECT_EQ(m.content, "Let me search.");
    ASSERT_EQ(m.tool_calls.size(), 1u);
    expect_call(m.tool_calls[0], "search", R"({"q":"llama"})", "call_0");
}

TEST(ToolCallLlama3, BuiltinPythonTag) {
    auto m = parse_tool_calls(F::Llama3, "<|python_tag|>brave_search.call(query=\"current weather in Menlo Park, California\")<|eom_id|>");
    ASSERT_EQ(m.tool_calls.size(), 1u);
    expect_call(m.tool_calls[0], "brave_search", R"({"query":"current weather in Menlo Park, California"})", "call_0");
    m = parse_tool_calls(F::Llama3, "<|python_tag|>wolfram_alpha.call(query='solve x^2 = 4', n=2, exact=True, unit=None)");
    ASSERT_EQ(m.tool_calls.size(), 1u);
    expect_call(m.tool_calls[0], "wolfram_alpha", R"({"query":"solve x^2 = 4","n":2,"exact":true,"unit":null})", "call_0");
    m = parse_tool_calls(F::Llama3, "<|python_tag|>import math\nprint(math.sqrt(2))");
    ASSERT_EQ(m.tool_calls.size(), 1u);
    expect_call(m.tool_calls[0], "python", R"j({"code":"import math\nprint(math.sqrt(2))"})j", "call_0");
}

TEST(ToolCallLlama3, PlainText) {
    const auto m = parse_tool_calls(F::Llama3, "Paris is the capital of France. {not a call}");
    EXPECT_EQ(m.content, "Paris is the capital of France. {not a call}");
    EXPECT_TRUE(m.tool_calls.empty());
    const auto j = parse_tool_calls(F::Llama3, "{\"type\": \"object\", \"properties\": {}}");  // JSON, but not a call
    EXPECT_EQ(j.content, "{\"type\": \"object\", \"properties\": {}}");
    EXPECT_TRUE(j.tool_calls.empty());
}

TEST(ToolCallLlama3, Malformed) {
    expect_error(F::Llama3, "{\"name\": \"get_weather\", \"parameters\": {\"location\": \"Par", "truncated");
    expect_error(F::Llama3, "{\"type\": \"function\", \"parameters\": {}}", "no \"name\"");
    expect_error(F::Llama3, "{\"name\": \"f\", \"parameters\": [\"x\"]}", "not a JSON object");
    expect_error(F::Llama3, "{\"name\": \"f\", \"parameters\": {}} and then some text", "unexpected text");
    expect_error(F::Llama3, "<|python_tag|>brave_search.call(query=\"weather", "unterminated");
    expect_error(F::Llama3, "<|python_tag|>brave_search.call(query=\"weather\"", "closing parenthesis");
    expect_error(F::Llama3, "<|python_tag|>brave_search.call(query=[1,2])", "query");
    expect_error(F::Llama3, "<|python_tag|>", "nothing after");
    expect_error(F::Llama3, "{\"name\": \"f\", \"parameters\": {\"a\": 1,}}", "not valid JSON");
}

// ---------------------------------------------------------------- Mistral

TEST(ToolCallMistral, NemoArray) {
    const auto m = parse_tool_calls(F::Mistral,
                                    "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\"}, \"id\": \"a1b2c3d4e\"}, "
                                    "{\"name\": \"get_time\", \"arguments\": {\"tz\": \"CET\"}, \"id\": \"f5g6h7i8j\"}]</s>");
    EXPECT_EQ(m.content, "");
    ASSERT_EQ(m.tool_calls.size(), 2u);
    expect_call(m.tool_calls[0], "get_weather", R"({"location":"Paris"})", "a1b2c3d4e");
    expect_call(m.tool_calls[1], "get_time", R"({"tz":"CET"})", "f5g6h7i8j");
    const auto n = parse_tool_calls(F::Mistral, "[TOOL_CALLS] [{\"name\": \"ping\", \"arguments\": {}}]");
    ASSERT_EQ(n.tool_calls.size(), 1u);
    expect_call(n.tool_calls[0], "ping", "{}", "call_0");
}

TEST(ToolCallMistral, ArgsForm) {
    auto m = parse_tool_calls(F::Mistral,
                              "Checking both.[TOOL_CALLS]get_weather[ARGS]{\"location\": \"Paris\", \"unit\": \"celsius\"}"
                              "[TOOL_CALLS]get_time[ARGS]{\"tz\": \"CET\"}");
    EXPECT_EQ(m.content, "Checking both.");
    ASSERT_EQ(m.tool_calls.size(), 2u);
    expect_call(m.tool_calls[0], "get_weather", R"({"location":"Paris","unit":"celsius"})", "call_0");
    expect_call(m.tool_calls[1], "get_time", R"({"tz":"CET"})", "call_1");
    m = parse_tool_calls(F::Mistral, "[TOOL_CALLS]get_weather[CALL_ID]Ab3dE6gH9[ARGS]{\"location\": \"Paris\"}");
    ASSERT_EQ(m.tool_calls.size(), 1u);
    expect_call(m.tool_calls[0], "get_weather", R"({"location":"Paris"})", "Ab3dE6gH9");
}

TEST(ToolCallMistral, ThinkingAndPlainText) {
    auto m = parse_tool_calls(F::Mistral, "[THINK]Need the weather tool.[/THINK]Sure.[TOOL_CALLS]get_weather[ARGS]{\"location\": \"Oslo\"}");
    EXPECT_EQ(m.reasoning_content, "Need the weather tool.");
    EXPECT_EQ(m.content, "Sure.");
    ASSERT_EQ(m.tool_calls.size(), 1u);
    expect_call(m.tool_calls[0], "get_weather", R"({"location":"Oslo"})", "call_0");
    m = parse_tool_calls(F::Mistral, "Bonjour ! [1, 2] is a list.");
    EXPECT_EQ(m.content, "Bonjour ! [1, 2] is a list.");
    EXPECT_TRUE(m.tool_calls.empty());
}

TEST(ToolCallMistral, Malformed) {
    expect_error(F::Mistral, "[TOOL_CALLS]get_weather[ARGS]{\"location\": \"Pa", "truncated arguments");
    expect_error(F::Mistral, "[TOOL_CALLS]get_weather{\"location\": \"Paris\"}", "without [ARGS]");
    expect_error(F::Mistral, "[TOOL_CALLS]get_weather[ARGS][1, 2]", "not a JSON object");
    expect_error(F::Mistral, "[TOOL_CALLS][{\"arguments\": {}}]", "no \"name\"");
    expect_error(F::Mistral, "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {}}", "truncated tool call array");
    expect_error(F::Mistral, "[TOOL_CALLS]", "nothing after");
    expect_error(F::Mistral, "[TOOL_CALLS]f[ARGS]{} trailing words", "unexpected text");
    expect_error(F::Mistral, "[THINK]never closed", "unterminated [THINK]");
    expect_error(F::Mistral, "[TOOL_CALLS][ARGS]{}", "empty name");
    expect_error(F::Mistral, "[TOOL_CALLS]f[CALL_ID]ab c![ARGS]{}", "invalid [CALL_ID]");
}

// ---------------------------------------------------------------- gpt-oss (harmony)

TEST(ToolCallGptOss, AnalysisThenCall) {
    const auto m = parse_tool_calls(F::GptOss,
                                    "<|channel|>analysis<|message|>User asks weather in Tokyo. Use get_weather.<|end|>"
                                    "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
                                    "<|message|>{\"location\":\"Tokyo\",\"unit\":\"celsius\"}<|call|>");
    EXPECT_EQ(m.reasoning_content, "User asks weather in Tokyo. Use get_weather.");
    EXPECT_EQ(m.content, "");
    ASSERT_EQ(m.tool_calls.size(), 1u);
    expect_call(m.tool_calls[0], "get_weather", R"({"location":"Tokyo","unit":"celsius"})", "call_0");
}

TEST(ToolCallGptOss, TemplateHeaderOrderAndParallel) {
    // The chat template writes the recipient before the channel: "<|start|>assistant to=functions.X<|channel|>commentary json".
    const auto m = parse_tool_calls(F::GptOss,
                                    "<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"location\": \"Paris\"}<|call|>"
                                    "<|start|>assistant<|channel|>commentary to=functions.get_time <|constrain|>json<|message|>{\"tz\": \"CET\"}<|call|>");
    ASSERT_EQ(m.tool_calls.size(), 2u);
    expect_call(m.tool_calls[0], "get_weather", R"({"location":"Paris"})", "call_0");
    expect_call(m.tool_calls[1], "get_time", R"({"tz":"CET"})", "call_1");
}

TEST(ToolCallGptOss, FinalAnswerAndPlainText) {
    auto m = parse_tool_calls(F::GptOss,
                              "<|channel|>analysis<|message|>Simple greeting.<|end|><|start|>assistant<|channel|>final<|message|>Hello! How can I help?<|return|>");
    EXPECT_EQ(m.reasoning_content, "Simple greeting.");
    EXPECT_EQ(m.content, "Hello! How can I help?");
    EXPECT_TRUE(m.tool_calls.empty());
    m = parse_tool_calls(F::GptOss, "<|channel|>final<|message|>Done");  // stop token stripped
    EXPECT_EQ(m.content, "Done");
    m = parse_tool_calls(F::GptOss, "Just text.");
    EXPECT_EQ(m.content, "Just text.");
    EXPECT_TRUE(m.tool_calls.empty());
}

TEST(ToolCallGptOss, Malformed) {
    expect_error(F::GptOss, "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"location\":\"To", "not valid JSON");
    expect_error(F::GptOss, "<|channel|>commentary to=functions.get_weather <|constrain|>json", "without <|message|>");
    expect_error(F::GptOss, "<|channel|>commentary to=functions.f <|constrain|>json<|message|>[1]<|call|>", "not a JSON object");
    expect_error(F::GptOss, "<|channel|>commentary to=functions. <|constrain|>json<|message|>{}<|call|>", "empty name");
    expect_error(F::GptOss, "<|channel|>weird<|message|>hi<|end|>", "unknown channel");
    expect_error(F::GptOss, "Sure!<|channel|>final<|message|>hi<|end|>", "unexpected text before a message header");
    expect_error(F::GptOss, "<|channel|>analysis<|message|>abc<|channel|>final<|message|>x", "unterminated message");
}

// ---------------------------------------------------------------- DeepSeek

TEST(ToolCallDeepSeek, R1SingleWithThinking) {
    const auto m = parse_tool_calls(F::DeepSeek,
                                    "Okay, the user wants the weather.\n</think>\n\n"
                                    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
                                    "{\"location\": \"Paris\", \"unit\": \"celsius\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>");
    EXPECT_EQ(m.reasoning_content, "Okay, the user wants the weather.");
    EXPECT_EQ(m.content, "");
    ASSERT_EQ(m.tool_calls.size(), 1u);
    expect_call(m.tool_calls[0], "get_weather", R"({"location":"Paris","unit":"celsius"})", "call_0");
}

TEST(ToolCallDeepSeek, R1ParallelAfterContent) {
    const auto m = parse_tool_calls(F::DeepSeek,
                                    "<think>\nTwo lookups.\n</think>\n\nI'll check both.<｜tool▁calls▁begin｜>"
                                    "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"location\": \"Paris\"}\n```<｜tool▁call▁end｜>\n"
                                    "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n{\"tz\": \"CET\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>");
    EXPECT_EQ(m.reasoning_content, "Two lookups.");
    EXPECT_EQ(m.content, "I'll check both.");
    ASSERT_EQ(m.tool_calls.size(), 2u);
    expect_call(m.tool_calls[0], "get_weather", R"({"location":"Paris"})", "call_0");
    expect_call(m.tool_calls[1], "get_time", R"({"tz":"CET"})", "call_1");
}

TEST(ToolCallDeepSeek, V31Form) {
    const auto m = parse_tool_calls(F::DeepSeek,
                                    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"location\": \"Paris\"}<｜tool▁call▁end｜>"
                                    "<｜tool▁call▁begin｜>get_time<｜tool▁sep｜>{\"tz\": \"CET\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>");
    ASSERT_EQ(m.tool_calls.size(), 2u);
    expect_call(m.tool_calls[0], "get_weather", R"({"location":"Paris"})", "call_0");
    expect_call(m.tool_calls[1], "get_time", R"({"tz":"CET"})", "call_1");
    const auto p = parse_tool_calls(F::DeepSeek, "<think></think>The answer is 4.");
    EXPECT_EQ(p.content, "The answer is 4.");
    EXPECT_TRUE(p.tool_calls.empty());
}

TEST(ToolCallDeepSeek, Malformed) {
    expect_error(F::DeepSeek, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"location\": \"Pa",
                 "unterminated tool call");
    expect_error(F::DeepSeek, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather {}<｜tool▁call▁end｜>", "without <｜tool▁sep｜>");
    expect_error(F::DeepSeek,
                 "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"location\": }\n```<｜tool▁call▁end｜>",
                 "not valid JSON");
    expect_error(F::DeepSeek, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>\n```json\n{}\n```<｜tool▁call▁end｜>",
                 "empty name");
    expect_error(F::DeepSeek, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>[1, 2]<｜tool▁call▁end｜>", "not a JSON object");
    expect_error(F::DeepSeek, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>\"7\"<｜tool▁call▁end｜>", "string holding number");
    expect_error(F::DeepSeek, "<｜tool▁calls▁begin｜>garbage", "expected <｜tool▁call▁begin｜>");
}

// ---------------------------------------------------------------- Granite

TEST(ToolCallGranite, ListOfCalls) {
    auto m = parse_tool_calls(F::Granite, "<|tool_call|>[{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Boston\"}}]");
    ASSERT_EQ(m.tool_calls.size(), 1u);
    expect_call(m.tool_calls[0], "get_weather", R"({"location":"Boston"})", "call_0");
    m = parse_tool_calls(F::Granite,
                         "<think>Two tools.</think>Let me check.<|tool_call|>[{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Boston\"}}, "
                         "{\"name\": \"get_time\", \"arguments\": {\"tz\": \"EST\"}}]");
    EXPECT_EQ(m.reasoning_content, "Two tools.");
    EXPECT_EQ(m.content, "Let me check.");
    ASSERT_EQ(m.tool_calls.size(), 2u);
    expect_call(m.tool_calls[1], "get_time", R"({"tz":"EST"})", "call_1");
    m = parse_tool_calls(F::Granite, "No tools needed: 2 + 2 = 4.");
    EXPECT_EQ(m.content, "No tools needed: 2 + 2 = 4.");
    EXPECT_TRUE(m.tool_calls.empty());
}

TEST(ToolCallGranite, Malformed) {
    expect_error(F::Granite, "<|tool_call|>[{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Bos", "truncated");
    expect_error(F::Granite, "<|tool_call|>get_weather(location=Boston)", "not followed by a JSON list");
    expect_error(F::Granite, "<|tool_call|>[{\"name\": \"f\", \"arguments\": {}}] extra", "unexpected text");
    expect_error(F::Granite, "<|tool_call|>[{\"name\": \"f\", \"arguments\": 3}]", "not a JSON object");
    expect_error(F::Granite, "<|tool_call|>[{\"arguments\": {}}]", "no \"name\"");
}

// ---------------------------------------------------------------- detection

TEST(ToolCallDetect, FromSharedTemplates) {
    const std::vector<std::pair<std::string, std::optional<F>>> cases = {
        {"NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use", F::Hermes},
        {"NousResearch-Hermes-3-Llama-3.1-8B-tool_use", F::Hermes},
        {"Qwen-Qwen2.5-7B-Instruct", F::Hermes},
        {"Qwen-Qwen3-0.6B", F::Hermes},
        {"Qwen-QwQ-32B", F::Hermes},
        {"ibm-granite-granite-4.0", F::Hermes},
        {"MiMo-VL", F::Hermes},
        {"meta-llama-Llama-3.1-8B-Instruct", F::Llama3},
        {"meta-llama-Llama-3.2-3B-Instruct", F::Llama3},
        {"meta-llama-Llama-3.3-70B-Instruct", F::Llama3},
        {"mistralai-Mistral-Nemo-Instruct-2407", F::Mistral},
        {"Mistral-Small-3.2-24B-Instruct-2506", F::Mistral},
        {"mistralai-Ministral-3-14B-Reasoning-2512", F::Mistral},
        {"unsloth-mistral-Devstral-Small-2507", F::Mistral},
        {"openai-gpt-oss-120b", F::GptOss},
        {"deepseek-ai-DeepSeek-R1-Distill-Llama-8B", F::DeepSeek},
        {"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", F::DeepSeek},
        {"deepseek-ai-DeepSeek-V3.1", F::DeepSeek},
        {"llama-cpp-deepseek-r1", F::DeepSeek},
        {"ibm-granite-granite-3.3-2B-Instruct", F::Granite},
        // Formats this parser does not handle (XML bodies, other syntaxes) or no tool calls at all.
        {"Qwen3-Coder", std::nullopt},
        {"Qwen3.5-4B", std::nullopt},
        {"GLM-4.6", std::nullopt},
        {"meetkai-functionary-medium-v3.1", std::nullopt},
        {"google-gemma-2-2b-it", std::nullopt},
        {"microsoft-Phi-3.5-mini-instruct", std::nullopt},
    };
    for (const auto& [file, want] : cases) {
        const std::string src = test::read_file(test::shared("templates/" + file + ".jinja"));
        ASSERT_FALSE(src.empty()) << "missing template " << file;
        const auto got = detect_tool_call_format(src);
        EXPECT_EQ(got.has_value(), want.has_value()) << file;
        if (got && want) {
            EXPECT_STREQ(tool_call_format_name(*got), tool_call_format_name(*want)) << file;
        }
    }
}

// ---------------------------------------------------------------- robustness

TEST(ToolCallRobustness, RandomTruncationsAndByteFlips) {
    const std::vector<std::pair<F, std::string>> samples = {
        {F::Hermes, "<think>\nok\n</think>\nHi.<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\", \"n\": [1, 2.5, null]}}\n</tool_call>\n"
                    "<tool_call>\n{\"name\": \"t\", \"arguments\": {}}\n</tool_call>"},
        {F::Llama3, "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"location\": \"Paris\"}}; {\"name\": \"g\", \"parameters\": {}}"},
        {F::Llama3, "<|python_tag|>brave_search.call(query=\"weather \\\"now\\\"\", n=3, safe=False)<|eom_id|>"},
        {F::Mistral, "[THINK]x[/THINK]Ok[TOOL_CALLS]get_weather[CALL_ID]abc123def[ARGS]{\"location\": \"Paris\"}[TOOL_CALLS]g[ARGS]{}"},
        {F::Mistral, "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\"}, \"id\": \"abc123def\"}]"},
        {F::GptOss, "<|channel|>analysis<|message|>think<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather "
                    "<|constrain|>json<|message|>{\"location\":\"Paris\"}<|call|>"},
        {F::DeepSeek, "<think>a</think>b<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
                      "{\"location\": \"Paris\"}\n```<｜tool▁call▁end｜><｜tool▁call▁begin｜>g<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁calls▁end｜>"},
        {F::Granite, "<think>t</think>c<|tool_call|>[{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Boston\"}}, {\"name\": \"g\", \"arguments\": {}}]"},
    };
    std::mt19937 rng(1234);
    int parsed = 0, errors = 0;
    for (const auto& [f, text] : samples) {
        ASSERT_NO_THROW(parse_tool_calls(f, text)) << text;  // the valid sample itself parses
        for (int it = 0; it < 1500; ++it) {
            std::string s = text;
            const int kind = it % 3;
            if (kind == 0) {
                s.resize(std::uniform_int_distribution<size_t>(0, s.size())(rng));
            } else {
                const int flips = 1 + static_cast<int>(rng() % 3);
                for (int k = 0; k < flips && !s.empty(); ++k) {
                    const size_t at = std::uniform_int_distribution<size_t>(0, s.size() - 1)(rng);
                    if (kind == 1) s[at] = static_cast<char>(rng() & 0xff);
                    else s.erase(at, 1 + rng() % 4);
                }
            }
            try {
                const ParsedMessage m = parse_tool_calls(f, s);
                for (const ToolCall& c : m.tool_calls) {
                    EXPECT_FALSE(c.name.empty()) << s;
                    EXPECT_TRUE(nlohmann::json::parse(c.arguments).is_object()) << s;  // never a non-object
                }
                (void)m.to_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
                ++parsed;
            } catch (const Error&) {
                ++errors;
            }
        }
    }
    EXPECT_GT(parsed, 0);
    EXPECT_GT(errors, 0);
}


// ---------------------------------------------------------------- end to end with the real templates

// What a template renders for an assistant turn with tool calls (the conversation with the turn, minus the
// conversation up to the generation prompt), cut at `stop` (the end-of-turn marker the model would stop on).
std::string rendered_assistant_turn(const std::string& file, const ojson& tool_calls, const std::string& stop) {
    const ChatTemplate t(test::read_file(test::shared("templates/" + file + ".jinja")));
    ChatInputs in;
    in.bos_token = "<s>";
    in.eos_token = "</s>";
    in.tools = ojson::parse(R"([{"type":"function","function":{"name":"get_weather","description":"Weather",
        "parameters":{"type":"object","properties":{"location":{"type":"string"},"days":{"type":"integer"}},"required":["location"]}}},
        {"type":"function","function":{"name":"get_time","description":"Time","parameters":{"type":"object","properties":{"tz":{"type":"string"}}}}}])");
    in.messages = ojson::array({{{"role", "user"}, {"content", "Weather in Paris and the time?"}}});
    const auto fixed_now = [] { std::tm tm{}; tm.tm_year = 124; tm.tm_mon = 6; tm.tm_mday = 26; return tm; };
    in.add_generation_prompt = true;
    const std::string prompt = t.apply(in, fixed_now);
    in.add_generation_prompt = false;
    in.messages.push_back({{"role", "assistant"}, {"content", ""}, {"tool_calls", tool_calls}});
    const std::string full = t.apply(in, fixed_now);
    EXPECT_EQ(full.substr(0, prompt.size()), prompt) << file;
    std::string turn = full.size() > prompt.size() ? full.substr(prompt.size()) : std::string();
    if (const size_t s = turn.find(stop); !stop.empty() && s != std::string::npos) turn.resize(s);
    return turn;
}

TEST(ToolCallTemplates, RenderedCallsParseBack) {
    const ojson calls = ojson::parse(R"([
        {"id":"abc123def","type":"function","function":{"name":"get_weather","arguments":{"location":"Paris","days":2}}},
        {"id":"ghi456jkl","type":"function","function":{"name":"get_time","arguments":{"tz":"CET"}}}])");
    struct Case { std::string file; F format; std::string stop; bool parallel; bool ids; };
    const std::vector<Case> cases = {
        {"Qwen-Qwen2.5-7B-Instruct", F::Hermes, "<|im_end|>", true, false},
        {"Qwen-Qwen3-0.6B", F::Hermes, "<|im_end|>", true, false},
        {"NousResearch-Hermes-3-Llama-3.1-8B-tool_use", F::Hermes, "<|im_end|>", true, false},
        {"mistralai-Mistral-Nemo-Instruct-2407", F::Mistral, "</s>", true, true},
        {"Mistral-Small-3.2-24B-Instruct-2506", F::Mistral, "</s>", true, true},
        {"deepseek-ai-DeepSeek-V3.1", F::DeepSeek, "<｜end▁of▁sentence｜>", true, false},
        {"meta-llama-Llama-3.1-8B-Instruct", F::Llama3, "<|eot_id|>", false, false},
        {"openai-gpt-oss-120b", F::GptOss, "", false, false},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.file);
        const ojson used = c.parallel ? calls : ojson::array({calls[0]});
        std::string turn;
        try {
            turn = rendered_assistant_turn(c.file, used, c.stop);
        } catch (const Error& e) {
            ADD_FAILURE() << "render failed: " << e.what();
            continue;
        }
        ASSERT_TRUE(detect_tool_call_format(test::read_file(test::shared("templates/" + c.file + ".jinja"))) == c.format);
        const ParsedMessage m = parse_tool_calls(c.format, turn);
        ASSERT_EQ(m.tool_calls.size(), used.size()) << turn;
        for (size_t i = 0; i < used.size(); ++i) {
            const ojson& fn = used[i]["function"];
            EXPECT_EQ(m.tool_calls[i].name, fn["name"].get<std::string>()) << turn;
            EXPECT_EQ(ojson::parse(m.tool_calls[i].arguments), fn["arguments"]) << turn;
            EXPECT_EQ(m.tool_calls[i].id, c.ids ? used[i]["id"].get<std::string>() : "call_" + std::to_string(i));
        }
    }
}

}  // namespace
}  // namespace hearth
