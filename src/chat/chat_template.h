// Chat prompt rendering: a model's Jinja2 chat template (jinja.h) applied to a conversation the way
// transformers' apply_chat_template does (same variables, same environment).
#pragma once
#include <ctime>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "chat/jinja.h"

namespace hearth {

struct ChatInputs {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // [{role, content, ...}, ...]
    nlohmann::ordered_json tools;                                       // null: no tools (`tools` is None)
    bool add_generation_prompt = false;
    std::string bos_token, eos_token;
    nlohmann::ordered_json extra = nlohmann::ordered_json::object();  // e.g. {"enable_thinking": false}
};

// The variables a chat template sees: messages, tools, documents (None), add_generation_prompt,
// bos_token, eos_token, then `extra` (which may override them).
nlohmann::ordered_json chat_context(const ChatInputs& in);

// Used when a model carries no tokenizer.chat_template: ChatML (<|im_start|>role\ncontent<|im_end|>\n), the
// format most instruction-tuned small models use. Documented in README; hearth says so when it falls back, so
// the choice never changes silently.
extern const char* const kDefaultChatTemplate;

class ChatTemplate {
public:
    explicit ChatTemplate(const std::string& source) : tmpl_(source) {}  // throws hearth::Error on bad syntax
    // The prompt text; `now` fixes strftime_now's clock (default: the local time).
    std::string apply(const ChatInputs& in, const std::function<std::tm()>& now = {},
                      const jinja::Limits& limits = {}) const;

private:
    jinja::Template tmpl_;
};

}  // namespace hearth
