// shoal_bench_reload: issue 15's benchmark, a rolling reload under load.
//
//   shoal_bench_reload [--reps N] [--quick]
//
// A pool of 8 workers runs a steady stream of 1 ms tasks: a feeder thread keeps 16 of
// them (2 per worker) in flight, submitting the next as soon as an outcome comes back.
// The task is bench_sleep (bench/sleep_plugin.cpp) with payload "1000": it sleeps 1 ms
// and returns the pool param `version`. The bench build has no test fixtures and no
// plugin in plugins/ waits instead of computing, so the plugin is bench's own. Mid-run
// the pool is reloaded to a config whose `version` differs (A -> B -> A ...), so every
// worker rolls.
//
// A roll of 8 workers takes only some 8 worker starts (~15 ms here), about a hundred
// tasks' worth, so one roll alone gives a noisy rate and a p99 of a handful of samples.
// Each repetition therefore starts a fresh pool and reloads it 5 times, 0.6 s apart, and
// measures side by side in that one run:
//   steady: the 6 stretches of 0.6 s before, between and after the reloads;
//   roll:   the 5 stretches from a reload call until it returned (every old worker gone);
//   start:  a Pool::start of a 1-worker pool of the same config, timed before the first
//           reload and after each, between the windows (neither counts it): the roll's
//           new workers start under this load, so their yardstick does too. The median
//           of these 6; the same measured with the pool idle, before it starts, is shown
//           beside it (median of 3).
// Throughput: outcomes that arrived within the windows, per second of them. Latency:
// from just before submit to the outcome callback, over the tasks in flight at some
// moment of the windows. The figures are the medians over the repetitions of each
// repetition's ratio.
//
// The roll needs CPU (8 process starts) where the sleeping tasks need little, so other
// processes on the machine lower (a) more than they lower the steady rate: each
// repetition's line says how many CPUs the rest of the machine kept busy meanwhile
// (/proc/stat's busy time less this process's and its reaped workers').
//
// Prints each repetition's figures ('#' lines), then one line per figure with its goal.
// Exits 0 whether the goals are met or not; 1 on a real error (a reload that failed, a
// task lost, not ok, or run by another version than its generation's); 2 when a pool
// cannot start.
#include "bench.hpp"

#include <shoal/runtime.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr uint32_t kWorkers = 8;
constexpr ptrdiff_t kInFlight = 2 * kWorkers;
constexpr const char* kTask = "1000";  // µs of sleep
constexpr size_t kIdleStarts = 3;

struct Plan {
  int reps = 5;
  int reloads = 5;  // per repetition
  Clock::duration warm = 300ms, steady = 600ms;
};

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

using bench::median;

double p99(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(0.99 * static_cast<double>(v.size() - 1))];
}

[[noreturn]] void fail(int code, const std::string& why) {
  std::fprintf(stderr, "shoal_bench_reload: %s\n", why.c_str());
  std::exit(code);
}

// CPU seconds spent by the whole machine (every CPU, /proc/stat), and by this process with
// its children that were waited for.
double machine_cpu_s() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
  in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq;
  return static_cast<double>(user + nice + system + irq + softirq) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double own_cpu_s() {
  double total = 0;
  for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage u{};
    ::getrusage(who, &u);
    total += static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
             static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  }
  return total;
}

// Generation g runs version A when g is even, B when odd: every reload changes the param.
const char* version_of(uint32_t generation) { return generation % 2 == 0 ? "A" : "B"; }

shoal::PoolConfig config(uint32_t workers, uint32_t generation) {
  shoal::PoolConfig c;
  c.name = "bench";
  c.plugin = SHOAL_BENCH_SLEEP;
  c.workers = workers;
  c.queue_capacity = 64u << 10;  // the tasks are a few bytes; as bench.cpp's start figures
  c.params["version"] = version_of(generation);
  return c;
}

std::unique_ptr<shoal::Pool> start(uint32_t workers) {
  auto p = shoal::Pool::start(config(workers, 0));
  if (!p) fail(2, p.error().message);
  return std::move(*p);
}

// Pool::start of a 1-worker pool, in ms; its close and join are not timed.
double worker_start_ms() {
  const auto t0 = Clock::now();
  auto p = start(1);
  const double took = ms(Clock::now() - t0);
  p->join();
  return took;
}

struct Task {
  Clock::time_point submitted, done;
  shoal::Status status = shoal::Status::rejected;
  uint32_t generation = 0;
  bool right_version = false;
  std::atomic<bool> finished{false};
};

struct Window {
  Clock::time_point from, to;
};

struct Measure {
  double rate = 0;  // outcomes per second
  double p99 = 0;   // ms
  size_t tasks = 0;  // in flight during the windows
};

Measure measure(const std::vector<Task>& tasks, size_t n, const std::vector<Window>& windows) {
  size_t arrived = 0;
  double span = 0;
  std::vector<double> latencies;
  for (const Window& w : windows) span += seconds(w.to - w.from);
  for (size_t i = 0; i < n; ++i) {
    const Task& t = tasks[i];
    bool overlaps = false;
    for (const Window& w : windows) {
      if (t.done >= w.from && t.done < w.to) ++arrived;
      overlaps = overlaps || (t.submitted < w.to && t.done >= w.from);
    }
    if (overlaps) latencies.push_back(ms(t.done - t.submitted));
  }
  return {static_cast<double>(arrived) / span, p99(latencies), latencies.size()};
}

struct Rep {
  Measure steady, roll;
  double roll_ms = 0;        // mean over the reloads, from call to return
  double start_ms = 0;       // median worker start under the load, between the windows
  double idle_start_ms = 0;  // median worker start before the pool of 8 started
  double others_cpus = 0;    // CPUs the rest of the machine kept busy, on average
  size_t tasks = 0;
};

Rep repetition(const Plan& plan) {
  Rep rep;
  const auto t0 = Clock::now();
  const double machine0 = machine_cpu_s(), own0 = own_cpu_s();
  std::vector<double> starts;
  for (size_t i = 0; i < kIdleStarts; ++i) starts.push_back(worker_start_ms());
  rep.idle_start_ms = median(starts);
  starts.clear();

  auto pool = start(kWorkers);
  // At most 16 tasks a millisecond (each sleeps 1 ms), with margin: the feeder never runs
  // out of records.
  const double planned = seconds(plan.warm + (plan.reloads + 1) * plan.steady) + 5;
  std::vector<Task> tasks(static_cast<size_t>(planned * 16'000));
  std::counting_semaphore<kInFlight> free_slots(kInFlight);
  std::atomic<bool> stop{false};
  std::atomic<size_t> submitted{0};
  std::thread feeder([&] {
    for (size_t i = 0; i < tasks.size() && !stop.load(std::memory_order_relaxed); ++i) {
      free_slots.acquire();
      Task& t = tasks[i];
      t.submitted = Clock::now();
      submitted.store(i + 1, std::memory_order_relaxed);
      pool->submit(kTask, [&t, &free_slots](shoal::Outcome&& o) {
        t.done = Clock::now();
        t.status = o.status;
        t.generation = o.generation;
        t.right_version = o.output == version_of(o.generation);
        t.finished.store(true, std::memory_order_release);
        free_slots.release();
      });
    }
  });

  std::vector<Window> steady, roll;
  std::this_thread::sleep_for(plan.warm);
  starts.push_back(worker_start_ms());
  for (int r = 1; r <= plan.reloads; ++r) {
    const auto from = Clock::now();
    std::this_thread::sleep_for(plan.steady);
    const auto roll0 = Clock::now();
    steady.push_back({from, roll0});
    auto reloaded = pool->reload(config(kWorkers, static_cast<uint32_t>(r)));
    const auto roll1 = Clock::now();
    if (!reloaded) fail(1, "reload failed: " + reloaded.error().message);
    roll.push_back({roll0, roll1});
    starts.push_back(worker_start_ms());
  }
  const auto from = Clock::now();
  std::this_thread::sleep_for(plan.steady);
  steady.push_back({from, Clock::now()});
  rep.start_ms = median(starts);
  stop.store(true, std::memory_order_relaxed);
  feeder.join();
  for (ptrdiff_t i = 0; i < kInFlight; ++i) free_slots.acquire();  // every outcome is in
  const shoal::PoolStats stats = pool->stats();
  pool->join();
  rep.others_cpus = ((machine_cpu_s() - machine0) - (own_cpu_s() - own0)) / seconds(Clock::now() - t0);

  const size_t n = submitted.load();
  if (n == tasks.size()) fail(1, "the feeder ran out of task records");
  std::vector<size_t> per_generation(static_cast<size_t>(plan.reloads) + 1);
  for (size_t i = 0; i < n; ++i) {
    const Task& t = tasks[i];
    if (!t.finished.load(std::memory_order_acquire)) fail(1, "task " + std::to_string(i) + " has no outcome");
    if (t.status != shoal::Status::ok)
      fail(1, "task " + std::to_string(i) + ": " + std::string(shoal::to_string(t.status)));
    if (t.generation >= per_generation.size() || !t.right_version)
      fail(1, "task " + std::to_string(i) + " of generation " + std::to_string(t.generation) +
                  " was run by another version");
    ++per_generation[t.generation];
  }
  const auto reloads = static_cast<uint32_t>(plan.reloads);
  if (stats.generation != reloads || stats.reloads != reloads || stats.last_reload != "ok")
    fail(1, "after " + std::to_string(reloads) + " reloads, stats say generation " +
                std::to_string(stats.generation) + ", " + std::to_string(stats.reloads) +
                " reloads, last: " + stats.last_reload);
  for (size_t g = 0; g < per_generation.size(); ++g)
    if (per_generation[g] == 0) fail(1, "no task ran on generation " + std::to_string(g));

  rep.tasks = n;
  rep.steady = measure(tasks, n, steady);
  rep.roll = measure(tasks, n, roll);
  double roll_total = 0;
  for (const Window& w : roll) roll_total += ms(w.to - w.from);
  rep.roll_ms = roll_total / static_cast<double>(roll.size());
  return rep;
}

}  // namespace

int main(int argc, char** argv) {
  Plan plan;
  bool quick = false;
  int reps = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    else if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else fail(1, std::string("usage: shoal_bench_reload [--reps N] [--quick] (unknown argument: ") + argv[i] + ")");
  }
  if (quick) {
    plan.reps = 3;
    plan.reloads = 3;
    plan.steady = 300ms;
  }
  if (reps > 0) plan.reps = reps;

  std::printf("# shoal_bench_reload: %u workers, %td tasks in flight from a feeder thread, %u CPUs\n", kWorkers,
              kInFlight, std::thread::hardware_concurrency());
  std::printf("# task: bench_sleep \"%s\" (sleeps 1 ms, returns param version; bench/sleep_plugin.cpp)\n", kTask);
  std::printf("# %d repetitions, each a fresh pool reloaded %d times %.1f s apart (param version A -> B -> A ..., "
              "every worker rolls)\n",
              plan.reps, plan.reloads, seconds(plan.steady));
  std::printf("# worker start: Pool::start of a 1-worker pool beside the loaded pool of 8, between the windows "
              "(idle: before it starts)\n");
  std::fflush(stdout);
  (void)worker_start_ms();  // the first start of a process pays for loading files: not counted

  std::vector<double> rate_ratio, p99_ratio, roll_ratio, steady_rate, roll_rate, steady_p99, roll_p99, roll_ms,
      start_ms, idle_start_ms;
  for (int r = 1; r <= plan.reps; ++r) {
    const Rep rep = repetition(plan);
    std::printf("# rep %d: steady %.0f tasks/s, p99 %.2f ms | roll %.1f ms: %.0f tasks/s, "
                "p99 %.2f ms over %zu tasks | worker start %.2f ms (idle %.2f) | %zu tasks | "
                "other processes: %.2f CPUs\n",
                r, rep.steady.rate, rep.steady.p99, rep.roll_ms, rep.roll.rate, rep.roll.p99,
                rep.roll.tasks, rep.start_ms, rep.idle_start_ms, rep.tasks,
                std::max(0.0, rep.others_cpus));  // below 0: the clock ticks' rounding
    std::fflush(stdout);
    rate_ratio.push_back(rep.roll.rate / rep.steady.rate);
    p99_ratio.push_back(rep.roll.p99 / rep.steady.p99);
    roll_ratio.push_back(rep.roll_ms / (kWorkers * rep.start_ms));
    steady_rate.push_back(rep.steady.rate);
    roll_rate.push_back(rep.roll.rate);
    steady_p99.push_back(rep.steady.p99);
    roll_p99.push_back(rep.roll.p99);
    roll_ms.push_back(rep.roll_ms);
    start_ms.push_back(rep.start_ms);
    idle_start_ms.push_back(rep.idle_start_ms);
  }

  const double a = median(rate_ratio), b = median(p99_ratio), c = median(roll_ratio);
  std::printf("# medians: steady %.0f tasks/s, p99 %.2f ms | roll %.1f ms: %.0f tasks/s, p99 %.2f ms | worker start "
              "%.2f ms (idle %.2f)\n",
              median(steady_rate), median(steady_p99), median(roll_ms), median(roll_rate), median(roll_p99),
              median(start_ms), median(idle_start_ms));
  std::printf("(a) throughput during the roll / steady state: %.2f   goal >= 0.85: %s\n", a,
              a >= 0.85 ? "met" : "missed");
  std::printf("(b) p99 latency during the roll / steady state: %.2f   goal: none set in issue 15\n", b);
  std::printf("(c) roll time / (8 x one worker's start time): %.2f   goal: none set in issue 15 (one worker at a "
              "time: 8 starts in a row, so about 1)\n",
              c);
  return 0;
}
