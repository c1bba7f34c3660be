// Structured output for `hearth serve`: a request's response_format and tools become ONE grammar (grammar.h's
// IR), compiled for the model's vocabulary and handed to the Scheduler, which masks every sampled token with
// it. Nothing here fails open: a constraint the grammar cannot enforce is a 400 naming the field and the
// keyword (compile_json_schema's message), never an unconstrained answer.
//
// Tool calls are generated in the Hermes syntax (Qwen2.5/Qwen3, Hermes 2/3, and hearth's default for
// templates that teach no syntax):
//     <tool_call>\n{"name": "NAME", "arguments": ARGS}\n</tool_call>
// calls separated by "\n"; NAME is one of the tools' names, a fixed literal, and ARGS follows that tool's
// `parameters` schema. tool_choice:
// - "required": one or more calls (one with parallel_tool_calls false) and nothing else;
// - a named function: the same with that function only;
// - "auto": free text that never contains a tool-call (or thinking) marker, then optionally calls; with a
//   response_format, the text alternative is the format's JSON instead;
// - "none": no tool grammar (the response_format's alone, if any).
// When the template knows thinking blocks, any of these may open with <think>...</think> (or, for templates
// that open it in the prompt, with reasoning text and </think>).
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "chat/tool_calls.h"
#include "grammar/grammar.h"
#include "grammar/matcher.h"
#include "serve/openai.h"

namespace hearth::tok {
class Vocab;
}

namespace hearth::serve {

enum class ToolMode { None, Auto, Required, Named };
struct ToolChoice {
    ToolMode mode = ToolMode::None;  // None also when no tools are given
    std::string name;                // Named: the function
};
// tool_choice resolved against tools (already validated by parse_chat_request): null means auto when tools
// are given, as OpenAI's default.
ToolChoice resolve_tool_choice(const ChatRequest& r);

// The grammar a response_format asks for, or nullopt for text. Throws ApiError 400 with param
// response_format.json_schema.schema (the message naming the keyword and its JSON pointer) for a schema the
// grammar cannot enforce. strict_keywords: also for keywords and formats JSON Schema leaves to annotation
// (grammar::JsonSchemaOptions::strict_keywords).
std::optional<grammar::Grammar> response_format_grammar(const ResponseFormat& f, bool strict_keywords = false);

// The grammar of a chat request: response_format and tools together (see the top of this file), or nullopt
// when the answer is free text. `thinking`: the model's template knows <think> blocks. Throws ApiError 400
// naming the field (response_format.json_schema.schema, tools[i].function.parameters) for what cannot be
// enforced.
std::optional<grammar::Grammar> chat_grammar(const ChatRequest& r, bool thinking, bool strict_keywords = false);

// What a model's chat template does with tools, found once per server by rendering probe conversations.
struct ToolSupport {
    bool generate = false;       // tool calls can be served (Hermes syntax)
    std::string refusal;         // otherwise why not: the 400 for a request with tools
    bool renders_tools = false;  // the template shows `tools` to the model itself
    bool renders_calls = false;  // ... and earlier assistant tool_calls
    bool thinking = false;       // the template knows <think> blocks
};
// Templates that use the Hermes syntax are served as they are; a template that shows no tools at all teaches
// no syntax, and gets Hermes taught by hearth (tool_chat_inputs); a template that teaches another syntax is
// refused: its calls could not be constrained to what the model was trained to write. `base` carries the
// special tokens the template expects (bos_token, ...).
ToolSupport probe_tool_support(const std::string& source, const ChatTemplate& tmpl, const ChatInputs& base);

// The template's view of a chat request: `base` plus the messages (developer as system), and the tools when
// `offer_tools`. Where the template cannot show tools, they are described in the system message
// (hermes_tools_prompt), and where it cannot show earlier calls, calls and tool results are written in the
// Hermes syntax (<tool_call>, <tool_response>), so that the model sees what it is asked to write.
ChatInputs tool_chat_inputs(const ChatRequest& r, bool offer_tools, const ToolSupport& ts, ChatInputs base);

// ---- building blocks (used above; exposed for the tests)

// Copies `from`'s rules into `into` (names prefixed with `prefix`, which must make them unique there) and
// returns the index of from's root in `into`.
int import_grammar(grammar::Grammar& into, const grammar::Grammar& from, std::string_view prefix);

// A rule matching any text (any code points, the empty text included) in which none of `markers` (non-empty
// UTF-8 strings) occurs: the Aho-Corasick automaton of the markers, one rule per state that has not matched
// one, whose alternatives are "end here" or one character leading to the next state.
int add_text_avoiding(grammar::Grammar& g, const std::vector<std::string>& markers, std::string_view name);

// Throws ApiError 400 with `param` if some rule of g can never finish (a schema that recurses without a way
// out, say): the matcher refuses such grammars, and the error should name the field that made it.
void check_finishable(const grammar::Grammar& g, const std::string& param);

// ---- tool calls in the generated text

// The Hermes tool-call markers.
inline constexpr std::string_view kToolCallOpen = "<tool_call>", kToolCallClose = "</tool_call>";

// Splits text generated under a Hermes tool grammar, as it streams, into content and complete calls. Calls are
// found with a JSON-aware scan (an argument string may itself contain "</tool_call>"); ids are
// `id_prefix` + the call's index. Text that is not a well-formed call (an answer cut by max_tokens or a stop
// string inside a call) comes back as content at finish().
class ToolCallSplitter {
public:
    explicit ToolCallSplitter(std::string id_prefix) : id_prefix_(std::move(id_prefix)) {}

    struct Piece {
        std::string content;          // text that is definitely content
        std::vector<ToolCall> calls;  // calls completed by this text
    };
    Piece push(std::string_view text);
    Piece finish();  // the rest: content held back, or an unfinished call's text
    int n_calls() const { return n_calls_; }

private:
    void scan_calls(Piece& out);

    std::string id_prefix_;
    std::string buf_;        // content that may begin the open marker; or, in calls, the unparsed calls text
    bool in_calls_ = false;  // the open marker has been seen
    int n_calls_ = 0;
};

// The whole assistant message of a non-streamed answer under a tool grammar: content (with <think> blocks split
// into reasoning_content by parse_tool_calls when they are complete) and tool_calls.
ParsedMessage parse_generated_tool_calls(std::string_view text, const std::string& id_prefix);

// What the model is told when its template does not render `tools` itself (hearth's default ChatML, or any
// template without tool support): the Hermes system prompt of Qwen2.5's template, listing the tools.
std::string hermes_tools_prompt(const nlohmann::ordered_json& tools);
// An earlier assistant call written back as the model would have written it (for templates that do not render
// tool_calls themselves); `arguments` is OpenAI's JSON string (or an object).
std::string hermes_call_text(const nlohmann::ordered_json& call);

// ---- compiled grammars

// Compiles grammars for one vocabulary: the token table is built once (on first use), and the last `capacity`
// compiled grammars are kept by their GBNF text, so a repeated schema costs a lookup. Thread-safe.
class GrammarCache {
public:
    explicit GrammarCache(const tok::Vocab& vocab, size_t capacity = 32) : vocab_(vocab), capacity_(capacity) {}
    // Throws hearth::Error if the grammar cannot be compiled (see CompiledGrammar).
    std::shared_ptr<const grammar::CompiledGrammar> get(const grammar::Grammar& g);
    size_t size() const;
    int64_t hits() const;

private:
    std::shared_ptr<const grammar::TokenTable> tokens();

    const tok::Vocab& vocab_;
    const size_t capacity_;
    mutable std::mutex m_;
    std::shared_ptr<const grammar::TokenTable> tokens_;
    using Entry = std::pair<std::string, std::shared_ptr<const grammar::CompiledGrammar>>;
    std::list<Entry> lru_;  // most recent first
    std::unordered_map<std::string, std::list<Entry>::iterator> index_;
    int64_t hits_ = 0;
};

}  // namespace hearth::serve
