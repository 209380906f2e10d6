// Randomized kill test: a steady load on a pool while a killer SIGKILLs a random worker at
// random moments. Every submitted task must get exactly one outcome, the pool must come
// back to full size, and the host's memory must stay flat. The load comes three ways at
// once, so that a result read by a caller and a death seen by the loop thread race for
// the same tasks (pool/lead.cpp): callbacks (delivered by the loop thread), a thread in
// map_unordered (which reads results itself while it waits), a thread waiting on
// futures one at a time, and a thread calling apply with idle gaps.
//
//   shoal_kill_stress [--kills N] [--workers W] [--seed S] [--plugin PATH]
// prints "kills survived: K/N, tasks: submitted S, outcomes O, duplicates D, lost L, ..."
// and exits 0 only when K == N, D == 0, L == 0, the pool is back to W workers and the
// host's RSS grew by no more than 8 MiB plus the program's own per-task tally.
#include "fixture_paths.hpp"

#include <shoal/runtime.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

struct Tally {
  std::mutex mu;
  std::vector<uint32_t> outcomes;  // per task id
  uint64_t bad = 0;                // outcomes that are neither ok with the right output nor crashed
  std::atomic<uint64_t> done{0};
};

}  // namespace

int main(int argc, char** argv) {
  int kills_wanted = 1000, workers = 4;
  unsigned seed = static_cast<unsigned>(std::random_device{}());
  std::string plugin = std::string(SHOAL_FX_DIR) + "/fx_fault.so";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--kills") == 0) kills_wanted = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--workers") == 0) workers = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--seed") == 0) seed = static_cast<unsigned>(std::strtoul(argv[i + 1], nullptr, 10));
    else if (std::strcmp(argv[i], "--plugin") == 0) plugin = argv[i + 1];
  }
  shoal::PoolConfig cfg;
  cfg.name = "stress";
  cfg.plugin = plugin;
  cfg.workers = static_cast<uint32_t>(workers);
  cfg.retries = 3;
  cfg.queue_capacity = 64 * 1024;
  cfg.grace = 2s;
  auto started = shoal::Pool::start(cfg);
  if (!started) {
    std::fprintf(stderr, "kill_stress: %s\n", started.error().message.c_str());
    return 2;
  }
  shoal::Pool& pool = **started;
  Tally tally;
  std::atomic<bool> killing_done{false};
  std::atomic<uint64_t> submitted{0};

  // A watchdog: a hang is a failure, reported as one, not a stuck test (ctest stops it
  // at 300 s).
  std::thread([&] {
    auto deadline = Clock::now() + 4min;
    while (Clock::now() < deadline) {
      std::this_thread::sleep_for(100ms);
    }
    std::fprintf(stderr, "kill_stress: no end after 4 minutes (hang?)\n");
    _exit(3);
  }).detach();

  // Mostly tiny tasks, some that take a millisecond, so kills land mid-task too.
  auto payload_of = [](uint64_t id) { return id % 8 == 0 ? std::string("sleep 1") : "echo " + std::to_string(id); };
  auto new_id = [&] {
    uint64_t id = submitted.fetch_add(1);
    std::lock_guard lock(tally.mu);
    if (tally.outcomes.size() <= id) tally.outcomes.resize(id + 1, 0);
    return id;
  };
  auto count = [&tally](uint64_t id, const shoal::Outcome& o) {
    const std::string expect = id % 8 == 0 ? "slept" : std::to_string(id);
    std::lock_guard lock(tally.mu);
    ++tally.outcomes[id];
    bool good = (o.status == shoal::Status::ok && o.output == expect) ||
                (o.status == shoal::Status::crashed && o.attempts == 4);
    if (!good) ++tally.bad;
    tally.done.fetch_add(1);
  };
  auto submit_one = [&] {
    const uint64_t id = new_id();
    pool.submit(payload_of(id), [&count, id](shoal::Outcome&& o) { count(id, o); });
  };

  // Warm up, then measure the host's memory before the kills.
  for (int i = 0; i < 20000; ++i) submit_one();
  while (tally.done.load() < submitted.load()) std::this_thread::sleep_for(1ms);
  long rss_before = rss_kib();

  std::thread loader([&] {
    while (!killing_done.load()) {
      // Keep a bounded number in flight.
      while (submitted.load() - tally.done.load() < 2000) submit_one();
      std::this_thread::sleep_for(200us);
    }
  });
  std::thread mapper([&] {
    std::vector<std::string> inputs;
    std::vector<uint64_t> ids;
    while (!killing_done.load()) {
      inputs.clear();
      ids.clear();
      for (int i = 0; i < 500; ++i) {
        ids.push_back(new_id());
        inputs.push_back(payload_of(ids.back()));
      }
      pool.map_unordered(inputs, [&](size_t index, shoal::Outcome&& o) { count(ids[index], o); });
    }
  });
  std::thread waiter([&] {
    while (!killing_done.load()) {
      const uint64_t id = new_id();
      auto future = pool.submit(payload_of(id));
      if (future.wait_for(60s) != std::future_status::ready) {
        std::fprintf(stderr, "kill_stress: a future had no outcome after 60 s\n");
        _exit(3);
      }
      count(id, future.get());
    }
  });

  // Pool::apply with idle gaps: its caller moves its one task itself and, when its worker
  // is the only one at work, sleeps on that worker's result (pool/lead.cpp).
  std::thread applier([&] {
    std::mt19937 gaps(seed + 1);
    while (!killing_done.load()) {
      std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 2000)(gaps)));
      const uint64_t id = new_id();
      count(id, pool.apply(payload_of(id)));
    }
  });

  std::mt19937 rng(seed);
  struct Seen {
    Clock::time_point at;
    uint64_t tasks;  // its slot's outcomes when first seen
  };
  std::map<int, Seen> first_seen;
  int kills = 0;
  auto last_ripe = Clock::now();
  while (kills < kills_wanted) {
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(1000, 8000)(rng)));
    auto now = Clock::now();
    std::vector<int> ripe;
    for (const shoal::WorkerStats& w : pool.stats().workers) {
      if (w.pid < 0) continue;
      auto [it, fresh] = first_seen.emplace(w.pid, Seen{now, w.tasks});
      // Only a worker that is serving: one that delivered outcomes since it was first
      // seen, and not just now. A process killed before it served anything counts as a
      // crash loop and is restarted with back-off, on purpose; on a slow machine (a
      // sanitizer build) a start takes far longer than any fixed age.
      if (!fresh && w.tasks > it->second.tasks && now - it->second.at > 30ms) ripe.push_back(w.pid);
    }
    if (ripe.empty()) {
      if (now - last_ripe > 60s) {
        std::fprintf(stderr, "kill_stress: no serving worker for 60 s (pool failed?) after %d kills\n", kills);
        return 1;
      }
      continue;
    }
    last_ripe = now;
    int victim = ripe[std::uniform_int_distribution<size_t>(0, ripe.size() - 1)(rng)];
    if (::kill(victim, SIGKILL) == 0) ++kills;
    first_seen.erase(victim);
  }
  killing_done.store(true);
  loader.join();
  mapper.join();
  waiter.join();
  applier.join();

  // Back to full size, then drain.
  auto deadline = Clock::now() + 20s;
  while (pool.live_workers() != static_cast<size_t>(workers) && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  size_t size_after = pool.live_workers();
  pool.close();
  pool.join();
  long rss_after = rss_kib();

  uint64_t dup = 0, lost = 0, outcomes = 0;
  for (uint32_t n : tally.outcomes) {
    outcomes += n;
    dup += n > 1 ? 1 : 0;
    lost += n == 0 ? 1 : 0;
  }
  // Flat host memory: what grows legitimately is this program's tally, 4 bytes a task.
  long growth_kib = rss_after - rss_before;
  long allowed_kib = 8 * 1024 + static_cast<long>(submitted.load() * 4 / 1024);
  bool ok = dup == 0 && lost == 0 && tally.bad == 0 && size_after == static_cast<size_t>(workers) &&
            growth_kib < allowed_kib;
  std::printf(
      "kills survived: %d/%d, tasks: submitted %llu, outcomes %llu, duplicates %llu, lost %llu, unexpected %llu, "
      "pool size %zu/%d, host RSS %ld -> %ld KiB (allowed growth %ld), seed %u\n",
      ok ? kills : 0, kills_wanted, static_cast<unsigned long long>(submitted.load()),
      static_cast<unsigned long long>(outcomes), static_cast<unsigned long long>(dup),
      static_cast<unsigned long long>(lost), static_cast<unsigned long long>(tally.bad), size_after, workers,
      rss_before, rss_after, allowed_kib, seed);
  return ok ? 0 : 1;
}
