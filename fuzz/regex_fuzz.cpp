// libFuzzer target for the regex compiler: any pattern, in both modes, either throws hearth::Error or gives
// rules that make a complete grammar (validate: no dangling reference, no empty class, no left recursion)
// which to_gbnf can print.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/error.h"
#include "grammar/regex.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace hearth::grammar;
    const std::string_view pattern(reinterpret_cast<const char*>(data), size);
    for (RegexMatch mode : {RegexMatch::Whole, RegexMatch::Search}) {
        Grammar g;
        try {
            g.root = add_regex(g, pattern, "root", mode);
        } catch (const hearth::Error&) {
            continue;
        }
        // Past this point an error is a bug in the compiler, not a refused pattern.
        try {
            g.validate();
            (void)to_gbnf(g);
        } catch (const hearth::Error&) {
            __builtin_trap();
        }
    }
    return 0;
}
