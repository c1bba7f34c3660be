#include "serve/structured.h"

#include <algorithm>
#include <deque>
#include <map>

#include <fmt/format.h>

#include "base/error.h"
#include "grammar/json_schema.h"
#include "tokenizer/vocab.h"

namespace hearth::serve {

using grammar::CharRange;
using grammar::Element;
using grammar::Grammar;
using grammar::Sequence;
using ojson = nlohmann::ordered_json;

namespace {

// Code points of UTF-8 text that is known to be valid (our own markers, names checked to be ASCII).
std::vector<uint32_t> code_points(std::string_view s) {
    std::vector<uint32_t> out;
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<uint8_t>(s[i]);
        const int n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
        uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
        for (int k = 1; k < n && i + k < s.size(); ++k) cp = cp << 6 | (static_cast<uint8_t>(s[i + k]) & 0x3F);
        out.push_back(cp);
        i += static_cast<size_t>(n);
    }
    return out;
}

void lit(Sequence& s, std::string_view text) {
    for (uint32_t cp : code_points(text)) s.push_back(Element::codepoint(cp));
}

[[noreturn]] void unenforceable(const std::string& param, const std::string& why) {
    throw ApiError(400, "'" + param + "' cannot be enforced: " + why, "invalid_request_error", param,
                   "unsupported_schema");
}

grammar::JsonSchemaOptions schema_options(bool strict, bool strict_keywords = false) {
    grammar::JsonSchemaOptions o;
    o.allow_additional_properties = !strict;  // OpenAI's strict mode: no properties beyond the declared ones
    o.strict_keywords = strict_keywords;
    return o;
}

Grammar compile_schema(const ojson& schema, bool strict, bool strict_keywords, const std::string& param) {
    Grammar g;
    try {
        g = grammar::compile_json_schema(schema, schema_options(strict, strict_keywords));
    } catch (const Error& e) {
        unenforceable(param, e.what());
    }
    check_finishable(g, param);
    return g;
}

size_t skip_ws(std::string_view s, size_t i) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) ++i;
    return i;
}

std::string_view trim(std::string_view s) {
    const size_t b = skip_ws(s, 0);
    size_t e = s.size();
    while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\n' || s[e - 1] == '\r' || s[e - 1] == '\t')) --e;
    return s.substr(b, e - b);
}

// JSON as Python's json.dumps writes it (", " and ": " separators): the spelling Hermes-style templates show
// the model (their `tojson`), so the prompts hearth writes for them look like the ones the model was trained on.
std::string python_dump(const ojson& j) {
    if (j.is_object()) {
        std::string s = "{";
        bool first = true;
        for (const auto& [k, v] : j.items()) {
            if (!first) s += ", ";
            first = false;
            s += ojson(k).dump() + ": " + python_dump(v);
        }
        return s + "}";
    }
    if (j.is_array()) {
        std::string s = "[";
        for (size_t i = 0; i < j.size(); ++i) s += (i ? ", " : "") + python_dump(j[i]);
        return s + "]";
    }
    return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

}  // namespace

ToolChoice resolve_tool_choice(const ChatRequest& r) {
    ToolChoice c;
    if (r.tools.empty()) return c;
    const nlohmann::json& t = r.tool_choice;
    if (t.is_null() || t == "auto") c.mode = ToolMode::Auto;
    else if (t == "required") c.mode = ToolMode::Required;
    else if (t.is_object()) {
        c.mode = ToolMode::Named;
        c.name = t["function"]["name"].get<std::string>();
    }
    return c;
}

std::optional<Grammar> response_format_grammar(const ResponseFormat& f, bool strict_keywords) {
    switch (f.type) {
        case ResponseFormat::Type::Text: return std::nullopt;
        case ResponseFormat::Type::JsonObject: return grammar::json_object_grammar(schema_options(false));
        case ResponseFormat::Type::JsonSchema: return compile_schema(f.schema, f.strict, strict_keywords, "response_format.json_schema.schema");
    }
    return std::nullopt;
}

std::optional<Grammar> chat_grammar(const ChatRequest& r, bool thinking, bool strict_keywords) {
    std::optional<Grammar> format = response_format_grammar(r.response_format, strict_keywords);
    const ToolChoice choice = resolve_tool_choice(r);
    if (choice.mode == ToolMode::None) return format;

    Grammar g;
    // One alternative per tool: its name as a fixed literal, then arguments under its parameters schema.
    std::vector<Sequence> named;
    for (size_t i = 0; i < r.tools.size(); ++i) {
        const ojson& f = r.tools[i]["function"];
        const std::string name = f["name"].get<std::string>();
        if (choice.mode == ToolMode::Named && name != choice.name) continue;
        const std::string param = fmt::format("tools[{}].function.parameters", i);
        const auto p = f.find("parameters");
        const ojson params = p == f.end() || p->is_null() ? ojson{{"type", "object"}, {"properties", ojson::object()}} : *p;
        const auto strict = f.find("strict");
        const Grammar args = compile_schema(params, strict != f.end() && strict->is_boolean() && strict->get<bool>(),
                                           strict_keywords, param);
        Sequence alt;
        lit(alt, name + "\", \"arguments\": ");
        alt.push_back(Element::ref(import_grammar(g, args, fmt::format("args{}-", i))));
        named.push_back(std::move(alt));
    }
    Sequence call;
    lit(call, std::string(kToolCallOpen) + "\n{\"name\": \"");
    call.push_back(Element::ref(g.add_rule("tool-name-args", std::move(named))));
    lit(call, "}\n" + std::string(kToolCallClose));
    const int call_rule = g.add_rule("tool-call", {call});
    int calls = call_rule;
    if (r.parallel_tool_calls) {
        Sequence more;
        lit(more, "\n");
        more.push_back(Element::ref(call_rule));
        const int rest = g.add_repeat("tool-calls-more", more, 0, -1);
        calls = g.add_rule("tool-calls", {{Element::ref(call_rule), Element::ref(rest)}});
    }

    // Free text never contains a marker: once "<tool_call>" is written, only calls may follow, and the parser
    // never meets a stray marker or an unterminated thinking block.
    const int text = add_text_avoiding(g, {std::string(kToolCallOpen), std::string(kToolCallClose), "<think>", "</think>"},
                                       "text");
    Sequence think_opt_seq;
    if (thinking) {
        Sequence nl;
        lit(nl, "\n");
        const int sep = g.add_repeat("think-sep", nl, 0, 2);
        Sequence closed, open_in_prompt;
        lit(closed, "<think>");
        closed.push_back(Element::ref(text));
        lit(closed, "</think>");
        closed.push_back(Element::ref(sep));
        open_in_prompt.push_back(Element::ref(text));  // templates that end the prompt with "<think>\n"
        lit(open_in_prompt, "</think>");
        open_in_prompt.push_back(Element::ref(sep));
        think_opt_seq.push_back(Element::ref(g.add_rule("think-opt", {{}, closed, open_in_prompt})));
    }
    Sequence root = think_opt_seq;
    if (choice.mode == ToolMode::Auto && format) {
        const int json = import_grammar(g, *format, "format-");
        root.push_back(Element::ref(g.add_rule("answer", {{Element::ref(json)}, {Element::ref(calls)}})));
    } else if (choice.mode == ToolMode::Auto) {
        root.push_back(Element::ref(text));
        root.push_back(Element::ref(g.add_rule("tool-calls-opt", {{Element::ref(calls)}, {}})));
    } else {
        root.push_back(Element::ref(calls));
    }
    g.root = g.add_rule("root", {root});
    return g;
}

int import_grammar(Grammar& into, const Grammar& from, std::string_view prefix) {
    const int base = static_cast<int>(into.rules.size());
    into.rules.reserve(into.rules.size() + from.rules.size());
    for (const grammar::Rule& r : from.rules) {
        grammar::Rule copy{std::string(prefix) + r.name, r.alternatives};
        for (Sequence& s : copy.alternatives)
            for (Element& e : s)
                if (e.kind == Element::Kind::Rule) e.rule += base;
        into.rules.push_back(std::move(copy));
    }
    return base + from.root;
}

int add_text_avoiding(Grammar& g, const std::vector<std::string>& markers, std::string_view name) {
    // The trie of the markers; a state is "dead" once a marker has been read (it or a suffix on its failure
    // chain ends one), and dead states get no rule: no character leads there.
    struct State {
        std::map<uint32_t, int> next;
        int fail = 0;
        bool dead = false;
    };
    std::vector<State> st(1);
    std::vector<uint32_t> alphabet;
    for (const std::string& m : markers) {
        if (m.empty()) fail("add_text_avoiding: an empty marker");
        int s = 0;
        for (uint32_t cp : code_points(m)) {
            alphabet.push_back(cp);
            auto it = st[static_cast<size_t>(s)].next.find(cp);
            if (it == st[static_cast<size_t>(s)].next.end()) {
                st.push_back({});
                it = st[static_cast<size_t>(s)].next.emplace(cp, static_cast<int>(st.size() - 1)).first;
            }
            s = it->second;
        }
        st[static_cast<size_t>(s)].dead = true;
    }
    std::sort(alphabet.begin(), alphabet.end());
    alphabet.erase(std::unique(alphabet.begin(), alphabet.end()), alphabet.end());
    // Failure links breadth-first; then delta(s, c) follows them (Aho-Corasick's goto function).
    std::vector<int> order;
    std::deque<int> queue;
    for (const auto& [cp, t] : st[0].next) queue.push_back(t);
    while (!queue.empty()) {
        const int s = queue.front();
        queue.pop_front();
        order.push_back(s);
        for (const auto& [cp, t] : st[static_cast<size_t>(s)].next) {
            int f = st[static_cast<size_t>(s)].fail;
            while (f && !st[static_cast<size_t>(f)].next.count(cp)) f = st[static_cast<size_t>(f)].fail;
            const auto it = st[static_cast<size_t>(f)].next.find(cp);
            st[static_cast<size_t>(t)].fail = it != st[static_cast<size_t>(f)].next.end() && it->second != t ? it->second : 0;
            queue.push_back(t);
        }
    }
    for (int s : order) st[static_cast<size_t>(s)].dead |= st[static_cast<size_t>(st[static_cast<size_t>(s)].fail)].dead;
    const auto delta = [&](int s, uint32_t cp) {
        for (;;) {
            const auto it = st[static_cast<size_t>(s)].next.find(cp);
            if (it != st[static_cast<size_t>(s)].next.end()) return it->second;
            if (s == 0) return 0;
            s = st[static_cast<size_t>(s)].fail;
        }
    };

    std::vector<int> rule(st.size(), -1);
    for (size_t s = 0; s < st.size(); ++s)
        if (!st[s].dead) rule[s] = g.add_rule(name, {});
    std::vector<CharRange> alpha_ranges;
    for (uint32_t cp : alphabet) alpha_ranges.push_back({cp, cp});
    const std::vector<CharRange> others = grammar::complement(alpha_ranges);
    for (size_t s = 0; s < st.size(); ++s) {
        if (st[s].dead) continue;
        std::map<int, std::vector<CharRange>> by_target;  // characters grouped by the state they lead to
        for (uint32_t cp : alphabet) {
            const int t = delta(static_cast<int>(s), cp);
            if (!st[static_cast<size_t>(t)].dead) by_target[t].push_back({cp, cp});
        }
        // A character of no marker restarts the automaton.
        by_target[0].insert(by_target[0].end(), others.begin(), others.end());
        std::vector<Sequence> alts;
        alts.push_back({});  // the text may end in any live state
        for (auto& [t, ranges] : by_target)
            alts.push_back({Element::chars(std::move(ranges)), Element::ref(rule[static_cast<size_t>(t)])});
        g.rules[static_cast<size_t>(rule[s])].alternatives = std::move(alts);
    }
    return rule[0];
}

void check_finishable(const Grammar& g, const std::string& param) {
    const std::vector<char> done = grammar::finishable_rules(g);
    for (size_t r = 0; r < done.size(); ++r)
        if (!done[r])
            unenforceable(param, fmt::format("no finite JSON value satisfies it (rule '{}' of its grammar recurses "
                                             "without end)",
                                             g.rules[r].name));
}

// ---- tool calls in the generated text

ToolCallSplitter::Piece ToolCallSplitter::push(std::string_view text) {
    Piece out;
    buf_ += text;
    if (!in_calls_) {
        const size_t p = buf_.find(kToolCallOpen);
        if (p == std::string::npos) {
            // Hold back the longest tail that may be the start of the marker.
            size_t keep = 0;
            for (size_t k = std::min(kToolCallOpen.size() - 1, buf_.size()); k > 0; --k)
                if (buf_.compare(buf_.size() - k, k, kToolCallOpen.data(), k) == 0) {
                    keep = k;
                    break;
                }
            out.content = buf_.substr(0, buf_.size() - keep);
            buf_.erase(0, buf_.size() - keep);
            return out;
        }
        out.content = buf_.substr(0, p);
        buf_.erase(0, p);
        in_calls_ = true;
    }
    scan_calls(out);
    return out;
}

void ToolCallSplitter::scan_calls(Piece& out) {
    // <tool_call> {json} </tool_call>, whitespace around the parts; stops at the first incomplete call (or at
    // text that is not a call, which the grammar never produces: finish() returns it as content).
    for (;;) {
        size_t i = skip_ws(buf_, 0);
        if (buf_.compare(i, kToolCallOpen.size(), kToolCallOpen) != 0) return;
        i = skip_ws(buf_, i + kToolCallOpen.size());
        if (i >= buf_.size() || buf_[i] != '{') return;
        const size_t end = json_extent(buf_, i);
        if (end == std::string::npos) return;
        const size_t close = skip_ws(buf_, end);
        if (buf_.compare(close, kToolCallClose.size(), kToolCallClose) != 0) return;
        const ojson body = ojson::parse(buf_.begin() + static_cast<std::ptrdiff_t>(i),
                                        buf_.begin() + static_cast<std::ptrdiff_t>(end), nullptr, false);
        if (!body.is_object()) return;
        const auto name = body.find("name");
        const auto args = body.find("arguments");
        if (name == body.end() || !name->is_string() || args == body.end() || !args->is_object()) return;
        out.calls.push_back(ToolCall{id_prefix_ + std::to_string(n_calls_++), name->get<std::string>(), args->dump()});
        buf_.erase(0, close + kToolCallClose.size());
    }
}

ToolCallSplitter::Piece ToolCallSplitter::finish() {
    Piece out;
    if (in_calls_) {
        scan_calls(out);
        out.content = std::string(trim(buf_));  // the rest of an unfinished call, without the separators
    } else {
        out.content = buf_;
    }
    buf_.clear();
    return out;
}

ParsedMessage parse_generated_tool_calls(std::string_view text, const std::string& id_prefix) {
    const size_t p = text.find(kToolCallOpen);
    const std::string_view before = text.substr(0, p);
    ParsedMessage m;
    try {
        m = parse_tool_calls(ToolCallFormat::Hermes, before);  // no call markers: content and thinking
    } catch (const Error&) {
        m = ParsedMessage{};  // a thinking block cut short (max_tokens, a stop string): the text as it is
        m.content = std::string(trim(before));
    }
    if (p == std::string_view::npos) return m;
    ToolCallSplitter split(id_prefix);
    ToolCallSplitter::Piece a = split.push(text.substr(p));
    ToolCallSplitter::Piece b = split.finish();
    m.tool_calls = std::move(a.calls);
    m.tool_calls.insert(m.tool_calls.end(), b.calls.begin(), b.calls.end());
    // An unfinished call stays visible as text rather than vanishing (finish_reason says it was cut).
    if (const std::string_view rest = trim(b.content); !rest.empty()) {
        if (!m.content.empty()) m.content += '\n';
        m.content += rest;
    }
    return m;
}

ToolSupport probe_tool_support(const std::string& source, const ChatTemplate& tmpl, const ChatInputs& base) {
    // Whether the template writes `needle` for this input (false when it fails on it).
    const auto renders = [&](const ChatInputs& in, const std::string& needle) {
        try {
            return tmpl.apply(in).find(needle) != std::string::npos;
        } catch (const Error&) {
            return false;
        }
    };
    ToolSupport t;
    t.thinking = source.find("<think>") != std::string::npos;
    ChatInputs in = base;
    in.messages = ojson::array({{{"role", "user"}, {"content", "hi"}}});
    in.tools = ojson::parse(R"([{"type": "function", "function": {"name": "hearth_probe_tool", "description": "probe",
                                 "parameters": {"type": "object", "properties": {}}}}])");
    t.renders_tools = renders(in, "hearth_probe_tool");
    // Earlier calls are probed with the tools given too: some templates (Hermes 3's tool_use) need them.
    in.messages.push_back(ojson::parse(R"({"role": "assistant", "content": "", "tool_calls": [{"id": "call_0",
        "type": "function", "function": {"name": "hearth_probe_call", "arguments": "{}"}}]})"));
    in.messages.push_back({{"role", "tool"}, {"tool_call_id", "call_0"}, {"content", "42"}});
    t.renders_calls = renders(in, "hearth_probe_call");
    const std::optional<ToolCallFormat> format = detect_tool_call_format(source);
    if (format == ToolCallFormat::Hermes || (!format && !t.renders_tools)) {
        t.generate = true;
    } else if (format) {
        t.refusal = fmt::format(
            "'tools' cannot be served for this model: its chat template writes tool calls in the {} format, and "
            "hearth generates tool calls under a grammar only in the Hermes format (<tool_call> JSON)",
            tool_call_format_name(*format));
    } else {
        t.refusal = "'tools' cannot be served for this model: its chat template shows tools with a tool-call format "
                    "hearth does not recognise, so calls could not be constrained to it";
    }
    return t;
}

ChatInputs tool_chat_inputs(const ChatRequest& r, bool offer_tools, const ToolSupport& ts, ChatInputs base) {
    ChatInputs in = std::move(base);
    in.messages = ojson::array();
    for (const auto& msg : r.messages) {
        ojson mj = {{"role", msg.role == "developer" ? "system" : msg.role}, {"content", msg.content}};
        if (!msg.tool_calls.empty()) mj["tool_calls"] = msg.tool_calls;
        if (!msg.tool_call_id.empty()) mj["tool_call_id"] = msg.tool_call_id;
        if (!ts.renders_calls && !msg.tool_calls.empty()) {
            std::string text = msg.content;
            for (const auto& c : msg.tool_calls) text += (text.empty() ? "" : "\n") + hermes_call_text(c);
            mj = {{"role", "assistant"}, {"content", text}};
        } else if (!ts.renders_calls && msg.role == "tool") {
            // As Qwen2.5's template writes results: a user turn of <tool_response> blocks.
            mj = {{"role", "user"}, {"content", "<tool_response>\n" + msg.content + "\n</tool_response>"}};
        }
        in.messages.push_back(std::move(mj));
    }
    if (offer_tools && ts.renders_tools) {
        in.tools = r.tools;
    } else if (offer_tools) {
        const std::string prompt = hermes_tools_prompt(r.tools);
        ojson& first = in.messages[0];
        if (first["role"] == "system")
            first["content"] = first["content"].get<std::string>() + "\n\n" + prompt;
        else
            in.messages.insert(in.messages.begin(), ojson{{"role", "system"}, {"content", prompt}});
    }
    return in;
}

std::string hermes_tools_prompt(const ojson& tools) {
    std::string s =
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with "
        "function signatures within <tools></tools> XML tags:\n<tools>";
    for (const ojson& t : tools) s += "\n" + python_dump(t);
    s += "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
         "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
         "<args-json-object>}\n</tool_call>";
    return s;
}

std::string hermes_call_text(const ojson& call) {
    const ojson f = call.is_object() && call.contains("function") ? call["function"] : call;
    ojson args = f.is_object() && f.contains("arguments") ? f["arguments"] : ojson::object();
    if (args.is_string()) {
        ojson parsed = ojson::parse(args.get<std::string>(), nullptr, false);
        if (!parsed.is_discarded()) args = std::move(parsed);
    }
    const ojson name = f.is_object() && f.contains("name") ? f["name"] : ojson("");
    return std::string(kToolCallOpen) + "\n{\"name\": " + python_dump(name) + ", \"arguments\": " + python_dump(args) +
           "}\n" + std::string(kToolCallClose);
}

// ---- compiled grammars

std::shared_ptr<const grammar::TokenTable> GrammarCache::tokens() {
    std::lock_guard<std::mutex> g(m_);
    if (!tokens_) tokens_ = std::make_shared<const grammar::TokenTable>(grammar::TokenTable::from_vocab(vocab_));
    return tokens_;
}

std::shared_ptr<const grammar::CompiledGrammar> GrammarCache::get(const Grammar& g) {
    std::string key = grammar::to_gbnf(g);
    {
        std::lock_guard<std::mutex> lock(m_);
        if (auto it = index_.find(key); it != index_.end()) {
            lru_.splice(lru_.begin(), lru_, it->second);
            ++hits_;
            return it->second->second;
        }
    }
    // Compiled outside the lock: a big grammar must not hold up requests whose grammars are cached. Two
    // requests with the same new grammar may both compile it; the first to finish is kept.
    std::shared_ptr<const grammar::CompiledGrammar> compiled = grammar::compile(g, tokens());
    std::lock_guard<std::mutex> lock(m_);
    if (auto it = index_.find(key); it != index_.end()) return it->second->second;
    lru_.emplace_front(key, compiled);
    index_.emplace(std::move(key), lru_.begin());
    if (lru_.size() > capacity_) {
        index_.erase(lru_.back().first);
        lru_.pop_back();
    }
    return compiled;
}

size_t GrammarCache::size() const {
    std::lock_guard<std::mutex> g(m_);
    return lru_.size();
}

int64_t GrammarCache::hits() const {
    std::lock_guard<std::mutex> g(m_);
    return hits_;
}

}  // namespace hearth::serve
