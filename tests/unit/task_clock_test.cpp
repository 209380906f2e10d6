// The worker's task clock (runtime/worker/task_clock.hpp): once calibrated against
// CLOCK_MONOTONIC it reads the same timeline from the TSC, and the durations it gives
// are the clock's to within a part in a thousand.
#include "task_clock.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <thread>

using shoal::detail::now_ns;
using shoal::detail::TaskClock;

namespace {

// The task clock's length of a 20 ms sleep over CLOCK_MONOTONIC's. A thread preempted
// between the two reads at either end would skew one pair; the best of five is kept.
double sleep_ratio(const TaskClock& clock) {
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    const int64_t t0 = clock.now(), c0 = now_ns();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const int64_t t1 = clock.now(), c1 = now_ns();
    const double ratio = static_cast<double>(t1 - t0) / static_cast<double>(c1 - c0);
    if (std::abs(ratio - 1) < std::abs(best - 1)) best = ratio;
  }
  return best;
}

}  // namespace

TEST_CASE("task clock: before and after calibration it reads CLOCK_MONOTONIC's timeline", "[unit][worker][clock]") {
  TaskClock clock;
  clock.start();
  // Uncalibrated: the clock itself.
  const int64_t a = clock.now(), b = now_ns();
  CHECK(b - a >= 0);
  CHECK(b - a < 1'000'000);
  std::thread([&] { clock.calibrate(); }).join();  // at least 50 ms after start()
  // Calibrated (or, without an invariant TSC, still the clock): both timelines agree
  // within 50 µs over the next 100 ms, and a 20 ms sleep measures the same on both.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
  int64_t worst = 0;
  while (std::chrono::steady_clock::now() < until) {
    const int64_t before = now_ns();
    const int64_t mid = clock.now();
    const int64_t after = now_ns();
    const int64_t off = mid < before ? before - mid : mid > after ? mid - after : 0;
    if (off > worst) worst = off;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(worst < 50'000);
  CHECK(sleep_ratio(clock) > 0.999);
  CHECK(sleep_ratio(clock) < 1.001);
}

namespace {

// A reading of the clock that is sometimes descheduled right after it: every third call
// stalls 1 ms, as a vCPU taken away between the clock read and the TSC read would.
std::atomic<int> g_calls{0};
int64_t stalling_now_ns() noexcept {
  const int64_t at = now_ns();
  if (g_calls.fetch_add(1) % 3 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return at;
}

}  // namespace

TEST_CASE("task clock: a reading interrupted mid-way does not skew the rate", "[unit][worker][clock]") {
  // With the first bracket taken as it came, a 1 ms stall in a 50 ms calibration made
  // the rate 2% off; the tightest of several brackets is one with no stall in it.
  TaskClock clock(stalling_now_ns);
  clock.start();
  std::thread([&] { clock.calibrate(); }).join();
  const double ratio = sleep_ratio(clock);
  CHECK(ratio > 0.999);
  CHECK(ratio < 1.001);
}
