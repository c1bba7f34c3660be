#include "serve/openai.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "tokenizer/vocab.h"

namespace hearth::serve {

using nlohmann::json;

ApiError::ApiError(int status_, std::string message, std::string type_, std::string param_, std::string code_)
    : std::runtime_error(std::move(message)),
      status(status_),
      type(std::move(type_)),
      param(std::move(param_)),
      code(std::move(code_)) {}

json ApiError::to_json() const {
    json e = {{"message", what()}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
    if (!param.empty()) e["param"] = param;
    if (!code.empty()) e["code"] = code;
    return json{{"error", e}};
}

void bad_param(const std::string& param, const std::string& message) {
    throw ApiError(400, message, "invalid_request_error", param, "invalid_value");
}

namespace {

json parse_body(const std::string& body) {
    json j;
    try {
        j = json::parse(body);
    } catch (const json::exception& e) {  // parse errors, and numbers out of range ("1e999")
        throw ApiError(400, std::string("the request body is not valid JSON: ") + e.what(), "invalid_request_error",
                       "", "invalid_json");
    }
    if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object", "invalid_request_error");
    return j;
}

const char* kind(const json& v) {
    switch (v.type()) {
        case json::value_t::null: return "null";
        case json::value_t::boolean: return "a boolean";
        case json::value_t::string: return "a string";
        case json::value_t::array: return "an array";
        case json::value_t::object: return "an object";
        default: return "a number";
    }
}

// A present, non-null field.
const json* field(const json& j, const char* name) {
    auto it = j.find(name);
    return it == j.end() || it->is_null() ? nullptr : &*it;
}

std::string string_field(const json& j, const char* name, bool required, const std::string& path = "") {
    const std::string p = path.empty() ? name : path + "." + name;
    const json* v = field(j, name);
    if (!v) {
        if (required) bad_param(p, "'" + p + "' is required");
        return {};
    }
    if (!v->is_string()) bad_param(p, "'" + p + "' must be a string, not " + kind(*v));
    return v->get<std::string>();
}

bool bool_field(const json& j, const char* name, bool def) {
    const json* v = field(j, name);
    if (!v) return def;
    if (!v->is_boolean()) bad_param(name, std::string("'") + name + "' must be a boolean, not " + kind(*v));
    return v->get<bool>();
}

std::optional<double> number_field(const json& j, const char* name, double lo, double hi) {
    const json* v = field(j, name);
    if (!v) return std::nullopt;
    if (!v->is_number()) bad_param(name, std::string("'") + name + "' must be a number, not " + kind(*v));
    const double x = v->get<double>();
    if (!(x >= lo && x <= hi))
        bad_param(name, std::string("'") + name + "' must be between " + json(lo).dump() + " and " + json(hi).dump() +
                            " (got " + v->dump() + ")");
    return x;
}

std::optional<int64_t> int_field(const json& j, const char* name, int64_t lo, int64_t hi) {
    const json* v = field(j, name);
    if (!v) return std::nullopt;
    if (!v->is_number_integer()) bad_param(name, std::string("'") + name + "' must be an integer, not " + v->dump());
    const int64_t x = v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)
                          ? INT64_MAX
                          : v->get<int64_t>();
    if (x < lo || x > hi)
        bad_param(name, std::string("'") + name + "' must be between " + std::to_string(lo) + " and " +
                            std::to_string(hi) + " (got " + v->dump() + ")");
    return x;
}

// A field hearth does not implement: refused when present with a value that would change the output.
void refuse_unless(const json& j, const char* name, bool acceptable, const std::string& why) {
    const json* v = field(j, name);
    if (v && !acceptable) throw ApiError(400, std::string("'") + name + "' " + why, "invalid_request_error", name,
                                         "unsupported_parameter");
}

SamplingFields parse_sampling(const json& j, bool chat) {
    SamplingFields s;
    if (auto t = number_field(j, "temperature", 0, 2)) s.temperature = static_cast<float>(*t);
    if (auto p = number_field(j, "top_p", 0, 1)) s.top_p = static_cast<float>(*p);
    if (auto p = number_field(j, "presence_penalty", -2, 2)) s.presence_penalty = static_cast<float>(*p);
    if (auto p = number_field(j, "frequency_penalty", -2, 2)) s.frequency_penalty = static_cast<float>(*p);
    if (const json* v = field(j, "seed")) {
        if (!v->is_number_integer()) bad_param("seed", "'seed' must be an integer, not " + v->dump());
        s.seed = v->is_number_unsigned() ? v->get<uint64_t>() : static_cast<uint64_t>(v->get<int64_t>());
    }
    const auto max_tokens = int_field(j, "max_tokens", 1, std::numeric_limits<int32_t>::max());
    const auto max_completion = int_field(j, "max_completion_tokens", 1, std::numeric_limits<int32_t>::max());
    if (max_tokens && max_completion && *max_tokens != *max_completion)
        bad_param("max_completion_tokens", "'max_tokens' and 'max_completion_tokens' disagree; send one of them");
    if (max_completion) s.max_tokens = static_cast<int>(*max_completion);
    else if (max_tokens) s.max_tokens = static_cast<int>(*max_tokens);
    if (const json* v = field(j, "stop")) {
        if (v->is_string()) {
            s.stop.push_back(v->get<std::string>());
        } else if (v->is_array()) {
            if (v->size() > 4) bad_param("stop", "'stop' may hold at most 4 sequences");
            for (const auto& e : *v) {
                if (!e.is_string()) bad_param("stop", "'stop' must be a string or an array of strings");
                s.stop.push_back(e.get<std::string>());
            }
        } else {
            bad_param("stop", std::string("'stop' must be a string or an array of strings, not ") + kind(*v));
        }
        for (const auto& st : s.stop)
            if (st.empty()) bad_param("stop", "'stop' sequences must not be empty");
    }
    if (chat) {
        s.logprobs = bool_field(j, "logprobs", false);
        if (auto k = int_field(j, "top_logprobs", 0, 20)) {
            if (!s.logprobs) bad_param("top_logprobs", "'top_logprobs' needs 'logprobs': true");
            s.top_logprobs = static_cast<int>(*k);
        }
    } else if (auto k = int_field(j, "logprobs", 0, 5)) {  // the completions API: an integer, 0..5
        s.logprobs = true;
        s.top_logprobs = static_cast<int>(*k);
    }
    if (const json* v = field(j, "speculative")) {
        if (!v->is_string() || (*v != "off" && *v != "lookup" && *v != "draft"))
            bad_param("speculative", "'speculative' must be \"off\", \"lookup\" or \"draft\" (got " + v->dump() + ")");
        s.speculative = v->get<std::string>();
    }
    s.stream = bool_field(j, "stream", false);
    if (const json* so = field(j, "stream_options")) {
        if (!s.stream) bad_param("stream_options", "'stream_options' is only allowed with 'stream': true");
        if (!so->is_object()) bad_param("stream_options", "'stream_options' must be an object");
        s.include_usage = bool_field(*so, "include_usage", false);
    }
    if (auto n = int_field(j, "n", 1, 128); n && *n != 1)
        throw ApiError(400, "'n' must be 1: hearth returns one choice per request", "invalid_request_error", "n",
                       "unsupported_parameter");
    const json* bias = field(j, "logit_bias");
    refuse_unless(j, "logit_bias", bias && bias->is_object() && bias->empty(), "is not supported");
    return s;
}

std::string content_text(const json& content, const std::string& path) {
    if (content.is_string()) return content.get<std::string>();
    if (!content.is_array()) bad_param(path, "'" + path + "' must be a string or an array of content parts");
    std::string text;
    for (size_t i = 0; i < content.size(); ++i) {
        const json& part = content[i];
        const std::string pp = path + "[" + std::to_string(i) + "]";
        if (!part.is_object()) bad_param(pp, "'" + pp + "' must be an object");
        const std::string type = string_field(part, "type", true, pp);
        if (type != "text")
            throw ApiError(400, "'" + pp + ".type' is '" + type + "': only text content parts are supported",
                           "invalid_request_error", pp + ".type", "unsupported_parameter");
        text += string_field(part, "text", true, pp);
    }
    return text;
}

// The request body again with its key order kept, for the parts whose order matters (schemas: properties are
// generated in declaration order; tools: the template shows them as sent). Parsed only for requests that have
// such parts, and only after the plain parse succeeded, so it cannot fail.
class OrderedBody {
public:
    explicit OrderedBody(const std::string& body) : body_(body) {}
    const nlohmann::ordered_json& get() {
        if (!j_) j_ = nlohmann::ordered_json::parse(body_);
        return *j_;
    }

private:
    const std::string& body_;
    std::optional<nlohmann::ordered_json> j_;
};

// Tool and schema names: OpenAI's [A-Za-z0-9_-]{1,64}; tools may also use '.' and ':' (namespaced names), which
// the tool-call parsers accept.
bool valid_name(const std::string& s, bool tool) {
    if (s.empty() || s.size() > 64) return false;
    for (char c : s) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                        c == '-' || (tool && (c == '.' || c == ':'));
        if (!ok) return false;
    }
    return true;
}

void check_tools(const json& tools, const json& choice) {
    std::vector<std::string> names;
    for (size_t i = 0; i < tools.size(); ++i) {
        const json& t = tools[i];
        const std::string p = "tools[" + std::to_string(i) + "]";
        if (!t.is_object()) bad_param(p, "'" + p + "' must be an object");
        if (string_field(t, "type", true, p) != "function")
            bad_param(p + ".type", "'" + p + ".type' must be \"function\"");
        const json* f = field(t, "function");
        if (!f || !f->is_object()) bad_param(p + ".function", "'" + p + ".function' must be an object");
        const std::string name = string_field(*f, "name", true, p + ".function");
        if (!valid_name(name, true))
            bad_param(p + ".function.name", "'" + p + ".function.name' must be 1 to 64 characters of a-z, A-Z, 0-9, _, -, . "
                                            "and : (got '" + name + "')");
        if (auto d = std::find(names.begin(), names.end(), name); d != names.end())
            bad_param(p + ".function.name", "'" + p + ".function.name' repeats the name of tools[" +
                                                std::to_string(d - names.begin()) + "] ('" + name + "')");
        names.push_back(name);
        string_field(*f, "description", false, p + ".function");
        if (const json* params = field(*f, "parameters"); params && !params->is_object())
            bad_param(p + ".function.parameters", "'" + p + ".function.parameters' must be a JSON Schema object");
        if (const json* st = field(*f, "strict"); st && !st->is_boolean())
            bad_param(p + ".function.strict", "'" + p + ".function.strict' must be a boolean, not " + kind(*st));
    }
    const json& c = choice;
    if (c.is_null()) return;
    if (c.is_string()) {
        const std::string s = c.get<std::string>();
        if (s != "auto" && s != "none" && s != "required")
            bad_param("tool_choice", "'tool_choice' must be \"auto\", \"none\", \"required\" or a named function");
        if (s == "required" && names.empty()) bad_param("tool_choice", "'tool_choice' is \"required\" but no tools are given");
        return;
    }
    if (!c.is_object()) bad_param("tool_choice", "'tool_choice' must be a string or an object");
    if (const json* t = field(c, "type"); t && *t != "function")
        bad_param("tool_choice.type", "'tool_choice.type' must be \"function\" (got " + t->dump() + ")");
    const json* f = field(c, "function");
    if (!f || !f->is_object()) bad_param("tool_choice.function", "'tool_choice.function' must be an object");
    const std::string name = string_field(*f, "name", true, "tool_choice.function");
    if (std::find(names.begin(), names.end(), name) == names.end())
        bad_param("tool_choice.function.name", "'tool_choice.function.name' names function '" + name + "', which is not in 'tools'");
}

// response_format: text, json_object, or json_schema {name, description?, schema, strict?}. Whether the schema
// can be enforced is decided when it is compiled (serve/structured.h), which names the keyword it cannot.
ResponseFormat parse_response_format(const json& j, OrderedBody& ordered) {
    ResponseFormat f;
    const json* rf = field(j, "response_format");
    if (!rf) return f;
    if (!rf->is_object()) bad_param("response_format", std::string("'response_format' must be an object, not ") + kind(*rf));
    const std::string type = string_field(*rf, "type", true, "response_format");
    if (type == "text") return f;
    if (type == "json_object") {
        f.type = ResponseFormat::Type::JsonObject;
        return f;
    }
    if (type != "json_schema")
        bad_param("response_format.type", "'response_format.type' must be \"text\", \"json_object\" or \"json_schema\" (got '" +
                                              type + "')");
    f.type = ResponseFormat::Type::JsonSchema;
    const std::string p = "response_format.json_schema";
    const json* js = field(*rf, "json_schema");
    if (!js) bad_param(p, "'" + p + "' is required when 'response_format.type' is \"json_schema\"");
    if (!js->is_object()) bad_param(p, "'" + p + "' must be an object, not " + kind(*js));
    f.name = string_field(*js, "name", true, p);
    if (!valid_name(f.name, false))
        bad_param(p + ".name", "'" + p + ".name' must be 1 to 64 characters of a-z, A-Z, 0-9, _ and - (got '" + f.name + "')");
    string_field(*js, "description", false, p);
    if (const json* st = field(*js, "strict")) {
        if (!st->is_boolean()) bad_param(p + ".strict", "'" + p + ".strict' must be a boolean, not " + kind(*st));
        f.strict = st->get<bool>();
    }
    const json* schema = field(*js, "schema");
    if (!schema) bad_param(p + ".schema", "'" + p + ".schema' is required");
    if (!schema->is_object() && !schema->is_boolean())
        bad_param(p + ".schema", "'" + p + ".schema' must be a JSON Schema (an object or a boolean), not " + kind(*schema));
    f.schema = ordered.get()["response_format"]["json_schema"]["schema"];
    return f;
}

}  // namespace

ChatRequest parse_chat_request(const std::string& body) {
    const json j = parse_body(body);
    ChatRequest r;
    r.model = string_field(j, "model", false);
    const json* msgs = field(j, "messages");
    if (!msgs) bad_param("messages", "'messages' is required");
    if (!msgs->is_array() || msgs->empty()) bad_param("messages", "'messages' must be a non-empty array");
    for (size_t i = 0; i < msgs->size(); ++i) {
        const json& m = (*msgs)[i];
        const std::string p = "messages[" + std::to_string(i) + "]";
        if (!m.is_object()) bad_param(p, "'" + p + "' must be an object");
        ChatMessage cm;
        cm.role = string_field(m, "role", true, p);
        if (cm.role != "system" && cm.role != "developer" && cm.role != "user" && cm.role != "assistant" &&
            cm.role != "tool")
            bad_param(p + ".role", "'" + p + ".role' must be system, developer, user, assistant or tool (got '" +
                                       cm.role + "')");
        cm.name = string_field(m, "name", false, p);
        if (const json* tc = field(m, "tool_calls")) {
            if (cm.role != "assistant") bad_param(p + ".tool_calls", "only assistant messages carry 'tool_calls'");
            if (!tc->is_array()) bad_param(p + ".tool_calls", "'" + p + ".tool_calls' must be an array");
            cm.tool_calls = *tc;
        }
        if (const json* c = field(m, "content")) {
            cm.content = content_text(*c, p + ".content");
        } else if (!(cm.role == "assistant" && !cm.tool_calls.empty())) {
            bad_param(p + ".content", "'" + p + ".content' is required");
        }
        if (cm.role == "tool") cm.tool_call_id = string_field(m, "tool_call_id", true, p);
        r.messages.push_back(std::move(cm));
    }
    r.sampling = parse_sampling(j, /*chat=*/true);
    OrderedBody ordered(body);
    const json* tools = field(j, "tools");
    if (tools && !tools->is_array()) bad_param("tools", "'tools' must be an array");
    if (const json* c = field(j, "tool_choice")) r.tool_choice = *c;
    check_tools(tools ? *tools : json::array(), r.tool_choice);
    if (tools && !tools->empty()) r.tools = ordered.get()["tools"];
    r.parallel_tool_calls = bool_field(j, "parallel_tool_calls", true);
    // The pre-tools function-calling fields: ignoring them would answer in text where a call was asked for.
    refuse_unless(j, "functions", false, "is deprecated and not supported: send 'tools'");
    refuse_unless(j, "function_call", false, "is deprecated and not supported: send 'tool_choice'");
    r.response_format = parse_response_format(j, ordered);
    const json* modalities = field(j, "modalities");
    refuse_unless(j, "modalities", modalities && *modalities == json::array({"text"}), "supports only [\"text\"]");
    refuse_unless(j, "audio", false, "is not supported");
    return r;
}

CompletionRequest parse_completion_request(const std::string& body) {
    const json j = parse_body(body);
    CompletionRequest r;
    r.model = string_field(j, "model", false);
    const json* p = field(j, "prompt");
    if (!p) bad_param("prompt", "'prompt' is required");
    if (p->is_string()) {
        r.prompt = p->get<std::string>();
    } else if (p->is_array() && !p->empty() && (*p)[0].is_string()) {
        if (p->size() != 1)
            throw ApiError(400, "'prompt' holds " + std::to_string(p->size()) +
                                    " prompts: send one per request",
                           "invalid_request_error", "prompt", "unsupported_parameter");
        r.prompt = (*p)[0].get<std::string>();
    } else if (p->is_array() && !p->empty()) {
        std::vector<int32_t> toks;
        for (const auto& t : *p) {
            if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX)
                bad_param("prompt", "'prompt' must be a string, an array of one string, or an array of token ids");
            toks.push_back(static_cast<int32_t>(t.get<int64_t>()));
        }
        r.prompt_tokens = std::move(toks);
    } else {
        bad_param("prompt", "'prompt' must be a non-empty string, array of one string, or array of token ids");
    }
    r.sampling = parse_sampling(j, /*chat=*/false);
    OrderedBody ordered(body);
    r.response_format = parse_response_format(j, ordered);
    refuse_unless(j, "echo", !bool_field(j, "echo", false), "is not supported");
    refuse_unless(j, "suffix", false, "is not supported");
    const json* best_of = field(j, "best_of");
    refuse_unless(j, "best_of", best_of && *best_of == 1, "must be 1");
    return r;
}

TokenizeRequest parse_tokenize_request(const std::string& body) {
    const json j = parse_body(body);
    TokenizeRequest r;
    r.content = string_field(j, "content", true);
    r.add_special = bool_field(j, "add_special", false);
    r.parse_special = bool_field(j, "parse_special", true);
    r.with_pieces = bool_field(j, "with_pieces", false);
    return r;
}

std::vector<int32_t> parse_detokenize_request(const std::string& body, int64_t n_vocab) {
    const json j = parse_body(body);
    const json* tokens = field(j, "tokens");
    if (!tokens) bad_param("tokens", "'tokens' is required");
    if (!tokens->is_array()) bad_param("tokens", "'tokens' must be an array of token ids, not " + std::string(kind(*tokens)));
    std::vector<int32_t> ids;
    ids.reserve(tokens->size());
    for (size_t i = 0; i < tokens->size(); ++i) {
        const json& t = (*tokens)[i];
        if (!t.is_number_integer()) bad_param("tokens", fmt::format("'tokens[{}]' must be an integer token id", i));
        const bool in_range = t.is_number_unsigned() ? t.get<uint64_t>() < static_cast<uint64_t>(n_vocab)
                                                     : t.get<int64_t>() >= 0 && t.get<int64_t>() < n_vocab;
        if (!in_range)
            bad_param("tokens", fmt::format("token id {} (tokens[{}]) is outside the vocabulary of {} tokens", t.dump(),
                                            i, n_vocab));
        ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
    return ids;
}

json piece_json(const std::string& piece) {
    if (tok::is_valid_utf8(piece)) return piece;
    json bytes = json::array();
    for (unsigned char b : piece) bytes.push_back(b);
    return bytes;
}

EmbeddingsRequest parse_embeddings_request(const std::string& body) {
    const json j = parse_body(body);
    EmbeddingsRequest r;
    r.model = string_field(j, "model", false);
    const json* in = field(j, "input");
    if (!in) bad_param("input", "'input' is required");
    auto tokens_of = [](const json& a) {
        std::vector<int32_t> toks;
        for (const auto& t : a) {
            if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX)
                bad_param("input", "'input' token arrays must hold non-negative integer ids");
            toks.push_back(static_cast<int32_t>(t.get<int64_t>()));
        }
        if (toks.empty()) bad_param("input", "'input' must not contain an empty token array");
        return toks;
    };
    if (in->is_string()) {
        r.texts.push_back(in->get<std::string>());
    } else if (in->is_array() && !in->empty() && in->at(0).is_string()) {
        for (const auto& e : *in) {
            if (!e.is_string()) bad_param("input", "'input' must not mix strings with other values");
            r.texts.push_back(e.get<std::string>());
        }
    } else if (in->is_array() && !in->empty() && in->at(0).is_array()) {
        for (const auto& e : *in) {
            if (!e.is_array()) bad_param("input", "'input' must not mix token arrays with other values");
            r.token_inputs.push_back(tokens_of(e));
        }
    } else if (in->is_array() && !in->empty()) {
        r.token_inputs.push_back(tokens_of(*in));
    } else {
        bad_param("input", "'input' must be a string, an array of strings, or token ids, and not empty");
    }
    for (const auto& t : r.texts)
        if (t.empty()) bad_param("input", "'input' must not contain an empty string");
    const std::string format = string_field(j, "encoding_format", false);
    if (!format.empty() && format != "float" && format != "base64")
        bad_param("encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
    r.base64 = format == "base64";
    if (auto d = int_field(j, "dimensions", 1, 1 << 20)) r.dimensions = *d;
    return r;
}

json Usage::to_json() const {
    return {{"prompt_tokens", prompt_tokens},
            {"completion_tokens", completion_tokens},
            {"total_tokens", prompt_tokens + completion_tokens}};
}

json chat_completion(const std::string& id, const std::string& model, int64_t created, const json& message,
                     const std::string& finish_reason, const Usage& usage, const json& logprobs) {
    json choice = {{"index", 0}, {"message", message}, {"logprobs", logprobs}, {"finish_reason", finish_reason}};
    return {{"id", id},         {"object", "chat.completion"},    {"created", created},
            {"model", model},   {"choices", json::array({choice})}, {"usage", usage.to_json()}};
}

json chat_chunk(const std::string& id, const std::string& model, int64_t created, const json& delta,
                const std::optional<std::string>& finish_reason, const json& logprobs) {
    json choice = {{"index", 0}, {"delta", delta}, {"logprobs", logprobs}, {"finish_reason", nullptr}};
    if (finish_reason) choice["finish_reason"] = *finish_reason;
    return {{"id", id},
            {"object", "chat.completion.chunk"},
            {"created", created},
            {"model", model},
            {"choices", json::array({choice})}};
}

json text_completion(const std::string& id, const std::string& model, int64_t created, const std::string& text,
                     const std::optional<std::string>& finish_reason, const std::optional<Usage>& usage,
                     const json& logprobs) {
    json choice = {{"index", 0}, {"text", text}, {"logprobs", logprobs}, {"finish_reason", nullptr}};
    if (finish_reason) choice["finish_reason"] = *finish_reason;
    json j = {{"id", id},
              {"object", "text_completion"},
              {"created", created},
              {"model", model},
              {"choices", json::array({choice})}};
    if (usage) j["usage"] = usage->to_json();
    return j;
}

namespace {

double finite_logprob(float lp) { return std::isfinite(lp) ? static_cast<double>(lp) : -9999.0; }

json logprob_entry(const std::string& piece, float lp) {
    json bytes = json::array();
    for (unsigned char c : piece) bytes.push_back(static_cast<int>(c));
    return {{"token", tok::sanitize_utf8(piece)}, {"logprob", finite_logprob(lp)}, {"bytes", bytes}};
}

}  // namespace

json chat_logprobs(const std::vector<TokenLogprobText>& tokens) {
    json content = json::array();
    for (const auto& t : tokens) {
        json e = logprob_entry(t.piece, t.logprob);
        json top = json::array();
        for (const auto& [piece, lp] : t.top) top.push_back(logprob_entry(piece, lp));
        e["top_logprobs"] = std::move(top);
        content.push_back(std::move(e));
    }
    return {{"content", std::move(content)}};
}

json completion_logprobs(const std::vector<TokenLogprobText>& tokens, int64_t offset_base) {
    json toks = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
    for (const auto& t : tokens) {
        toks.push_back(tok::sanitize_utf8(t.piece));
        lps.push_back(finite_logprob(t.logprob));
        json top = json::object();
        for (const auto& [piece, lp] : t.top) {
            const std::string key = tok::sanitize_utf8(piece);
            if (!top.contains(key)) top[key] = finite_logprob(lp);  // two byte tokens may print the same
        }
        tops.push_back(std::move(top));
        offsets.push_back(offset_base + t.text_offset);
    }
    return {{"tokens", toks}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

std::string base64_encode(const void* data, size_t n) {
    static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const auto* p = static_cast<const uint8_t*>(data);
    std::string out;
    out.reserve((n + 2) / 3 * 4);
    for (size_t i = 0; i < n; i += 3) {
        const uint32_t b = static_cast<uint32_t>(p[i]) << 16 | (i + 1 < n ? p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        out += kAlphabet[b >> 18 & 63];
        out += kAlphabet[b >> 12 & 63];
        out += i + 1 < n ? kAlphabet[b >> 6 & 63] : '=';
        out += i + 2 < n ? kAlphabet[b & 63] : '=';
    }
    return out;
}

json embeddings_list(const std::string& model, const std::vector<std::vector<float>>& vectors, int64_t prompt_tokens,
                     bool base64) {
    json data = json::array();
    for (size_t i = 0; i < vectors.size(); ++i) {
        json e = {{"object", "embedding"}, {"index", i}};
        if (base64)  // x86-64 floats are little-endian, the layout the format specifies
            e["embedding"] = base64_encode(vectors[i].data(), vectors[i].size() * sizeof(float));
        else
            e["embedding"] = vectors[i];
        data.push_back(std::move(e));
    }
    return {{"object", "list"},
            {"data", data},
            {"model", model},
            {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}};
}

json models_list(const std::vector<std::string>& ids, int64_t created) {
    json data = json::array();
    for (const auto& id : ids) data.push_back({{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "hearth"}});
    return {{"object", "list"}, {"data", data}};
}

std::string sse_event(const json& j) { return "data: " + j.dump() + "\n\n"; }
std::string sse_done() { return "data: [DONE]\n\n"; }

}  // namespace hearth::serve
