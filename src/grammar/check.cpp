#include "grammar/check.h"

#include <chrono>

#include "base/error.h"
#include "tokenizer/vocab.h"

namespace hearth::grammar {

CheckResult check_bytes(const std::shared_ptr<const CompiledGrammar>& g, std::string_view text) {
    GrammarMatcher m(g);
    CheckResult r;
    for (size_t i = 0; i < text.size(); ++i) {
        if (!m.accept_bytes(text.substr(i, 1))) {
            r.byte = i;
            return r;
        }
    }
    r.byte = text.size();
    r.accepted = m.can_end();
    r.incomplete = !r.accepted;
    return r;
}

CheckResult check_tokens(const std::shared_ptr<const CompiledGrammar>& g, const std::vector<int32_t>& tokens,
                         bool time_masks) {
    using Clock = std::chrono::steady_clock;
    const TokenTable& table = g->tokens();
    GrammarMatcher m(g);
    CheckResult r;
    std::vector<uint64_t> mask((static_cast<size_t>(table.size()) + 63) / 64);
    const auto timed_mask = [&] {
        const auto t0 = Clock::now();
        m.fill_mask(mask.data());
        if (time_masks) r.mask_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    };
    for (size_t i = 0; i < tokens.size(); ++i) {
        const int32_t t = tokens[i];
        if (t < 0 || t >= table.size())
            fail("token id {} at position {} is outside the vocabulary ({} tokens)", t, i, table.size());
        timed_mask();
        if (!(mask[static_cast<size_t>(t) / 64] >> (t % 64) & 1)) {
            r.token = static_cast<int64_t>(i);
            // The byte inside the token the grammar refuses (none: an excluded token, such as a control token).
            const std::string& bytes = table.bytes[static_cast<size_t>(t)];
            for (size_t k = 0; k < bytes.size() && m.accept_bytes(std::string_view(bytes).substr(k, 1)); ++k) ++r.byte;
            return r;
        }
        if (!m.accept_token(t))
            fail("internal error: the mask allows token {} at position {} but the grammar's walk refuses it", t, i);
        r.byte += table.bytes[static_cast<size_t>(t)].size();
    }
    timed_mask();
    r.accepted = m.can_end();
    r.incomplete = !r.accepted;
    return r;
}

SuiteResult run_schema_suite(const nlohmann::ordered_json& file, const std::shared_ptr<const TokenTable>& table,
                             const tok::Vocab* vocab, const JsonSchemaOptions& options) {
    using Clock = std::chrono::steady_clock;
    if (!file.is_object() || !file.contains("schema") || !file.contains("tests") || !file["tests"].is_array())
        fail("not a schema test file: it needs \"schema\" and a \"tests\" array");
    SuiteResult r;
    const nlohmann::ordered_json& schema = file["schema"];
    std::shared_ptr<const CompiledGrammar> g;
    const auto t0 = Clock::now();
    try {
        g = compile(compile_json_schema(schema, options), vocab ? table : std::make_shared<TokenTable>());
    } catch (const Error& e) {
        r.error = e.what();
        return r;
    }
    r.compile_us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    r.compiled = true;
    for (const auto& t : file["tests"]) {
        if (!t.is_object() || !t.contains("data") || !t.contains("valid") || !t["valid"].is_boolean())
            fail("not a schema test file: each test needs \"data\" and a boolean \"valid\"");
        const std::string text = in_schema_order(t["data"], schema).dump(-1, ' ', false,
                                                                         nlohmann::ordered_json::error_handler_t::replace);
        CheckResult c;
        if (vocab) {
            c = check_tokens(g, vocab->encode(text, /*add_special=*/false, /*parse_special=*/false), true);
            r.mask_us.insert(r.mask_us.end(), c.mask_us.begin(), c.mask_us.end());
        } else {
            c = check_bytes(g, text);
        }
        ++r.instances;
        const bool valid = t["valid"].get<bool>();
        r.valid_rejected += valid && !c.accepted;
        r.invalid_accepted += !valid && c.accepted;
    }
    return r;
}

}  // namespace hearth::grammar
