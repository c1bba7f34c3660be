// Error type used across hearth: every failure a user can cause (bad file, bad flag, bad request)
// is reported as a hearth::Error carrying a one-line message that names the problem.
#pragma once
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace hearth {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

template <typename... Args>
[[noreturn]] inline void fail(fmt::format_string<Args...> f, Args&&... args) {
    throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace hearth
