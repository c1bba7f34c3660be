// Interpreter of the Jinja2 subset chat templates use (see jinja.h for why it is hand-written): scoping as
// jinja2 compiles it (for loops and macros open a frame, if/set do not), Python semantics for operators,
// jinja2's filters and tests, sandboxed attribute access.
#include "chat/jinja.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "chat/jinja_parse.h"

namespace hearth::jinja {
namespace {

struct Frame {
    std::unordered_map<std::string, Value> vars;
};
using FrameP = std::shared_ptr<Frame>;
using Scope = std::vector<FrameP>;

enum class Flow { Normal, Break, Continue };

[[noreturn]] void type_error(const std::string& msg) { throw Error(msg); }

// ---- strings (code-point aware where Python is) ----
std::vector<uint32_t> cps(const std::string& s) {
    std::vector<uint32_t> out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) out.push_back(utf8_next(s, i));
    return out;
}
std::string from_cps(const std::vector<uint32_t>& v, size_t b, size_t e) {
    std::string out;
    for (size_t i = b; i < e; ++i) utf8_append(out, v[i]);
    return out;
}
bool py_space(uint32_t c) {
    return c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}
std::string py_strip(const std::string& s, const Value* chars, bool left, bool right) {
    auto v = cps(s);
    std::vector<uint32_t> set;
    bool ws = !chars || chars->t == VT::None;
    if (!ws) set = cps(chars->s);
    auto strip = [&](uint32_t c) { return ws ? py_space(c) : std::find(set.begin(), set.end(), c) != set.end(); };
    size_t b = 0, e = v.size();
    if (left)
        while (b < e && strip(v[b])) ++b;
    if (right)
        while (e > b && strip(v[e - 1])) --e;
    return from_cps(v, b, e);
}
// Case mapping for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic (Python's is full Unicode).
uint32_t cp_lower(uint32_t c) {
    if ((c >= 'A' && c <= 'Z') || (c >= 0xc0 && c <= 0xde && c != 0xd7) || (c >= 0x391 && c <= 0x3ab && c != 0x3a2) ||
        (c >= 0x410 && c <= 0x42f))
        return c + 32;
    if (c >= 0x400 && c <= 0x40f) return c + 80;
    if (c >= 0x100 && c <= 0x17f && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x178 && c != 0x17f) {
        bool upper_even = (c < 0x139) || (c > 0x148 && c < 0x178);
        if (upper_even ? c % 2 == 0 : c % 2 == 1) return c + 1;
    }
    if (c == 0x178) return 0xff;
    return c;
}
uint32_t cp_upper(uint32_t c) {
    if ((c >= 'a' && c <= 'z') || (c >= 0xe0 && c <= 0xfe && c != 0xf7) || (c >= 0x3b1 && c <= 0x3cb && c != 0x3c2) ||
        (c >= 0x430 && c <= 0x44f))
        return c - 32;
    if (c == 0x3c2) return 0x3a3;
    if (c >= 0x450 && c <= 0x45f) return c - 80;
    if (c == 0xff) return 0x178;
    if (c == 0xb5) return 0x39c;
    if (c >= 0x100 && c <= 0x17f && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x17f) {
        bool upper_even = (c < 0x139) || (c > 0x148 && c < 0x178);
        if (upper_even ? c % 2 == 1 : (c % 2 == 0 && c != 0x178)) return c - 1;
    }
    if (c == 0x131) return 'I';
    return c;
}
bool cp_cased(uint32_t c) { return cp_lower(c) != c || cp_upper(c) != c || c == 0xdf; }
void append_upper(std::string& out, uint32_t c) {
    if (c == 0xdf) out += "SS";
    else utf8_append(out, cp_upper(c));
}
std::string lower(const std::string& s) {
    std::string out;
    size_t i = 0;
    while (i < s.size()) utf8_append(out, cp_lower(utf8_next(s, i)));
    return out;
}
std::string upper(const std::string& s) {
    std::string out;
    size_t i = 0;
    while (i < s.size()) append_upper(out, utf8_next(s, i));
    return out;
}
std::string capitalize(const std::string& s) {
    std::string out;
    size_t i = 0;
    bool first = true;
    while (i < s.size()) {
        uint32_t c = utf8_next(s, i);
        if (first) append_upper(out, c);
        else utf8_append(out, cp_lower(c));
        first = false;
    }
    return out;
}
std::string py_title(const std::string& s) {  // str.title()
    std::string out;
    size_t i = 0;
    bool prev_cased = false;
    while (i < s.size()) {
        uint32_t c = utf8_next(s, i);
        if (prev_cased) utf8_append(out, cp_lower(c));
        else append_upper(out, c);
        prev_cased = cp_cased(c);
    }
    return out;
}
std::string jinja_title(const std::string& s) {  // jinja2's do_title
    std::string out;
    size_t i = 0;
    auto sep = [](char c) { return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_space(static_cast<unsigned char>(c)); };
    while (i < s.size()) {
        size_t j = i;
        if (sep(s[i])) {
            while (j < s.size() && sep(s[j])) ++j;
            out += s.substr(i, j - i);
        } else {
            while (j < s.size() && !sep(s[j])) ++j;
            std::string w = s.substr(i, j - i);
            size_t k = 0;
            append_upper(out, utf8_next(w, k));
            out += lower(w.substr(k));
        }
        i = j;
    }
    return out;
}
std::vector<std::string> py_split(const std::string& s, const Value* sep, int64_t maxsplit) {
    std::vector<std::string> out;
    if (!sep || sep->t == VT::None) {
        size_t i = 0, n = s.size();
        auto skip = [&] {
            while (i < n && py_space(static_cast<unsigned char>(s[i]))) ++i;
        };
        skip();
        while (i < n) {
            if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
                out.push_back(s.substr(i));
                break;
            }
            size_t j = i;
            while (j < n && !py_space(static_cast<unsigned char>(s[j]))) ++j;
            out.push_back(s.substr(i, j - i));
            i = j;
            skip();
        }
        return out;
    }
    if (sep->t != VT::Str) type_error("must be str or None, not " + type_name(*sep));
    if (sep->s.empty()) type_error("empty separator");
    size_t i = 0;
    while (true) {
        size_t j = s.find(sep->s, i);
        if (j == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit)) {
            out.push_back(s.substr(i));
            break;
        }
        out.push_back(s.substr(i, j - i));
        i = j + sep->s.size();
    }
    return out;
}
std::string py_replace(const std::string& s, const std::string& a, const std::string& b, int64_t count) {
    std::string out;
    if (a.empty()) {
        auto v = cps(s);
        int64_t done = 0;
        for (size_t i = 0; i <= v.size(); ++i) {
            if (count < 0 || done < count) {
                out += b;
                ++done;
            }
            if (i < v.size()) utf8_append(out, v[i]);
        }
        return out;
    }
    size_t i = 0;
    int64_t done = 0;
    while (true) {
        size_t j = (count >= 0 && done >= count) ? std::string::npos : s.find(a, i);
        if (j == std::string::npos) {
            out += s.substr(i);
            return out;
        }
        out += s.substr(i, j - i) + b;
        i = j + a.size();
        ++done;
    }
}

int64_t to_int(const Value& v) {
    if (v.t == VT::Int) return v.i;
    if (v.t == VT::Bool) return v.b;
    if (v.t == VT::Undef) undefined_error(v);
    type_error("'" + type_name(v) + "' object cannot be interpreted as an integer");
}

// Python slice index normalisation
std::vector<size_t> slice_indices(int64_t len, const Value* start, const Value* stop, const Value* step) {
    int64_t st = 1;
    if (step && step->t != VT::None) st = to_int(*step);
    if (st == 0) type_error("slice step cannot be zero");
    auto norm = [&](const Value* v, int64_t dflt) {
        if (!v || v->t == VT::None) return dflt;
        int64_t x = to_int(*v);
        if (x < 0) x += len;
        if (st > 0) return std::clamp<int64_t>(x, 0, len);
        return std::clamp<int64_t>(x, -1, len - 1);
    };
    int64_t b = norm(start, st > 0 ? 0 : len - 1), e = norm(stop, st > 0 ? len : -1);
    std::vector<size_t> idx;
    if (st > 0)
        for (int64_t i = b; i < e; i += st) idx.push_back(static_cast<size_t>(i));
    else
        for (int64_t i = b; i > e; i += st) idx.push_back(static_cast<size_t>(i));
    return idx;
}

bool py_lt(const Value& a, const Value& b, const char* op) {
    if (a.is_undef()) undefined_error(a);
    if (b.is_undef()) undefined_error(b);
    if (a.is_num() && b.is_num()) {
        if (a.t == VT::Float || b.t == VT::Float) return a.num() < b.num();
        return (a.t == VT::Bool ? a.b : a.i) < (b.t == VT::Bool ? b.b : b.i);
    }
    if (a.t == VT::Str && b.t == VT::Str) return a.s < b.s;
    if (a.t == VT::List && b.t == VT::List && a.l->tuple == b.l->tuple) {
        size_t n = std::min(a.l->v.size(), b.l->v.size());
        for (size_t i = 0; i < n; ++i) {
            if (py_eq(a.l->v[i], b.l->v[i])) continue;
            return py_lt(a.l->v[i], b.l->v[i], op);
        }
        return a.l->v.size() < b.l->v.size();
    }
    type_error(std::string("'") + op + "' not supported between instances of '" + type_name(a) + "' and '" +
               type_name(b) + "'");
}

std::string obj_repr_for_undef(const Value& v) {
    if (v.t == VT::None) return "None";
    if (v.t == VT::Dict && v.d->kind == 1) return "jinja2.utils.Namespace object";
    if (v.t == VT::Dict && v.d->kind == 2) return "jinja2.runtime.LoopContext object";
    if (v.t == VT::Func) return "function object";
    return type_name(v) + " object";
}
Value missing_attr(const Value& obj, const std::string& name) {
    return Value::undef("'" + obj_repr_for_undef(obj) + "' has no attribute '" + name + "'");
}

std::vector<Value> iterate(const Value& v) {
    switch (v.t) {
        case VT::Undef: return {};
        case VT::List:
            if (v.l->generator) {
                if (v.l->consumed) return {};
                v.l->consumed = true;
            }
            return v.l->v;
        case VT::Dict: {
            if (v.d->kind != 0) type_error("'" + type_name(v) + "' object is not iterable");
            std::vector<Value> out;
            for (auto& kv : v.d->v) out.push_back(kv.first);
            return out;
        }
        case VT::Str: {
            std::vector<Value> out;
            size_t i = 0;
            while (i < v.s.size()) {
                size_t st = i;
                utf8_next(v.s, i);
                out.push_back(Value::str(v.s.substr(st, i - st)));
            }
            return out;
        }
        default: type_error("'" + type_name(v) + "' object is not iterable");
    }
}

int64_t py_len(const Value& v) {
    switch (v.t) {
        case VT::Undef: return 0;
        case VT::Str: return static_cast<int64_t>(cps(v.s).size());
        case VT::List:
            if (v.l->generator) type_error("object of type 'generator' has no len()");
            return static_cast<int64_t>(v.l->v.size());
        case VT::Dict:
            if (v.d->kind == 0) return static_cast<int64_t>(v.d->v.size());
            [[fallthrough]];
        default: type_error("object of type '" + type_name(v) + "' has no len()");
    }
}

bool contains(const Value& container, const Value& item) {
    switch (container.t) {
        case VT::Undef: return false;
        case VT::Str:
            if (item.t == VT::Undef) undefined_error(item);
            if (item.t != VT::Str)
                type_error("'in <string>' requires string as left operand, not " + type_name(item));
            return container.s.find(item.s) != std::string::npos;
        case VT::List:
            for (auto& x : container.l->v)
                if (py_eq(x, item)) return true;
            return false;
        case VT::Dict:
            if (container.d->kind == 0) return container.d->find(item) != nullptr;
            [[fallthrough]];
        default: type_error("argument of type '" + type_name(container) + "' is not iterable");
    }
}

std::string html_escape(const std::string& s) {
    std::string o;
    for (char c : s) {
        switch (c) {
            case '&': o += "&amp;"; break;
            case '<': o += "&lt;"; break;
            case '>': o += "&gt;"; break;
            case '"': o += "&#34;"; break;
            case '\'': o += "&#39;"; break;
            default: o += c;
        }
    }
    return o;
}

Value arith(const std::string& op, const Value& a, const Value& b) {
    if (a.is_undef()) undefined_error(a);
    if (b.is_undef()) undefined_error(b);
    auto unsupported = [&]() -> Value {
        type_error("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
    };
    if (a.is_num() && b.is_num()) {
        bool ints = a.t != VT::Float && b.t != VT::Float;
        int64_t x = a.t == VT::Bool ? a.b : a.i, y = b.t == VT::Bool ? b.b : b.i;
        double fx = a.num(), fy = b.num();
        int64_t r = 0;
        if (op == "+") {
            if (!ints) return Value::flt(fx + fy);
            if (__builtin_add_overflow(x, y, &r)) type_error("integer overflow");
            return Value::integer(r);
        }
        if (op == "-") {
            if (!ints) return Value::flt(fx - fy);
            if (__builtin_sub_overflow(x, y, &r)) type_error("integer overflow");
            return Value::integer(r);
        }
        if (op == "*") {
            if (!ints) return Value::flt(fx * fy);
            if (__builtin_mul_overflow(x, y, &r)) type_error("integer overflow");
            return Value::integer(r);
        }
        if (op == "/") {
            if (fy == 0) type_error("division by zero");
            return Value::flt(fx / fy);
        }
        if (op == "//" || op == "%") {
            if (fy == 0) type_error(ints ? "integer division or modulo by zero" : "float modulo");
            if (ints) {
                if (x == INT64_MIN && y == -1) type_error("integer overflow");
                int64_t q = x / y, m = x % y;
                if (m != 0 && ((m < 0) != (y < 0))) {
                    --q;
                    m += y;
                }
                return Value::integer(op == "//" ? q : m);
            }
            double m = std::fmod(fx, fy);
            if (m != 0 && ((m < 0) != (fy < 0))) m += fy;
            if (op == "%") return Value::flt(m);
            return Value::flt(std::floor(fx / fy));
        }
        if (op == "**") {
            if (ints && y >= 0) {
                int64_t acc = 1;
                for (int64_t k = 0; k < y; ++k)
                    if (__builtin_mul_overflow(acc, x, &acc)) type_error("integer overflow");
                return Value::integer(acc);
            }
            return Value::flt(std::pow(fx, fy));
        }
    }
    if (op == "+") {
        if (a.t == VT::Str && b.t == VT::Str) {
            if (!a.markup && !b.markup) return Value::str(a.s + b.s);
            Value r = Value::str((a.markup ? a.s : html_escape(a.s)) + (b.markup ? b.s : html_escape(b.s)));
            r.markup = true;
            return r;
        }
        if (a.t == VT::List && b.t == VT::List && a.l->tuple == b.l->tuple) {
            auto v = a.l->v;
            v.insert(v.end(), b.l->v.begin(), b.l->v.end());
            return Value::list(std::move(v), a.l->tuple);
        }
        if (a.t == VT::Str) type_error("can only concatenate str (not \"" + type_name(b) + "\") to str");
        if (a.t == VT::List)
            type_error("can only concatenate list (not \"" + type_name(b) + "\") to list");
    }
    if (op == "*") {
        const Value* seq = a.t == VT::Str || a.t == VT::List ? &a : &b;
        const Value* n = seq == &a ? &b : &a;
        if ((seq->t == VT::Str || seq->t == VT::List) && (n->t == VT::Int || n->t == VT::Bool)) {
            int64_t k = std::max<int64_t>(0, to_int(*n));
            size_t unit = seq->t == VT::Str ? seq->s.size() : seq->l->v.size();
            if (unit && static_cast<uint64_t>(k) > (64u << 20) / unit) type_error("repetition too large");
            if (seq->t == VT::Str) {
                std::string out;
                for (int64_t i = 0; i < k; ++i) out += seq->s;
                return Value::str(out);
            }
            std::vector<Value> out;
            for (int64_t i = 0; i < k; ++i) out.insert(out.end(), seq->l->v.begin(), seq->l->v.end());
            return Value::list(std::move(out), seq->l->tuple);
        }
    }
    return unsupported();
}

bool is_mutating(const Value& obj, const std::string& name) {
    if (obj.t == VT::List && !obj.l->tuple)
        return name == "append" || name == "extend" || name == "insert" || name == "pop" || name == "remove" ||
               name == "reverse" || name == "sort" || name == "clear";
    if (obj.t == VT::Dict && obj.d->kind == 0)
        return name == "clear" || name == "pop" || name == "popitem" || name == "setdefault" || name == "update";
    return false;
}

class Interp {
public:
    Interp(const Limits& lim, std::function<std::tm()> now) : lim_(lim), now_(std::move(now)) {}
    ~Interp() {
        for (auto& f : closures_)
            if (auto p = f.lock()) p->fn = nullptr;
        for (auto& d : namespaces_)
            if (auto p = d.lock()) p->v.clear();
    }

    std::string run(const Program& prog, const nlohmann::ordered_json& ctx) {
        auto globals = std::make_shared<Frame>();
        install_globals(*globals);
        auto root = std::make_shared<Frame>();
        if (ctx.is_object())
            for (auto it = ctx.begin(); it != ctx.end(); ++it) root->vars[it.key()] = from_json(it.value());
        Scope sc{globals, root};
        std::string out;
        exec(prog.body, sc, out);
        root->vars.clear();
        globals->vars.clear();
        return out;
    }

private:
    const Limits& lim_;
    std::function<std::tm()> now_;
    uint64_t steps_ = 0;
    int depth_ = 0;
    int eval_depth_ = 0;
    static constexpr int kMaxEvalDepth = 400;
    size_t total_out_ = 0;
    std::vector<std::weak_ptr<FuncObj>> closures_;
    std::vector<std::weak_ptr<DictObj>> namespaces_;

    void step() {
        if (++steps_ > lim_.max_steps)
            fail("template exceeded the step limit ({} statements and loop iterations)", lim_.max_steps);
    }
    void emit(std::string& out, const std::string& s) {
        total_out_ += s.size();
        if (total_out_ > lim_.max_output) fail("template output exceeded the limit of {} bytes", lim_.max_output);
        out += s;
    }

    Value make_namespace(Args& a) {
        Value ns = Value::dict(1);
        namespaces_.push_back(ns.d);
        for (auto& p : a.pos) {
            if (p.t != VT::Dict) type_error("namespace() takes a mapping");
            for (auto& kv : p.d->v) ns.d->set(kv.first, kv.second);
        }
        for (auto& [k, v] : a.kw) ns.d->set(k, v);
        return ns;
    }

    void install_globals(Frame& g) {
        g.vars["range"] = Value::func("range", [](Args& a) {
            int64_t st = 0, en, sp = 1;
            if (a.pos.size() == 1) {
                en = to_int(a.pos[0]);
            } else if (a.pos.size() >= 2) {
                st = to_int(a.pos[0]);
                en = to_int(a.pos[1]);
                if (a.pos.size() > 2) sp = to_int(a.pos[2]);
            } else {
                type_error("range expected at least 1 argument, got 0");
            }
            if (sp == 0) type_error("range() arg 3 must not be zero");
            std::vector<Value> v;
            for (int64_t i = st; sp > 0 ? i < en : i > en; i += sp) {
                if (v.size() >= 1'000'000) fail("range() too large (limit 1000000 items)");
                v.push_back(Value::integer(i));
            }
            return Value::list(std::move(v));
        });
        g.vars["dict"] = Value::func("dict", [](Args& a) {
            Value d = Value::dict();
            for (auto& p : a.pos)
                if (p.t == VT::Dict)
                    for (auto& kv : p.d->v) d.d->set(kv.first, kv.second);
            for (auto& [k, v] : a.kw) d.d->set(k, v);
            return d;
        });
        g.vars["namespace"] = Value::func("namespace", [this](Args& a) { return make_namespace(a); });
        g.vars["raise_exception"] = Value::func("raise_exception", [](Args& a) -> Value {
            throw TemplateError(a.pos.empty() ? std::string() : py_str(a.pos[0]));
        });
        g.vars["strftime_now"] = Value::func("strftime_now", [this](Args& a) {
            std::tm tm{};
            if (now_) {
                tm = now_();
            } else {
                std::time_t t = std::time(nullptr);
                localtime_r(&t, &tm);
            }
            std::string fmt = a.pos.empty() ? "" : py_str(a.pos[0]);
            char buf[512];
            size_t n = std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
            return Value::str(std::string(buf, n));
        });
    }

    // ---- lookup / attribute access ----
    static Value lookup(const std::string& name, const Scope& sc) {
        for (auto it = sc.rbegin(); it != sc.rend(); ++it) {
            auto f = (*it)->vars.find(name);
            if (f != (*it)->vars.end()) return f->second;
        }
        return Value::undef("'" + name + "' is undefined");
    }

    Value method(const Value& obj, const std::string& name) {
        if (is_mutating(obj, name)) {
            Value u = Value::undef("access to attribute '" + name + "' of '" + type_name(obj) + "' object is unsafe.");
            u.security = true;
            return u;
        }
        auto bind = [&](auto fn) { return Value::func(name, [obj, fn](Args& a) { return fn(obj, a); }); };
        if (obj.t == VT::Str) {
            if (name == "strip" || name == "lstrip" || name == "rstrip") {
                bool l = name != "rstrip", r = name != "lstrip";
                return bind([l, r](const Value& o, Args& a) { return Value::str(py_strip(o.s, a.get(0, "chars"), l, r)); });
            }
            if (name == "split" || name == "rsplit")
                return bind([name](const Value& o, Args& a) {
                    const Value* mx = a.get(1, "maxsplit");
                    int64_t m = mx ? to_int(*mx) : -1;
                    if (name == "rsplit" && m >= 0) type_error("rsplit with maxsplit is not supported");
                    std::vector<Value> out;
                    for (auto& p : py_split(o.s, a.get(0, "sep"), m)) out.push_back(Value::str(p));
                    return Value::list(std::move(out));
                });
            if (name == "splitlines")
                return bind([](const Value& o, Args&) {
                    std::vector<Value> out;
                    size_t i = 0;
                    while (i < o.s.size()) {
                        size_t j = o.s.find_first_of("\r\n", i);
                        if (j == std::string::npos) {
                            out.push_back(Value::str(o.s.substr(i)));
                            break;
                        }
                        out.push_back(Value::str(o.s.substr(i, j - i)));
                        i = j + ((o.s[j] == '\r' && j + 1 < o.s.size() && o.s[j + 1] == '\n') ? 2 : 1);
                    }
                    return Value::list(std::move(out));
                });
            if (name == "startswith" || name == "endswith") {
                bool sw = name == "startswith";
                return bind([sw](const Value& o, Args& a) {
                    if (a.pos.empty()) type_error("startswith takes at least 1 argument");
                    std::vector<Value> cands = a.pos[0].t == VT::List ? a.pos[0].l->v : std::vector<Value>{a.pos[0]};
                    for (auto& c : cands) {
                        if (c.t != VT::Str) type_error("startswith first arg must be str or a tuple of str, not " + type_name(c));
                        if (c.s.size() > o.s.size()) continue;
                        if (sw ? o.s.compare(0, c.s.size(), c.s) == 0
                               : o.s.compare(o.s.size() - c.s.size(), c.s.size(), c.s) == 0)
                            return Value::boolean(true);
                    }
                    return Value::boolean(false);
                });
            }
            if (name == "upper") return bind([](const Value& o, Args&) { return Value::str(upper(o.s)); });
            if (name == "lower") return bind([](const Value& o, Args&) { return Value::str(lower(o.s)); });
            if (name == "title") return bind([](const Value& o, Args&) { return Value::str(py_title(o.s)); });
            if (name == "capitalize") return bind([](const Value& o, Args&) { return Value::str(capitalize(o.s)); });
            if (name == "replace")
                return bind([](const Value& o, Args& a) {
                    const Value *x = a.get(0, "old"), *y = a.get(1, "new"), *c = a.get(2, "count");
                    if (!x || !y || x->t != VT::Str || y->t != VT::Str) type_error("replace expects two strings");
                    return Value::str(py_replace(o.s, x->s, y->s, c ? to_int(*c) : -1));
                });
            if (name == "join")
                return bind([](const Value& o, Args& a) {
                    if (a.pos.empty()) type_error("join takes exactly one argument");
                    std::string out;
                    bool first = true;
                    for (auto& x : iterate(a.pos[0])) {
                        if (x.t != VT::Str) type_error("sequence item: expected str instance, " + type_name(x) + " found");
                        if (!first) out += o.s;
                        first = false;
                        out += x.s;
                    }
                    return Value::str(out);
                });
            if (name == "find" || name == "rfind" || name == "count" || name == "index")
                return bind([name](const Value& o, Args& a) {
                    if (a.pos.empty() || a.pos[0].t != VT::Str) type_error("must be str");
                    const std::string& sub = a.pos[0].s;
                    if (name == "count") {
                        if (sub.empty()) return Value::integer(static_cast<int64_t>(cps(o.s).size()) + 1);
                        int64_t c = 0;
                        for (size_t p = o.s.find(sub); p != std::string::npos; p = o.s.find(sub, p + sub.size())) ++c;
                        return Value::integer(c);
                    }
                    size_t p = name == "rfind" ? o.s.rfind(sub) : o.s.find(sub);
                    if (p == std::string::npos) {
                        if (name == "index") type_error("substring not found");
                        return Value::integer(-1);
                    }
                    return Value::integer(static_cast<int64_t>(cps(o.s.substr(0, p)).size()));
                });
            if (name == "isdigit" || name == "isalpha" || name == "isspace" || name == "isalnum" ||
                name == "isupper" || name == "islower")
                return bind([name](const Value& o, Args&) {
                    if (o.s.empty()) return Value::boolean(false);
                    bool any_cased = false;
                    for (unsigned char c : o.s) {
                        if (name == "isdigit" && !std::isdigit(c)) return Value::boolean(false);
                        if (name == "isalpha" && !std::isalpha(c)) return Value::boolean(false);
                        if (name == "isalnum" && !std::isalnum(c)) return Value::boolean(false);
                        if (name == "isspace" && !py_space(c)) return Value::boolean(false);
                        if (name == "isupper" && std::islower(c)) return Value::boolean(false);
                        if (name == "islower" && std::isupper(c)) return Value::boolean(false);
                        if (std::isalpha(c)) any_cased = true;
                    }
                    if (name == "isupper" || name == "islower") return Value::boolean(any_cased);
                    return Value::boolean(true);
                });
        }
        if (obj.t == VT::Dict && obj.d->kind == 0) {
            if (name == "items")
                return bind([](const Value& o, Args&) {
                    std::vector<Value> out;
                    for (auto& kv : o.d->v) out.push_back(Value::list({kv.first, kv.second}, true));
                    Value r = Value::list(std::move(out));
                    r.l->view = "dict_items";
                    return r;
                });
            if (name == "keys" || name == "values")
                return bind([name](const Value& o, Args&) {
                    std::vector<Value> out;
                    for (auto& kv : o.d->v) out.push_back(name == "keys" ? kv.first : kv.second);
                    Value r = Value::list(std::move(out));
                    r.l->view = name == "keys" ? "dict_keys" : "dict_values";
                    return r;
                });
            if (name == "get")
                return bind([](const Value& o, Args& a) {
                    if (a.pos.empty()) type_error("get expected at least 1 argument, got 0");
                    if (Value* p = o.d->find(a.pos[0])) return *p;
                    return a.pos.size() > 1 ? a.pos[1] : Value::none();
                });
            if (name == "copy") return bind([](const Value& o, Args&) {
                    Value d = Value::dict();
                    d.d->v = o.d->v;
                    return d;
                });
        }
        if (obj.t == VT::List) {
            if (name == "index" || name == "count")
                return bind([name](const Value& o, Args& a) {
                    if (a.pos.empty()) type_error(name + "() takes exactly one argument");
                    int64_t c = 0;
                    for (size_t i = 0; i < o.l->v.size(); ++i)
                        if (py_eq(o.l->v[i], a.pos[0])) {
                            if (name == "index") return Value::integer(static_cast<int64_t>(i));
                            ++c;
                        }
                    if (name == "index") type_error(py_repr(a.pos[0]) + " is not in list");
                    return Value::integer(c);
                });
        }
        return Value();  // not a method
    }

    Value getattr(const Value& obj, const std::string& name) {
        if (obj.is_undef()) undefined_error(obj);
        if (obj.t == VT::Dict && obj.d->kind != 0) {
            if (Value* p = obj.d->find(name)) return *p;
            return missing_attr(obj, name);
        }
        Value m = method(obj, name);
        if (m.t == VT::Func || m.security) return m;
        if (obj.t == VT::Dict) {
            if (Value* p = obj.d->find(name)) return *p;
        }
        return missing_attr(obj, name);
    }

    Value getitem(const Value& obj, const Value& key) {
        if (obj.is_undef()) undefined_error(obj);
        const bool indexable = obj.t == VT::Str || (obj.t == VT::List && !obj.l->generator && !obj.l->view);
        if (obj.t == VT::Dict && obj.d->kind == 0) {
            if (Value* p = obj.d->find(key)) return *p;
        } else if (indexable && (key.t == VT::Int || key.t == VT::Bool)) {
            int64_t i = to_int(key);
            if (obj.t == VT::List) {
                int64_t n = static_cast<int64_t>(obj.l->v.size());
                if (i < 0) i += n;
                if (i >= 0 && i < n) return obj.l->v[static_cast<size_t>(i)];
            } else {
                auto v = cps(obj.s);
                int64_t n = static_cast<int64_t>(v.size());
                if (i < 0) i += n;
                if (i >= 0 && i < n) return Value::str(from_cps(v, static_cast<size_t>(i), static_cast<size_t>(i) + 1));
            }
        }
        if (key.t == VT::Str) {
            if (obj.t == VT::Dict && obj.d->kind != 0) return missing_attr(obj, key.s);
            Value m = method(obj, key.s);
            if (m.t == VT::Func || m.security) return m;
            return missing_attr(obj, key.s);
        }
        if (key.t == VT::Undef) undefined_error(key);
        return Value::undef(obj_repr_for_undef(obj) + " has no element " + py_repr(key));
    }

    // ---- expressions ----
    Args eval_args(const Expr& e, size_t first, const Scope& sc) {
        Args a;
        for (size_t i = first; i < e.a.size(); ++i) a.pos.push_back(eval(*e.a[i], sc));
        for (auto& [k, v] : e.kw) a.kw.emplace_back(k, eval(*v, sc));
        return a;
    }

    Value call(const Value& f, Args& a) {
        if (f.is_undef()) undefined_error(f);
        if (f.t != VT::Func) type_error("'" + type_name(f) + "' object is not callable");
        auto fn = f.fn;  // keep alive
        if (!fn->fn) type_error("call of a released macro");
        return fn->fn(a);
    }

    Value eval(const Expr& e, const Scope& sc) {
        // Expression trees are at most 2000 nodes per tag; nesting through macros is bounded here too, well
        // below what an 8 MiB stack holds even with sanitizer-sized frames.
        if (++eval_depth_ > kMaxEvalDepth) {
            --eval_depth_;
            fail("expression nesting exceeded the depth limit of {}", kMaxEvalDepth);
        }
        struct Dec {
            int& d;
            ~Dec() { --d; }
        } dec{eval_depth_};
        return eval_node(e, sc);
    }

    Value eval_node(const Expr& e, const Scope& sc) {
        switch (e.k) {
            case EK::Lit: return e.lit;
            case EK::Name: return lookup(e.name, sc);
            case EK::List:
            case EK::Tuple: {
                std::vector<Value> v;
                for (auto& x : e.a) v.push_back(eval(*x, sc));
                return Value::list(std::move(v), e.k == EK::Tuple);
            }
            case EK::Dict: {
                Value d = Value::dict();
                for (size_t i = 0; i + 1 < e.a.size(); i += 2) d.d->set(eval(*e.a[i], sc), eval(*e.a[i + 1], sc));
                return d;
            }
            case EK::Attr: return getattr(eval(*e.a[0], sc), e.name);
            case EK::Item: return getitem(eval(*e.a[0], sc), eval(*e.a[1], sc));
            case EK::Slice: {
                Value obj = eval(*e.a[0], sc);
                Value parts[3];
                const Value* pp[3] = {nullptr, nullptr, nullptr};
                for (int k = 0; k < 3; ++k)
                    if (e.a[1 + k]) {
                        parts[k] = eval(*e.a[1 + k], sc);
                        pp[k] = &parts[k];
                    }
                if (obj.is_undef()) undefined_error(obj);
                if (obj.t == VT::List && !obj.l->generator && !obj.l->view) {
                    std::vector<Value> out;
                    for (size_t i : slice_indices(static_cast<int64_t>(obj.l->v.size()), pp[0], pp[1], pp[2]))
                        out.push_back(obj.l->v[i]);
                    return Value::list(std::move(out), obj.l->tuple);
                }
                if (obj.t == VT::Str) {
                    auto v = cps(obj.s);
                    std::string out;
                    for (size_t i : slice_indices(static_cast<int64_t>(v.size()), pp[0], pp[1], pp[2])) utf8_append(out, v[i]);
                    return Value::str(out);
                }
                type_error("'" + type_name(obj) + "' object is not subscriptable");  // slices bypass getitem
            }
            case EK::Call: {
                Value f = eval(*e.a[0], sc);
                Args a = eval_args(e, 1, sc);
                return call(f, a);
            }
            case EK::Filter: {
                Value v = eval(*e.a[0], sc);
                Args a = eval_args(e, 1, sc);
                return filter(e.name, v, a, sc);
            }
            case EK::Test: {
                Value v = eval(*e.a[0], sc);
                Args a = eval_args(e, 1, sc);
                bool r = test(e.name, v, a);
                return Value::boolean(e.neg ? !r : r);
            }
            case EK::Neg:
            case EK::Pos: {
                Value v = eval(*e.a[0], sc);
                if (v.is_undef()) undefined_error(v);
                if (!v.is_num()) type_error("bad operand type for unary " + std::string(e.k == EK::Neg ? "-" : "+") + ": '" + type_name(v) + "'");
                if (e.k == EK::Pos) return v.t == VT::Bool ? Value::integer(v.b) : v;
                if (v.t == VT::Float) return Value::flt(-v.f);
                return arith("-", Value::integer(0), v);
            }
            case EK::Not: return Value::boolean(!truthy(eval(*e.a[0], sc)));
            case EK::Bin: return arith(e.name, eval(*e.a[0], sc), eval(*e.a[1], sc));
            case EK::And: {
                Value l = eval(*e.a[0], sc);
                return truthy(l) ? eval(*e.a[1], sc) : l;
            }
            case EK::Or: {
                Value l = eval(*e.a[0], sc);
                return truthy(l) ? l : eval(*e.a[1], sc);
            }
            case EK::Cmp: {
                Value l = eval(*e.a[0], sc);
                for (size_t i = 0; i < e.ops.size(); ++i) {
                    Value r = eval(*e.a[i + 1], sc);
                    const std::string& op = e.ops[i];
                    bool ok;
                    if (op == "==") ok = py_eq(l, r);
                    else if (op == "!=") ok = !py_eq(l, r);
                    else if (op == "<") ok = py_lt(l, r, "<");
                    else if (op == ">") ok = py_lt(r, l, ">");
                    else if (op == "<=") ok = py_eq(l, r) || py_lt(l, r, "<=");
                    else if (op == ">=") ok = py_eq(l, r) || py_lt(r, l, ">=");
                    else if (op == "in") ok = contains(r, l);
                    else ok = !contains(r, l);
                    if (!ok) return Value::boolean(false);
                    l = std::move(r);
                }
                return Value::boolean(true);
            }
            case EK::Cond: {
                if (truthy(eval(*e.a[1], sc))) return eval(*e.a[0], sc);
                if (e.a[2]) return eval(*e.a[2], sc);
                return Value::undef("the inline if-expression on line " + std::to_string(e.line) +
                                    " evaluated to false and no else section was defined.");
            }
            case EK::Concat: {
                std::string s;
                for (auto& x : e.a) s += py_str(eval(*x, sc));
                return Value::str(std::move(s));
            }
        }
        return Value();
    }

    // ---- tests ----
    bool test(const std::string& name, const Value& v, Args& a) {
        auto arg = [&](size_t i) -> const Value& {
            if (i >= a.pos.size()) type_error("test '" + name + "' is missing an argument");
            return a.pos[i];
        };
        if (name == "defined") return !v.is_undef();
        if (name == "undefined") return v.is_undef();
        if (name == "none") return v.t == VT::None;
        if (name == "string") return v.t == VT::Str;
        if (name == "mapping") return v.t == VT::Dict && v.d->kind == 0;
        if (name == "iterable") return v.t == VT::Str || v.t == VT::List || (v.t == VT::Dict && v.d->kind == 0) || v.is_undef();
        if (name == "sequence") return v.t == VT::Str || v.t == VT::List || (v.t == VT::Dict && v.d->kind == 0) || v.is_undef();
        if (name == "number") return v.is_num();
        if (name == "integer") return v.t == VT::Int;
        if (name == "float") return v.t == VT::Float;
        if (name == "boolean") return v.t == VT::Bool;
        if (name == "true") return v.t == VT::Bool && v.b;
        if (name == "false") return v.t == VT::Bool && !v.b;
        if (name == "callable") return v.t == VT::Func;
        if (name == "odd" || name == "even") {
            int64_t x = to_int(v);
            return ((x % 2) != 0) == (name == "odd");
        }
        if (name == "divisibleby") {
            int64_t d = to_int(arg(0));
            if (d == 0) type_error("integer division or modulo by zero");
            return to_int(v) % d == 0;
        }
        if (name == "eq" || name == "equalto" || name == "==") return py_eq(v, arg(0));
        if (name == "ne" || name == "!=") return !py_eq(v, arg(0));
        if (name == "lt" || name == "lessthan" || name == "<") return py_lt(v, arg(0), "<");
        if (name == "gt" || name == "greaterthan" || name == ">") return py_lt(arg(0), v, ">");
        if (name == "le" || name == "<=") return py_eq(v, arg(0)) || py_lt(v, arg(0), "<=");
        if (name == "ge" || name == ">=") return py_eq(v, arg(0)) || py_lt(arg(0), v, ">=");
        if (name == "in") return contains(arg(0), v);
        if (name == "sameas") {
            const Value& o = arg(0);
            if (v.t != o.t) return false;
            if (v.t == VT::List) return v.l == o.l;
            if (v.t == VT::Dict) return v.d == o.d;
            return py_eq(v, o);
        }
        if (name == "lower") return v.t == VT::Str && lower(v.s) == v.s;
        if (name == "upper") return v.t == VT::Str && upper(v.s) == v.s;
        if (name == "escaped") return false;
        if (jinja2_knows_test(name)) fail("the '{}' test is not supported by hearth", name);
        throw TemplateError("No test named '" + name + "' found.");
    }

    // ---- filters ----
    Value attr_path(const Value& item, const Value& attr) {
        if (attr.t != VT::Str) return getitem(item, attr);
        Value cur = item;
        size_t i = 0;
        const std::string& s = attr.s;
        while (true) {
            size_t j = s.find('.', i);
            std::string part = s.substr(i, j == std::string::npos ? std::string::npos : j - i);
            bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
            cur = getitem(cur, digits ? Value::integer(std::stoll(part)) : Value::str(part));
            if (j == std::string::npos) break;
            i = j + 1;
        }
        return cur;
    }

    Value sort_key(const Value& v, bool case_sensitive) {
        if (!case_sensitive && v.t == VT::Str) return Value::str(lower(v.s));
        return v;
    }

    std::vector<Value> select(const std::vector<Value>& items, Args& a, bool by_attr, bool want) {
        std::vector<Value> out;
        size_t ti = by_attr ? 1 : 0;
        std::string tname;
        Args targs;
        if (a.pos.size() > ti) {
            tname = py_str(a.pos[ti]);
            targs.pos.assign(a.pos.begin() + static_cast<std::ptrdiff_t>(ti + 1), a.pos.end());
        }
        for (auto& it : items) {
            Value v = by_attr ? attr_path(it, a.pos.empty() ? Value::str("") : a.pos[0]) : it;
            bool r = tname.empty() ? truthy(v) : test(tname, v, targs);
            if (r == want) out.push_back(it);
        }
        return out;
    }

    static Value generator(std::vector<Value> items) {
        Value g = Value::list(std::move(items));
        g.l->generator = true;
        return g;
    }

    Value filter(const std::string& name, const Value& v, Args& a, const Scope& sc) {
        auto str_of = [&](const Value& x) { return py_str(x); };
        if (name == "default" || name == "d") {
            const Value* dv = a.get(0, "default_value");
            const Value* bo = a.get(1, "boolean");
            bool use = v.is_undef() || (bo && truthy(*bo) && !truthy(v));
            if (use) return dv ? *dv : Value::str("");
            return v;
        }
        auto keep = [&](std::string r) {
            Value out = Value::str(std::move(r));
            out.markup = v.t == VT::Str && v.markup;
            return out;
        };
        if (name == "safe") {
            Value out = Value::str(str_of(v));
            out.markup = true;
            return out;
        }
        if (name == "string") return keep(str_of(v));
        if (name == "trim") return keep(py_strip(str_of(v), a.get(0, "chars"), true, true));
        if (name == "upper") return keep(upper(str_of(v)));
        if (name == "lower") return keep(lower(str_of(v)));
        if (name == "capitalize") return Value::str(capitalize(str_of(v)));
        if (name == "title") return Value::str(jinja_title(str_of(v)));
        if (name == "escape" || name == "e") {
            Value out = Value::str(v.t == VT::Str && v.markup ? v.s : html_escape(str_of(v)));
            out.markup = true;
            return out;
        }
        if (name == "length" || name == "count") return Value::integer(py_len(v));
        if (name == "wordcount") {
            std::string s = str_of(v);
            int64_t n = 0;
            bool in = false;
            for (unsigned char c : s) {
                bool w = std::isalnum(c) || c == '_' || c >= 0x80;
                if (w && !in) ++n;
                in = w;
            }
            return Value::integer(n);
        }
        if (name == "replace") {
            const Value *x = a.get(0, "old"), *y = a.get(1, "new"), *c = a.get(2, "count");
            if (!x || !y) type_error("replace filter needs two arguments");
            return Value::str(py_replace(str_of(v), str_of(*x), str_of(*y), c && c->t != VT::None ? to_int(*c) : -1));
        }
        if (name == "tojson") {
            if (v.is_undef()) type_error("Object of type Undefined is not JSON serializable");
            const Value* ind = a.get(0, "indent");
            if (!ind) ind = a.get(99, "indent");
            const Value* ea = nullptr;
            for (auto& [k, x] : a.kw)
                if (k == "ensure_ascii") ea = &x;
            const Value* seps = nullptr;
            for (auto& [k, x] : a.kw)
                if (k == "separators") seps = &x;
            bool sk = false;
            for (auto& [k, x] : a.kw)
                if (k == "sort_keys") sk = truthy(x);
            int indent = ind && ind->t != VT::None ? static_cast<int>(to_int(*ind)) : -1;
            std::string isep = indent >= 0 ? "," : ", ", ksep = ": ";
            if (seps && seps->t == VT::List && seps->l->v.size() == 2) {
                isep = str_of(seps->l->v[0]);
                ksep = str_of(seps->l->v[1]);
            }
            return Value::str(to_json(v, ea && truthy(*ea), indent, isep, ksep, sk));
        }
        if (name == "join") {
            const Value* d = a.get(0, "d");
            const Value* at = a.get(1, "attribute");
            std::string sep = d ? str_of(*d) : "";
            std::string out;
            bool first = true;
            for (auto& x : iterate(v)) {
                if (!first) out += sep;
                first = false;
                out += str_of(at ? attr_path(x, *at) : x);
            }
            return Value::str(out);
        }
        if (name == "first" || name == "last") {
            if (name == "last" && v.t == VT::List && v.l->generator) type_error("'generator' object is not reversible");
            auto items = iterate(v);
            if (items.empty()) return Value::undef(std::string("No ") + name + " item, sequence was empty.");
            return name == "first" ? items.front() : items.back();
        }
        if (name == "list") return Value::list(iterate(v));
        if (name == "reverse") {
            if (v.t == VT::Str) {
                auto c = cps(v.s);
                std::reverse(c.begin(), c.end());
                return Value::str(from_cps(c, 0, c.size()));
            }
            auto items = iterate(v);
            std::reverse(items.begin(), items.end());
            return Value::list(std::move(items));
        }
        if (name == "items") {
            if (v.is_undef()) return Value::list();
            if (v.t != VT::Dict || v.d->kind != 0) type_error("Can only get item pairs from a mapping.");
            std::vector<Value> out;
            for (auto& kv : v.d->v) out.push_back(Value::list({kv.first, kv.second}, true));
            return generator(std::move(out));
        }
        if (name == "dictsort") {
            if (v.t != VT::Dict || v.d->kind != 0) type_error("dictsort expects a mapping");
            const Value *cs = a.get(0, "case_sensitive"), *by = a.get(1, "by"), *rev = a.get(2, "reverse");
            bool c = cs && truthy(*cs), r = rev && truthy(*rev);
            int pos = by && by->t == VT::Str && by->s == "value" ? 1 : 0;
            std::vector<Value> out;
            for (auto& kv : v.d->v) out.push_back(Value::list({kv.first, kv.second}, true));
            std::stable_sort(out.begin(), out.end(), [&](const Value& x, const Value& y) {
                Value kx = sort_key(x.l->v[static_cast<size_t>(pos)], c), ky = sort_key(y.l->v[static_cast<size_t>(pos)], c);
                return r ? py_lt(ky, kx, "<") : py_lt(kx, ky, "<");
            });
            return Value::list(std::move(out));
        }
        if (name == "sort") {
            const Value *rev = a.get(0, "reverse"), *cs = a.get(1, "case_sensitive"), *at = a.get(2, "attribute");
            bool r = rev && truthy(*rev), c = cs && truthy(*cs);
            auto items = iterate(v);
            std::vector<std::pair<Value, Value>> keyed;
            for (auto& x : items) keyed.emplace_back(sort_key(at && at->t != VT::None ? attr_path(x, *at) : x, c), x);
            std::stable_sort(keyed.begin(), keyed.end(), [&](auto& x, auto& y) {
                return r ? py_lt(y.first, x.first, "<") : py_lt(x.first, y.first, "<");
            });
            std::vector<Value> out;
            for (auto& kv : keyed) out.push_back(kv.second);
            return Value::list(std::move(out));
        }
        if (name == "unique") {
            const Value *cs = a.get(0, "case_sensitive"), *at = a.get(1, "attribute");
            bool c = cs && truthy(*cs);
            std::vector<Value> out, seen;
            for (auto& x : iterate(v)) {
                Value k = sort_key(at && at->t != VT::None ? attr_path(x, *at) : x, c);
                bool dup = false;
                for (auto& s : seen)
                    if (py_eq(s, k)) dup = true;
                if (!dup) {
                    seen.push_back(k);
                    out.push_back(x);
                }
            }
            return generator(std::move(out));
        }
        if (name == "map") {
            auto items = truthy(v) ? iterate(v) : std::vector<Value>{};
            std::vector<Value> out;
            const Value* at = nullptr;
            const Value* dflt = nullptr;
            for (auto& [k, x] : a.kw) {
                if (k == "attribute") at = &x;
                if (k == "default") dflt = &x;
            }
            if (at) {
                for (auto& x : items) {
                    Value r = attr_path(x, *at);
                    if (r.is_undef() && dflt) r = *dflt;
                    out.push_back(r);
                }
            } else {
                if (a.pos.empty()) type_error("map requires a filter argument");
                std::string fname = py_str(a.pos[0]);
                Args fa;
                fa.pos.assign(a.pos.begin() + 1, a.pos.end());
                fa.kw = a.kw;
                for (auto& x : items) {
                    Args copy = fa;
                    out.push_back(filter(fname, x, copy, sc));
                }
            }
            return generator(std::move(out));
        }
        if (name == "select" || name == "reject")
            return generator(truthy(v) ? select(iterate(v), a, false, name == "select") : std::vector<Value>{});
        if (name == "selectattr" || name == "rejectattr")
            return generator(truthy(v) ? select(iterate(v), a, true, name == "selectattr") : std::vector<Value>{});
        if (name == "int") {
            const Value* d = a.get(0, "default");
            Value dv = d ? *d : Value::integer(0);
            if (v.t == VT::Int) return v;
            if (v.t == VT::Bool) return Value::integer(v.b);
            if (v.t == VT::Float) return std::isfinite(v.f) ? Value::integer(static_cast<int64_t>(v.f)) : dv;
            if (v.t == VT::Str) {
                std::string s = py_strip(v.s, nullptr, true, true);
                char* end = nullptr;
                errno = 0;
                long long x = std::strtoll(s.c_str(), &end, 10);
                if (!s.empty() && end && *end == 0 && errno == 0) return Value::integer(x);
                double f = std::strtod(s.c_str(), &end);
                if (!s.empty() && end && *end == 0 && std::isfinite(f)) return Value::integer(static_cast<int64_t>(f));
            }
            return dv;
        }
        if (name == "float") {
            const Value* d = a.get(0, "default");
            if (v.is_num()) return Value::flt(v.num());
            if (v.t == VT::Str) {
                std::string s = py_strip(v.s, nullptr, true, true);
                char* end = nullptr;
                double f = std::strtod(s.c_str(), &end);
                if (!s.empty() && end && *end == 0) return Value::flt(f);
            }
            return d ? *d : Value::flt(0);
        }
        if (name == "abs") {
            if (v.t == VT::Float) return Value::flt(std::fabs(v.f));
            int64_t x = to_int(v);
            if (x == INT64_MIN) type_error("integer overflow");
            return Value::integer(x < 0 ? -x : x);
        }
        if (name == "round") {
            const Value *pr = a.get(0, "precision"), *me = a.get(1, "method");
            int64_t p = pr ? to_int(*pr) : 0;
            std::string m = me ? py_str(*me) : "common";
            double x = v.num(), sc10 = std::pow(10.0, static_cast<double>(p));
            double r = m == "ceil" ? std::ceil(x * sc10) / sc10 : m == "floor" ? std::floor(x * sc10) / sc10 : std::nearbyint(x * sc10) / sc10;
            return Value::flt(r);
        }
        if (name == "sum") {
            const Value *at = a.get(0, "attribute"), *st = a.get(1, "start");
            Value acc = st ? *st : Value::integer(0);
            for (auto& x : iterate(v)) acc = arith("+", acc, at && at->t != VT::None ? attr_path(x, *at) : x);
            return acc;
        }
        if (name == "min" || name == "max") {
            auto items = iterate(v);
            if (items.empty()) return Value::undef(std::string("No aggregated item, sequence was empty."));
            Value best = items[0];
            for (auto& x : items)
                if (name == "min" ? py_lt(sort_key(x, false), sort_key(best, false), "<")
                                  : py_lt(sort_key(best, false), sort_key(x, false), "<"))
                    best = x;
            return best;
        }
        if (name == "indent") {
            const Value *w = a.get(0, "width"), *fi = a.get(1, "first"), *bl = a.get(2, "blank");
            std::string ind = w ? (w->t == VT::Str ? w->s : std::string(static_cast<size_t>(std::max<int64_t>(0, to_int(*w))), ' ')) : "    ";
            std::string s = str_of(v) + "\n";
            std::vector<std::string> lines;
            size_t i = 0;
            while (i < s.size()) {
                size_t j = s.find('\n', i);
                lines.push_back(s.substr(i, j - i));
                i = j + 1;
            }
            std::string rv;
            if (bl && truthy(*bl)) {
                for (size_t k = 0; k < lines.size(); ++k) rv += (k ? "\n" + ind : "") + lines[k];
            } else {
                rv = lines.empty() ? "" : lines[0];
                for (size_t k = 1; k < lines.size(); ++k) rv += "\n" + (lines[k].empty() ? "" : ind + lines[k]);
            }
            if (fi && truthy(*fi)) rv = ind + rv;
            return Value::str(rv);
        }
        if (name == "batch") {
            const Value *ln = a.get(0, "linecount"), *fw = a.get(1, "fill_with");
            int64_t n = ln ? to_int(*ln) : 1;
            if (n <= 0) type_error("batch size must be positive");
            std::vector<Value> out, cur;
            for (auto& x : iterate(v)) {
                cur.push_back(x);
                if (static_cast<int64_t>(cur.size()) == n) {
                    out.push_back(Value::list(std::move(cur)));
                    cur.clear();
                }
            }
            if (!cur.empty()) {
                if (fw && fw->t != VT::None)
                    while (static_cast<int64_t>(cur.size()) < n) cur.push_back(*fw);
                out.push_back(Value::list(std::move(cur)));
            }
            return Value::list(std::move(out));
        }
        if (name == "attr") {
            if (a.pos.empty()) type_error("attr filter needs a name");
            return getattr(v, py_str(a.pos[0]));
        }
        if (name == "pprint") return Value::str(py_repr(v));
        if (jinja2_knows_filter(name)) fail("the '{}' filter is not supported by hearth", name);
        throw TemplateError("No filter named '" + name + "' found.");
    }

    // ---- statements ----
    void bind_targets(Frame& f, const std::vector<std::string>& names, const Value& v) {
        if (names.size() == 1) {
            f.vars[names[0]] = v;
            return;
        }
        std::vector<Value> items = iterate(v);
        if (items.size() < names.size())
            type_error("not enough values to unpack (expected " + std::to_string(names.size()) + ", got " +
                       std::to_string(items.size()) + ")");
        if (items.size() > names.size())
            type_error("too many values to unpack (expected " + std::to_string(names.size()) + ")");
        for (size_t i = 0; i < names.size(); ++i) f.vars[names[i]] = items[i];
    }

    Value make_macro(const Stmt& s, const Scope& sc) {
        Scope captured = sc;
        const Stmt* st = &s;
        Value f = Value::func(s.text, [this, captured, st](Args& a) {
            return call_macro(*st, captured, a, Value());
        });
        closures_.push_back(f.fn);
        return f;
    }

    Value call_macro(const Stmt& s, const Scope& captured, Args& a, const Value& caller) {
        if (++depth_ > lim_.max_depth) {
            --depth_;
            fail("template recursion exceeded the depth limit of {}", lim_.max_depth);
        }
        struct Dec {
            int& d;
            ~Dec() { --d; }
        } dec{depth_};
        Scope sc = captured;
        auto f = std::make_shared<Frame>();
        sc.push_back(f);
        std::vector<Value> varargs;
        for (size_t i = 0; i < a.pos.size(); ++i) {
            if (i < s.names.size()) f->vars[s.names[i]] = a.pos[i];
            else varargs.push_back(a.pos[i]);
        }
        Value kwargs = Value::dict();
        for (auto& [k, v] : a.kw) {
            auto it = std::find(s.names.begin(), s.names.end(), k);
            if (it == s.names.end()) {
                if (k == "caller") {
                    f->vars["caller"] = v;
                    continue;
                }
                kwargs.d->set(k, v);
            } else {
                f->vars[k] = v;
            }
        }
        for (size_t i = 0; i < s.names.size(); ++i) {
            if (f->vars.count(s.names[i])) continue;
            if (s.exprs[i]) f->vars[s.names[i]] = eval(*s.exprs[i], sc);
            else f->vars[s.names[i]] = Value::undef("parameter '" + s.names[i] + "' was not provided");
        }
        f->vars["varargs"] = Value::list(std::move(varargs));
        f->vars["kwargs"] = kwargs;
        if (caller.t == VT::Func) f->vars["caller"] = caller;
        std::string out;
        exec(s.bodies[0], sc, out);
        f->vars.clear();
        return Value::str(out);
    }

    Flow exec(const Body& body, Scope& sc, std::string& out) {
        for (auto& sp : body) {
            const Stmt& s = *sp;
            step();
            switch (s.k) {
                case SK::Text: emit(out, s.text); break;
                case SK::Out: emit(out, py_str(eval(*s.exprs[0], sc))); break;
                case SK::If: {
                    size_t i = 0;
                    for (; i < s.exprs.size(); ++i)
                        if (truthy(eval(*s.exprs[i], sc))) break;
                    if (i < s.exprs.size() || s.has_else) {
                        Flow fl = exec(s.bodies[i], sc, out);
                        if (fl != Flow::Normal) return fl;
                    }
                    break;
                }
                case SK::For: exec_for(s, sc, out); break;
                case SK::Set: bind_targets(*sc.back(), s.names, eval(*s.exprs[0], sc)); break;
                case SK::SetAttr: {
                    Value ns = lookup(s.names[0], sc);
                    if (ns.t != VT::Dict || ns.d->kind != 1)
                        throw TemplateError("cannot assign attribute on non-namespace object");
                    ns.d->set(s.text, eval(*s.exprs[0], sc));
                    break;
                }
                case SK::SetBlock: {
                    std::string buf;
                    exec(s.bodies[0], sc, buf);
                    Value v = Value::str(buf);
                    if (!s.exprs.empty()) v = apply_chain(*s.exprs[0], v, sc);
                    sc.back()->vars[s.names[0]] = v;
                    break;
                }
                case SK::Macro: sc.back()->vars[s.text] = make_macro(s, sc); break;
                case SK::CallBlock: {
                    const Expr& c = *s.exprs[0];
                    Scope captured = sc;
                    const Stmt* st = &s;
                    Value caller = Value::func("caller", [this, captured, st](Args& a) {
                        return call_block_body(*st, captured, a);
                    });
                    closures_.push_back(caller.fn);
                    Value f = eval(*c.a[0], sc);
                    Args a = eval_args(c, 1, sc);
                    a.kw.emplace_back("caller", caller);
                    emit(out, py_str(call(f, a)));
                    break;
                }
                case SK::FilterBlock: {
                    std::string buf;
                    exec(s.bodies[0], sc, buf);
                    emit(out, py_str(apply_chain(*s.exprs[0], Value::str(buf), sc)));
                    break;
                }
                case SK::Body: {
                    Flow fl = exec(s.bodies[0], sc, out);
                    if (fl != Flow::Normal) return fl;
                    break;
                }
                case SK::Break: return Flow::Break;
                case SK::Continue: return Flow::Continue;
            }
        }
        return Flow::Normal;
    }

    Value call_block_body(const Stmt& s, const Scope& captured, Args& a) {
        Scope sc = captured;
        auto f = std::make_shared<Frame>();
        sc.push_back(f);
        for (size_t i = 0; i < s.names.size(); ++i) {
            if (i < a.pos.size()) f->vars[s.names[i]] = a.pos[i];
            else if (s.exprs.size() > i + 1 && s.exprs[i + 1]) f->vars[s.names[i]] = eval(*s.exprs[i + 1], sc);
            else f->vars[s.names[i]] = Value::undef("parameter '" + s.names[i] + "' was not provided");
        }
        std::string out;
        exec(s.bodies[0], sc, out);
        f->vars.clear();
        return Value::str(out);
    }

    // Applies a filter chain parsed with a null innermost operand to `v`.
    Value apply_chain(const Expr& e, const Value& v, const Scope& sc) {
        Value in = e.a[0] ? apply_chain(*e.a[0], v, sc) : v;
        Args a = eval_args(e, 1, sc);
        return filter(e.name, in, a, sc);
    }

    void exec_for(const Stmt& s, Scope& sc, std::string& out) {
        std::vector<Value> items = iterate(eval(*s.exprs[0], sc));
        auto f = std::make_shared<Frame>();
        sc.push_back(f);
        struct Pop {
            Scope& sc;
            ~Pop() { sc.pop_back(); }
        } pop{sc};
        if (s.exprs[1]) {
            std::vector<Value> kept;
            for (auto& it : items) {
                step();
                bind_targets(*f, s.names, it);
                if (truthy(eval(*s.exprs[1], sc))) kept.push_back(it);
            }
            items = std::move(kept);
        }
        const int64_t n = static_cast<int64_t>(items.size());
        for (int64_t i = 0; i < n; ++i) {
            step();
            f->vars.clear();  // jinja2: assignments in the body do not carry over to the next iteration
            Value loop = Value::dict(2);
            auto& L = *loop.d;
            L.set("index", Value::integer(i + 1));
            L.set("index0", Value::integer(i));
            L.set("revindex", Value::integer(n - i));
            L.set("revindex0", Value::integer(n - i - 1));
            L.set("first", Value::boolean(i == 0));
            L.set("last", Value::boolean(i == n - 1));
            L.set("length", Value::integer(n));
            L.set("depth", Value::integer(1));
            L.set("depth0", Value::integer(0));
            L.set("previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undef("there is no previous item"));
            L.set("nextitem", i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value::undef("there is no next item"));
            L.set("cycle", Value::func("cycle", [i](Args& a) {
                if (a.pos.empty()) type_error("no items for cycling given");
                return a.pos[static_cast<size_t>(i) % a.pos.size()];
            }));
            f->vars["loop"] = loop;
            bind_targets(*f, s.names, items[static_cast<size_t>(i)]);
            Flow fl = exec(s.bodies[0], sc, out);
            if (fl == Flow::Break) break;
        }
        if (n == 0 && s.has_else) exec(s.bodies[1], sc, out);
        f->vars.clear();
    }
};

}  // namespace

Template::Template(const std::string& source) : prog_(parse_template(source)) {}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const nlohmann::ordered_json& context, const Limits& limits,
                             const std::function<std::tm()>& now) const {
    Interp in(limits, now);
    return in.run(*prog_, context);
}

}  // namespace hearth::jinja
