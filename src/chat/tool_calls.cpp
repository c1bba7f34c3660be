// Tool-call parsing, hand-written: the syntaxes are defined by model families (their chat templates and
// model cards: Hermes/Qwen, Llama 3.x, Mistral, gpt-oss harmony, DeepSeek, Granite), not by any standard,
// and no packaged C/C++ library parses them; each parser below is a small scanner over the exact markers
// the templates in ../shared/templates emit, with JSON handled by nlohmann::json.
#include "chat/tool_calls.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "base/error.h"

namespace hearth {

using ojson = nlohmann::ordered_json;

namespace {

constexpr std::string_view kWs = " \t\r\n";

std::string_view trim(std::string_view s) {
    const size_t b = s.find_first_not_of(kWs);
    if (b == std::string_view::npos) return {};
    const size_t e = s.find_last_not_of(kWs);
    return s.substr(b, e - b + 1);
}

bool starts_with(std::string_view s, size_t pos, std::string_view p) {
    return pos <= s.size() && s.substr(pos).substr(0, p.size()) == p;
}

// A short, printable excerpt of `s` for error messages.
std::string excerpt(std::string_view s) {
    constexpr size_t kMax = 60;
    std::string out;
    for (char c : s.substr(0, kMax)) {
        if (c == '\n') out += "\\n";
        else if (static_cast<unsigned char>(c) < 0x20) out += '?';
        else out += c;
    }
    if (s.size() > kMax) out += "...";
    return "'" + out + "'";
}

void append_text(std::string& dst, std::string_view s) {
    s = trim(s);
    if (s.empty()) return;
    if (!dst.empty()) dst += '\n';
    dst += s;
}


class Parser {
public:
    Parser(ToolCallFormat f, std::string_view text) : fmt_(f), name_(tool_call_format_name(f)), text_(text) {}

    template <typename... Args>
    [[noreturn]] void error(fmt::format_string<Args...> f, Args&&... args) const {
        fail("{} tool calls: {}", name_, fmt::format(f, std::forward<Args>(args)...));
    }

    ojson parse_json(std::string_view s, std::string_view what) const {
        s = trim(s);
        if (s.empty()) error("{} is empty", what);
        try {
            return ojson::parse(s);
        } catch (const ojson::exception& e) {
            error("{} is not valid JSON ({}): {}", what, e.what(), excerpt(s));
        }
    }

    // Tool names are identifiers (OpenAI: [A-Za-z0-9_-]; dots and colons for namespaced builtins).
    std::string check_name(std::string_view name) const {
        name = trim(name);
        if (name.empty()) error("tool call has an empty name");
        for (char c : name) {
            const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                            c == '-' || c == '.' || c == ':';
            if (!ok) error("invalid tool name {}", excerpt(name));
        }
        if (name.size() > 256) error("tool name is too long ({} bytes)", name.size());
        return std::string(name);
    }

    // Arguments as given: an object, or a string holding a JSON object (as some templates tojson them).
    std::string check_args(const ojson& args, const std::string& name) const {
        if (args.is_object()) return args.dump();
        if (args.is_string()) {
            const std::string& s = args.get_ref<const std::string&>();
            const ojson inner = parse_json(s, fmt::format("arguments string of tool call '{}'", name));
            if (inner.is_object()) return inner.dump();
            error("arguments of tool call '{}' are not a JSON object (got a string holding {})", name, inner.type_name());
        }
        error("arguments of tool call '{}' are not a JSON object (got {})", name, args.type_name());
    }

    void add(std::string name, std::string args, std::string id = {}) {
        if (id.empty()) id = fmt::format("call_{}", msg_.tool_calls.size());
        msg_.tool_calls.push_back(ToolCall{std::move(id), std::move(name), std::move(args)});
    }

    // {"name": ..., "arguments"|"parameters": {...}, ["id": ...]}
    void add_object(const ojson& j) {
        if (!j.is_object()) error("tool call is not a JSON object (got {})", j.type_name());
        const auto n = j.find("name");
        if (n == j.end()) error("tool call has no \"name\": {}", excerpt(j.dump()));
        if (!n->is_string()) error("tool call \"name\" is not a string");
        const std::string name = check_name(n->get<std::string>());
        auto a = j.find("arguments");
        if (a == j.end()) a = j.find("parameters");
        const std::string args = a == j.end() ? std::string("{}") : check_args(*a, name);
        std::string id;
        if (const auto i = j.find("id"); i != j.end() && i->is_string()) id = i->get<std::string>();
        add(name, args, id);
    }

    // A JSON object (one call) or array (several).
    void add_json_calls(std::string_view s, std::string_view what) {
        const ojson j = parse_json(s, what);
        if (j.is_array()) {
            for (const auto& e : j) add_object(e);
        } else {
            add_object(j);
        }
    }

    // Splits off <open>...</close> thinking (the open tag may be in the prompt, so text before a lone
    // close tag is reasoning too).
    std::string_view take_thinking(std::string_view s, std::string_view open, std::string_view close) {
        const size_t c = s.find(close);
        const size_t o = s.find(open);
        if (c == std::string_view::npos) {
            if (o != std::string_view::npos) error("unterminated {} block (no {})", open, close);
            return s;
        }
        if (o != std::string_view::npos && o < c) {
            append_text(msg_.content, s.substr(0, o));
            append_text(msg_.reasoning_content, s.substr(o + open.size(), c - o - open.size()));
        } else {
            append_text(msg_.reasoning_content, s.substr(0, c));
        }
        return s.substr(c + close.size());
    }

    ParsedMessage run() {
        switch (fmt_) {
            case ToolCallFormat::Hermes: hermes(); break;
            case ToolCallFormat::Llama3: llama3(); break;
            case ToolCallFormat::Mistral: mistral(); break;
            case ToolCallFormat::GptOss: gpt_oss(); break;
            case ToolCallFormat::DeepSeek: deepseek(); break;
            case ToolCallFormat::Granite: granite(); break;
        }
        msg_.content = std::string(trim(msg_.content));
        msg_.reasoning_content = std::string(trim(msg_.reasoning_content));
        return std::move(msg_);
    }

private:
    void hermes() {
        std::string_view s = take_thinking(text_, "<think>", "</think>");
        constexpr std::string_view kOpen = "<tool_call>", kClose = "</tool_call>";
        for (;;) {
            const size_t o = s.find(kOpen);
            const size_t stray = s.find(kClose);
            if (stray != std::string_view::npos && stray < o) error("</tool_call> without a matching <tool_call>");
            if (o == std::string_view::npos) {
                append_text(msg_.content, s);
                return;
            }
            append_text(msg_.content, s.substr(0, o));
            s = s.substr(o + kOpen.size());
            const size_t c = s.find(kClose);
            if (c == std::string_view::npos) error("unterminated <tool_call> (no </tool_call>): {}", excerpt(s));
            const std::string_view body = s.substr(0, c);
            if (body.find(kOpen) != std::string_view::npos) error("nested <tool_call> inside a <tool_call>");
            add_json_calls(body, "<tool_call> body");
            s = s.substr(c + kClose.size());
        }
    }

    // Llama 3.x JSON calls: one or more objects separated by whitespace or ';'.
    void llama3_json(std::string_view s) {
        size_t pos = 0;
        for (;;) {
            while (pos < s.size() && (kWs.find(s[pos]) != std::string_view::npos || s[pos] == ';')) ++pos;
            if (pos >= s.size()) return;
            if (s[pos] != '{') error("unexpected text after tool call: {}", excerpt(s.substr(pos)));
            const size_t e = json_extent(s, pos);
            if (e == std::string_view::npos) error("truncated tool call JSON: {}", excerpt(s.substr(pos)));
            ojson j = parse_json(s.substr(pos, e - pos), "tool call");
            // {"type": "function", "name": ..., "parameters": ...} is also emitted; "type" is ignored.
            add_object(j);
            pos = e;
        }
    }

    // Does the (trimmed) text look like a Llama 3 JSON call: {"name": or {"type": "function"?
    static bool looks_like_llama_json(std::string_view s) {
        if (s.empty() || s[0] != '{') return false;
        const std::string_view rest = trim(s.substr(1));
        if (starts_with(rest, 0, "\"name\"")) return true;
        if (!starts_with(rest, 0, "\"type\"")) return false;
        const std::string_view after = trim(rest.substr(6));
        return starts_with(after, 0, ":") && starts_with(trim(after.substr(1)), 0, "\"function\"");
    }

    // <|python_tag|>tool.call(key="value", n=3): builtin tools (brave_search, wolfram_alpha, ...).
    void llama3_builtin(std::string_view s) {
        const size_t dot = s.find(".call(");
        const std::string name = check_name(s.substr(0, dot));
        std::string_view a = trim(s.substr(dot + 6));
        if (a.empty() || a.back() != ')') error("unterminated {}.call( (no closing parenthesis)", name);
        a = a.substr(0, a.size() - 1);
        ojson args = ojson::object();
        size_t p = 0;
        auto skip_ws = [&] { while (p < a.size() && kWs.find(a[p]) != std::string_view::npos) ++p; };
        for (;;) {
            skip_ws();
            if (p >= a.size()) break;
            const size_t k0 = p;
            while (p < a.size() && (std::isalnum(static_cast<unsigned char>(a[p])) || a[p] == '_')) ++p;
            const std::string key(a.substr(k0, p - k0));
            skip_ws();
            if (key.empty() || p >= a.size() || a[p] != '=') error("{}.call(...) argument is not key=value: {}", name, excerpt(a.substr(k0)));
            ++p;
            skip_ws();
            if (p >= a.size()) error("{}.call(...) argument '{}' has no value", name, key);
            if (a[p] == '"' || a[p] == '\'') {
                const char q = a[p++];
                std::string v;
                bool closed = false;
                while (p < a.size()) {
                    char c = a[p++];
                    if (c == q) { closed = true; break; }
                    if (c == '\\' && p < a.size()) {
                        c = a[p++];
                        if (c == 'n') c = '\n';
                        else if (c == 't') c = '\t';
                    }
                    v += c;
                }
                if (!closed) error("{}.call(...) argument '{}' has an unterminated string", name, key);
                try {
                    args[key] = v;
                    (void)args.dump();  // rejects invalid UTF-8 here, not in the caller
                } catch (const ojson::exception&) {
                    error("{}.call(...) argument '{}' is not valid UTF-8", name, key);
                }
            } else {
                const size_t v0 = p;
                while (p < a.size() && a[p] != ',' && kWs.find(a[p]) == std::string_view::npos) ++p;
                const std::string_view v = a.substr(v0, p - v0);
                if (v == "True" || v == "true") args[key] = true;
                else if (v == "False" || v == "false") args[key] = false;
                else if (v == "None" || v == "null") args[key] = nullptr;
                else {
                    ojson num = parse_json(v, fmt::format("{}.call(...) argument '{}'", name, key));
                    if (!num.is_number()) error("{}.call(...) argument '{}' is not a simple value: {}", name, key, excerpt(v));
                    args[key] = num;
                }
            }
            skip_ws();
            if (p < a.size()) {
                if (a[p] != ',') error("{}.call(...) expected ',' between arguments: {}", name, excerpt(a.substr(p)));
                ++p;
            }
        }
        add(name, args.dump());
    }

    void llama3() {
        std::string_view s = text_;
        for (std::string_view end : {"<|eom_id|>", "<|eot_id|>"}) {
            s = trim(s);
            if (s.size() >= end.size() && s.substr(s.size() - end.size()) == end) s.remove_suffix(end.size());
        }
        constexpr std::string_view kTag = "<|python_tag|>";
        if (const size_t t = s.find(kTag); t != std::string_view::npos) {
            append_text(msg_.content, s.substr(0, t));
            const std::string_view p = trim(s.substr(t + kTag.size()));
            if (p.empty()) error("<|python_tag|> with nothing after it");
            if (p.find(kTag) != std::string_view::npos) error("more than one <|python_tag|>");
            if (p[0] == '{') {
                llama3_json(p);
                return;
            }
            const size_t dot = p.find(".call(");
            const size_t ident_end = std::find_if(p.begin(), p.end(), [](char c) {
                                         return !(std::isalnum(static_cast<unsigned char>(c)) || c == '_');
                                     }) - p.begin();
            if (dot != std::string_view::npos && dot == ident_end && dot > 0) {
                llama3_builtin(p);
            } else {
                // Code for the builtin code interpreter (Llama 3.1's ipython tool).
                ojson args = {{"code", std::string(p)}};
                try {
                    add("python", args.dump());
                } catch (const ojson::exception&) {
                    error("<|python_tag|> code is not valid UTF-8");
                }
            }
            return;
        }
        const std::string_view t = trim(s);
        if (looks_like_llama_json(t)) {
            llama3_json(t);
            return;
        }
        append_text(msg_.content, s);
    }

    void mistral() {
        std::string_view s = take_thinking(text_, "[THINK]", "[/THINK]");
        constexpr std::string_view kTc = "[TOOL_CALLS]", kArgs = "[ARGS]", kId = "[CALL_ID]";
        size_t t = s.find(kTc);
        if (t == std::string_view::npos) {
            if (s.find(kArgs) != std::string_view::npos) error("[ARGS] without [TOOL_CALLS]");
            append_text(msg_.content, s);
            return;
        }
        append_text(msg_.content, s.substr(0, t));
        size_t pos = t;
        for (;;) {
            while (pos < s.size() && kWs.find(s[pos]) != std::string_view::npos) ++pos;
            if (pos >= s.size() || starts_with(s, pos, "</s>")) break;
            if (!starts_with(s, pos, kTc)) error("unexpected text after tool calls: {}", excerpt(s.substr(pos)));
            pos += kTc.size();
            while (pos < s.size() && kWs.find(s[pos]) != std::string_view::npos) ++pos;
            if (pos >= s.size()) error("[TOOL_CALLS] with nothing after it");
            if (s[pos] == '[' && !starts_with(s, pos, kArgs) && !starts_with(s, pos, kId)) {
                // [TOOL_CALLS][{"name": ..., "arguments": {...}, "id": ...}, ...]
                const size_t e = json_extent(s, pos);
                if (e == std::string_view::npos) error("truncated tool call array: {}", excerpt(s.substr(pos)));
                const ojson j = parse_json(s.substr(pos, e - pos), "[TOOL_CALLS] array");
                if (!j.is_array()) error("[TOOL_CALLS] is not followed by a JSON array");
                for (const auto& c : j) add_object(c);
                pos = e;
                continue;
            }
            // [TOOL_CALLS]name[CALL_ID]id[ARGS]{...}
            const size_t a = s.find(kArgs, pos);
            if (a == std::string_view::npos) error("tool call without [ARGS]: {}", excerpt(s.substr(pos)));
            std::string_view head = s.substr(pos, a - pos);
            std::string id;
            if (const size_t i = head.find(kId); i != std::string_view::npos) {
                id = std::string(trim(head.substr(i + kId.size())));
                if (id.empty() || !std::all_of(id.begin(), id.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }))
                    error("invalid [CALL_ID] {} (must be alphanumeric)", excerpt(id));
                head = head.substr(0, i);
            }
            if (head.find(kTc) != std::string_view::npos) error("[TOOL_CALLS] without [ARGS]");
            const std::string name = check_name(head);
            pos = a + kArgs.size();
            while (pos < s.size() && kWs.find(s[pos]) != std::string_view::npos) ++pos;
            if (pos >= s.size()) error("tool call '{}' has no arguments after [ARGS]", name);
            size_t e;
            if (s[pos] == '{' || s[pos] == '[') {
                e = json_extent(s, pos);
                if (e == std::string_view::npos) error("truncated arguments of tool call '{}': {}", name, excerpt(s.substr(pos)));
            } else {
                e = s.find(kTc, pos);  // a JSON string or scalar; check_args rejects it
                if (e == std::string_view::npos) e = s.size();
            }
            const ojson args = parse_json(s.substr(pos, e - pos), fmt::format("arguments of tool call '{}'", name));
            add(name, check_args(args, name), id);
            pos = e;
        }
    }

    void gpt_oss() {
        constexpr std::string_view kStart = "<|start|>", kMsg = "<|message|>", kChan = "<|channel|>";
        std::string_view s = text_;
        if (s.find(kMsg) == std::string_view::npos && s.find(kChan) == std::string_view::npos &&
            s.find(kStart) == std::string_view::npos) {
            append_text(msg_.content, s);
            return;
        }
        size_t pos = 0;
        while (pos < s.size()) {
            while (pos < s.size() && kWs.find(s[pos]) != std::string_view::npos) ++pos;
            if (pos >= s.size()) break;
            if (starts_with(s, pos, kStart)) pos += kStart.size();
            const size_t m = s.find(kMsg, pos);
            if (m == std::string_view::npos) error("message header without <|message|>: {}", excerpt(s.substr(pos)));
            const std::string_view header = s.substr(pos, m - pos);
            for (std::string_view bad : {"<|end|>", "<|call|>", "<|return|>", "<|start|>"}) {
                if (header.find(bad) != std::string_view::npos) error("{} inside a message header: {}", bad, excerpt(header));
            }
            const size_t body0 = m + kMsg.size();
            size_t body1 = s.size(), next = s.size();
            for (std::string_view end : {"<|end|>", "<|call|>", "<|return|>", "<|start|>"}) {
                const size_t e = s.find(end, body0);
                if (e < body1) {
                    body1 = e;
                    next = end == "<|start|>" ? e : e + end.size();
                }
            }
            const std::string_view body = s.substr(body0, body1 - body0);
            if (body.find(kMsg) != std::string_view::npos || body.find(kChan) != std::string_view::npos)
                error("unterminated message (a second header inside it): {}", excerpt(body));
            pos = next;

            // Header: [role] [to=RECIPIENT] <|channel|>CHANNEL [to=RECIPIENT] [<|constrain|>json | json]
            {
                const std::string_view role = trim(header.substr(0, std::min(header.find(kChan), header.find("to="))));
                if (!role.empty() && role != "assistant") error("unexpected text before a message header: {}", excerpt(role));
            }
            std::string channel;
            if (const size_t c = header.find(kChan); c != std::string_view::npos) {
                size_t e = c + kChan.size();
                while (e < header.size() && kWs.find(header[e]) == std::string_view::npos && header[e] != '<') ++e;
                channel = std::string(header.substr(c + kChan.size(), e - c - kChan.size()));
            }
            std::string recipient;
            if (const size_t t = header.find("to="); t != std::string_view::npos) {
                size_t e = t + 3;
                while (e < header.size() && kWs.find(header[e]) == std::string_view::npos && header[e] != '<') ++e;
                recipient = std::string(header.substr(t + 3, e - t - 3));
                if (recipient.empty()) error("empty recipient after to= in header {}", excerpt(header));
            }
            if (!recipient.empty()) {
                std::string_view name = recipient;
                if (starts_with(name, 0, "functions.")) name.remove_prefix(10);
                const std::string n = check_name(name);
                const ojson args = parse_json(body, fmt::format("arguments of tool call '{}'", n));
                add(n, check_args(args, n));
            } else if (channel == "analysis") {
                append_text(msg_.reasoning_content, body);
            } else if (channel == "final" || channel == "commentary") {
                append_text(msg_.content, body);
            } else if (channel.empty()) {
                error("message header without <|channel|>: {}", excerpt(header));
            } else {
                error("unknown channel {}", excerpt(channel));
            }
        }
    }

    void deepseek() {
        std::string_view s = take_thinking(text_, "<think>", "</think>");
        constexpr std::string_view kCallsBegin = "<｜tool▁calls▁begin｜>", kCallsEnd = "<｜tool▁calls▁end｜>",
                                   kBegin = "<｜tool▁call▁begin｜>", kEnd = "<｜tool▁call▁end｜>",
                                   kSep = "<｜tool▁sep｜>", kEos = "<｜end▁of▁sentence｜>";
        size_t b = s.find(kCallsBegin);
        size_t pos = b == std::string_view::npos ? std::string_view::npos : b + kCallsBegin.size();
        if (b == std::string_view::npos) {  // some outputs omit the outer tag
            b = s.find(kBegin);
            pos = b;
        }
        if (b == std::string_view::npos) {
            for (std::string_view m : {kCallsEnd, kEnd, kSep}) {
                if (s.find(m) != std::string_view::npos) error("{} without {}", m, kBegin);
            }
            append_text(msg_.content, s);
            return;
        }
        append_text(msg_.content, s.substr(0, b));
        for (;;) {
            while (pos < s.size() && kWs.find(s[pos]) != std::string_view::npos) ++pos;
            if (pos >= s.size()) break;
            if (starts_with(s, pos, kCallsEnd)) {
                std::string_view rest = trim(s.substr(pos + kCallsEnd.size()));
                if (starts_with(rest, 0, kEos)) rest = trim(rest.substr(kEos.size()));
                if (rest.find(kBegin) != std::string_view::npos || rest.find(kCallsBegin) != std::string_view::npos)
                    error("tool call after {}", kCallsEnd);
                append_text(msg_.content, rest);
                break;
            }
            if (starts_with(s, pos, kEos)) break;
            if (!starts_with(s, pos, kBegin)) error("expected {} but found {}", kBegin, excerpt(s.substr(pos)));
            pos += kBegin.size();
            const size_t e = s.find(kEnd, pos);
            if (e == std::string_view::npos) error("unterminated tool call (no {}): {}", kEnd, excerpt(s.substr(pos)));
            const std::string_view call = s.substr(pos, e - pos);
            pos = e + kEnd.size();
            if (call.find(kBegin) != std::string_view::npos) error("nested {}", kBegin);
            const size_t sep = call.find(kSep);
            if (sep == std::string_view::npos) error("tool call without {}: {}", kSep, excerpt(call));
            const std::string_view before = trim(call.substr(0, sep)), after = call.substr(sep + kSep.size());
            const size_t fence = after.find("```");
            if (fence != std::string_view::npos) {
                // R1: function<｜tool▁sep｜>NAME\n```json\n{...}\n```
                if (!before.empty() && before != "function") error("unknown tool call type {}", excerpt(before));
                const std::string name = check_name(after.substr(0, fence));
                std::string_view body = after.substr(fence + 3);
                if (starts_with(body, 0, "json")) body.remove_prefix(4);
                const size_t close = body.rfind("```");
                if (close == std::string_view::npos) error("unterminated ```json block in tool call '{}'", name);
                if (!trim(body.substr(close + 3)).empty()) error("text after ``` in tool call '{}'", name);
                const ojson args = parse_json(body.substr(0, close), fmt::format("arguments of tool call '{}'", name));
                add(name, check_args(args, name));
            } else {
                // V3.1: NAME<｜tool▁sep｜>{...}
                const std::string name = check_name(before);
                if (name == "function") error("tool call 'function' without a ```json block (R1 form truncated?)");
                const ojson args = parse_json(after, fmt::format("arguments of tool call '{}'", name));
                add(name, check_args(args, name));
            }
        }
    }

    void granite() {
        std::string_view s = take_thinking(text_, "<think>", "</think>");
        constexpr std::string_view kTag = "<|tool_call|>";
        const size_t t = s.find(kTag);
        if (t == std::string_view::npos) {
            append_text(msg_.content, s);
            return;
        }
        append_text(msg_.content, s.substr(0, t));
        std::string_view rest = trim(s.substr(t + kTag.size()));
        if (rest.empty()) error("<|tool_call|> with nothing after it");
        if (rest[0] != '[' && rest[0] != '{') error("<|tool_call|> is not followed by a JSON list: {}", excerpt(rest));
        const size_t e = json_extent(rest, 0);
        if (e == std::string_view::npos) error("truncated tool call list: {}", excerpt(rest));
        add_json_calls(rest.substr(0, e), "<|tool_call|> list");
        const std::string_view after = trim(rest.substr(e));
        if (!after.empty()) error("unexpected text after the tool call list: {}", excerpt(after));
    }

    ToolCallFormat fmt_;
    const char* name_;
    std::string_view text_;
    ParsedMessage msg_;
};

}  // namespace

size_t json_extent(std::string_view s, size_t pos) {
    int depth = 0;
    bool in_str = false;
    for (size_t i = pos; i < s.size(); ++i) {
        const char c = s[i];
        if (in_str) {
            if (c == '\\') ++i;
            else if (c == '"') in_str = false;
            continue;
        }
        if (c == '"') in_str = true;
        else if (c == '{' || c == '[') ++depth;
        else if (c == '}' || c == ']') {
            if (--depth == 0) return i + 1;
        }
    }
    return std::string_view::npos;
}

const char* tool_call_format_name(ToolCallFormat f) {
    switch (f) {
        case ToolCallFormat::Hermes: return "Hermes";
        case ToolCallFormat::Llama3: return "Llama3";
        case ToolCallFormat::Mistral: return "Mistral";
        case ToolCallFormat::GptOss: return "GptOss";
        case ToolCallFormat::DeepSeek: return "DeepSeek";
        case ToolCallFormat::Granite: return "Granite";
    }
    return "?";
}

std::optional<ToolCallFormat> detect_tool_call_format(std::string_view t) {
    auto has = [&](std::string_view m) { return t.find(m) != std::string_view::npos; };
    if (has("<|channel|>") && has("<|start|>")) return ToolCallFormat::GptOss;
    if (has("<｜tool▁calls▁begin｜>") || has("<｜tool▁call▁begin｜>")) return ToolCallFormat::DeepSeek;
    if (has("[TOOL_CALLS]")) return ToolCallFormat::Mistral;
    if (has("<|tool_call|>")) return ToolCallFormat::Granite;
    // <tool_call> with an XML body (<function=...> in Qwen3-Coder / Qwen3.5 / Nemotron 3, <arg_key> in GLM)
    // is a different format.
    if (has("<tool_call>")) {
        if (has("<function=") || has("<arg_key>")) return std::nullopt;
        return ToolCallFormat::Hermes;
    }
    if (has("<|start_header_id|>") && (has("<|python_tag|>") || has("\"parameters\"")) && !has("<function="))
        return ToolCallFormat::Llama3;
    return std::nullopt;
}

ojson ParsedMessage::to_json() const {
    ojson m = {{"role", "assistant"}};
    if (content.empty() && !tool_calls.empty()) m["content"] = nullptr;
    else m["content"] = content;
    if (!reasoning_content.empty()) m["reasoning_content"] = reasoning_content;
    if (!tool_calls.empty()) {
        ojson calls = ojson::array();
        for (const ToolCall& c : tool_calls)
            calls.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
        m["tool_calls"] = std::move(calls);
    }
    return m;
}

ParsedMessage parse_tool_calls(ToolCallFormat format, std::string_view text) {
    return Parser(format, text).run();
}

}  // namespace hearth
