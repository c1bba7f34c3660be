// libFuzzer target for the OpenAI request parsers of `hearth serve`: any request body is parsed as a chat,
// completion and embeddings request; each must give a struct or throw ApiError (a 400), nothing else.
#include <cstddef>
#include <cstdint>
#include <string>

#include "serve/openai.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string body(reinterpret_cast<const char*>(data), size);
    using namespace hearth::serve;
    try {
        const ChatRequest r = parse_chat_request(body);
        if (r.messages.empty()) __builtin_trap();
    } catch (const ApiError& e) {
        if (e.status != 400) __builtin_trap();
    }
    try {
        (void)parse_completion_request(body);
    } catch (const ApiError& e) {
        if (e.status != 400) __builtin_trap();
    }
    try {
        const EmbeddingsRequest r = parse_embeddings_request(body);
        if (r.texts.empty() && r.token_inputs.empty()) __builtin_trap();
    } catch (const ApiError& e) {
        if (e.status != 400) __builtin_trap();
    }
    return 0;
}
