// A sense-counting spin barrier for the threads of one OpenMP team. The forward pass meets at a barrier
// between every pair of operations (a dozen per layer); libgomp's barrier costs about a microsecond on this
// VM even when the threads arrive together, which at small-model decode speeds is a tenth of the time.
// This one is a counter and a generation word on separate cache lines: the last thread to arrive resets the
// counter and bumps the generation, the others spin on it. Spinners back off to sched_yield() after a while
// so an oversubscribed machine (more threads than free cores) still makes progress.
#pragma once
#include <atomic>
#include <cstdint>

namespace hearth {

class SpinBarrier {
public:
    explicit SpinBarrier(int n_threads) : n_(n_threads) {}
    SpinBarrier(const SpinBarrier&) = delete;
    SpinBarrier& operator=(const SpinBarrier&) = delete;

    // Every thread's writes before wait() are visible to every thread after it.
    void wait();

private:
    const int n_;
    alignas(64) std::atomic<int> count_{0};
    alignas(64) std::atomic<uint32_t> generation_{0};
};

}  // namespace hearth
