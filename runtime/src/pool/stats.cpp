#include "pool/stats.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cstdio>

namespace shoal::detail {

namespace {

constexpr size_t kMaxCauses = 16;  // distinct exit causes kept per slot; the rest is "other"


}  // namespace

size_t DurationHistogram::index(uint64_t ns) noexcept {
  if (ns < 8) return static_cast<size_t>(ns);
  const int exp = static_cast<int>(std::bit_width(ns)) - 1;  // >= 3
  const uint64_t sub = (ns >> (exp - 3)) & 7;
  const size_t i = static_cast<size_t>(exp - 2) * 8 + static_cast<size_t>(sub);
  return i < kBuckets ? i : kBuckets - 1;
}

uint64_t DurationHistogram::upper_bound(size_t index) noexcept {
  if (index < 8) return index;
  const int exp = static_cast<int>(index / 8) + 2;
  const uint64_t sub = index % 8;
  return ((8 + sub + 1) << (exp - 3)) - 1;
}

uint64_t DurationHistogram::quantile(double q) const noexcept {
  uint64_t total = 0;
  std::array<uint64_t, kBuckets> counts{};
  for (size_t i = 0; i < kBuckets; ++i) total += counts[i] = buckets_[i].load(std::memory_order_relaxed);
  if (total == 0) return 0;
  // The smallest bucket at or below which at least q of the tasks fall.
  const auto rank = static_cast<uint64_t>(q * static_cast<double>(total - 1)) + 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += counts[i];
    if (seen >= rank) return upper_bound(i);
  }
  return upper_bound(kBuckets - 1);
}

DurationBuckets FixedHistogram::read() const noexcept {
  DurationBuckets b;
  uint64_t total = 0;
  for (size_t i = 0; i < kBuckets; ++i) b.cumulative[i] = total += buckets_[i].load(std::memory_order_relaxed);
  b.sum = std::chrono::nanoseconds(sum_ns_.load(std::memory_order_relaxed));
  return b;
}

PoolCounters::PoolCounters(uint32_t workers) : workers_(0) { set_workers(workers); }

void PoolCounters::set_workers(uint32_t workers) {
  std::lock_guard lock(mu_);
  while (slots_.size() < workers) slots_.push_back(std::make_unique<Slot>());
  if (lifecycle_.size() < workers) lifecycle_.resize(workers);
  workers_ = workers;
}

void PoolCounters::on_reload(uint32_t generation, bool ok, const std::string& result, std::chrono::nanoseconds took) {
  std::lock_guard lock(mu_);
  if (ok) {
    generation_ = generation;
    ++reloads_;
  }
  last_reload_ = result;
  last_reload_took_ = took;
}

void PoolCounters::on_outcome(Status status, int32_t worker, std::chrono::nanoseconds duration) noexcept {
  const auto s = static_cast<size_t>(status);
  bump(outcomes_[s]);
  // slots_ grows only in a resize, on the loop thread under data_mu, which every caller
  // of this holds too: read without the lock.
  if (worker < 0 || static_cast<size_t>(worker) >= slots_.size()) return;
  Slot& slot = *slots_[static_cast<size_t>(worker)];
  bump(slot.outcomes[s]);
  const auto ns = static_cast<uint64_t>(duration.count());
  bump(slot.busy_ns, ns);
  if (status == Status::ok || status == Status::error) {
    durations_.add(ns);
    fixed_durations_.add(ns);
  }
}

void PoolCounters::on_start(uint32_t index, int pid) {
  std::lock_guard lock(mu_);
  lifecycle_[index].pid = pid;
  ++lifecycle_[index].starts;
}

void PoolCounters::on_exit(uint32_t index, int pid, const std::string& cause, ExitCause kind) {
  std::lock_guard lock(mu_);
  Lifecycle& l = lifecycle_[index];
  if (l.pid == pid) l.pid = -1;  // during a reload, its replacement may have started already
  ++l.causes[static_cast<size_t>(kind)];
  for (const std::string& key : {cause, std::string("other")}) {
    for (auto& [text, count] : l.exits) {
      if (text == key) {
        ++count;
        return;
      }
    }
    if (l.exits.size() < kMaxCauses || key == "other") {
      l.exits.emplace_back(key, 1);
      return;
    }
  }
}

void PoolCounters::set_shared(std::vector<SharedStats> shared) {
  std::lock_guard lock(mu_);
  shared_ = std::move(shared);
}

PoolStats PoolCounters::snapshot() const {
  PoolStats s;
  s.uptime = std::chrono::steady_clock::now() - started_;
  {
    std::lock_guard lock(mu_);
    s.workers.resize(workers_);
    s.generation = generation_;
    s.reloads = reloads_;
    s.last_reload = last_reload_;
    s.last_reload_duration = last_reload_took_;
    s.shared = shared_;
    for (uint32_t i = 0; i < workers_; ++i) {
      WorkerStats& w = s.workers[i];
      w.index = i;
      w.pid = lifecycle_[i].pid;
      w.starts = lifecycle_[i].starts;
      w.exits = lifecycle_[i].exits;
      w.exit_causes = lifecycle_[i].causes;
      w.rss_bytes = lifecycle_[i].last_rss;
      for (size_t k = 0; k < w.outcomes.size(); ++k) {
        w.outcomes[k] = slots_[i]->outcomes[k].load(std::memory_order_relaxed);
        w.tasks += w.outcomes[k];
      }
      w.busy = std::chrono::nanoseconds(slots_[i]->busy_ns.load(std::memory_order_relaxed));
    }
  }
  // /proc is read outside the lock: the loop thread takes it whenever a worker starts or
  // exits, and must not wait on one read of /proc per worker of every stats() call.
  for (uint32_t i = 0; i < s.workers.size(); ++i) {
    WorkerStats& w = s.workers[i];
    if (w.starts > 1) s.restarts += w.starts - 1;
    for (size_t k = 0; k < kExitCauses; ++k) s.exit_causes[k] += w.exit_causes[k];
    const uint64_t rss = w.pid > 0 ? resident_bytes(w.pid) : 0;
    if (rss == 0) continue;
    w.rss_bytes = rss;
    std::lock_guard lock(mu_);
    if (i < lifecycle_.size() && lifecycle_[i].pid == w.pid) lifecycle_[i].last_rss = rss;  // still the same process
  }
  // After the workers' counters: a snapshot taken mid-run never shows the pool with fewer
  // outcomes than its workers together.
  for (size_t i = 0; i < s.outcomes.size(); ++i) s.outcomes[i] = outcomes_[i].load(std::memory_order_relaxed);
  s.outcomes[static_cast<size_t>(Status::rejected)] += refused_.load(std::memory_order_relaxed);
  s.p50 = std::chrono::nanoseconds(durations_.quantile(0.50));
  s.p99 = std::chrono::nanoseconds(durations_.quantile(0.99));
  s.durations = fixed_durations_.read();
  s.queued = queued_.load(std::memory_order_relaxed);
  s.in_flight = in_flight_.load(std::memory_order_relaxed);
  return s;
}

uint64_t resident_bytes(int pid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/statm", pid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  unsigned long long size = 0, resident = 0;
  if (std::sscanf(buf, "%llu %llu", &size, &resident) != 2) return 0;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace shoal::detail
