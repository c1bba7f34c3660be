// The OpenAI API's request and response shapes for `hearth serve`: validated parsing of chat / completions /
// embeddings requests into plain structs, OpenAI-shaped errors, and the JSON of responses and stream chunks.
// No I/O here: the HTTP layer calls these, so every rule about what a request may contain is tested without a
// socket. A field hearth cannot honour is refused with a 400 naming it, never silently ignored (an ignored
// `n: 3` or `response_format` would be a 200 whose output is not what was asked for); fields that only
// describe the caller (user, metadata) are accepted and ignored.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hearth::serve {

// An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with an HTTP status.
struct ApiError : std::runtime_error {
    int status;
    std::string type, param, code;
    ApiError(int status, std::string message, std::string type, std::string param = {}, std::string code = {});
    nlohmann::json to_json() const;
};
// 400 invalid_request_error naming the field.
[[noreturn]] void bad_param(const std::string& param, const std::string& message);

struct SamplingFields {
    std::optional<float> temperature, top_p;  // unset: the server's defaults
    std::optional<uint64_t> seed;
    float presence_penalty = 0.0f, frequency_penalty = 0.0f;
    std::optional<int> max_tokens;  // max_tokens or max_completion_tokens
    std::vector<std::string> stop;  // up to 4 strings
    bool logprobs = false;
    int top_logprobs = 0;  // 0..20, only with logprobs
    bool stream = false;
    bool include_usage = false;  // stream_options.include_usage: a last chunk with usage
    // hearth's extension: speculative decoding for this request, "off", "lookup" or "draft" (unset: the
    // server's default). The tokens are those of decoding without it.
    std::optional<std::string> speculative;
};

struct ChatMessage {
    std::string role;  // system, developer, user, assistant, tool
    std::string content;  // text parts joined; empty for an assistant message that only calls tools
    nlohmann::json tool_calls = nlohmann::json::array();  // assistant: OpenAI tool_calls, as sent
    std::string tool_call_id;                              // tool: the call answered
    std::string name;
};

// response_format. The schema keeps the request's key order (nlohmann::ordered_json): the grammar lists
// properties in declaration order, so the order the caller wrote is the order generated.
struct ResponseFormat {
    enum class Type { Text, JsonObject, JsonSchema };
    Type type = Type::Text;
    std::string name;                             // json_schema.name: [A-Za-z0-9_-]{1,64}
    nlohmann::ordered_json schema;                // json_schema.schema: an object or a boolean
    bool strict = false;                          // json_schema.strict
};

struct ChatRequest {
    std::string model;
    std::vector<ChatMessage> messages;
    SamplingFields sampling;
    // [{type: function, function: {name, description, parameters, strict}}], key order as sent (the template
    // shows them to the model; parameters' property order is the generation order). Names are unique and
    // [A-Za-z0-9_.:-]{1,64}.
    nlohmann::ordered_json tools = nlohmann::ordered_json::array();
    nlohmann::json tool_choice;       // null, "auto", "none", "required" or {type, function: {name}} (checked)
    bool parallel_tool_calls = true;  // false: at most one call per answer
    ResponseFormat response_format;
};

struct CompletionRequest {
    std::string model;
    std::string prompt;                     // a string prompt …
    std::optional<std::vector<int32_t>> prompt_tokens;  // … or token ids
    SamplingFields sampling;
    ResponseFormat response_format;         // hearth's extension of the completions API (as the chat one's)
};

struct EmbeddingsRequest {
    std::string model;
    std::vector<std::string> texts;              // string inputs …
    std::vector<std::vector<int32_t>> token_inputs;  // … or token-id inputs (one of the two is filled)
    bool base64 = false;               // encoding_format "base64": little-endian float32, base64 (the openai
                                       // npm client's default)
    std::optional<int64_t> dimensions;  // must equal the model's (checked by the server, which knows it)
};

// Parse and validate a request body. Throw ApiError (400) naming the field for malformed JSON, a wrong type,
// an out-of-range value, a missing required field, or a feature hearth does not support.
ChatRequest parse_chat_request(const std::string& body);
CompletionRequest parse_completion_request(const std::string& body);
EmbeddingsRequest parse_embeddings_request(const std::string& body);

// llama-server's POST /tokenize and /detokenize bodies (not OpenAI's, validated the same way).
struct TokenizeRequest {
    std::string content;
    bool add_special = false, parse_special = true, with_pieces = false;
};
TokenizeRequest parse_tokenize_request(const std::string& body);
// Each id must lie in [0, n_vocab).
std::vector<int32_t> parse_detokenize_request(const std::string& body, int64_t n_vocab);
// A token's piece as llama-server's with_pieces gives it: a string when it is valid UTF-8, else its byte
// values (a byte token's fragment of a character has no JSON string).
nlohmann::json piece_json(const std::string& piece);

struct Usage {
    int64_t prompt_tokens = 0, completion_tokens = 0;
    nlohmann::json to_json() const;
};

// Response objects. `created` is Unix seconds; `id` e.g. "chatcmpl-…".
nlohmann::json chat_completion(const std::string& id, const std::string& model, int64_t created,
                               const nlohmann::json& message, const std::string& finish_reason, const Usage& usage,
                               const nlohmann::json& logprobs = nullptr);
// One streamed chunk: delta {role?, content?, tool_calls?}; finish_reason null until the last.
nlohmann::json chat_chunk(const std::string& id, const std::string& model, int64_t created, const nlohmann::json& delta,
                          const std::optional<std::string>& finish_reason, const nlohmann::json& logprobs = nullptr);
nlohmann::json text_completion(const std::string& id, const std::string& model, int64_t created,
                               const std::string& text, const std::optional<std::string>& finish_reason,
                               const std::optional<Usage>& usage, const nlohmann::json& logprobs = nullptr);

// A generated token's log-probability, for `logprobs`: its text (raw bytes, possibly a partial UTF-8
// character), its logprob, the top alternatives, and where its text starts in the completion (in characters).
struct TokenLogprobText {
    std::string piece;
    float logprob = 0.0f;
    std::vector<std::pair<std::string, float>> top;
    int64_t text_offset = 0;
};
// The chat API's choice.logprobs: {"content": [{token, logprob, bytes, top_logprobs: [...]}, ...]}. Token
// texts are made valid UTF-8 (bytes keeps the raw ones); -inf becomes -9999.0, as OpenAI reports it.
nlohmann::json chat_logprobs(const std::vector<TokenLogprobText>& tokens);
// The completions API's: {tokens, token_logprobs, top_logprobs: [{text: logprob}], text_offset}; text offsets
// count from the start of the prompt's text, `offset_base` characters before the completion's.
nlohmann::json completion_logprobs(const std::vector<TokenLogprobText>& tokens, int64_t offset_base = 0);
nlohmann::json embeddings_list(const std::string& model, const std::vector<std::vector<float>>& vectors,
                               int64_t prompt_tokens, bool base64 = false);
// Standard base64 (RFC 4648, with padding) of bytes.
std::string base64_encode(const void* data, size_t n);
nlohmann::json models_list(const std::vector<std::string>& ids, int64_t created);

// Server-sent events: "data: <json>\n\n", and the terminator "data: [DONE]\n\n".
std::string sse_event(const nlohmann::json& j);
std::string sse_done();

}  // namespace hearth::serve
