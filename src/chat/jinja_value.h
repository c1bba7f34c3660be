// Values of the Jinja2 interpreter (see jinja.h for why it is hand-written): Python's object model reduced
// to what chat templates touch, with Python's str()/repr()/== semantics and json.dumps.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/utf8.h"

#include "chat/jinja.h"

namespace hearth::jinja {

enum class VT : uint8_t { Undef, None, Bool, Int, Float, Str, List, Dict, Func };

struct Value;
struct ListObj;
struct DictObj;
struct FuncObj;

struct Value {
    VT t = VT::Undef;
    bool b = false;
    int64_t i = 0;
    double f = 0;
    std::string s;  // string value; for Undef: the message of the error its use raises
    bool security = false;  // Undef that stands for an unsafe attribute (raises SecurityError)
    bool markup = false;    // Str that is a markupsafe.Markup (from |safe / |escape): `+` escapes the other side
    std::shared_ptr<ListObj> l;
    std::shared_ptr<DictObj> d;
    std::shared_ptr<FuncObj> fn;

    static Value undef(std::string msg) { Value v; v.s = std::move(msg); return v; }
    static Value none() { Value v; v.t = VT::None; return v; }
    static Value boolean(bool x) { Value v; v.t = VT::Bool; v.b = x; return v; }
    static Value integer(int64_t x) { Value v; v.t = VT::Int; v.i = x; return v; }
    static Value flt(double x) { Value v; v.t = VT::Float; v.f = x; return v; }
    static Value str(std::string x) { Value v; v.t = VT::Str; v.s = std::move(x); return v; }
    static Value list(std::vector<Value> items = {}, bool tuple = false);
    static Value dict(int kind = 0);
    static Value func(std::string name, std::function<Value(struct Args&)> fn);

    bool is_undef() const { return t == VT::Undef; }
    bool is_num() const { return t == VT::Int || t == VT::Float || t == VT::Bool; }
    double num() const { return t == VT::Float ? f : t == VT::Bool ? (b ? 1 : 0) : static_cast<double>(i); }
};

struct ListObj {
    std::vector<Value> v;
    bool tuple = false;
    bool generator = false;  // result of map/select/...: truthy, no len(), not JSON, iterates once
    bool consumed = false;
    const char* view = nullptr;  // "dict_items" / "dict_keys" / "dict_values" for dict views
};

// kind: 0 dict, 1 jinja2 Namespace, 2 loop context
struct DictObj {
    std::vector<std::pair<Value, Value>> v;
    int kind = 0;
    Value* find(const Value& k);
    Value* find(std::string_view k);
    void set(const Value& k, Value val);
    void set(const std::string& k, Value val) { set(Value::str(k), std::move(val)); }
};

struct Args {
    std::vector<Value> pos;
    std::vector<std::pair<std::string, Value>> kw;
    // Positional argument `idx` or keyword `name`; nullptr when absent.
    const Value* get(size_t idx, std::string_view name) const;
};

struct FuncObj {
    std::string name;
    std::function<Value(Args&)> fn;
};

// Python semantics.
bool truthy(const Value& v);
bool py_eq(const Value& a, const Value& b);
std::string py_str(const Value& v);   // str(v); Undefined prints empty
std::string py_repr(const Value& v);  // repr(v)
std::string type_name(const Value& v);  // Python type name: 'str', 'int', 'NoneType', ...
std::string float_repr(double d);
// json.dumps(v, ensure_ascii, indent (<0: none), separators, sort_keys)
std::string to_json(const Value& v, bool ensure_ascii, int indent, const std::string& item_sep,
                    const std::string& key_sep, bool sort_keys);
Value from_json(const nlohmann::ordered_json& j);

// UTF-8 code points (invalid bytes decode as themselves).
uint32_t utf8_next(const std::string& s, size_t& i);
using hearth::utf8_append;

// Raises jinja2's UndefinedError (or SecurityError) for a use of an undefined value.
[[noreturn]] void undefined_error(const Value& v);

}  // namespace hearth::jinja
