// Hostile plugins under load (issue 13): a 4-worker pool runs 2000 tasks, most of them
// "echo i", with plugin attacks at fixed random positions: crashes, scribbled shared
// memory, closed descriptors, a flooded control socket, tasks that outlast others.
// Every task must get exactly one outcome, and an ok one must carry its own output.
//
//   shoal_hostile_stress [--tasks N] [--seed S]
// prints "tasks N, ok K, lost L, duplicates D, bad B" and exits 0 only when L, D and B
// are 0. ctest checks the line (the exit code does not count under
// PASS_REGULAR_EXPRESSION).
#include "fixture_paths.hpp"

#include <shoal/runtime.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

const std::vector<std::string> kAttacks = {"segv",      "scribble random", "scribble cursors",
                                           "close-fds", "flood-control",   "sleep 300"};

struct Tally {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<uint32_t> outcomes;  // per task
  uint64_t done = 0, ok = 0, bad = 0;
};

}  // namespace

int main(int argc, char** argv) {
  size_t tasks = 2000;
  unsigned seed = 13;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--tasks") == 0) tasks = std::strtoul(argv[i + 1], nullptr, 10);
    else if (std::strcmp(argv[i], "--seed") == 0) seed = static_cast<unsigned>(std::strtoul(argv[i + 1], nullptr, 10));
  }
  // A hang is a failure with a message, not a test stopped by ctest at 300 s.
  std::thread([] {
    std::this_thread::sleep_for(180s);
    std::fprintf(stderr, "hostile_stress: no end after 3 minutes (hang?)\n");
    _exit(3);
  }).detach();

  shoal::PoolConfig cfg;
  cfg.name = "hostile";
  cfg.plugin = std::string(SHOAL_FX_DIR) + "/fx_hostile.so";
  cfg.workers = 4;
  cfg.retries = 0;
  cfg.task_timeout = 2s;
  cfg.grace = 200ms;
  cfg.fini_timeout = 1s;
  cfg.queue_capacity = 64 * 1024;
  auto started = shoal::Pool::start(cfg);
  if (!started) {
    std::fprintf(stderr, "hostile_stress: %s\n", started.error().message.c_str());
    return 2;
  }
  shoal::Pool& pool = **started;

  std::mt19937 rng(seed);
  std::vector<std::string> inputs(tasks), expect(tasks);
  for (size_t i = 0; i < tasks; ++i) {
    if (std::uniform_int_distribution<int>(0, 39)(rng) == 0) {
      inputs[i] = kAttacks[std::uniform_int_distribution<size_t>(0, kAttacks.size() - 1)(rng)];
    } else {
      inputs[i] = "echo " + std::to_string(i);
      expect[i] = std::to_string(i);
    }
  }
  Tally tally;
  tally.outcomes.assign(tasks, 0);
  for (size_t i = 0; i < tasks; ++i) {
    pool.submit(inputs[i], [&tally, &inputs, &expect, i](shoal::Outcome&& o) {
      std::lock_guard lock(tally.mu);
      ++tally.outcomes[i];
      ++tally.done;
      // An attack's own task may end any way but error/rejected; an echo is ok with its
      // output, or crashed when its worker's ring was spoiled under it.
      bool good;
      if (o.status == shoal::Status::ok) {
        ++tally.ok;
        good = expect[i].empty() || o.output == expect[i];
      } else {
        good = o.status == shoal::Status::crashed || (expect[i].empty() && o.status == shoal::Status::timeout);
      }
      if (!good) {
        ++tally.bad;
        std::fprintf(stderr, "hostile_stress: task %zu (%s): %s '%s' %s\n", i, inputs[i].c_str(),
                     std::string(shoal::to_string(o.status)).c_str(), o.output.c_str(), o.error.c_str());
      }
      tally.cv.notify_all();
    });
  }
  bool all_done;
  {
    std::unique_lock lock(tally.mu);
    all_done = tally.cv.wait_for(lock, 120s, [&] { return tally.done >= tasks; });
    if (!all_done)
      std::fprintf(stderr, "hostile_stress: %llu of %zu outcomes after 120 s\n",
                   static_cast<unsigned long long>(tally.done), tasks);
  }
  // Outcomes that come only with the stop (cancelled) still count as lost: the count
  // was taken above.
  std::vector<uint32_t> seen_in_time;
  {
    std::lock_guard lock(tally.mu);
    seen_in_time = tally.outcomes;
  }
  if (all_done) pool.close();
  else pool.terminate();
  pool.join();

  std::lock_guard lock(tally.mu);
  uint64_t lost = 0, duplicates = 0;
  for (size_t i = 0; i < tasks; ++i) {
    if (seen_in_time[i] == 0) ++lost;
    if (tally.outcomes[i] > 1) duplicates += tally.outcomes[i] - 1;
  }
  std::printf("tasks %zu, ok %llu, lost %llu, duplicates %llu, bad %llu\n", tasks,
              static_cast<unsigned long long>(tally.ok), static_cast<unsigned long long>(lost),
              static_cast<unsigned long long>(duplicates), static_cast<unsigned long long>(tally.bad));
  std::fflush(stdout);
  return lost == 0 && duplicates == 0 && tally.bad == 0 && pool.live_workers() == 0 ? 0 : 1;
}
