// Options and helpers shared by several subcommands.
#pragma once
#include <string>

#include "base/error.h"
#include "model/forward.h"

namespace hearth::cli {

// Threads: 0 or negative from the user is an error, absent means every core.
inline int check_threads(int threads) {
    if (threads <= 0) fail("threads must be at least 1 (got {})", threads);
    return threads;
}

}  // namespace hearth::cli
