// Python object semantics for the Jinja2 interpreter: truthiness, ==, str(), repr(), json.dumps.
#include "chat/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

namespace hearth::jinja {

Value Value::list(std::vector<Value> items, bool tuple) {
    Value v;
    v.t = VT::List;
    v.l = std::make_shared<ListObj>();
    v.l->v = std::move(items);
    v.l->tuple = tuple;
    return v;
}

Value Value::dict(int kind) {
    Value v;
    v.t = VT::Dict;
    v.d = std::make_shared<DictObj>();
    v.d->kind = kind;
    return v;
}

Value Value::func(std::string name, std::function<Value(Args&)> fn) {
    Value v;
    v.t = VT::Func;
    v.fn = std::make_shared<FuncObj>();
    v.fn->name = std::move(name);
    v.fn->fn = std::move(fn);
    return v;
}

Value* DictObj::find(const Value& k) {
    for (auto& [key, val] : v)
        if (py_eq(key, k)) return &val;
    return nullptr;
}

Value* DictObj::find(std::string_view k) {
    for (auto& [key, val] : v)
        if (key.t == VT::Str && key.s == k) return &val;
    return nullptr;
}

void DictObj::set(const Value& k, Value val) {
    if (Value* p = find(k)) {
        *p = std::move(val);
        return;
    }
    v.emplace_back(k, std::move(val));
}

const Value* Args::get(size_t idx, std::string_view name) const {
    if (idx < pos.size()) return &pos[idx];
    for (auto& [k, val] : kw)
        if (k == name) return &val;
    return nullptr;
}

[[noreturn]] void undefined_error(const Value& v) {
    throw TemplateError(v.s);  // UndefinedError, or SecurityError for an unsafe attribute: same message either way
}

bool truthy(const Value& v) {
    switch (v.t) {
        case VT::Undef: case VT::None: return false;
        case VT::Bool: return v.b;
        case VT::Int: return v.i != 0;
        case VT::Float: return v.f != 0;
        case VT::Str: return !v.s.empty();
        case VT::List: return v.l->generator || !v.l->v.empty();
        case VT::Dict: return v.d->kind != 0 || !v.d->v.empty();
        case VT::Func: return true;
    }
    return false;
}

bool py_eq(const Value& a, const Value& b) {
    if (a.is_num() && b.is_num()) {
        if (a.t == VT::Float || b.t == VT::Float) return a.num() == b.num();
        int64_t x = a.t == VT::Bool ? a.b : a.i, y = b.t == VT::Bool ? b.b : b.i;
        return x == y;
    }
    if (a.t != b.t) return false;
    switch (a.t) {
        case VT::Undef: case VT::None: return true;
        case VT::Str: return a.s == b.s;
        case VT::List:
            if (a.l == b.l) return true;
            if (a.l->generator || b.l->generator) return false;
            if (a.l->tuple != b.l->tuple || a.l->v.size() != b.l->v.size()) return false;
            for (size_t i = 0; i < a.l->v.size(); ++i)
                if (!py_eq(a.l->v[i], b.l->v[i])) return false;
            return true;
        case VT::Dict:
            if (a.d == b.d) return true;
            if (a.d->kind != 0 || b.d->kind != 0 || a.d->v.size() != b.d->v.size()) return false;
            for (auto& [k, v] : a.d->v) {
                const Value* o = b.d->find(k);
                if (!o || !py_eq(v, *o)) return false;
            }
            return true;
        case VT::Func: return a.fn == b.fn;
        default: return false;
    }
}

std::string float_repr(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
    if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
    std::string sci(buf, r.ptr);
    bool neg = sci[0] == '-';
    if (neg) sci.erase(0, 1);
    size_t e = sci.find('e');
    int exp = std::atoi(sci.c_str() + e + 1);
    std::string digits;
    for (size_t i = 0; i < e; ++i)
        if (sci[i] != '.') digits += sci[i];
    std::string out;
    if (exp >= -4 && exp < 16) {
        int n = static_cast<int>(digits.size());
        if (exp < 0) {
            out = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
        } else if (exp + 1 >= n) {
            out = digits + std::string(static_cast<size_t>(exp + 1 - n), '0') + ".0";
        } else {
            out = digits.substr(0, static_cast<size_t>(exp + 1)) + "." + digits.substr(static_cast<size_t>(exp + 1));
        }
    } else {
        out = digits.substr(0, 1);
        if (digits.size() > 1) out += "." + digits.substr(1);
        char eb[16];
        std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
        out += eb;
    }
    return neg ? "-" + out : out;
}

std::string type_name(const Value& v) {
    switch (v.t) {
        case VT::Undef: return "Undefined";
        case VT::None: return "NoneType";
        case VT::Bool: return "bool";
        case VT::Int: return "int";
        case VT::Float: return "float";
        case VT::Str: return "str";
        case VT::List: return v.l->generator ? "generator" : v.l->view ? v.l->view : v.l->tuple ? "tuple" : "list";
        case VT::Dict: return v.d->kind == 0 ? "dict" : v.d->kind == 1 ? "Namespace" : "LoopContext";
        case VT::Func: return "function";
    }
    return "object";
}

uint32_t utf8_next(const std::string& s, size_t& i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
    if (n <= 0 || i + static_cast<size_t>(n) >= s.size()) {
        ++i;
        return c;
    }
    uint32_t cp = c & (0x3fu >> n);
    for (int k = 1; k <= n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + static_cast<size_t>(k)]) & 0x3fu);
    i += static_cast<size_t>(n) + 1;
    return cp;
}


static std::string repr_str(const std::string& s) {
    char q = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
    std::string out(1, q);
    size_t i = 0;
    while (i < s.size()) {
        size_t st = i;
        uint32_t cp = utf8_next(s, i);
        char buf[16];
        if (cp == '\\') out += "\\\\";
        else if (cp == static_cast<uint32_t>(q)) { out += '\\'; out += q; }
        else if (cp == '\n') out += "\\n";
        else if (cp == '\r') out += "\\r";
        else if (cp == '\t') out += "\\t";
        else if (cp < 0x20 || (cp >= 0x7f && cp <= 0xa0) || cp == 0xad) {
            std::snprintf(buf, sizeof buf, "\\x%02x", cp);
            out += buf;
        } else if ((cp >= 0x2000 && cp <= 0x200f) || cp == 0x2028 || cp == 0x2029 || cp == 0xfeff ||
                   (cp >= 0x202a && cp <= 0x202f) || (cp >= 0x2060 && cp <= 0x206f) || cp == 0x3000) {
            std::snprintf(buf, sizeof buf, "\\u%04x", cp);
            out += buf;
        } else {
            out.append(s, st, i - st);
        }
    }
    out += q;
    return out;
}

std::string py_repr(const Value& v) {
    switch (v.t) {
        case VT::Str: return repr_str(v.s);
        case VT::Undef: return "Undefined";
        case VT::List: {
            std::string out = v.l->tuple ? "(" : "[";
            for (size_t i = 0; i < v.l->v.size(); ++i) {
                if (i) out += ", ";
                out += py_repr(v.l->v[i]);
            }
            if (v.l->tuple && v.l->v.size() == 1) out += ",";
            out += v.l->tuple ? ")" : "]";
            return v.l->view ? std::string(v.l->view) + "(" + out + ")" : out;
        }
        case VT::Dict: {
            std::string out = "{";
            for (size_t i = 0; i < v.d->v.size(); ++i) {
                if (i) out += ", ";
                out += py_repr(v.d->v[i].first) + ": " + py_repr(v.d->v[i].second);
            }
            out += "}";
            if (v.d->kind == 1) return "<Namespace " + out + ">";
            if (v.d->kind == 2) return "<LoopContext>";
            return out;
        }
        default: return py_str(v);
    }
}

std::string py_str(const Value& v) {
    switch (v.t) {
        case VT::Undef: return "";
        case VT::None: return "None";
        case VT::Bool: return v.b ? "True" : "False";
        case VT::Int: return std::to_string(v.i);
        case VT::Float: return float_repr(v.f);
        case VT::Str: return v.s;
        case VT::Func: return "<function " + v.fn->name + ">";
        default: return py_repr(v);
    }
}

static void json_str(std::string& out, const std::string& s, bool ensure_ascii) {
    out += '"';
    size_t i = 0;
    char buf[16];
    while (i < s.size()) {
        size_t st = i;
        uint32_t cp = utf8_next(s, i);
        switch (cp) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (cp < 0x20 || (ensure_ascii && cp >= 0x7f)) {
                    if (cp >= 0x10000) {
                        uint32_t c = cp - 0x10000;
                        std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xd800 + (c >> 10), 0xdc00 + (c & 0x3ff));
                    } else {
                        std::snprintf(buf, sizeof buf, "\\u%04x", cp);
                    }
                    out += buf;
                } else {
                    out.append(s, st, i - st);
                }
        }
    }
    out += '"';
}

static void json_rec(std::string& out, const Value& v, bool ea, int indent, int level, const std::string& isep,
                     const std::string& ksep, bool sort_keys) {
    auto nl = [&](int lvl) {
        out += '\n';
        out.append(static_cast<size_t>(indent * lvl), ' ');
    };
    switch (v.t) {
        case VT::None: out += "null"; return;
        case VT::Bool: out += v.b ? "true" : "false"; return;
        case VT::Int: out += std::to_string(v.i); return;
        case VT::Float:
            if (std::isnan(v.f)) out += "NaN";
            else if (std::isinf(v.f)) out += v.f < 0 ? "-Infinity" : "Infinity";
            else out += float_repr(v.f);
            return;
        case VT::Str: json_str(out, v.s, ea); return;
        case VT::List: {
            if (v.l->generator || v.l->view)
                throw Error("Object of type " + type_name(v) + " is not JSON serializable");
            if (v.l->v.empty()) { out += "[]"; return; }
            out += '[';
            for (size_t i = 0; i < v.l->v.size(); ++i) {
                if (i) out += isep;
                if (indent >= 0) nl(level + 1);
                json_rec(out, v.l->v[i], ea, indent, level + 1, isep, ksep, sort_keys);
            }
            if (indent >= 0) nl(level);
            out += ']';
            return;
        }
        case VT::Dict: {
            if (v.d->kind != 0) throw Error("Object of type " + type_name(v) + " is not JSON serializable");
            if (v.d->v.empty()) { out += "{}"; return; }
            std::vector<std::pair<std::string, const Value*>> items;
            for (auto& [k, val] : v.d->v) {
                std::string ks;
                if (k.t == VT::Str) ks = k.s;
                else if (k.t == VT::None) ks = "null";
                else if (k.t == VT::Bool) ks = k.b ? "true" : "false";
                else if (k.t == VT::Int || k.t == VT::Float) ks = py_str(k);
                else throw Error("keys must be str, int, float, bool or None, not " + type_name(k));
                items.emplace_back(ks, &val);
            }
            if (sort_keys)
                std::stable_sort(items.begin(), items.end(), [](auto& a, auto& b) { return a.first < b.first; });
            out += '{';
            for (size_t i = 0; i < items.size(); ++i) {
                if (i) out += isep;
                if (indent >= 0) nl(level + 1);
                json_str(out, items[i].first, ea);
                out += ksep;
                json_rec(out, *items[i].second, ea, indent, level + 1, isep, ksep, sort_keys);
            }
            if (indent >= 0) nl(level);
            out += '}';
            return;
        }
        default: throw Error("Object of type " + type_name(v) + " is not JSON serializable");
    }
}

std::string to_json(const Value& v, bool ensure_ascii, int indent, const std::string& item_sep,
                    const std::string& key_sep, bool sort_keys) {
    std::string out;
    json_rec(out, v, ensure_ascii, indent, 0, item_sep, key_sep, sort_keys);
    return out;
}

Value from_json(const nlohmann::ordered_json& j) {
    switch (j.type()) {
        case nlohmann::ordered_json::value_t::null: return Value::none();
        case nlohmann::ordered_json::value_t::boolean: return Value::boolean(j.get<bool>());
        case nlohmann::ordered_json::value_t::number_integer: return Value::integer(j.get<int64_t>());
        case nlohmann::ordered_json::value_t::number_unsigned: {
            uint64_t u = j.get<uint64_t>();
            if (u > static_cast<uint64_t>(INT64_MAX)) return Value::flt(static_cast<double>(u));
            return Value::integer(static_cast<int64_t>(u));
        }
        case nlohmann::ordered_json::value_t::number_float: return Value::flt(j.get<double>());
        case nlohmann::ordered_json::value_t::string: return Value::str(j.get<std::string>());
        case nlohmann::ordered_json::value_t::array: {
            std::vector<Value> items;
            for (auto& e : j) items.push_back(from_json(e));
            return Value::list(std::move(items));
        }
        case nlohmann::ordered_json::value_t::object: {
            Value d = Value::dict();
            for (auto it = j.begin(); it != j.end(); ++it) d.d->v.emplace_back(Value::str(it.key()), from_json(it.value()));
            return d;
        }
        default: return Value::none();
    }
}

}  // namespace hearth::jinja
