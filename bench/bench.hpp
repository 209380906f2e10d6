// What shoal_bench's workloads share: the clock, the "name value unit" output line that
// bench/report.py reads, and the workloads that live in files of their own.
#ifndef SHOAL_BENCH_BENCH_HPP
#define SHOAL_BENCH_BENCH_HPP

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

inline void figure(const char* name, double value, const char* unit) {
  std::printf("%s %.6g %s\n", name, value, unit);
  std::fflush(stdout);
}

// The middle value; the mean of the two middle ones for an even count.
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// floor_ring_stream (ring_floor.cpp): tiny tasks through one ring each way between this
/// process and a peer process, nothing else.
void ring_stream_floor(bool quick);
/// The peer of ring_stream_floor, run as `shoal_bench --ring-peer CAPACITY COUNT`.
int ring_floor_peer(int argc, char** argv);
/// h_run_lines (cli_run.cpp): lines per second through the built `shoal run`, whole process.
void shoal_run_lines(bool quick);

}  // namespace bench

#endif
