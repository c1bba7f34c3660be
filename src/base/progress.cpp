#include "base/progress.h"

#include <unistd.h>

#include <cstdio>

namespace hearth {

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)), total_(total > 0 ? total : 1), tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() { finish(); }

void Progress::update(int64_t done, const std::string& detail) {
    if (!tty_ || finished_) return;
    const auto now = std::chrono::steady_clock::now();
    if (done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    constexpr int kWidth = 30;
    const double frac = static_cast<double>(done) / static_cast<double>(total_);
    const int filled = static_cast<int>(frac * kWidth);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(kWidth, '.');
    const double secs = std::chrono::duration<double>(now - start_).count();
    std::fprintf(stderr, "\r%s [%s] %3d%% %.1fs %s\033[K", label_.c_str(), bar.c_str(), static_cast<int>(frac * 100),
                 secs, detail.c_str());
    std::fflush(stderr);
}

void Progress::finish() {
    if (!tty_ || finished_) return;
    update(total_);
    finished_ = true;
    std::fprintf(stderr, "\n");
}

}  // namespace hearth
