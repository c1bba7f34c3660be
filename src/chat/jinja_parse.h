// Lexer and parser of the Jinja2 interpreter (see jinja.h): template text -> statement tree.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "chat/jinja_value.h"

namespace hearth::jinja {

enum class EK : uint8_t {
    Lit, Name, List, Tuple, Dict, Attr, Item, Slice, Call, Filter, Test, Neg, Pos, Not, Bin, And, Or, Cmp, Cond, Concat
};

struct Expr;
using ExprP = std::unique_ptr<Expr>;

struct Expr {
    EK k = EK::Lit;
    Value lit;
    std::string name;                // Name, Attr, Filter, Test, Bin operator
    std::vector<ExprP> a;            // operands (may hold nullptr for absent slice parts / Cond else)
    std::vector<std::pair<std::string, ExprP>> kw;  // Call/Filter/Test keyword arguments
    std::vector<std::string> ops;    // Cmp operators
    bool neg = false;                // Test: `is not`
    int line = 0, col = 0;
};

enum class SK : uint8_t { Text, Out, If, For, Set, SetAttr, SetBlock, Macro, CallBlock, FilterBlock, Break, Continue, Body };

struct Stmt;
using StmtP = std::unique_ptr<Stmt>;
using Body = std::vector<StmtP>;

struct Stmt {
    SK k = SK::Text;
    std::string text;                // Text; SetAttr attribute; Macro name
    std::vector<std::string> names;  // For/Set targets; Macro/CallBlock parameters; SetBlock name
    std::vector<ExprP> exprs;        // If conditions; For [iter, filter]; Set value; Out; macro defaults
    std::vector<Body> bodies;        // If branches (+ else); For [body, else]; Macro [body]
    bool has_else = false;
    int line = 0, col = 0;
};

struct Program {
    Body body;
};

// Filter and test names jinja2 3.1 defines (plus transformers' tojson); others are errors.
bool jinja2_knows_filter(const std::string& name);
bool jinja2_knows_test(const std::string& name);

std::unique_ptr<Program> parse_template(const std::string& source);

}  // namespace hearth::jinja
