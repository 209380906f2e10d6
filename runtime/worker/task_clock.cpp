#include "task_clock.hpp"

#include <chrono>
#include <thread>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace shoal::detail {

namespace {

// Two readings closer together than this would make the rate's error (a few tens of ns
// of reading skew over the interval) worth more than 1e-5.
constexpr int64_t kMinCalibrationNs = 5'000'000;

#if defined(__x86_64__)
bool invariant_tsc() noexcept {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0x80000000, nullptr) < 0x80000007) return false;
  __get_cpuid(0x80000007, &a, &b, &c, &d);
  return (d & (1u << 8)) != 0;
}

// A clock reading and the TSC at the same moment: the TSC read on both sides of the
// clock, the middle kept, so the pair is off by half a clock read at most.
void reading(uint64_t& tsc, int64_t& ns) noexcept {
  const uint64_t before = __rdtsc();
  ns = now_ns();
  tsc = before + (__rdtsc() - before) / 2;
}
#endif

}  // namespace

int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void TaskClock::start() noexcept {
#if defined(__x86_64__)
  if (invariant_tsc()) reading(base_tsc_, base_ns_);
#endif
}

void TaskClock::calibrate() noexcept {
#if defined(__x86_64__)
  if (base_tsc_ == 0) return;
  const int64_t wait = base_ns_ + kMinCalibrationNs - now_ns();
  if (wait > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(wait));
  uint64_t tsc = 0;
  int64_t ns = 0;
  reading(tsc, ns);
  if (tsc <= base_tsc_ || ns <= base_ns_) return;  // a TSC that went back is no clock to trust
  ns_per_tick_ = static_cast<double>(ns - base_ns_) / static_cast<double>(tsc - base_tsc_);
  ready_.store(true, std::memory_order_release);
#endif
}

}  // namespace shoal::detail
