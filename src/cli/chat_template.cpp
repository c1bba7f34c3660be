// `hearth chat-template`: renders a conversation with a model's chat template (or a template file), the
// way transformers' apply_chat_template does, and prints the prompt.
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "chat/chat_template.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "gguf/gguf.h"
#include "store/model_store.h"
#include "tokenizer/vocab.h"

namespace hearth::cli {

namespace {

nlohmann::ordered_json read_json(const std::string& path, const char* what) {
    const std::string text = read_text(path, what);
    try {
        return nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
        fail("{}: the {} file is not valid JSON: {}", path, what, e.what());
    }
}

}  // namespace

void add_chat_template(CLI::App& app) {
    auto* cmd = app.add_subcommand("chat-template", "Render a conversation with a chat template and print the prompt");
    struct Opts {
        std::string model, template_file, name, messages, tools, vars;
        std::string bos, eos;
        bool add_generation_prompt = false;
    };
    auto o = std::make_shared<Opts>();
    auto* m = cmd->add_option("-m,--model", o->model, "GGUF model: its tokenizer.chat_template and bos/eos tokens");
    auto* t = cmd->add_option("--template", o->template_file, "Jinja2 template file instead of a model's");
    m->excludes(t);
    cmd->add_option("--name", o->name, "Named template variant of the model (tokenizer.chat_template.NAME)");
    cmd->add_option("--messages", o->messages, "JSON file: the messages array [{role, content, ...}, ...]")
        ->required();
    cmd->add_option("--tools", o->tools, "JSON file: the tools array (OpenAI function tools)");
    cmd->add_option("--vars", o->vars, "JSON file: extra template variables, e.g. {\"enable_thinking\": false}");
    cmd->add_option("--bos", o->bos, "bos_token text (default: the model's)");
    cmd->add_option("--eos", o->eos, "eos_token text (default: the model's)");
    cmd->add_flag("--add-generation-prompt", o->add_generation_prompt, "End with the assistant turn's opening");
    cmd->callback([o, cmd] {
        if (o->model.empty() && o->template_file.empty()) fail("give a model (-m) or a template file (--template)");
        ChatInputs in;
        std::string source;
        if (!o->model.empty()) {
            const gguf::File f = gguf::File::open(store::resolve_model(o->model));
            const std::string key = o->name.empty() ? "tokenizer.chat_template" : "tokenizer.chat_template." + o->name;
            if (f.has(key)) {
                source = f.get_str(key);
            } else if (!o->name.empty()) {
                fail("{}: the model has no chat template named '{}' ({} is missing)", o->model, o->name, key);
            } else {
                std::fprintf(stderr, "note: %s has no tokenizer.chat_template: using hearth's default (ChatML)\n",
                             o->model.c_str());
                source = kDefaultChatTemplate;
            }
            if (f.has("tokenizer.ggml.tokens")) {
                const tok::Vocab v = tok::Vocab::from_gguf(f);
                if (v.bos() >= 0) in.bos_token = v.text(v.bos());
                if (v.eos() >= 0) in.eos_token = v.text(v.eos());
            }
        } else {
            source = read_text(o->template_file, "template");
        }
        if (cmd->count("--bos")) in.bos_token = o->bos;
        if (cmd->count("--eos")) in.eos_token = o->eos;
        in.messages = read_json(o->messages, "messages");
        if (!in.messages.is_array()) fail("{}: messages must be a JSON array", o->messages);
        if (!o->tools.empty()) {
            in.tools = read_json(o->tools, "tools");
            if (!in.tools.is_array()) fail("{}: tools must be a JSON array", o->tools);
        }
        if (!o->vars.empty()) {
            in.extra = read_json(o->vars, "vars");
            if (!in.extra.is_object()) fail("{}: vars must be a JSON object", o->vars);
        }
        in.add_generation_prompt = o->add_generation_prompt;
        const ChatTemplate tmpl(source);
        const std::string prompt = tmpl.apply(in);
        std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    });
}

}  // namespace hearth::cli
