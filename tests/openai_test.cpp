// The OpenAI request parsing and response shapes of `hearth serve` (no socket): valid requests become the
// right structs; every malformed or unsupported field is a 400 naming it; responses and stream chunks have the
// fields the official clients read.
#include <gtest/gtest.h>

#include <string>

#include "serve/openai.h"

namespace hearth::serve {
namespace {

using nlohmann::json;

// The ApiError a body raises, or a failure if it parses.
ApiError error_of(const std::function<void()>& parse) {
    try {
        parse();
    } catch (const ApiError& e) {
        return e;
    }
    ADD_FAILURE() << "no error";
    return ApiError(0, "", "");
}

TEST(OpenAi, ChatRequestParses) {
    const ChatRequest r = parse_chat_request(R"({
        "model": "m", "stream": true, "stream_options": {"include_usage": true},
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
            {"role": "assistant", "content": null,
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"}],
        "temperature": 0.5, "top_p": 0.9, "seed": 7, "max_tokens": 64, "stop": ["\n\n", "END"],
        "presence_penalty": 0.5, "frequency_penalty": -0.5, "logprobs": true, "top_logprobs": 3,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}}, "user": "ignored", "n": 1})");
    EXPECT_EQ(r.model, "m");
    ASSERT_EQ(r.messages.size(), 4u);
    EXPECT_EQ(r.messages[1].content, "Hi there");
    EXPECT_EQ(r.messages[2].tool_calls.size(), 1u);
    EXPECT_EQ(r.messages[3].tool_call_id, "c1");
    EXPECT_FLOAT_EQ(*r.sampling.temperature, 0.5f);
    EXPECT_FLOAT_EQ(*r.sampling.top_p, 0.9f);
    EXPECT_EQ(*r.sampling.seed, 7u);
    EXPECT_EQ(*r.sampling.max_tokens, 64);
    EXPECT_EQ(r.sampling.stop, (std::vector<std::string>{"\n\n", "END"}));
    EXPECT_TRUE(r.sampling.stream);
    EXPECT_TRUE(r.sampling.include_usage);
    EXPECT_TRUE(r.sampling.logprobs);
    EXPECT_EQ(r.sampling.top_logprobs, 3);
    EXPECT_EQ(r.tools.size(), 1u);
    EXPECT_TRUE(r.parallel_tool_calls);
    EXPECT_EQ(r.response_format.type, ResponseFormat::Type::Text);
    // Structured fields keep the request's key order: schemas generate properties in declaration order.
    const ChatRequest s = parse_chat_request(R"({"messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "person-1", "strict": true,
            "schema": {"type": "object", "properties": {"zeta": {}, "alpha": {}}}}},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"properties": {"y": {}, "b": {}}}}}],
        "tool_choice": "required", "parallel_tool_calls": false})");
    EXPECT_EQ(s.response_format.type, ResponseFormat::Type::JsonSchema);
    EXPECT_EQ(s.response_format.name, "person-1");
    EXPECT_TRUE(s.response_format.strict);
    EXPECT_EQ(s.response_format.schema["properties"].begin().key(), "zeta");
    EXPECT_EQ(s.tools[0]["function"]["parameters"]["properties"].begin().key(), "y");
    EXPECT_FALSE(s.parallel_tool_calls);
    EXPECT_EQ(s.tool_choice, "required");
    EXPECT_EQ(parse_chat_request(R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}})")
                  .response_format.type,
              ResponseFormat::Type::JsonObject);
    EXPECT_EQ(parse_completion_request(R"({"prompt": "x", "response_format": {"type": "json_object"}})").response_format.type,
              ResponseFormat::Type::JsonObject);
    // Defaults stay unset, for the server to fill.
    const ChatRequest d = parse_chat_request(R"({"messages": [{"role": "user", "content": "x"}]})");
    EXPECT_FALSE(d.sampling.temperature);
    EXPECT_FALSE(d.sampling.max_tokens);
    EXPECT_FALSE(d.sampling.stream);
    EXPECT_EQ(*parse_chat_request(R"({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 5})")
                   .sampling.max_tokens,
              5);
}

TEST(OpenAi, BadChatRequestsName400Fields) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {R"({"messages": [{"role": "user", "content": "x"}],)", ""},  // not JSON
        {R"([1, 2])", ""},
        {R"(11111102e1111102)", ""},  // found by the fuzzer: a number too large for a double
        {R"({"messages": [{"role": "user", "content": "x"}], "temperature": 1e999})", ""},
        {R"({})", "messages"},
        {R"({"messages": []})", "messages"},
        {R"({"messages": "hi"})", "messages"},
        {R"({"messages": [{"content": "x"}]})", "messages[0].role"},
        {R"({"messages": [{"role": "wizard", "content": "x"}]})", "messages[0].role"},
        {R"({"messages": [{"role": "user"}]})", "messages[0].content"},
        {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
        {R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})",
         "messages[0].content[0].type"},
        {R"({"messages": [{"role": "tool", "content": "x"}]})", "messages[0].tool_call_id"},
        {R"({"messages": [{"role": "user", "content": "x", "tool_calls": []}]})", "messages[0].tool_calls"},
        {R"({"model": 3, "messages": [{"role": "user", "content": "x"}]})", "model"},
        {R"({"messages": [{"role": "user", "content": "x"}], "temperature": 3})", "temperature"},
        {R"({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"})", "temperature"},
        {R"({"messages": [{"role": "user", "content": "x"}], "top_p": 1.5})", "top_p"},
        {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0})", "max_tokens"},
        {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 2.5})", "max_tokens"},
        {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 5, "max_completion_tokens": 6})",
         "max_completion_tokens"},
        {R"({"messages": [{"role": "user", "content": "x"}], "presence_penalty": -3})", "presence_penalty"},
        {R"({"messages": [{"role": "user", "content": "x"}], "seed": "x"})", "seed"},
        {R"({"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]})", "stop"},
        {R"({"messages": [{"role": "user", "content": "x"}], "stop": [""]})", "stop"},
        {R"({"messages": [{"role": "user", "content": "x"}], "stop": 4})", "stop"},
        {R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", "top_logprobs"},
        {R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21})", "top_logprobs"},
        {R"({"messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": true}})",
         "stream_options"},
        {R"({"messages": [{"role": "user", "content": "x"}], "stream": "yes"})", "stream"},
        {R"({"messages": [{"role": "user", "content": "x"}], "n": 2})", "n"},
        {R"({"messages": [{"role": "user", "content": "x"}], "logit_bias": {"5": 10}})", "logit_bias"},
        {R"({"messages": [{"role": "user", "content": "x"}], "response_format": "json"})", "response_format"},
        {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {}})", "response_format.type"},
        {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "yaml"}})",
         "response_format.type"},
        {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema"}})",
         "response_format.json_schema"},
        {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema",
            "json_schema": {"schema": {}}}})", "response_format.json_schema.name"},
        {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema",
            "json_schema": {"name": "a/b", "schema": {}}}})", "response_format.json_schema.name"},
        {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema",
            "json_schema": {"name": "s"}}})", "response_format.json_schema.schema"},
        {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema",
            "json_schema": {"name": "s", "schema": [1]}}})", "response_format.json_schema.schema"},
        {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema",
            "json_schema": {"name": "s", "schema": {}, "strict": 1}}})", "response_format.json_schema.strict"},
        {R"({"messages": [{"role": "user", "content": "x"}], "functions": [{"name": "f"}]})", "functions"},
        {R"({"messages": [{"role": "user", "content": "x"}], "function_call": "auto"})", "function_call"},
        {R"({"messages": [{"role": "user", "content": "x"}], "parallel_tool_calls": 1})", "parallel_tool_calls"},
        {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function":
            {"name": "get weather"}}]})", "tools[0].function.name"},
        {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function":
            {"name": "f"}}, {"type": "function", "function": {"name": "f"}}]})", "tools[1].function.name"},
        {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function":
            {"name": "f", "strict": "yes"}}]})", "tools[0].function.strict"},
        {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function":
            {"name": "f"}}], "tool_choice": {"type": "custom", "function": {"name": "f"}}})", "tool_choice.type"},
        {R"({"messages": [{"role": "user", "content": "x"}], "tools": {}})", "tools"},
        {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})", "tools[0].function"},
        {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {}}]})",
         "tools[0].function.name"},
        {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "retrieval"}]})", "tools[0].type"},
        {R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "always"})", "tool_choice"},
        {R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"})", "tool_choice"},
        {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function":
            {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "g"}}})",
         "tool_choice.function.name"},
        {R"({"messages": [{"role": "user", "content": "x"}], "modalities": ["text", "audio"]})", "modalities"},
    };
    for (const auto& [body, param] : cases) {
        const ApiError e = error_of([&] { parse_chat_request(body); });
        EXPECT_EQ(e.status, 400) << body;
        EXPECT_EQ(e.param, param) << body << ": " << e.what();
        std::printf("  %-12s %s\n", param.empty() ? "(body)" : param.c_str(), e.what());
        if (!param.empty()) {
            EXPECT_NE(std::string(e.what()).find(param.substr(0, param.find('['))), std::string::npos)
                << body << ": " << e.what();
        }
        const json j = e.to_json();
        EXPECT_EQ(j["error"]["type"], "invalid_request_error");
        EXPECT_TRUE(j["error"].contains("message") && j["error"].contains("param") && j["error"].contains("code"));
    }
}

TEST(OpenAi, CompletionAndEmbeddingRequests) {
    const CompletionRequest c = parse_completion_request(R"({"model": "m", "prompt": "Once", "max_tokens": 8,
        "logprobs": 2, "stream": true})");
    EXPECT_EQ(c.prompt, "Once");
    EXPECT_EQ(c.sampling.top_logprobs, 2);
    EXPECT_TRUE(c.sampling.logprobs);
    EXPECT_EQ(parse_completion_request(R"({"prompt": ["Once"]})").prompt, "Once");
    EXPECT_EQ(*parse_completion_request(R"({"prompt": [1, 5, 9]})").prompt_tokens, (std::vector<int32_t>{1, 5, 9}));
    for (const auto& [body, param] : std::vector<std::pair<std::string, std::string>>{
             {R"({})", "prompt"},
             {R"({"prompt": ["a", "b"]})", "prompt"},
             {R"({"prompt": [1, -2]})", "prompt"},
             {R"({"prompt": []})", "prompt"},
             {R"({"prompt": "a", "echo": true})", "echo"},
             {R"({"prompt": "a", "suffix": "z"})", "suffix"},
             {R"({"prompt": "a", "best_of": 3})", "best_of"},
             {R"({"prompt": "a", "logprobs": 6})", "logprobs"}}) {
        const ApiError e = error_of([&] { parse_completion_request(body); });
        EXPECT_EQ(e.status, 400) << body;
        EXPECT_EQ(e.param, param) << body << ": " << e.what();
    }

    const EmbeddingsRequest e1 = parse_embeddings_request(R"({"model": "m", "input": "hello"})");
    EXPECT_EQ(e1.texts, (std::vector<std::string>{"hello"}));
    EXPECT_FALSE(e1.base64);
    const EmbeddingsRequest e2 = parse_embeddings_request(R"({"input": ["a", "b"], "encoding_format": "base64"})");
    EXPECT_EQ(e2.texts.size(), 2u);
    EXPECT_TRUE(e2.base64);
    EXPECT_EQ(parse_embeddings_request(R"({"input": [3, 4]})").token_inputs, (std::vector<std::vector<int32_t>>{{3, 4}}));
    EXPECT_EQ(parse_embeddings_request(R"({"input": [[3], [4, 5]]})").token_inputs.size(), 2u);
    EXPECT_EQ(*parse_embeddings_request(R"({"input": "a", "dimensions": 384})").dimensions, 384);
    for (const std::string body : {R"({})", R"({"input": []})", R"({"input": ""})", R"({"input": ["a", 1]})",
                                   R"({"input": [[1], 2]})", R"({"input": [[]]})", R"({"input": {"a": 1}})"}) {
        const ApiError e = error_of([&] { parse_embeddings_request(body); });
        EXPECT_EQ(e.param, "input") << body << ": " << e.what();
    }
    EXPECT_EQ(error_of([] { parse_embeddings_request(R"({"input": "a", "encoding_format": "hex"})"); }).param,
              "encoding_format");
}

TEST(OpenAi, ResponseShapes) {
    const json msg = {{"role", "assistant"}, {"content", "Hello"}};
    const json c = chat_completion("chatcmpl-1", "m", 1700000000, msg, "stop", Usage{5, 2});
    EXPECT_EQ(c["object"], "chat.completion");
    EXPECT_EQ(c["choices"][0]["message"]["content"], "Hello");
    EXPECT_EQ(c["choices"][0]["finish_reason"], "stop");
    EXPECT_EQ(c["usage"]["total_tokens"], 7);
    const json k = chat_chunk("chatcmpl-1", "m", 1700000000, {{"content", "He"}}, std::nullopt);
    EXPECT_EQ(k["object"], "chat.completion.chunk");
    EXPECT_TRUE(k["choices"][0]["finish_reason"].is_null());
    EXPECT_EQ(chat_chunk("i", "m", 0, json::object(), std::string("length"))["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(sse_event(json{{"a", 1}}), "data: {\"a\":1}\n\n");
    EXPECT_EQ(sse_done(), "data: [DONE]\n\n");
    const json t = text_completion("cmpl-1", "m", 0, "abc", std::string("stop"), Usage{1, 3});
    EXPECT_EQ(t["object"], "text_completion");
    EXPECT_EQ(t["choices"][0]["text"], "abc");
    EXPECT_EQ(t["usage"]["completion_tokens"], 3);
    const json m = models_list({"a", "b"}, 5);
    EXPECT_EQ(m["data"][1]["id"], "b");
    EXPECT_EQ(m["data"][0]["object"], "model");

    // RFC 4648 vectors, and a float vector in the little-endian float32 layout the openai client decodes.
    EXPECT_EQ(base64_encode("", 0), "");
    EXPECT_EQ(base64_encode("f", 1), "Zg==");
    EXPECT_EQ(base64_encode("fo", 2), "Zm8=");
    EXPECT_EQ(base64_encode("foo", 3), "Zm9v");
    EXPECT_EQ(base64_encode("foobar", 6), "Zm9vYmFy");
    const json e = embeddings_list("m", {{1.0f, -2.0f}}, 3, /*base64=*/true);
    EXPECT_EQ(e["data"][0]["embedding"], "AACAPwAAAMA=");  // 0x3F800000, 0xC0000000
    const json f = embeddings_list("m", {{0.5f}, {0.25f}}, 4);
    EXPECT_EQ(f["object"], "list");
    EXPECT_EQ(f["data"][1]["index"], 1);
    EXPECT_DOUBLE_EQ(f["data"][1]["embedding"][0].get<double>(), 0.25);
    EXPECT_EQ(f["usage"]["prompt_tokens"], 4);
}

}  // namespace
}  // namespace hearth::serve
