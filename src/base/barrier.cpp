#include "base/barrier.h"

#include <sched.h>

namespace hearth {

namespace {
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}
}  // namespace

void SpinBarrier::wait() {
    if (n_ <= 1) return;
    const uint32_t gen = generation_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
        // Last to arrive: nobody touches count_ again until they see the new generation.
        count_.store(0, std::memory_order_relaxed);
        generation_.store(gen + 1, std::memory_order_release);
        return;
    }
    constexpr int kSpinsBeforeYield = 1 << 14;
    int spins = 0;
    while (generation_.load(std::memory_order_acquire) == gen) {
        if (spins < kSpinsBeforeYield) {
            ++spins;
            cpu_relax();
        } else {
            sched_yield();
        }
    }
}

}  // namespace hearth
