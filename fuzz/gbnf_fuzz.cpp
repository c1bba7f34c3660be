// libFuzzer target for the GBNF parser: any text either throws hearth::Error or gives a grammar whose to_gbnf()
// parses again, to a grammar that prints the same rules (a fixed point: the printed form has no sugar left).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "grammar/gbnf.h"
#include "grammar/grammar.h"

namespace {

// Rule lines, sorted: a reparse numbers rules in order of first mention, so to_gbnf lists them in another order.
std::vector<std::string> sorted_lines(const std::string& text) {
    std::vector<std::string> lines;
    size_t start = 0;
    for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
        lines.push_back(text.substr(start, nl - start));
    if (start < text.size()) lines.push_back(text.substr(start));
    std::sort(lines.begin(), lines.end());
    return lines;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    hearth::grammar::Grammar g;
    try {
        g = hearth::grammar::parse_gbnf(text);
    } catch (const hearth::Error&) {
        return 0;
    }
    const std::string printed = hearth::grammar::to_gbnf(g);
    hearth::grammar::Grammar again;
    try {
        again = hearth::grammar::parse_gbnf(printed);
    } catch (const hearth::Error&) {
        __builtin_trap();  // to_gbnf wrote something parse_gbnf refuses
    }
    if (again.rules.size() != g.rules.size()) __builtin_trap();
    if (sorted_lines(hearth::grammar::to_gbnf(again)) != sorted_lines(printed)) __builtin_trap();
    return 0;
}
