// Chat prompt rendering through the Jinja2 interpreter (see chat_template.h).
#include "chat/chat_template.h"

namespace hearth {

const char* const kDefaultChatTemplate =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

nlohmann::ordered_json chat_context(const ChatInputs& in) {
    nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
    ctx["messages"] = in.messages;
    ctx["tools"] = in.tools;
    ctx["documents"] = nullptr;
    ctx["add_generation_prompt"] = in.add_generation_prompt;
    ctx["bos_token"] = in.bos_token;
    ctx["eos_token"] = in.eos_token;
    if (in.extra.is_object())
        for (auto it = in.extra.begin(); it != in.extra.end(); ++it) ctx[it.key()] = it.value();
    return ctx;
}

std::string ChatTemplate::apply(const ChatInputs& in, const std::function<std::tm()>& now,
                                const jinja::Limits& limits) const {
    return tmpl_.render(chat_context(in), limits, now);
}

}  // namespace hearth
