// The worker's task clock (runtime/worker/task_clock.hpp): once calibrated against
// CLOCK_MONOTONIC it reads the same timeline from the TSC, and the durations it gives
// are the clock's to within a part in a thousand.
#include "task_clock.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <thread>

using shoal::detail::now_ns;
using shoal::detail::TaskClock;

TEST_CASE("task clock: before and after calibration it reads CLOCK_MONOTONIC's timeline", "[unit][worker][clock]") {
  TaskClock clock;
  clock.start();
  // Uncalibrated: the clock itself.
  const int64_t a = clock.now(), b = now_ns();
  CHECK(b - a >= 0);
  CHECK(b - a < 1'000'000);
  std::thread([&] { clock.calibrate(); }).join();  // at least 5 ms after start()
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
  const int64_t t0 = clock.now(), c0 = now_ns();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const int64_t t1 = clock.now(), c1 = now_ns();
  const double ratio = static_cast<double>(t1 - t0) / static_cast<double>(c1 - c0);
  CHECK(ratio > 0.999);
  CHECK(ratio < 1.001);
}
