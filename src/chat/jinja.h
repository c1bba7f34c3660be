// A Jinja2 interpreter for chat templates, written for hearth.
//
// Why hand-written: chat templates shipped with models are Jinja2 programs, and the prompt a model sees
// must be byte-identical to what Python's jinja2 (as configured by transformers' apply_chat_template)
// renders. There is no C++ Jinja library packaged in Debian, so hearth carries its own implementation of
// the subset real templates use (see docs and tests/jinja_test.cpp, which compares against jinja2 3.1).
//
// Environment mirrored: trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False, autoescape off,
// loopcontrols ({% break %}/{% continue %}), the ImmutableSandboxedEnvironment's refusal of mutating list and
// dict methods, default Undefined, and transformers' globals/filters (raise_exception, strftime_now, tojson
// with ensure_ascii=False).
//
// Errors: syntax errors and runtime errors are hearth::Error. Messages of errors that jinja2 raises as
// TemplateError (UndefinedError, raise_exception, SecurityError) are the same text as jinja2's.
#pragma once
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace hearth::jinja {

// Raised for errors that jinja2 reports as TemplateError (message identical to jinja2's str(exception)).
class TemplateError : public Error {
public:
    explicit TemplateError(const std::string& msg) : Error(msg) {}
};

struct Limits {
    int max_depth = 100;                  // nested macro calls (recursion)
    uint64_t max_steps = 20'000'000;      // statements + loop iterations executed
    size_t max_output = 64u << 20;        // bytes of rendered output
};

struct Program;  // parsed template

class Template {
public:
    // Parses `source`; throws hearth::Error "template syntax error at line L, column C: ..." on bad syntax.
    explicit Template(const std::string& source);
    ~Template();
    Template(Template&&) noexcept;
    Template& operator=(Template&&) noexcept;

    // Renders with the variables of `context` (a JSON object; key order is kept). `now` supplies strftime_now's time
    // (defaults to the current local time).
    std::string render(const nlohmann::ordered_json& context, const Limits& limits = {},
                       const std::function<std::tm()>& now = {}) const;

private:
    std::unique_ptr<Program> prog_;
};

}  // namespace hearth::jinja
