// SpinBarrier: no thread passes before all arrive, and writes before the barrier are visible after it,
// including with more threads than cores (the yield fallback).
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "base/barrier.h"

namespace hearth {
namespace {

void run_phases(int n_threads, int phases) {
    SpinBarrier barrier(n_threads);
    std::vector<int> slot(static_cast<size_t>(n_threads), -1);
    std::vector<int> errors(static_cast<size_t>(n_threads), 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < n_threads; ++t)
        threads.emplace_back([&, t] {
            for (int p = 0; p < phases; ++p) {
                slot[t] = p;
                barrier.wait();
                for (int u = 0; u < n_threads; ++u) errors[t] += slot[u] != p;
                barrier.wait();
            }
        });
    for (auto& th : threads) th.join();
    for (int t = 0; t < n_threads; ++t) EXPECT_EQ(errors[t], 0) << "thread " << t;
}

TEST(SpinBarrier, TwoThreadsManyPhases) { run_phases(2, 20000); }
TEST(SpinBarrier, Oversubscribed) { run_phases(8, 500); }
TEST(SpinBarrier, SingleThreadNeverBlocks) {
    SpinBarrier b(1);
    for (int i = 0; i < 3; ++i) b.wait();
    SUCCEED();
}

}  // namespace
}  // namespace hearth
