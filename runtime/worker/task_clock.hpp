// Task times from the TSC. clock_gettime through the vDSO costs ~20 ns on these virtual
// machines, and a worker running tiny tasks read it once or twice per task: 12% of all
// samples of a tiny map (perf record of `shoal_bench --only map`, 2026-12-07). rdtsc
// costs a fraction of that. Its rate is measured against CLOCK_MONOTONIC over the
// worker's first milliseconds, and only an invariant TSC (CPUID 0x80000007, EDX bit 8:
// one rate on every CPU, in every power state) is trusted; until then, and without one,
// the clock is read as before. The two read the same timeline: the TSC's is anchored at
// a clock reading.
#ifndef SHOAL_WORKER_TASK_CLOCK_HPP
#define SHOAL_WORKER_TASK_CLOCK_HPP

#include <atomic>
#include <cstdint>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace shoal::detail {

/// CLOCK_MONOTONIC in ns.
int64_t now_ns() noexcept;

class TaskClock {
 public:
  /// `read_ns` is CLOCK_MONOTONIC; a test passes a slow one to stand for a preemption.
  explicit TaskClock(int64_t (*read_ns)() noexcept = now_ns) noexcept : read_ns_(read_ns) {}
  /// Main thread, before the first task: the first of the two readings.
  void start() noexcept;
  /// Another thread, at least a few milliseconds later: the second reading, and the
  /// switch to the TSC. Without an invariant TSC, nothing.
  void calibrate() noexcept;
  int64_t now() const noexcept {
#if defined(__x86_64__)
    if (ready_.load(std::memory_order_acquire))
      return base_ns_ + static_cast<int64_t>(static_cast<double>(__rdtsc() - base_tsc_) * ns_per_tick_);
#endif
    return read_ns_();
  }

 private:
  int64_t (*read_ns_)() noexcept;
  uint64_t base_tsc_ = 0;
  int64_t base_ns_ = 0;
  double ns_per_tick_ = 0;
  std::atomic<bool> ready_{false};
};

}  // namespace shoal::detail

#endif
