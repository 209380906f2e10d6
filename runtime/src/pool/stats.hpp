// Counters behind Pool::stats(). The loop thread is the only writer of the per-task
// counters, so they are relaxed atomics written with load+store (no locked instruction on
// the hot path); readers on other threads see each counter whole, possibly a task behind.
#ifndef SHOAL_POOL_STATS_HPP
#define SHOAL_POOL_STATS_HPP

#include <shoal/runtime.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace shoal::detail {

/// The single writer's increment: no locked instruction. The writers of these counters
/// all hold the pool's data_mu (the loop's turn or a caller's, pool/lead.cpp): one at a time.
inline void bump(std::atomic<uint64_t>& c, uint64_t by = 1) noexcept {
  c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

/// Task times in log-linear buckets: 8 per power of two, so a percentile read from it is
/// within 12.5% of the true value, in a fixed 4 KiB whatever the task count.
class DurationHistogram {
 public:
  static constexpr size_t kBuckets = 8 * 62;
  void add(uint64_t ns) noexcept { bump(buckets_[index(ns)]); }
  /// The upper bound of the bucket holding quantile q (0..1); 0 when empty.
  uint64_t quantile(double q) const noexcept;

  static size_t index(uint64_t ns) noexcept;
  static uint64_t upper_bound(size_t index) noexcept;

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
};

/// The fixed buckets of DurationBuckets, filled on the loop thread as tasks return.
class FixedHistogram {
 public:
  static constexpr size_t kBuckets = DurationBuckets::kBounds.size() + 1;
  void add(uint64_t ns) noexcept {
    size_t i = 0;
    while (i < DurationBuckets::kBounds.size() && ns > static_cast<uint64_t>(DurationBuckets::kBounds[i].count())) ++i;
    bump(buckets_[i]);
    bump(sum_ns_, ns);
  }
  DurationBuckets read() const noexcept;

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> sum_ns_{0};
};

class PoolCounters {
 public:
  explicit PoolCounters(uint32_t workers);

  /// Under data_mu (the loop or a leading caller): one outcome delivered.
  void on_outcome(Status status, int32_t worker, std::chrono::nanoseconds duration) noexcept;
  /// Any thread: a task refused before it reached the loop (closed pool, input too big).
  void on_refused() noexcept { refused_.fetch_add(1, std::memory_order_relaxed); }
  /// Loop thread: a process was started in slot `index`, or one ended for `cause`.
  void on_start(uint32_t index, int pid);
  void on_exit(uint32_t index, int pid, const std::string& cause, ExitCause kind);
  /// Under data_mu, once per turn: the tasks queued in the pool and those handed to workers.
  void set_load(uint64_t queued, uint64_t in_flight) noexcept {
    queued_.store(queued, std::memory_order_relaxed);
    in_flight_.store(in_flight, std::memory_order_relaxed);
  }
  /// Loop thread: the pool has `workers` slots now (Pool::resize).
  void set_workers(uint32_t workers);
  /// Loop thread: a reload ended ("ok", or why it was rolled back) after `took`.
  void on_reload(uint32_t generation, bool ok, const std::string& result, std::chrono::nanoseconds took);
  /// Loop thread: the shared segments the pool's processes map now (PoolStats::shared).
  void set_shared(std::vector<SharedStats> shared);

  PoolStats snapshot() const;

 private:
  struct Slot {
    std::array<std::atomic<uint64_t>, 6> outcomes{};
    std::atomic<uint64_t> busy_ns{0};
  };
  // Starts and exits are rare: a mutex, and a bounded list of causes per slot.
  struct Lifecycle {
    int pid = -1;
    uint32_t starts = 0;
    std::vector<std::pair<std::string, uint32_t>> exits;
    std::array<uint64_t, kExitCauses> causes{};
    uint64_t last_rss = 0;  // sampled by the last snapshot that saw the process alive
  };

  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  // Grown by the loop thread only, under mu_; other threads read them under mu_. Slots
  // of a pool resized down stay (their counters are kept) but are not shown.
  std::vector<std::unique_ptr<Slot>> slots_;
  uint32_t workers_;
  uint32_t generation_ = 0, reloads_ = 0;
  std::string last_reload_;
  std::chrono::nanoseconds last_reload_took_{0};
  std::vector<SharedStats> shared_;
  std::array<std::atomic<uint64_t>, 6> outcomes_{};
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> queued_{0}, in_flight_{0};
  DurationHistogram durations_;
  FixedHistogram fixed_durations_;
  mutable std::mutex mu_;
  mutable std::vector<Lifecycle> lifecycle_;
};

/// Resident set size of a process from /proc/PID/statm; 0 when it cannot be read.
uint64_t resident_bytes(int pid) noexcept;

}  // namespace shoal::detail

#endif
