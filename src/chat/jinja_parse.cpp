// Lexer and parser of the Jinja2 interpreter (see jinja.h). Whitespace handling follows jinja2's lexer with
// trim_blocks=True and lstrip_blocks=True; operator precedence follows jinja2's parser.
#include "chat/jinja_parse.h"

#include <algorithm>
#include <cstring>

namespace hearth::jinja {
namespace {

enum class TK : uint8_t { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, Str, Int, Float, Op, Eof };

struct Tok {
    TK k;
    std::string s;
    int64_t i = 0;
    double f = 0;
    size_t off = 0;
};

struct Source {
    std::string text;
    std::vector<size_t> line_starts;
    void index() {
        line_starts = {0};
        for (size_t i = 0; i < text.size(); ++i)
            if (text[i] == '\n') line_starts.push_back(i + 1);
    }
    std::pair<int, int> pos(size_t off) const {
        auto it = std::upper_bound(line_starts.begin(), line_starts.end(), off);
        size_t line = static_cast<size_t>(it - line_starts.begin());
        return {static_cast<int>(line), static_cast<int>(off - line_starts[line - 1] + 1)};
    }
    [[noreturn]] void error(size_t off, const std::string& msg) const {
        auto [l, c] = pos(off);
        fail("template syntax error at line {}, column {}: {}", l, c, msg);
    }
};

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::vector<Tok> lex(const Source& src) {
    const std::string& s = src.text;
    const size_t n = s.size();
    std::vector<Tok> out;
    size_t pos = 0;
    bool line_starting = true;
    auto emit_text = [&](std::string t, size_t off) {
        if (!t.empty()) out.push_back(Tok{TK::Text, std::move(t), 0, 0, off});
    };
    while (pos < n) {
        size_t start = pos;
        char kind = 0;
        while (true) {
            start = s.find('{', start);
            if (start == std::string::npos || start + 1 >= n) break;
            char c = s[start + 1];
            if (c == '{' || c == '%' || c == '#') {
                kind = c;
                break;
            }
            ++start;
        }
        if (!kind) {
            emit_text(s.substr(pos), pos);
            break;
        }
        std::string text = s.substr(pos, start - pos);
        size_t p = start + 2;
        if (p < n && s[p] == '-') {
            while (!text.empty() && is_ws(text.back())) text.pop_back();
            ++p;
        } else if (p < n && s[p] == '+') {
            ++p;
        } else if (kind != '{') {
            size_t l_pos = text.rfind('\n');
            l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
            if (l_pos > 0 || line_starting) {
                bool only = true;
                for (size_t i = l_pos; i < text.size(); ++i)
                    if (text[i] != ' ' && text[i] != '\t') only = false;
                if (only) text.resize(l_pos);
            }
        }
        emit_text(std::move(text), pos);
        if (kind == '#') {
            size_t e = s.find("#}", p);
            if (e == std::string::npos) src.error(start, "Missing end of comment tag");
            size_t after = e + 2;
            if (e > p && s[e - 1] == '-') {
                while (after < n && is_ws(s[after])) ++after;
            } else if (e > p && s[e - 1] == '+') {
            } else if (after < n && s[after] == '\n') {
                ++after;
            }
            line_starting = after > 0 && s[after - 1] == '\n';
            pos = after;
            continue;
        }
        if (kind == '%') {  // {% raw %}...{% endraw %}: the body is text
            size_t q = p;
            while (q < n && is_ws(s[q])) ++q;
            if (s.compare(q, 3, "raw") == 0 && (q + 3 >= n || !(std::isalnum(static_cast<unsigned char>(s[q + 3])) || s[q + 3] == '_'))) {
                q += 3;
                while (q < n && is_ws(s[q])) ++q;
                if (q < n && s[q] == '-') ++q;
                if (s.compare(q, 2, "%}") != 0) src.error(q, "expected end of raw block tag");
                size_t body = q + 2;
                if (body < n && s[q - 1] == '-') {
                    while (body < n && is_ws(s[body])) ++body;
                } else if (body < n && s[body] == '\n') {
                    ++body;
                }
                size_t e = body;
                while (true) {
                    e = s.find("{%", e);
                    if (e == std::string::npos) src.error(start, "missing end of raw directive");
                    size_t r = e + 2;
                    if (r < n && (s[r] == '-' || s[r] == '+')) ++r;
                    while (r < n && is_ws(s[r])) ++r;
                    if (s.compare(r, 6, "endraw") == 0) {
                        std::string raw = s.substr(body, e - body);
                        if (s[e + 2] == '-') {
                            while (!raw.empty() && is_ws(raw.back())) raw.pop_back();
                        } else if (s[e + 2] != '+') {
                            size_t l_pos = raw.rfind('\n');
                            l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
                            if (raw.find_first_not_of(" \t", l_pos) == std::string::npos) raw.resize(l_pos);
                        }
                        emit_text(std::move(raw), body);
                        r += 6;
                        while (r < n && is_ws(s[r])) ++r;
                        bool strip = false;
                        if (r < n && s[r] == '-') {
                            strip = true;
                            ++r;
                        }
                        if (s.compare(r, 2, "%}") != 0) src.error(r, "expected end of endraw tag");
                        r += 2;
                        if (strip)
                            while (r < n && is_ws(s[r])) ++r;
                        else if (r < n && s[r] == '\n')
                            ++r;
                        line_starting = s[r - 1] == '\n';
                        pos = r;
                        break;
                    }
                    e += 2;
                }
                continue;
            }
        }
        out.push_back(Tok{kind == '{' ? TK::VarBegin : TK::BlockBegin, "", 0, 0, start});
        // expression tokens up to the closing tag
        int depth = 0;
        bool closed = false;
        while (p < n) {
            if (is_ws(s[p])) {
                ++p;
                continue;
            }
            const char* end2 = kind == '{' ? "}}" : "%}";
            if (depth == 0) {
                size_t after = 0;
                if ((s[p] == '-' || s[p] == '+') && s.compare(p + 1, 2, end2) == 0) {
                    after = p + 3;
                    if (s[p] == '-') {
                        while (after < n && is_ws(s[after])) ++after;
                    } else if (kind == '{') {
                        after = 0;  // `+}}` is not a closing modifier for variables
                    }
                } else if (s.compare(p, 2, end2) == 0) {
                    after = p + 2;
                    if (kind == '%' && after < n && s[after] == '\n') ++after;
                }
                if (after) {
                    out.push_back(Tok{kind == '{' ? TK::VarEnd : TK::BlockEnd, "", 0, 0, p});
                    line_starting = s[after - 1] == '\n';
                    pos = after;
                    closed = true;
                    break;
                }
            }
            char c = s[p];
            size_t st = p;
            if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
                while (p < n && (std::isalnum(static_cast<unsigned char>(s[p])) || s[p] == '_')) ++p;
                out.push_back(Tok{TK::Name, s.substr(st, p - st), 0, 0, st});
            } else if (std::isdigit(static_cast<unsigned char>(c))) {
                auto digits = [&] {
                    while (p < n && (std::isdigit(static_cast<unsigned char>(s[p])) ||
                                     (s[p] == '_' && p + 1 < n && std::isdigit(static_cast<unsigned char>(s[p + 1])))))
                        ++p;
                };
                digits();
                bool is_float = false;
                if (p + 1 < n && s[p] == '.' && std::isdigit(static_cast<unsigned char>(s[p + 1]))) {
                    ++p;
                    digits();
                    is_float = true;
                }
                if (p < n && (s[p] == 'e' || s[p] == 'E')) {
                    size_t q = p + 1;
                    if (q < n && (s[q] == '+' || s[q] == '-')) ++q;
                    if (q < n && std::isdigit(static_cast<unsigned char>(s[q]))) {
                        p = q;
                        digits();
                        is_float = true;
                    }
                }
                std::string lit;
                for (size_t i = st; i < p; ++i)
                    if (s[i] != '_') lit += s[i];
                Tok t{is_float ? TK::Float : TK::Int, lit, 0, 0, st};
                if (is_float) {
                    t.f = std::strtod(lit.c_str(), nullptr);
                } else {
                    errno = 0;
                    t.i = std::strtoll(lit.c_str(), nullptr, 10);
                    if (errno == ERANGE) src.error(st, "integer literal too large");
                }
                out.push_back(std::move(t));
            } else if (c == '\'' || c == '"') {
                ++p;
                std::string val;
                bool ok = false;
                while (p < n) {
                    char d = s[p];
                    if (d == c) {
                        ok = true;
                        ++p;
                        break;
                    }
                    if (d == '\\' && p + 1 < n) {
                        char e = s[p + 1];
                        p += 2;
                        auto hex = [&](int cnt) -> bool {
                            if (p + static_cast<size_t>(cnt) > n) return false;
                            uint32_t cp = 0;
                            for (int k = 0; k < cnt; ++k) {
                                char h = s[p + static_cast<size_t>(k)];
                                if (!std::isxdigit(static_cast<unsigned char>(h))) return false;
                                cp = cp * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
                            }
                            p += static_cast<size_t>(cnt);
                            utf8_append(val, cp);
                            return true;
                        };
                        switch (e) {
                            case 'n': val += '\n'; break;
                            case 't': val += '\t'; break;
                            case 'r': val += '\r'; break;
                            case '\\': val += '\\'; break;
                            case '\'': val += '\''; break;
                            case '"': val += '"'; break;
                            case 'a': val += '\a'; break;
                            case 'b': val += '\b'; break;
                            case 'f': val += '\f'; break;
                            case 'v': val += '\v'; break;
                            case '\n': break;
                            case 'x': if (!hex(2)) src.error(st, "invalid \\x escape"); break;
                            case 'u': if (!hex(4)) src.error(st, "invalid \\u escape"); break;
                            case 'U': if (!hex(8)) src.error(st, "invalid \\U escape"); break;
                            default:
                                if (e >= '0' && e <= '7') {
                                    uint32_t cp = static_cast<uint32_t>(e - '0');
                                    for (int k = 0; k < 2 && p < n && s[p] >= '0' && s[p] <= '7'; ++k, ++p)
                                        cp = cp * 8 + static_cast<uint32_t>(s[p] - '0');
                                    utf8_append(val, cp);
                                } else {
                                    val += '\\';
                                    val += e;
                                }
                        }
                        continue;
                    }
                    val += d;
                    ++p;
                }
                if (!ok) src.error(st, "unexpected end of string");
                out.push_back(Tok{TK::Str, std::move(val), 0, 0, st});
            } else {
                static const char* ops[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
                                            ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"};
                const char* m = nullptr;
                for (const char* o : ops)
                    if (s.compare(p, std::strlen(o), o) == 0) {
                        m = o;
                        break;
                    }
                if (!m) src.error(p, std::string("unexpected char '") + c + "'");
                if (*m == '(' || *m == '[' || *m == '{') ++depth;
                if ((*m == ')' || *m == ']' || *m == '}') && depth > 0) --depth;
                p += std::strlen(m);
                out.push_back(Tok{TK::Op, m, 0, 0, st});
            }
        }
        if (!closed) src.error(start, kind == '{' ? "unexpected end of template, expected '}}'" : "unexpected end of template, expected '%}'");
    }
    out.push_back(Tok{TK::Eof, "", 0, 0, n});
    return out;
}

class Parser {
public:
    Parser(const Source& src, std::vector<Tok> toks) : src_(src), t_(std::move(toks)) {}

    Body parse_all() {
        Body b = parse_body({});
        if (cur().k != TK::Eof) error("unexpected tag '" + cur().s + "'");
        return b;
    }

private:
    const Source& src_;
    std::vector<Tok> t_;
    size_t i_ = 0;
    int depth_ = 0;
    size_t tag_nodes_ = 0;  // expression nodes in the current tag: bounds tree depth (and recursion over it)

    const Tok& cur() const { return t_[i_]; }
    const Tok& peek(size_t k = 1) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
    [[noreturn]] void error(const std::string& msg) const { src_.error(cur().off, msg); }
    bool is_op(const char* o) const { return cur().k == TK::Op && cur().s == o; }
    bool is_name(const char* nm) const { return cur().k == TK::Name && cur().s == nm; }
    bool skip_op(const char* o) {
        if (!is_op(o)) return false;
        ++i_;
        return true;
    }
    bool skip_name(const char* nm) {
        if (!is_name(nm)) return false;
        ++i_;
        return true;
    }
    void expect_op(const char* o) {
        if (!skip_op(o)) error(std::string("expected '") + o + "', got " + describe());
    }
    std::string describe() const {
        switch (cur().k) {
            case TK::Eof: return "end of template";
            case TK::BlockEnd: return "end of statement block";
            case TK::VarEnd: return "end of print statement";
            default: return "'" + cur().s + "'";
        }
    }
    std::string expect_name() {
        if (cur().k != TK::Name) error("expected name, got " + describe());
        return t_[i_++].s;
    }
    void expect_block_end() {
        if (cur().k != TK::BlockEnd) error("expected end of statement block, got " + describe());
        ++i_;
    }
    ExprP mk(EK k) {
        if (++tag_nodes_ > 2000) error("expression too complex (more than 2000 nodes in one tag)");
        auto e = std::make_unique<Expr>();
        e->k = k;
        auto [l, c] = src_.pos(cur().off);
        e->line = l;
        e->col = c;
        return e;
    }
    struct DepthGuard {
        Parser& p;
        explicit DepthGuard(Parser& pp) : p(pp) {
            if (++p.depth_ > 300) p.error("template nesting too deep");
        }
        ~DepthGuard() { --p.depth_; }
    };

    // ---- statements ----
    Body parse_body(const std::vector<std::string>& ends) {
        Body body;
        while (true) {
            const Tok& t = cur();
            if (t.k == TK::Eof) {
                if (!ends.empty()) {
                    std::string want;
                    for (auto& e : ends) want += (want.empty() ? "'" : " or '") + e + "'";
                    error("unexpected end of template; Jinja was looking for " + want);
                }
                return body;
            }
            if (t.k == TK::Text) {
                auto st = std::make_unique<Stmt>();
                st->k = SK::Text;
                st->text = t.s;
                body.push_back(std::move(st));
                ++i_;
            } else if (t.k == TK::VarBegin) {
                ++i_;
                tag_nodes_ = 0;
                auto st = std::make_unique<Stmt>();
                st->k = SK::Out;
                st->exprs.push_back(parse_tuple(true));
                if (cur().k != TK::VarEnd) error("expected end of print statement, got " + describe());
                ++i_;
                body.push_back(std::move(st));
            } else if (t.k == TK::BlockBegin) {
                const Tok& nm = peek();
                if (nm.k != TK::Name) {
                    ++i_;
                    error("expected a tag name");
                }
                if (std::find(ends.begin(), ends.end(), nm.s) != ends.end()) {
                    ++i_;  // now at the tag name
                    return body;
                }
                ++i_;
                tag_nodes_ = 0;
                DepthGuard g(*this);
                body.push_back(parse_statement());
            } else {
                error("unexpected " + describe());
            }
        }
    }

    StmtP stmt(SK k) {
        auto s = std::make_unique<Stmt>();
        s->k = k;
        auto [l, c] = src_.pos(cur().off);
        s->line = l;
        s->col = c;
        return s;
    }

    StmtP parse_statement() {
        std::string tag = cur().s;
        if (tag == "if") {
            ++i_;
            auto s = stmt(SK::If);
            s->exprs.push_back(parse_tuple(true));
            expect_block_end();
            while (true) {
                s->bodies.push_back(parse_body({"elif", "else", "endif"}));
                std::string e = expect_name();
                if (e == "elif") {
                    s->exprs.push_back(parse_tuple(true));
                    expect_block_end();
                } else if (e == "else") {
                    expect_block_end();
                    s->bodies.push_back(parse_body({"endif"}));
                    ++i_;
                    s->has_else = true;
                    expect_block_end();
                    break;
                } else {
                    expect_block_end();
                    break;
                }
            }
            return s;
        }
        if (tag == "for") {
            ++i_;
            auto s = stmt(SK::For);
            bool paren = skip_op("(");
            s->names.push_back(expect_name());
            while (skip_op(",")) {
                if (is_name("in") || is_op(")")) break;
                s->names.push_back(expect_name());
            }
            if (paren) expect_op(")");
            if (!skip_name("in")) error("expected 'in', got " + describe());
            s->exprs.push_back(parse_tuple(false));
            if (skip_name("if")) s->exprs.push_back(parse_expression(true));
            else s->exprs.push_back(nullptr);
            if (skip_name("recursive")) error("recursive for loops are not supported");
            expect_block_end();
            s->bodies.push_back(parse_body({"endfor", "else"}));
            if (expect_name() == "else") {
                expect_block_end();
                s->bodies.push_back(parse_body({"endfor"}));
                ++i_;
                s->has_else = true;
            }
            expect_block_end();
            return s;
        }
        if (tag == "set") {
            ++i_;
            auto s = stmt(SK::Set);
            std::string first = expect_name();
            if (skip_op(".")) {
                s->k = SK::SetAttr;
                s->names.push_back(first);
                s->text = expect_name();
                expect_op("=");
                s->exprs.push_back(parse_tuple(true));
                expect_block_end();
                return s;
            }
            s->names.push_back(first);
            while (skip_op(",")) s->names.push_back(expect_name());
            if (skip_op("=")) {
                s->exprs.push_back(parse_tuple(true));
                expect_block_end();
                return s;
            }
            if (s->names.size() != 1) error("expected '='");
            s->k = SK::SetBlock;
            if (is_op("|")) s->exprs.push_back(parse_filter_chain(nullptr));
            expect_block_end();
            s->bodies.push_back(parse_body({"endset"}));
            ++i_;
            expect_block_end();
            return s;
        }
        if (tag == "macro") {
            ++i_;
            auto s = stmt(SK::Macro);
            s->text = expect_name();
            parse_signature(*s);
            expect_block_end();
            s->bodies.push_back(parse_body({"endmacro"}));
            ++i_;
            if (cur().k == TK::Name) ++i_;
            expect_block_end();
            return s;
        }
        if (tag == "call") {
            ++i_;
            auto s = stmt(SK::CallBlock);
            if (is_op("(")) parse_signature(*s);
            s->exprs.push_back(parse_expression(true));
            if (s->exprs.back()->k != EK::Call) error("expected call");
            expect_block_end();
            s->bodies.push_back(parse_body({"endcall"}));
            ++i_;
            expect_block_end();
            return s;
        }
        if (tag == "filter") {
            ++i_;
            auto s = stmt(SK::FilterBlock);
            s->exprs.push_back(parse_filter_chain(nullptr, true));
            expect_block_end();
            s->bodies.push_back(parse_body({"endfilter"}));
            ++i_;
            expect_block_end();
            return s;
        }
        if (tag == "generation") {
            ++i_;
            auto s = stmt(SK::Body);
            expect_block_end();
            s->bodies.push_back(parse_body({"endgeneration"}));
            ++i_;
            expect_block_end();
            return s;
        }
        if (tag == "break" || tag == "continue") {
            ++i_;
            auto s = stmt(tag == "break" ? SK::Break : SK::Continue);
            expect_block_end();
            return s;
        }
        error("Encountered unknown tag '" + tag + "'.");
    }

    void parse_signature(Stmt& s) {
        expect_op("(");
        while (!is_op(")")) {
            if (!s.names.empty()) expect_op(",");
            if (is_op(")")) break;
            s.names.push_back(expect_name());
            if (skip_op("=")) s.exprs.push_back(parse_expression(true));
            else s.exprs.push_back(nullptr);
        }
        expect_op(")");
    }

    // ---- expressions ----
    ExprP parse_tuple(bool with_cond) {
        auto first = parse_expression(with_cond);
        if (!is_op(",")) return first;
        auto t = mk(EK::Tuple);
        t->a.push_back(std::move(first));
        while (skip_op(",")) {
            if (cur().k == TK::VarEnd || cur().k == TK::BlockEnd || is_op(")") || (!with_cond && is_name("if")))
                break;
            t->a.push_back(parse_expression(with_cond));
        }
        return t;
    }

    ExprP parse_expression(bool with_cond) {
        DepthGuard g(*this);
        if (!with_cond) return parse_or();
        auto e = parse_or();
        while (skip_name("if")) {
            auto c = mk(EK::Cond);
            auto cond = parse_or();
            ExprP els;
            if (skip_name("else")) els = parse_expression(true);
            c->a.push_back(std::move(e));
            c->a.push_back(std::move(cond));
            c->a.push_back(std::move(els));
            e = std::move(c);
        }
        return e;
    }

    ExprP bin(EK k, ExprP l, ExprP r, std::string op = {}) {
        auto e = mk(k);
        e->name = std::move(op);
        e->a.push_back(std::move(l));
        e->a.push_back(std::move(r));
        return e;
    }

    ExprP parse_or() {
        auto l = parse_and();
        while (skip_name("or")) l = bin(EK::Or, std::move(l), parse_and());
        return l;
    }
    ExprP parse_and() {
        auto l = parse_not();
        while (skip_name("and")) l = bin(EK::And, std::move(l), parse_not());
        return l;
    }
    ExprP parse_not() {
        if (is_name("not")) {
            auto e = mk(EK::Not);
            ++i_;
            DepthGuard g(*this);
            e->a.push_back(parse_not());
            return e;
        }
        return parse_compare();
    }
    ExprP parse_compare() {
        auto l = parse_math1();
        ExprP cmp;
        while (true) {
            std::string op;
            if (cur().k == TK::Op && (cur().s == "==" || cur().s == "!=" || cur().s == "<" || cur().s == ">" ||
                                      cur().s == "<=" || cur().s == ">=")) {
                op = cur().s;
                ++i_;
            } else if (is_name("in")) {
                op = "in";
                ++i_;
            } else if (is_name("not") && peek().k == TK::Name && peek().s == "in") {
                op = "notin";
                i_ += 2;
            } else {
                break;
            }
            if (!cmp) {
                cmp = mk(EK::Cmp);
                cmp->a.push_back(std::move(l));
            }
            cmp->ops.push_back(op);
            cmp->a.push_back(parse_math1());
        }
        return cmp ? std::move(cmp) : std::move(l);
    }
    ExprP parse_math1() {
        auto l = parse_concat();
        while (is_op("+") || is_op("-")) {
            std::string op = t_[i_++].s;
            l = bin(EK::Bin, std::move(l), parse_concat(), op);
        }
        return l;
    }
    ExprP parse_concat() {
        auto l = parse_math2();
        if (!is_op("~")) return l;
        auto c = mk(EK::Concat);
        c->a.push_back(std::move(l));
        while (skip_op("~")) c->a.push_back(parse_math2());
        return c;
    }
    ExprP parse_math2() {
        auto l = parse_pow();
        while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
            std::string op = t_[i_++].s;
            l = bin(EK::Bin, std::move(l), parse_pow(), op);
        }
        return l;
    }
    ExprP parse_pow() {
        auto l = parse_unary(true);
        while (skip_op("**")) l = bin(EK::Bin, std::move(l), parse_unary(true), "**");
        return l;
    }
    ExprP parse_unary(bool with_filter) {
        DepthGuard g(*this);
        ExprP node;
        if (is_op("-") || is_op("+")) {
            node = mk(is_op("-") ? EK::Neg : EK::Pos);
            ++i_;
            node->a.push_back(parse_unary(false));
        } else {
            node = parse_primary();
        }
        node = parse_postfix(std::move(node));
        if (with_filter) node = parse_filter_chain(std::move(node));
        return node;
    }
    ExprP parse_primary() {
        const Tok& t = cur();
        if (t.k == TK::Name) {
            auto e = mk(EK::Lit);
            ++i_;
            if (t.s == "true" || t.s == "True") e->lit = Value::boolean(true);
            else if (t.s == "false" || t.s == "False") e->lit = Value::boolean(false);
            else if (t.s == "none" || t.s == "None") e->lit = Value::none();
            else {
                e->k = EK::Name;
                e->name = t.s;
            }
            return e;
        }
        if (t.k == TK::Str) {
            auto e = mk(EK::Lit);
            std::string v;
            while (cur().k == TK::Str) v += t_[i_++].s;
            e->lit = Value::str(std::move(v));
            return e;
        }
        if (t.k == TK::Int || t.k == TK::Float) {
            auto e = mk(EK::Lit);
            e->lit = t.k == TK::Int ? Value::integer(t.i) : Value::flt(t.f);
            ++i_;
            return e;
        }
        if (is_op("(")) {
            auto tup = mk(EK::Tuple);
            ++i_;
            if (skip_op(")")) return tup;
            auto e = parse_expression(true);
            if (!is_op(",")) {
                expect_op(")");
                return e;
            }
            tup->a.push_back(std::move(e));
            while (skip_op(",")) {
                if (is_op(")")) break;
                tup->a.push_back(parse_expression(true));
            }
            expect_op(")");
            return tup;
        }
        if (is_op("[")) {
            auto e = mk(EK::List);
            ++i_;
            while (!is_op("]")) {
                if (!e->a.empty()) expect_op(",");
                if (is_op("]")) break;
                e->a.push_back(parse_expression(true));
            }
            expect_op("]");
            return e;
        }
        if (is_op("{")) {
            auto e = mk(EK::Dict);
            ++i_;
            while (!is_op("}")) {
                if (!e->a.empty()) expect_op(",");
                if (is_op("}")) break;
                e->a.push_back(parse_expression(true));
                expect_op(":");
                e->a.push_back(parse_expression(true));
            }
            expect_op("}");
            return e;
        }
        error("unexpected " + describe());
    }
    void parse_call_args(Expr& e) {
        expect_op("(");
        bool first = true;
        while (!is_op(")")) {
            if (!first) expect_op(",");
            first = false;
            if (is_op(")")) break;
            if (cur().k == TK::Name && peek().k == TK::Op && peek().s == "=") {
                std::string k = t_[i_].s;
                i_ += 2;
                e.kw.emplace_back(k, parse_expression(true));
            } else {
                if (!e.kw.empty()) error("positional argument after keyword argument");
                e.a.push_back(parse_expression(true));
            }
        }
        expect_op(")");
    }
    ExprP parse_postfix(ExprP node) {
        while (true) {
            if (is_op(".")) {
                ++i_;
                if (cur().k == TK::Name) {
                    auto e = mk(EK::Attr);
                    e->name = t_[i_++].s;
                    e->a.push_back(std::move(node));
                    node = std::move(e);
                } else if (cur().k == TK::Int) {
                    auto e = mk(EK::Item);
                    auto lit = mk(EK::Lit);
                    lit->lit = Value::integer(t_[i_++].i);
                    e->a.push_back(std::move(node));
                    e->a.push_back(std::move(lit));
                    node = std::move(e);
                } else {
                    error("expected name or number after '.'");
                }
            } else if (is_op("[")) {
                ++i_;
                ExprP parts[3];
                bool slice = false;
                if (!is_op(":")) parts[0] = parse_expression(true);
                if (skip_op(":")) {
                    slice = true;
                    if (!is_op("]") && !is_op(":")) parts[1] = parse_expression(true);
                    if (skip_op(":") && !is_op("]")) parts[2] = parse_expression(true);
                }
                expect_op("]");
                auto e = mk(slice ? EK::Slice : EK::Item);
                e->a.push_back(std::move(node));
                for (int k = 0; k < (slice ? 3 : 1); ++k) e->a.push_back(std::move(parts[k]));
                node = std::move(e);
            } else if (is_op("(")) {
                auto e = mk(EK::Call);
                e->a.push_back(std::move(node));
                parse_call_args(*e);
                node = std::move(e);
            } else {
                return node;
            }
        }
    }
    // `| name(args)` and `is [not] test args` chains; operand nullptr for {% filter %} / {% set x | f %}.
    ExprP parse_filter_chain(ExprP node, bool leading_name = false) {
        while (true) {
            if (leading_name || is_op("|")) {
                if (!leading_name) ++i_;
                leading_name = false;
                auto e = mk(EK::Filter);
                e->name = expect_name();
                while (is_op(".") && peek().k == TK::Name) {
                    ++i_;
                    e->name += "." + t_[i_++].s;
                }
                e->a.push_back(std::move(node));
                if (is_op("(")) parse_call_args(*e);
                node = std::move(e);
            } else if (is_name("is")) {
                ++i_;
                auto e = mk(EK::Test);
                e->neg = skip_name("not");
                e->name = expect_name();
                e->a.push_back(std::move(node));
                if (is_op("(")) {
                    parse_call_args(*e);
                } else if ((cur().k == TK::Name || cur().k == TK::Str || cur().k == TK::Int || cur().k == TK::Float ||
                            is_op("[") || is_op("{")) &&
                           !is_name("else") && !is_name("or") && !is_name("and") && !is_name("if")) {
                    if (e->name == "not") error("unexpected 'not'");
                    e->a.push_back(parse_postfix(parse_primary()));
                }
                node = std::move(e);
            } else if (is_op("(") && node) {
                auto e = mk(EK::Call);
                e->a.push_back(std::move(node));
                parse_call_args(*e);
                node = std::move(e);
            } else {
                return node;
            }
        }
    }
};

// jinja2 rejects an unknown filter or test when compiling, unless it sits in an if statement or an inline
// if-expression (then it fails only when evaluated).
void check_names(const Expr& e, bool soft) {
    if (e.k == EK::Cond) soft = true;
    if (!soft && e.k == EK::Filter && !jinja2_knows_filter(e.name))
        fail("template syntax error at line {}, column {}: No filter named '{}'.", e.line, e.col, e.name);
    if (!soft && e.k == EK::Test && !jinja2_knows_test(e.name))
        fail("template syntax error at line {}, column {}: No test named '{}'.", e.line, e.col, e.name);
    for (auto& x : e.a)
        if (x) check_names(*x, soft);
    for (auto& kv : e.kw)
        if (kv.second) check_names(*kv.second, soft);
}

void check_names(const Body& body, bool soft) {
    for (auto& sp : body) {
        const Stmt& s = *sp;
        const bool inner = s.k == SK::If ? true : (s.k == SK::For || s.k == SK::Macro || s.k == SK::CallBlock) ? false : soft;
        for (size_t i = 0; i < s.exprs.size(); ++i)
            if (s.exprs[i]) check_names(*s.exprs[i], s.k == SK::If || (s.k == SK::Macro ? false : soft));
        for (auto& b : s.bodies) check_names(b, inner);
    }
}

}  // namespace

bool jinja2_knows_filter(const std::string& name) {
    static const char* names[] = {
        "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
        "filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent", "int", "join", "last",
        "length", "list", "lower", "items", "map", "min", "max", "pprint", "random", "reject", "rejectattr",
        "replace", "reverse", "round", "safe", "select", "selectattr", "slice", "sort", "string", "striptags", "sum",
        "title", "trim", "truncate", "unique", "upper", "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr",
        "tojson"};
    for (const char* n : names)
        if (name == n) return true;
    return false;
}

bool jinja2_knows_test(const std::string& name) {
    static const char* names[] = {
        "odd", "even", "divisibleby", "defined", "undefined", "filter", "test", "none", "boolean", "false", "true",
        "integer", "float", "lower", "upper", "string", "mapping", "number", "sequence", "iterable", "callable",
        "sameas", "escaped", "in", "==", "eq", "equalto", "!=", "ne", ">", "gt", "greaterthan", "ge", ">=", "<",
        "lt", "lessthan", "<=", "le"};
    for (const char* n : names)
        if (name == n) return true;
    return false;
}

std::unique_ptr<Program> parse_template(const std::string& source) {
    Source src;
    // jinja2 normalizes newlines and, without keep_trailing_newline, drops one trailing newline.
    src.text.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
        if (source[i] == '\r') {
            src.text += '\n';
            if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
        } else {
            src.text += source[i];
        }
    }
    if (!src.text.empty() && src.text.back() == '\n') src.text.pop_back();
    src.index();
    Parser p(src, lex(src));
    auto prog = std::make_unique<Program>();
    prog->body = p.parse_all();
    check_names(prog->body, false);
    return prog;
}

}  // namespace hearth::jinja
