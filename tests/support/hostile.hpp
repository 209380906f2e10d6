// Helpers of the hostile-plugin tests (issue 13): a call that must return in time, the
// fx_hostile pool as code and as YAML, `shoal run` rows, and the test process's peak RSS.
#ifndef SHOAL_TESTS_HOSTILE_HPP
#define SHOAL_TESTS_HOSTILE_HPP

#include "support/json_rows.hpp"
#include "support/run_rows.hpp"
#include "support/subprocess.hpp"
#include "support/test_env.hpp"

#include <catch2/catch.hpp>

#include <sys/prctl.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace shoal::test {

/// Runs `fn` (a blocking pool call) on a thread and waits up to `limit`. Past it, the
/// test fails; `on_timeout` (terminate the pool) gets 10 s × kSlow more to unblock the
/// call. A call that still does not return cannot be abandoned (it uses this frame), so
/// the test process aborts: a loud failure instead of a test that hangs until ctest's
/// timeout.
inline bool returns_within(const char* what, std::chrono::milliseconds limit, const std::function<void()>& fn,
                           const std::function<void()>& on_timeout = {}) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread t([&] {
    fn();
    std::lock_guard lock(mu);
    done = true;
    cv.notify_all();
  });
  bool in_time;
  {
    std::unique_lock lock(mu);
    in_time = cv.wait_for(lock, limit, [&] { return done; });
  }
  if (!in_time) {
    if (on_timeout) on_timeout();
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(10) * kSlow, [&] { return done; })) {
      std::fprintf(stderr, "%s: did not return within %lld ms, nor after the timeout action; aborting\n", what,
                   static_cast<long long>(limit.count()));
      std::abort();
    }
  }
  t.join();
  INFO(what << " returned within " << limit.count() << " ms");
  CHECK(in_time);
  return in_time;
}

/// Closes and joins in time; terminates when the join does not return.
inline void bounded_join(Pool& pool) {
  pool.close();
  returns_within("close + join", std::chrono::seconds(10) * kSlow, [&] { pool.join(); }, [&] { pool.terminate(); });
}

inline PoolConfig hostile_config(uint32_t workers) {
  PoolConfig c = pool_config(fixture("fx_hostile"), workers);
  c.grace = std::chrono::milliseconds(300);
  c.fini_timeout = std::chrono::seconds(1);
  return c;
}

/// A one-pool config file (pool "h") over fx_hostile; `extra` lines are indented keys.
inline std::string hostile_yaml(uint32_t workers, const std::string& extra = {}) {
  return "pools:\n  h:\n    plugin: " + fixture("fx_hostile") + "\n    workers: " + std::to_string(workers) +
         "\n    queue: {capacity: 64KiB}\n    shutdown: {grace: 300ms, fini_timeout: 1s}\n" + extra;
}

/// Every stdout line of `shoal run` as a row; fails the test on a line that is not one.

/// Rows by seq; fails the test on a seq out of range or seen twice.
inline std::vector<Row> rows_by_seq(const std::vector<Row>& rows, size_t n) {
  std::vector<Row> by(n);
  std::vector<bool> seen(n, false);
  for (const Row& r : rows) {
    size_t seq = std::stoul(r.at("seq").text);
    REQUIRE(seq < n);
    CHECK_FALSE(seen[seq]);
    seen[seq] = true;
    by[seq] = r;
  }
  return by;
}

inline long status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(field) + ":";
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) return std::stol(line.substr(prefix.size()));
  return -1;
}

/// Sets this process's peak RSS (VmHWM) back to its current RSS (clear_refs 5).
inline void reset_peak_rss() {
  // A host that runs pools is not dumpable, which makes /proc/self/* root's: a test run
  // by another user could not write clear_refs. Dumpable for the write only.
  const int dumpable = ::prctl(PR_GET_DUMPABLE);
  ::prctl(PR_SET_DUMPABLE, 1);
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  const bool written = out.good();
  ::prctl(PR_SET_DUMPABLE, dumpable);
  REQUIRE(written);
}

}  // namespace shoal::test

#endif
