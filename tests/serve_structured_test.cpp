// Structured output in `hearth serve` (serve/structured.h): response_format json_object / json_schema and
// tools with every tool_choice, over HTTP against stories260K sampling at temperature 1 under the grammar.
// Every complete answer must parse and validate under its schema (checked by Debian's python3-jsonschema,
// tests/oracle/jsonschema_check.py, not by hearth's own code); an answer cut by max_tokens must still be a prefix
// of the grammar's language; what cannot be enforced is a 400 naming the field and the keyword. The grammar
// building blocks (text avoiding markers, composition, the call splitter) are checked first without a socket,
// against the reference recognizer of tests/grammar_oracle.h.
#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar_oracle.h"
#include "serve/openai.h"
#include "serve/structured.h"
#include "jsonschema_oracle.h"
#include "serve_fixture.h"
#include "test_util.h"

namespace hearth::serve {
namespace {

using nlohmann::json;
using ojson = nlohmann::ordered_json;
using grammar::Grammar;
using grammar::testing::Recognizer;

// ---- helpers

// Verdicts of python3-jsonschema for (schema, JSON text) pairs, in one run of the oracle.
class SchemaOracle {
public:
    void add(const ojson& schema, const std::string& text) { cases_.push_back({schema, text}); }
    size_t size() const { return cases_.size(); }
    // Expects every text to be valid JSON that validates under its schema.
    void expect_all_valid() {
        if (cases_.empty()) return;
        std::vector<std::pair<ojson, std::vector<std::string>>> table;
        for (const auto& [schema, text] : cases_) table.push_back({schema, {text}});
        const auto verdicts = test::jsonschema_oracle(table).results;
        ASSERT_EQ(verdicts.size(), cases_.size());
        for (size_t i = 0; i < cases_.size(); ++i)
            EXPECT_EQ(verdicts[i][0], true) << "schema " << cases_[i].first.dump() << "\ntext " << cases_[i].second;
        cases_.clear();
    }

private:
    std::vector<std::pair<ojson, std::string>> cases_;
};

// Whether `text` can be continued into a string of g's language (the matcher over bytes: no vocabulary needed).
// An answer cut by max_tokens inside a multi-byte character ends in the U+FFFD the detokenizer writes for the
// incomplete character: that one is not the model's.
bool grammar_prefix(const Grammar& g, std::string text) {
    if (text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0) text.resize(text.size() - 3);
    auto compiled = grammar::compile(g, std::make_shared<grammar::TokenTable>());
    grammar::GrammarMatcher m(compiled);
    return m.accept_bytes(text);
}

struct Reply {
    int status = 0;
    json body;
};

// Posts the bodies at once (the server batches them) and returns the replies in order. Bodies are ordered_json:
// the schemas' property order is the order the answers must follow.
std::vector<Reply> post_all(const ServerFixture& f, const std::string& path, const std::vector<ojson>& bodies) {
    std::vector<Reply> out(bodies.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < bodies.size(); ++i)
        threads.emplace_back([&, i] {
            auto c = f.client();
            auto r = c.Post(path, bodies[i].dump(), "application/json");
            if (!r) return;
            out[i].status = r->status;
            out[i].body = json::parse(r->body, nullptr, false);
        });
    for (auto& t : threads) t.join();
    return out;
}

Reply post(const ServerFixture& f, const std::string& path, const ojson& body) { return post_all(f, path, {body})[0]; }

ServerOptions roomy() {
    ServerOptions o;
    o.n_ctx = 8192;  // several requests of a long tools prompt plus a few hundred tokens each, without preemption
    o.parallel = 8;
    return o;
}

ojson chat(const std::string& user, int seed, int max_tokens) {
    return {{"messages", {{{"role", "user"}, {"content", user}}}}, {"temperature", 1.0}, {"seed", seed},
            {"max_tokens", max_tokens}};
}

const ojson kWeatherParams = ojson::parse(R"({
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "unit": {"enum": ["celsius", "fahrenheit"]}
    },
    "required": ["city", "unit"],
    "additionalProperties": false})");
const ojson kAddParams = ojson::parse(R"({
    "type": "object",
    "properties": {"a": {"type": "integer", "minimum": -100, "maximum": 100}, "b": {"type": "integer", "minimum": 0, "maximum": 9}},
    "required": ["a", "b"],
    "additionalProperties": false})");

ojson tools_json() {
    return ojson::array({
        {{"type", "function"},
         {"function", {{"name", "get_weather"}, {"description", "Weather in a city"}, {"parameters", kWeatherParams}}}},
        {{"type", "function"}, {"function", {{"name", "add"}, {"description", "Adds two numbers"}, {"parameters", kAddParams}}}},
    });
}

const ojson& params_of(const std::string& name) { return name == "add" ? kAddParams : kWeatherParams; }

// ---- building blocks, no socket

// The text automaton admits exactly the strings that contain no marker (checked against std::string::find on
// random strings over the markers' letters, where near-misses and overlaps are frequent).
TEST(ServeStructured, TextAvoidingMarkersIsExact) {
    const std::vector<std::string> markers = {"<tool_call>", "</tool_call>", "<think>", "</think>", "aab"};
    Grammar g;
    g.root = add_text_avoiding(g, markers, "text");
    g.validate();
    Recognizer rec(g);
    EXPECT_TRUE(rec.matches(""));
    EXPECT_TRUE(rec.matches("Hello <tool_cal l> and </think"));
    EXPECT_TRUE(rec.matches("<<tool_call</tool_callaa"));
    EXPECT_TRUE(rec.matches("caf\xC3\xA9 \xF0\x9F\x98\x80"));  // any code point outside the markers
    EXPECT_FALSE(rec.matches("x<tool_call>"));
    EXPECT_FALSE(rec.matches("<</tool_call>"));
    EXPECT_FALSE(rec.matches("a</think>b"));
    EXPECT_FALSE(rec.matches("aaab"));  // the overlap: "aa" then "aab" starting one later
    std::mt19937 rng(7);
    const std::string letters = "<>/_tolcahinkab x";
    int accepted = 0;
    for (int i = 0; i < 3000; ++i) {
        std::string s;
        const int n = static_cast<int>(rng() % 16);
        for (int k = 0; k < n; ++k) s += letters[rng() % letters.size()];
        if (rng() % 4 == 0) {  // plant a marker or a piece of one
            const std::string& m = markers[rng() % markers.size()];
            s.insert(rng() % (s.size() + 1), m.substr(0, 1 + rng() % m.size()));
        }
        bool has = false;
        for (const auto& m : markers) has |= s.find(m) != std::string::npos;
        EXPECT_EQ(rec.matches(s), !has) << s;
        accepted += !has;
    }
    EXPECT_GT(accepted, 500);
    EXPECT_LT(accepted, 2900);
}

ChatRequest tool_request(const std::string& choice_json, bool parallel = true, const std::string& format = "") {
    ojson body = {{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"tools", tools_json()},
                 {"parallel_tool_calls", parallel}};
    if (!choice_json.empty()) body["tool_choice"] = json::parse(choice_json);
    if (!format.empty()) body["response_format"] = json::parse(format);
    return parse_chat_request(body.dump());
}

const std::string kWeatherCall = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>";
const std::string kAddCall = "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": -5, \"b\": 3}}\n</tool_call>";

// The composed grammars admit what each tool_choice allows and nothing else.
TEST(ServeStructured, ToolGrammarsAdmitExactlyTheChoice) {
    {
        const Grammar g = *chat_grammar(tool_request("\"required\""), false);
        Recognizer rec(g);
        EXPECT_TRUE(rec.matches(kWeatherCall));
        EXPECT_TRUE(rec.matches(kAddCall));
        EXPECT_TRUE(rec.matches(kWeatherCall + "\n" + kAddCall));  // parallel calls
        EXPECT_FALSE(rec.matches(""));
        EXPECT_FALSE(rec.matches("Sure. " + kAddCall));  // nothing but calls
        EXPECT_FALSE(rec.matches("<tool_call>\n{\"name\": \"mul\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>"));
        EXPECT_FALSE(rec.matches("<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 10}}\n</tool_call>"));
        EXPECT_FALSE(rec.matches("<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1}}\n</tool_call>"));
        EXPECT_FALSE(rec.matches("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"kelvin\"}}\n</tool_call>"));
        EXPECT_TRUE(rec.is_prefix("<tool_call>\n{\"name\": \"ad"));
        EXPECT_FALSE(rec.is_prefix("<tool_call>\n{\"name\": \"x"));
    }
    {
        const Grammar g = *chat_grammar(tool_request("\"required\"", /*parallel=*/false), false);
        Recognizer rec(g);
        EXPECT_TRUE(rec.matches(kAddCall));
        EXPECT_FALSE(rec.matches(kWeatherCall + "\n" + kAddCall));
    }
    {
        const Grammar g = *chat_grammar(tool_request(R"({"type": "function", "function": {"name": "add"}})"), false);
        Recognizer rec(g);
        EXPECT_TRUE(rec.matches(kAddCall));
        EXPECT_FALSE(rec.matches(kWeatherCall));
    }
    for (const std::string choice : {"", "\"auto\""}) {  // auto is the default with tools
        const Grammar g = *chat_grammar(tool_request(choice), false);
        Recognizer rec(g);
        EXPECT_TRUE(rec.matches(""));
        EXPECT_TRUE(rec.matches("It is sunny."));
        EXPECT_TRUE(rec.matches("Let me check.\n" + kWeatherCall));
        EXPECT_TRUE(rec.matches(kWeatherCall + "\n" + kAddCall));
        EXPECT_FALSE(rec.matches("Let me check. <tool_call> sunny"));  // once the marker is written, a call
        EXPECT_FALSE(rec.matches(kWeatherCall + " and more text"));
        EXPECT_FALSE(rec.matches("done </tool_call>"));
        EXPECT_FALSE(rec.matches("<think>hmm</think>" + kAddCall));  // no thinking for this template
    }
    {  // a thinking template: an optional reasoning block first
        const Grammar g = *chat_grammar(tool_request("\"required\""), true);
        Recognizer rec(g);
        EXPECT_TRUE(rec.matches("<think>\nThe user wants a sum.\n</think>\n\n" + kAddCall));
        EXPECT_TRUE(rec.matches("The user wants a sum.\n</think>\n\n" + kAddCall));  // <think> opened by the prompt
        EXPECT_TRUE(rec.matches(kAddCall));
        EXPECT_FALSE(rec.matches("<think>a</think>b" + kAddCall));
    }
    {  // auto with a response_format: JSON or calls
        const Grammar g = *chat_grammar(tool_request("\"auto\"", true, R"({"type": "json_object"})"), false);
        Recognizer rec(g);
        EXPECT_TRUE(rec.matches(R"({"answer": 4})"));
        EXPECT_TRUE(rec.matches(kAddCall));
        EXPECT_FALSE(rec.matches("four"));
    }
    // none: the response_format's grammar alone, or free text.
    EXPECT_FALSE(chat_grammar(tool_request("\"none\""), false));
    const Grammar only_format = *chat_grammar(tool_request("\"none\"", true, R"({"type": "json_object"})"), false);
    EXPECT_TRUE(Recognizer(only_format).matches(R"({"a": 1})"));
    EXPECT_FALSE(Recognizer(only_format).matches(kAddCall));
}

TEST(ServeStructured, GrammarBuildingRefusesWhatItCannotEnforce) {
    auto error_of = [](const std::function<void()>& fn) -> ApiError {
        try {
            fn();
        } catch (const ApiError& e) {
            return e;
        }
        ADD_FAILURE() << "no error";
        return ApiError(0, "", "");
    };
    ResponseFormat f;
    f.type = ResponseFormat::Type::JsonSchema;
    f.schema = ojson::parse(R"({"type": "object", "properties": {"a": {"not": {"minLength": 2}}}})");
    ApiError e = error_of([&] { response_format_grammar(f); });
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, "response_format.json_schema.schema");
    EXPECT_NE(std::string(e.what()).find("'not'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("#/properties/a"), std::string::npos) << e.what();
    // Keywords validators ignore: ignored, unless the server runs with --strict-schema.
    f.schema = ojson::parse(R"({"type": "object", "properties": {"a": {"type": "integer", "x-unit": "cm"}}})");
    EXPECT_TRUE(response_format_grammar(f).has_value());
    e = error_of([&] { response_format_grammar(f, /*strict_keywords=*/true); });
    EXPECT_EQ(e.status, 400);
    EXPECT_NE(std::string(e.what()).find("'x-unit' at #/properties/a/x-unit"), std::string::npos) << e.what();
    // A schema whose every value would be infinite: the matcher could walk into a dead end.
    f.schema = ojson::parse(R"({"type": "object", "properties": {"next": {"$ref": "#"}}, "required": ["next"]})");
    e = error_of([&] { response_format_grammar(f); });
    EXPECT_EQ(e.status, 400) << e.what();
    EXPECT_EQ(e.param, "response_format.json_schema.schema");
    // A tool's parameters.
    ojson body = {{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"tools", tools_json()}};
    body["tools"][1]["function"]["parameters"]["unevaluatedProperties"] = false;
    const ChatRequest r = parse_chat_request(body.dump());
    e = error_of([&] { chat_grammar(r, false); });
    EXPECT_EQ(e.param, "tools[1].function.parameters");
    EXPECT_NE(std::string(e.what()).find("unevaluatedProperties"), std::string::npos) << e.what();
    // With tool_choice none the tools' schemas are not compiled: nothing is generated under them.
    body["tool_choice"] = "none";
    EXPECT_FALSE(chat_grammar(parse_chat_request(body.dump()), false));
}

// Calls are split out of the text however it is chunked, and an argument string holding the closing marker
// does not end its call.
TEST(ServeStructured, ToolCallSplitterHandlesAnyChunking) {
    const std::string tricky = "<tool_call>\n{\"name\": \"echo\", \"arguments\": {\"s\": \"</tool_call> {\\\"}\"}}\n</tool_call>";
    const std::string text = "Checking.\n" + kWeatherCall + "\n" + tricky;
    for (size_t chunk : {1u, 2u, 3u, 7u, 1000u}) {
        ToolCallSplitter sp("call_x_");
        std::string content;
        std::vector<ToolCall> calls;
        for (size_t i = 0; i < text.size(); i += chunk) {
            auto p = sp.push(std::string_view(text).substr(i, chunk));
            content += p.content;
            calls.insert(calls.end(), p.calls.begin(), p.calls.end());
        }
        auto p = sp.finish();
        content += p.content;
        calls.insert(calls.end(), p.calls.begin(), p.calls.end());
        EXPECT_EQ(content, "Checking.\n") << chunk;
        ASSERT_EQ(calls.size(), 2u) << chunk;
        EXPECT_EQ(calls[0].id, "call_x_0");
        EXPECT_EQ(calls[0].name, "get_weather");
        EXPECT_EQ(json::parse(calls[0].arguments), json::parse(R"({"city": "Paris", "unit": "celsius"})"));
        EXPECT_EQ(calls[1].name, "echo");
        EXPECT_EQ(json::parse(calls[1].arguments)["s"], "</tool_call> {\"}");
    }
    // The whole message: an unfinished call (cut by max_tokens) stays as content, complete ones are calls.
    const ParsedMessage m = parse_generated_tool_calls(kAddCall + "\n<tool_call>\n{\"name\": \"ad", "call_y_");
    ASSERT_EQ(m.tool_calls.size(), 1u);
    EXPECT_EQ(m.tool_calls[0].name, "add");
    EXPECT_EQ(m.content, "<tool_call>\n{\"name\": \"ad");
    const ParsedMessage t = parse_generated_tool_calls("<think>why</think>\n\nIt is 4.", "call_z_");
    EXPECT_EQ(t.content, "It is 4.");
    EXPECT_EQ(t.reasoning_content, "why");
    EXPECT_TRUE(t.tool_calls.empty());
}

// Which tool syntax each template gets: Hermes templates as they are, templates that show no tools Hermes
// taught by hearth, others refused (naming their format).
TEST(ServeStructured, TemplatesDecideTheToolSyntax) {
    auto probe = [](const std::string& file) {
        const std::string src = file.empty() ? kDefaultChatTemplate : test::read_file(test::shared("templates/" + file));
        ChatInputs base;
        base.add_generation_prompt = true;
        base.bos_token = "<s>";
        base.eos_token = "</s>";
        return probe_tool_support(src, ChatTemplate(src), base);
    };
    const ToolSupport chatml = probe("");
    EXPECT_TRUE(chatml.generate);
    EXPECT_FALSE(chatml.renders_tools || chatml.renders_calls || chatml.thinking);
    for (const char* hermes : {"Qwen-Qwen2.5-7B-Instruct.jinja", "Qwen-Qwen3-0.6B.jinja",
                               "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja"}) {
        const ToolSupport t = probe(hermes);
        EXPECT_TRUE(t.generate && t.renders_tools && t.renders_calls) << hermes << ": " << t.refusal;
        EXPECT_EQ(t.thinking, std::string(hermes) == "Qwen-Qwen3-0.6B.jinja") << hermes;
    }
    for (const auto& [file, says] : std::vector<std::pair<std::string, std::string>>{
             {"meta-llama-Llama-3.1-8B-Instruct.jinja", "Llama3"},
             {"mistralai-Mistral-Nemo-Instruct-2407.jinja", "Mistral"},
             {"openai-gpt-oss-120b.jinja", "GptOss"},
             {"Qwen3-Coder.jinja", "does not recognise"}}) {
        const ToolSupport t = probe(file);
        EXPECT_FALSE(t.generate) << file;
        EXPECT_NE(t.refusal.find(says), std::string::npos) << file << ": " << t.refusal;
    }
}

// With a template that shows no tools (hearth's default ChatML), the prompt describes the tools in the system
// message and writes earlier calls and results in the syntax the grammar enforces; a Hermes template is given
// the tools and the history as they are.
TEST(ServeStructured, ToolPromptsTeachTheSyntaxTheGrammarEnforces) {
    const ChatRequest r = parse_chat_request(ojson{
        {"messages",
         {{{"role", "system"}, {"content", "Be brief."}},
          {{"role", "user"}, {"content", "2 + 3?"}},
          {{"role", "assistant"}, {"content", nullptr},
           {"tool_calls", {{{"id", "call_1"}, {"type", "function"},
                            {"function", {{"name", "add"}, {"arguments", "{\"a\": 2, \"b\": 3}"}}}}}}},
          {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "5"}}}},
        {"tools", tools_json()}}.dump());
    ChatInputs base;
    base.add_generation_prompt = true;
    const ChatTemplate chatml(kDefaultChatTemplate);
    const ToolSupport none = probe_tool_support(kDefaultChatTemplate, chatml, base);
    const std::string p = chatml.apply(tool_chat_inputs(r, true, none, base));
    EXPECT_EQ(p.rfind("<|im_start|>system\nBe brief.\n\n# Tools\n", 0), 0u) << p;
    EXPECT_NE(p.find("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\""), std::string::npos) << p;
    EXPECT_NE(p.find("<|im_start|>assistant\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 2, \"b\": 3}}\n</tool_call><|im_end|>"),
              std::string::npos)
        << p;
    EXPECT_NE(p.find("<|im_start|>user\n<tool_response>\n5\n</tool_response><|im_end|>"), std::string::npos) << p;
    // Not offered (tool_choice none): no tool description, the history still readable.
    const std::string q = chatml.apply(tool_chat_inputs(r, false, none, base));
    EXPECT_EQ(q.find("# Tools"), std::string::npos);
    EXPECT_NE(q.find("</tool_call>"), std::string::npos);

    const std::string qwen_src = test::read_file(test::shared("templates/Qwen-Qwen2.5-7B-Instruct.jinja"));
    const ChatTemplate qwen(qwen_src);
    const ToolSupport hermes = probe_tool_support(qwen_src, qwen, base);
    const ChatInputs in = tool_chat_inputs(r, true, hermes, base);
    EXPECT_EQ(in.tools, r.tools);
    EXPECT_EQ(in.messages[2]["tool_calls"][0]["function"]["name"], "add");  // the template writes it
    const std::string w = qwen.apply(in);
    EXPECT_NE(w.find("\"get_weather\""), std::string::npos) << w;
    EXPECT_NE(w.find("<tool_call>\n{\"name\": \"add\""), std::string::npos) << w;
}

// Compiled grammars are kept by their text: the same schema again is the same compiled grammar; past the
// capacity the least recently used goes.
TEST(ServeStructured, GrammarCacheKeepsTheRecentOnes) {
    const auto model = Model::load(test::shared("models/stories260K.gguf"));
    const tok::Vocab vocab = tok::Vocab::from_gguf(model->file);
    GrammarCache cache(vocab, 4);
    auto schema = [](int n) { return *response_format_grammar(ResponseFormat{ResponseFormat::Type::JsonSchema, "s",
                                                                             ojson{{"const", n}}, false}); };
    const auto a = cache.get(schema(0));
    EXPECT_EQ(a->tokens().size(), vocab.n_tokens());
    EXPECT_EQ(cache.get(schema(0)), a);
    EXPECT_EQ(cache.hits(), 1);
    for (int n = 1; n <= 3; ++n) cache.get(schema(n));
    EXPECT_EQ(cache.get(schema(0)), a);  // used last: kept
    cache.get(schema(4));                 // evicts 1, the least recently used
    EXPECT_EQ(cache.size(), 4u);
    const int64_t hits = cache.hits();
    cache.get(schema(1));
    EXPECT_EQ(cache.hits(), hits);  // compiled again
    EXPECT_EQ(&cache.get(schema(2))->tokens(), &a->tokens());  // one token table for every grammar
}

// ---- over HTTP

// json_object: every complete answer is a JSON object; answers cut by max_tokens are prefixes of one.
TEST(ServeStructured, JsonObjectAnswersAreObjects) {
    ServerFixture f(roomy());
    std::vector<ojson> bodies;
    for (int seed = 1; seed <= 4; ++seed) {
        ojson b = chat("Describe a cat as JSON.", seed, 200);
        b["response_format"] = {{"type", "json_object"}};
        bodies.push_back(b);
    }
    const Grammar g = grammar::json_object_grammar();
    SchemaOracle oracle;
    int complete = 0;
    for (const Reply& r : post_all(f, "/v1/chat/completions", bodies)) {
        ASSERT_EQ(r.status, 200) << r.body.dump();
        const json& ch = r.body["choices"][0];
        const std::string text = ch["message"]["content"];
        EXPECT_TRUE(grammar_prefix(g, text)) << text;
        if (ch["finish_reason"] == "stop") {
            ++complete;
            const json j = json::parse(text);
            EXPECT_TRUE(j.is_object()) << text;
            oracle.add(ojson{{"type", "object"}}, text);
        } else {
            EXPECT_EQ(ch["finish_reason"], "length");
            EXPECT_EQ(r.body["usage"]["completion_tokens"], 200);
        }
    }
    std::printf("  json_object: %d of %zu complete\n", complete, bodies.size());
    oracle.expect_all_valid();
}

const ojson kPersonSchema = ojson::parse(R"({
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 10},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "pet": {"enum": ["cat", "dog", "fish", null]},
        "home": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 8}, "floor": {"type": "integer", "minimum": 0, "maximum": 9}},
            "required": ["city"]
        },
        "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 1, "maxItems": 3},
        "ok": {"type": "boolean"}
    },
    "required": ["name", "age", "pet", "home", "tags"]})");

// json_schema, strict and not: complete answers validate under the schema (python3-jsonschema), keep the
// declared property order, and under strict carry no undeclared properties.
TEST(ServeStructured, JsonSchemaAnswersValidate) {
    ServerFixture f(roomy());
    std::vector<ojson> bodies;
    for (int seed = 1; seed <= 8; ++seed) {
        ojson b = chat("Make up a person.", 100 + seed, 300);
        b["response_format"] = {{"type", "json_schema"},
                                {"json_schema", {{"name", "person"}, {"schema", kPersonSchema}, {"strict", seed % 2 == 0}}}};
        bodies.push_back(b);
    }
    SchemaOracle oracle;
    int complete = 0;
    const std::vector<Reply> replies = post_all(f, "/v1/chat/completions", bodies);
    for (size_t i = 0; i < replies.size(); ++i) {
        const Reply& r = replies[i];
        ASSERT_EQ(r.status, 200) << r.body.dump();
        const json& ch = r.body["choices"][0];
        const std::string text = ch["message"]["content"];
        const bool strict = bodies[i]["response_format"]["json_schema"]["strict"];
        grammar::JsonSchemaOptions opt;
        opt.allow_additional_properties = !strict;
        EXPECT_TRUE(grammar_prefix(grammar::compile_json_schema(kPersonSchema, opt), text)) << text;
        if (ch["finish_reason"] != "stop") {
            EXPECT_EQ(ch["finish_reason"], "length");
            continue;
        }
        ++complete;
        oracle.add(kPersonSchema, text);
        const ojson j = ojson::parse(text);
        std::vector<std::string> keys;
        for (const auto& [k, v] : j.items()) keys.push_back(k);
        const std::vector<std::string> declared = {"name", "age", "pet", "home", "tags", "ok"};
        size_t d = 0;  // declared properties appear in declaration order, before any others
        for (const std::string& k : keys) {
            while (d < declared.size() && declared[d] != k) ++d;
            if (d == declared.size()) {
                EXPECT_FALSE(strict) << "undeclared property '" << k << "' under strict: " << text;
                break;
            }
        }
        if (strict) {
            for (const auto& [k, v] : j["home"].items()) EXPECT_TRUE(k == "city" || k == "floor") << text;
        }
    }
    std::printf("  json_schema: %d of %zu complete\n", complete, bodies.size());
    EXPECT_GE(complete, 4);  // the schema bounds every part: most answers finish
    oracle.expect_all_valid();

    // The completions API takes the same response_format.
    ojson c = {{"prompt", "Once upon a time"}, {"max_tokens", 300}, {"temperature", 1.0}, {"seed", 5},
              {"response_format", bodies[0]["response_format"]}};
    const Reply r = post(f, "/v1/completions", c);
    ASSERT_EQ(r.status, 200) << r.body.dump();
    const std::string text = r.body["choices"][0]["text"];
    EXPECT_TRUE(grammar_prefix(grammar::compile_json_schema(kPersonSchema), text)) << text;
    if (r.body["choices"][0]["finish_reason"] == "stop") oracle.add(kPersonSchema, text);
    oracle.expect_all_valid();
}

// A stop string still ends a constrained answer early (the caller's choice): the text is cut before it.
TEST(ServeStructured, StopStringsStillApply) {
    ServerFixture f(roomy());
    ojson b = chat("Make up a person.", 3, 300);
    b["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "person"}, {"schema", kPersonSchema}}}};
    b["stop"] = "\"age\"";
    const Reply r = post(f, "/v1/chat/completions", b);
    ASSERT_EQ(r.status, 200) << r.body.dump();
    const std::string text = r.body["choices"][0]["message"]["content"];
    EXPECT_EQ(r.body["choices"][0]["finish_reason"], "stop");
    EXPECT_EQ(text.find("\"age\""), std::string::npos);
    EXPECT_NE(text.find("\"name\""), std::string::npos) << text;  // "age" comes right after name
}

// What the grammar cannot enforce, and malformed structured fields, are 400s naming the field (and keyword).
TEST(ServeStructured, UnenforceableOrMalformedIs400) {
    ServerFixture f;
    struct Case {
        ojson patch;
        std::string param, says;
        std::string path = "/v1/chat/completions";
    };
    const ojson not_schema = ojson::parse(R"({"type": "object", "properties": {"a": {"not": {"maxLength": 2}}}})");
    const ojson pp_schema = ojson::parse(R"({"type": "array", "contains": {"type": "integer"}})");
    ojson bad_tools = tools_json();
    bad_tools[0]["function"]["parameters"]["properties"]["city"]["not"] = {{"pattern", "^P"}};
    const std::vector<Case> cases = {
        {{{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "s"}, {"schema", not_schema}}}}}},
         "response_format.json_schema.schema", "'not'"},
        {{{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "s"}, {"schema", pp_schema}, {"strict", true}}}}}},
         "response_format.json_schema.schema", "contains"},
        {{{"prompt", "Once"}, {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "s"}, {"schema", not_schema}}}}}},
         "response_format.json_schema.schema", "'not'", "/v1/completions"},
        {{{"tools", bad_tools}, {"tool_choice", "required"}}, "tools[0].function.parameters", "'not'"},
        {{{"response_format", "json"}}, "response_format", "object"},
        {{{"response_format", {{"type", "yaml"}}}}, "response_format.type", "yaml"},
        {{{"response_format", {{"type", "json_schema"}}}}, "response_format.json_schema", "required"},
        {{{"response_format", {{"type", "json_schema"}, {"json_schema", {{"schema", {{"type", "object"}}}}}}}},
         "response_format.json_schema.name", "required"},
        {{{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "a b"}, {"schema", {{"type", "object"}}}}}}}},
         "response_format.json_schema.name", "a-z"},
        {{{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "s"}}}}}}, "response_format.json_schema.schema",
         "required"},
        {{{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "s"}, {"schema", "object"}}}}}},
         "response_format.json_schema.schema", "JSON Schema"},
        {{{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "s"}, {"schema", json::object()}, {"strict", "yes"}}}}}},
         "response_format.json_schema.strict", "boolean"},
        {{{"functions", {{{"name", "f"}}}}}, "functions", "tools"},
        {{{"tools", tools_json()}, {"parallel_tool_calls", "no"}}, "parallel_tool_calls", "boolean"},
    };
    for (const Case& c : cases) {
        ojson body = c.path == "/v1/completions" ? ojson::object() : ojson{{"messages", {{{"role", "user"}, {"content", "hi"}}}}};
        body.update(c.patch);
        const Reply r = post(f, c.path, body);
        EXPECT_EQ(r.status, 400) << body.dump();
        EXPECT_EQ(r.body["error"]["type"], "invalid_request_error");
        EXPECT_EQ(r.body["error"]["param"], c.param) << r.body.dump();
        const std::string msg = r.body["error"]["message"];
        EXPECT_NE(msg.find(c.says), std::string::npos) << msg;
        std::printf("  %-36s %s\n", c.param.c_str(), msg.c_str());
    }
}

// `hearth serve --strict-schema`: a keyword validators ignore is a 400 naming it; without the flag the same
// request is answered, and the answer holds to the keywords that are enforced.
TEST(ServeStructured, StrictSchemaServerRefusesIgnoredKeywords) {
    const ojson schema = ojson::parse(R"({"type": "object", "properties": {"n": {"type": "integer", "x-unit": "cm"}},
        "required": ["n"], "additionalProperties": false})");
    const ojson body = {{"messages", {{{"role", "user"}, {"content", "hi"}}}},
                        {"max_tokens", 40},
                        {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "s"}, {"schema", schema}}}}}};
    ServerOptions strict;
    strict.strict_schema = true;
    {
        ServerFixture f(strict);
        const Reply r = post(f, "/v1/chat/completions", body);
        EXPECT_EQ(r.status, 400);
        EXPECT_EQ(r.body["error"]["param"], "response_format.json_schema.schema");
        const std::string msg = r.body["error"]["message"];
        EXPECT_NE(msg.find("'x-unit' at #/properties/n/x-unit"), std::string::npos) << msg;
    }
    ServerFixture f;
    const Reply r = post(f, "/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200) << r.body.dump();
    const std::string content = r.body["choices"][0]["message"]["content"];
    EXPECT_TRUE(grammar_prefix(grammar::compile_json_schema(ojson::parse(R"({"type": "object",
        "properties": {"n": {"type": "integer"}}, "required": ["n"], "additionalProperties": false})")), content))
        << content;
}

// A grammar that fails while generating (a pattern of 12 nested loops: too ambiguous to run) ends that request
// alone: 400 naming the reason, or in a stream an error event after the chunks already sent; the server goes on.
TEST(ServeStructured, AGrammarFailingMidGenerationEndsOnlyThatRequest) {
    ServerFixture f;
    std::string pattern = "^";
    for (int i = 0; i < 12; ++i) pattern += "(";
    pattern += "(a|aa)";
    for (int i = 0; i < 12; ++i) pattern += "+)";
    pattern += "aaaaaaaaaaaaaaaa$";  // at least 17 a's: the answer cannot end before the loops multiply
    ojson b = chat("Say a.", 5, 40);
    b["response_format"] = {{"type", "json_schema"},
                            {"json_schema", {{"name", "as"}, {"schema", {{"type", "string"}, {"pattern", pattern}}}}}};
    const Reply r = post(f, "/v1/chat/completions", b);
    EXPECT_EQ(r.status, 400) << r.body.dump();
    EXPECT_EQ(r.body["error"]["code"], "generation_failed") << r.body.dump();
    EXPECT_NE(r.body["error"]["message"].get<std::string>().find("too ambiguous"), std::string::npos) << r.body.dump();

    b["stream"] = true;
    auto c = f.client();
    auto s = c.Post("/v1/chat/completions", b.dump(), "application/json");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->status, 200);
    const std::vector<json> events = sse_events(s->body);
    ASSERT_FALSE(events.empty());
    EXPECT_TRUE(events.back().contains("error")) << s->body;
    EXPECT_EQ(events.back()["error"]["code"], "generation_failed");
    EXPECT_NE(s->body.find("data: [DONE]"), std::string::npos);

    const Reply ok = post(f, "/v1/chat/completions", chat("Hello", 1, 8));
    EXPECT_EQ(ok.status, 200) << ok.body.dump();
}

// tool_choice required: every answer is calls only, to declared tools, with arguments valid under the tool's
// parameters; with parallel_tool_calls false, exactly one. A named tool_choice calls that tool.
TEST(ServeStructured, RequiredAndNamedToolChoiceCallValidTools) {
    ServerFixture f(roomy());
    std::vector<ojson> bodies;
    for (int seed = 1; seed <= 6; ++seed) {
        ojson b = chat("What is the weather in Paris, and what is 2 + 3?", seed, 300);
        b["tools"] = tools_json();
        b["tool_choice"] = "required";
        if (seed > 4) b["tool_choice"] = {{"type", "function"}, {"function", {{"name", "add"}}}};
        if (seed % 3 != 0) b["parallel_tool_calls"] = false;  // most answers one call: more of them finish
        bodies.push_back(b);
    }
    SchemaOracle oracle;
    int n_calls = 0;
    const std::vector<Reply> replies = post_all(f, "/v1/chat/completions", bodies);
    for (size_t i = 0; i < replies.size(); ++i) {
        const Reply& r = replies[i];
        ASSERT_EQ(r.status, 200) << r.body.dump();
        const json& ch = r.body["choices"][0];
        const json& msg = ch["message"];
        if (ch["finish_reason"] == "length") continue;  // cut inside a call: nothing to check but the shape
        EXPECT_EQ(ch["finish_reason"], "tool_calls") << r.body.dump();
        EXPECT_TRUE(msg["content"].is_null()) << r.body.dump();
        ASSERT_TRUE(msg.contains("tool_calls")) << r.body.dump();
        const json& calls = msg["tool_calls"];
        ASSERT_GE(calls.size(), 1u);
        if (bodies[i].value("parallel_tool_calls", true) == false) {
            EXPECT_EQ(calls.size(), 1u);
        }
        std::set<std::string> ids;
        for (const json& c : calls) {
            EXPECT_EQ(c["type"], "function");
            const std::string id = c["id"];
            EXPECT_EQ(id.rfind("call_", 0), 0u) << id;
            ids.insert(id);
            const std::string name = c["function"]["name"];
            EXPECT_TRUE(name == "add" || name == "get_weather") << name;
            if (bodies[i]["tool_choice"].is_object()) {
                EXPECT_EQ(name, "add");
            }
            const std::string args = c["function"]["arguments"];
            EXPECT_TRUE(json::parse(args).is_object()) << args;
            oracle.add(params_of(name), args);
            ++n_calls;
        }
        EXPECT_EQ(ids.size(), calls.size());  // distinct ids
    }
    std::printf("  %d calls checked\n", n_calls);
    EXPECT_GE(oracle.size(), 3u);
    oracle.expect_all_valid();
}

// tool_choice none: plain text, no calls. auto (the default with tools): each answer is either text without
// calls, or calls that validate; with a response_format, the text must be that JSON.
TEST(ServeStructured, NoneAndAutoToolChoiceGiveOneOfTheValidShapes) {
    ServerFixture f(roomy());
    std::vector<ojson> bodies;
    for (int seed = 1; seed <= 6; ++seed) {
        ojson b = chat("What is 2 + 3?", seed, 120);
        b["tools"] = tools_json();
        if (seed == 1) b["tool_choice"] = "none";
        if (seed == 2) b["tool_choice"] = "auto";
        if (seed >= 5) b["response_format"] = {{"type", "json_object"}};
        bodies.push_back(b);
    }
    SchemaOracle oracle;
    const std::vector<Reply> replies = post_all(f, "/v1/chat/completions", bodies);
    int texts = 0, calls = 0;
    for (size_t i = 0; i < replies.size(); ++i) {
        const Reply& r = replies[i];
        ASSERT_EQ(r.status, 200) << r.body.dump();
        const json& ch = r.body["choices"][0];
        const json& msg = ch["message"];
        if (msg.contains("tool_calls")) {
            ASSERT_NE(i, 0u) << "tool_choice none made a call: " << r.body.dump();
            ++calls;
            EXPECT_EQ(ch["finish_reason"], "tool_calls");
            for (const json& c : msg["tool_calls"])
                oracle.add(params_of(c["function"]["name"]), c["function"]["arguments"].get<std::string>());
            continue;
        }
        ++texts;
        EXPECT_TRUE(ch["finish_reason"] == "stop" || ch["finish_reason"] == "length") << r.body.dump();
        ASSERT_TRUE(msg["content"].is_string()) << r.body.dump();
        const std::string text = msg["content"];
        if (i > 0) {
            EXPECT_EQ(text.find("<tool_call>"), std::string::npos) << text;  // a marker means calls
        }
        if (bodies[i].contains("response_format")) {
            EXPECT_TRUE(grammar_prefix(grammar::json_object_grammar(), text)) << text;
            if (ch["finish_reason"] == "stop") oracle.add(ojson{{"type", "object"}}, text);
        }
    }
    std::printf("  auto/none: %d text answers, %d with calls\n", texts, calls);
    oracle.expect_all_valid();
}

// Streamed tool calls arrive as OpenAI's tool_calls deltas (id, type and name first, then the arguments) that
// reassemble to the calls of the same request unstreamed (same seed, same tokens), with the same content (an
// unfinished call cut by max_tokens) and finish_reason (tool_calls when complete).
TEST(ServeStructured, StreamedToolCallsReassemble) {
    ServerFixture f(roomy());
    for (const int seed : {11, 12}) {
        ojson b = chat("What is the weather in Paris?", seed, 160);
        b["tools"] = tools_json();
        b["tool_choice"] = "required";
        b["parallel_tool_calls"] = seed == 11;  // several calls (likely cut by max_tokens), or one that ends
        b["logprobs"] = true;
        const Reply whole = post(f, "/v1/chat/completions", b);
        ASSERT_EQ(whole.status, 200) << whole.body.dump();
        const json& want = whole.body["choices"][0]["message"];

        b["stream"] = true;
        auto c = f.client();
        auto r = c.Post("/v1/chat/completions", b.dump(), "application/json");
        ASSERT_TRUE(r);
        ASSERT_EQ(r->status, 200);
        json got = json::array();
        std::string finish, content;
        size_t n_logprobs = 0;
        for (const json& ev : sse_events(r->body)) {
            const json& ch = ev["choices"][0];
            if (!ch["finish_reason"].is_null()) finish = ch["finish_reason"];
            if (ch["logprobs"].is_object()) n_logprobs += ch["logprobs"]["content"].size();
            const json& d = ch["delta"];
            if (d.contains("content") && d["content"].is_string()) content += d["content"].get<std::string>();
            if (!d.contains("tool_calls")) continue;
            for (const json& tc : d["tool_calls"]) {
                const size_t index = tc["index"];
                if (index == got.size()) {  // a new call: its first delta names it
                    ASSERT_TRUE(tc.contains("id") && tc.contains("function") && tc["function"].contains("name")) << tc.dump();
                    EXPECT_EQ(tc["type"], "function");
                    got.push_back({{"id", tc["id"]}, {"name", tc["function"]["name"]}, {"arguments", ""}});
                }
                ASSERT_LT(index, got.size());
                if (tc.contains("function") && tc["function"].contains("arguments"))
                    got[index]["arguments"] =
                        got[index]["arguments"].get<std::string>() + tc["function"]["arguments"].get<std::string>();
            }
        }
        std::printf("  seed %d: %zu calls, finish %s\n", seed, got.size(), finish.c_str());
        EXPECT_EQ(finish, whole.body["choices"][0]["finish_reason"]);
        EXPECT_EQ(n_logprobs, whole.body["choices"][0]["logprobs"]["content"].size());  // every token's, once
        EXPECT_GT(n_logprobs, 0u);
        EXPECT_EQ(content, want["content"].is_null() ? "" : want["content"].get<std::string>());
        const json calls = want.value("tool_calls", json::array());
        ASSERT_EQ(got.size(), calls.size());
        if (finish == "tool_calls") {
            EXPECT_GE(got.size(), 1u);
        }
        for (size_t i = 0; i < got.size(); ++i) {
            EXPECT_EQ(got[i]["name"], calls[i]["function"]["name"]);
            EXPECT_EQ(got[i]["arguments"], calls[i]["function"]["arguments"]);
            EXPECT_EQ(got[i]["id"].get<std::string>().rfind("call_", 0), 0u);
        }
    }
}

// A conversation that already holds a call and its result renders (the default template shows them in the
// Hermes syntax) and the follow-up is answered under the grammar.
TEST(ServeStructured, ToolHistoryIsAccepted) {
    ServerFixture f(roomy());
    ojson b = chat("What is 2 + 3?", 4, 60);
    b["messages"].push_back({{"role", "assistant"},
                             {"content", nullptr},
                             {"tool_calls", {{{"id", "call_1"}, {"type", "function"},
                                              {"function", {{"name", "add"}, {"arguments", "{\"a\": 2, \"b\": 3}"}}}}}}});
    b["messages"].push_back({{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "5"}});
    b["tools"] = tools_json();
    const Reply r = post(f, "/v1/chat/completions", b);
    ASSERT_EQ(r.status, 200) << r.body.dump();
    const json& msg = r.body["choices"][0]["message"];
    EXPECT_TRUE(msg.contains("tool_calls") || msg["content"].is_string());
    // The tools and the history cost prompt tokens: they are in the prompt.
    const Reply plain = post(f, "/v1/chat/completions", chat("What is 2 + 3?", 4, 1));
    EXPECT_GT(r.body["usage"]["prompt_tokens"].get<int>(), plain.body["usage"]["prompt_tokens"].get<int>() + 100);
}

}  // namespace
}  // namespace hearth::serve
