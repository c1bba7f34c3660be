// libFuzzer target for the grammar matcher: the input is a GBNF grammar, a 0xFF byte, then text. If the grammar
// parses and compiles, the text is fed a token at a time over a small vocabulary of byte strings, and at every
// step the mask must equal the token-by-token walk (the per-node caches and the uncertain-token checks must
// agree with plain stepping), rollback must restore the previous mask, and nothing may crash or hang.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "grammar/gbnf.h"
#include "grammar/matcher.h"

namespace {

std::shared_ptr<const hearth::grammar::TokenTable> tokens() {
    static const auto t = [] {
        auto tt = std::make_shared<hearth::grammar::TokenTable>();
        tt->bytes = {"a", "b", "ab", "ba", "abc", "{", "}", "\"", "\",", "\":", " ", "\n", "0", "1", "12", "-",
                     "\xC3", "\xA9", "\xC3\xA9", "x\"y", "true", "null", "[", "]", ",", ":", "\\", "\\n", "aa", "bb"};
        for (int b = 0; b < 128; b += 7) tt->bytes.push_back(std::string(1, static_cast<char>(b)));
        tt->excluded.assign(tt->bytes.size(), 0);
        return tt;
    }();
    return t;
}

bool bit(const std::vector<uint64_t>& m, int32_t t) { return (m[t >> 6] >> (t & 63)) & 1; }

void walk_text(const std::shared_ptr<const hearth::grammar::CompiledGrammar>& cg, const std::string& text) {
    hearth::grammar::GrammarMatcher m(cg);
    const auto& t = *tokens();
    for (size_t i = 0; i < text.size() && i < 64; ++i) {
        const std::vector<uint64_t> mask = m.mask();
        for (int32_t id = 0; id < t.size(); ++id) {
            const bool walk = m.accept_token(id);
            if (walk) m.rollback(1);
            if (walk != bit(mask, id)) __builtin_trap();
        }
        // Take the token picked by the next input byte among the allowed ones, if any.
        std::vector<int32_t> allowed;
        for (int32_t id = 0; id < t.size(); ++id)
            if (bit(mask, id)) allowed.push_back(id);
        if (allowed.empty()) break;
        if (!m.accept_token(allowed[static_cast<uint8_t>(text[i]) % allowed.size()])) __builtin_trap();
        if (static_cast<uint8_t>(text[i]) % 5 == 0) {
            m.rollback(1);
            if (m.mask() != mask) __builtin_trap();
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string in(reinterpret_cast<const char*>(data), size);
    const size_t cut = in.find('\xFF');
    const std::string gbnf = in.substr(0, cut);
    const std::string text = cut == std::string::npos ? "" : in.substr(cut + 1);
    std::shared_ptr<const hearth::grammar::CompiledGrammar> cg;
    try {
        cg = hearth::grammar::compile(hearth::grammar::parse_gbnf(gbnf), tokens());
    } catch (const hearth::Error&) {
        return 0;
    }
    // A grammar too ambiguous to run is refused with hearth::Error at the step that finds out (and stays usable:
    // the rest of this input is skipped).
    try {
        walk_text(cg, text);
    } catch (const hearth::Error&) {
    }
    return 0;
}
