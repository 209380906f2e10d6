#include "task_clock.hpp"

#include <chrono>
#include <thread>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace shoal::detail {

namespace {

// The rate's error is the readings' skew over this interval: a clean reading is off by
// tens of ns (1e-6), the widest one `reading` accepts by ~5 µs (1e-4). Tasks in the first
// 50 ms are timed by the clock itself.
constexpr int64_t kMinCalibrationNs = 50'000'000;

#if defined(__x86_64__)
bool invariant_tsc() noexcept {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0x80000000, nullptr) < 0x80000007) return false;
  __get_cpuid(0x80000007, &a, &b, &c, &d);
  return (d & (1u << 8)) != 0;
}

// A clock reading and the TSC at the same moment: the TSC read on both sides of the
// clock, the middle kept. A vCPU descheduled or a thread preempted between the reads
// would skew the pair by as long as it was away: 215 µs once on a loaded CI machine,
// which over a 5 ms calibration made every task 4.3% short. So the tightest of several
// brackets is kept, and a reading whose best bracket is still wide is refused.
bool reading(int64_t (*read_ns)() noexcept, uint64_t& tsc, int64_t& ns) noexcept {
  constexpr int kTries = 16;
  constexpr uint64_t kWidestTicks = 20'000;  // ~5-10 µs at 2-4 GHz: far above a clean read
  uint64_t best = ~uint64_t{0};
  for (int i = 0; i < kTries; ++i) {
    const uint64_t before = __rdtsc();
    const int64_t at = read_ns();
    const uint64_t width = __rdtsc() - before;
    if (width < best) {
      best = width;
      tsc = before + width / 2;
      ns = at;
    }
  }
  return best <= kWidestTicks;
}
#endif

}  // namespace

int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void TaskClock::start() noexcept {
#if defined(__x86_64__)
  if (invariant_tsc() && !reading(read_ns_, base_tsc_, base_ns_)) base_tsc_ = 0;
#endif
}

void TaskClock::calibrate() noexcept {
#if defined(__x86_64__)
  if (base_tsc_ == 0) return;
  const int64_t wait = base_ns_ + kMinCalibrationNs - read_ns_();
  if (wait > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(wait));
  uint64_t tsc = 0;
  int64_t ns = 0;
  if (!reading(read_ns_, tsc, ns)) return;  // no clean reading: the clock, as before
  if (tsc <= base_tsc_ || ns <= base_ns_) return;  // a TSC that went back is no clock to trust
  ns_per_tick_ = static_cast<double>(ns - base_ns_) / static_cast<double>(tsc - base_tsc_);
  ready_.store(true, std::memory_order_release);
#endif
}

}  // namespace shoal::detail
