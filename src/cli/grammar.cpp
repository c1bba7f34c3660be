// `hearth grammar check`: whether instances are in a constraint's language, with the place where one is
// rejected, walked as generation would walk them (grammar/check.h).
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/constraint.h"
#include "gguf/gguf.h"
#include "grammar/check.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "store/model_store.h"
#include "tokenizer/vocab.h"

namespace hearth::cli {
namespace {

struct Instance {
    std::string name, text;
};

// A file's text ("-": standard input); with `as_json`, it must hold one JSON document, and a `compact_for`
// schema rewrites it compactly with its keys in the order the schema declares them (how MaskBench serialises
// instances).
Instance read_instance(const std::string& path, bool as_json, const nlohmann::ordered_json* compact_for) {
    Instance in{path == "-" ? "<stdin>" : path, {}};
    if (path == "-")
        in.text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    else
        in.text = read_text(path, "instance");
    if (as_json) {
        nlohmann::ordered_json j;
        try {
            j = nlohmann::ordered_json::parse(in.text);
        } catch (const nlohmann::json::parse_error& e) {
            fail("instance {} is not JSON (at byte {})", in.name, e.byte);
        }
        if (compact_for)
            in.text = grammar::in_schema_order(j, *compact_for).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::strict);
    }
    return in;
}

// 1-based line and column (in bytes) of a byte offset.
std::pair<size_t, size_t> line_column(const std::string& text, size_t byte) {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < byte && i < text.size(); ++i) {
        if (text[i] == '\n') {
            ++line;
            col = 1;
        } else {
            ++col;
        }
    }
    return {line, col};
}

// Text on one line: control characters as escapes.
std::string show(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
        if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
        else out += static_cast<char>(c);
    }
    return out;
}

// A few bytes either side of a position, on one line, with the position marked by "⟨here⟩".
std::string context_at(const std::string& text, size_t byte) {
    const size_t from = byte > 24 ? byte - 24 : 0;
    const size_t at = std::min(byte, text.size());
    return show(std::string_view(text).substr(from, at - from)) + "⟨here⟩" + show(std::string_view(text).substr(at, 24));
}

}  // namespace

void add_grammar(CLI::App& app) {
    auto* group = app.add_subcommand("grammar", "Output constraints: check texts against a grammar, JSON Schema or regex");
    group->require_subcommand(1);
    auto* cmd = group->add_subcommand(
        "check",
        "Say whether each instance is in a constraint's language (exit 0: all accepted; 1: some rejected; 2: the "
        "constraint is refused or an instance cannot be read)");
    struct Opts {
        ConstraintOptions constraint;
        std::string model;
        std::vector<std::string> instances;
        bool compact = false, json = false;
    };
    auto o = std::make_shared<Opts>();
    add_constraint_options(cmd, o->constraint);
    cmd->add_option("-m,--model", o->model,
                    "Walk each instance as this model's tokens through the token masks, as generation would "
                    "(default: byte by byte)");
    cmd->add_flag("--compact", o->compact,
                  "With --json-schema: check each instance rewritten as compact JSON with its keys in the order the "
                  "schema declares them (MaskBench's serialisation), instead of as written");
    cmd->add_flag("--json", o->json, "Print the verdicts as JSON");
    cmd->add_option("instances", o->instances, "Files holding the instances ('-': standard input)")->required();
    cmd->callback([o] {
        const ConstraintOptions& c = o->constraint;
        // Exit status 2 for every way the check cannot be made, so that 1 always means "rejected".
        const auto refused = [](const std::string& what) {
            std::fflush(stdout);
            fmt::print(stderr, "error: {}\n", what);
            throw ExitStatus{2};
        };
        if (c.grammar_file.empty() && c.schema_file.empty() && c.regex.empty())
            refused("give the constraint: --json-schema FILE, --grammar FILE or --regex RE");
        if (o->compact && c.schema_file.empty()) refused("--compact needs --json-schema (it rewrites JSON instances)");
        std::shared_ptr<const grammar::CompiledGrammar> compiled;
        std::optional<tok::Vocab> vocab;
        std::vector<Instance> instances;
        try {
            const grammar::Grammar g = *constraint_grammar(c);
            auto table = std::make_shared<grammar::TokenTable>();
            if (!o->model.empty()) {
                vocab.emplace(load_vocab(o->model));
                *table = grammar::TokenTable::from_vocab(*vocab);
            }
            compiled = grammar::compile(g, table);
            std::optional<nlohmann::ordered_json> schema;
            if (o->compact) schema = nlohmann::ordered_json::parse(read_text(c.schema_file, "JSON schema"));
            for (const std::string& path : o->instances)
                instances.push_back(read_instance(path, !c.schema_file.empty(), schema ? &*schema : nullptr));
        } catch (const Error& e) {
            refused(e.what());
        }
        nlohmann::json report = nlohmann::json::array();
        size_t rejected = 0;
        for (const Instance& in : instances) {
            grammar::CheckResult r;
            std::vector<int32_t> tokens;
            // What the walk reads: the instance, or the bytes its tokens spell, which for a SentencePiece
            // vocabulary start with the space the encoder puts before a text.
            std::string walked = in.text;
            if (vocab) {
                tokens = vocab->encode(in.text, /*add_special=*/false, /*parse_special=*/false);
                walked.clear();
                for (int32_t t : tokens) walked += compiled->tokens().bytes[static_cast<size_t>(t)];
                if (walked != in.text && walked != " " + in.text)
                    fmt::print(stderr, "note: {}: the vocabulary spells this instance differently (characters it "
                                       "cannot encode); positions below are in its spelling\n", in.name);
                r = grammar::check_tokens(compiled, tokens);
            } else {
                r = grammar::check_bytes(compiled, in.text);
            }
            rejected += !r.accepted;
            const size_t shift = walked == " " + in.text ? 1 : 0;
            if (shift) r.byte = r.byte > 0 ? r.byte - 1 : 0;
            const auto [line, col] = line_column(walked.substr(shift), r.byte);
            nlohmann::json j = {{"instance", in.name}, {"accepted", r.accepted}};
            std::string where;
            if (!r.accepted) {
                j["incomplete"] = r.incomplete;
                j["byte"] = r.byte;
                j["line"] = line;
                j["column"] = col;
                where = fmt::format("byte {} (line {}, column {})", r.byte, line, col);
                if (r.token >= 0) {
                    const int32_t id = tokens[static_cast<size_t>(r.token)];
                    const std::string& piece = compiled->tokens().bytes[static_cast<size_t>(id)];
                    j["token"] = r.token;
                    j["token_id"] = id;
                    j["piece"] = piece;
                    where = fmt::format("token {} (id {}, '{}') at {}", r.token, id, show(piece), where);
                }
                if (vocab) j["tokens"] = tokens.size();
            }
            report.push_back(j);
            if (o->json) continue;
            if (r.accepted)
                fmt::print("{}: accepted\n", in.name);
            else if (r.incomplete)
                fmt::print("{}: rejected: it ends where the language needs more ({})\n", in.name, where);
            else
                fmt::print("{}: rejected at {}: {}\n", in.name, where, context_at(walked.substr(shift), r.byte));
        }
        if (o->json)
            fmt::print("{}\n", nlohmann::json{{"instances", report},
                                              {"accepted", instances.size() - rejected},
                                              {"rejected", rejected}}
                                   .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        if (rejected) throw ExitStatus{1};
    });
}

}  // namespace hearth::cli
