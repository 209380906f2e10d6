// shoal_bench: the shoal side of bench/run. Prints one "name value unit" line per figure;
// bench/report.py sets them beside bench/peers.py's Python figures from the same run.
//
//   shoal_bench [--quick] [--only map|submit|unordered|tiny|ring|cpu|rtt|bandwidth|start|memory|run]
// Workloads (2 workers unless said): a) 1,000,000 tiny echo tasks through map; b) the
// same through submit (one future each) and map_unordered; c) 20,000 CPU tasks of
// ~100 µs against 2 x the in-process rate and against two in-process loops at once; d)
// sequential round trips on one worker, busy and with 1 ms pauses, beside two threads'
// bare spinning and futex round trips; e) 64 KiB and 1 MiB echo bandwidth against memcpy (inputs copied in, or written in place); f) start and
// close+join of 2 and 16 workers; g) host and worker RSS around 10,000,000 tiny tasks;
// h) lines through the `shoal run` CLI (cli_run.cpp).
// The floors: the same plugin called in-process through its shoal_run symbol, and the
// bare two-process ring stream (ring_floor.cpp, run right after the tiny map).
#include "bench.hpp"

#include <shoal/plugin.h>
#include <shoal/runtime.hpp>

#include <dlfcn.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

using bench::Clock;
using bench::figure;
using bench::seconds_since;
using namespace std::chrono_literals;

namespace {

bool g_quick = false;
// --only map|submit|unordered: one part of the tiny workload alone, for a profiler.
std::string_view g_part;
bool part(std::string_view name) { return g_part.empty() || g_part == name; }

long rss_kib(int pid) {
  std::ifstream in("/proc/" + (pid == 0 ? std::string("self") : std::to_string(pid)) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

std::unique_ptr<shoal::Pool> pool(const char* plugin, uint32_t workers, uint64_t capacity = 4u << 20) {
  shoal::PoolConfig c;
  c.name = "bench";
  c.plugin = plugin;
  c.workers = workers;
  c.queue_capacity = capacity;
  auto p = shoal::Pool::start(c);
  if (!p) {
    std::fprintf(stderr, "shoal_bench: %s\n", p.error().message.c_str());
    std::exit(2);
  }
  return std::move(*p);
}

// ---- the floor: the plugin's shoal_run called in this process through a stub host.

struct InProcess {
  shoal_status (*init)(const shoal_host*, shoal_ctx*, void**);
  shoal_status (*run)(shoal_ctx*, void*, shoal_bytes);
  void* user = nullptr;
  shoal_host host{};
  // Per thread: cpu_tasks runs two in-process loops at once.
  static inline thread_local std::vector<char> out = std::vector<char>(2u << 20);
  static inline thread_local size_t used = 0;

  explicit InProcess(const char* path) {
    void* lib = ::dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) std::exit(2);
    init = reinterpret_cast<decltype(init)>(::dlsym(lib, "shoal_init"));
    run = reinterpret_cast<decltype(run)>(::dlsym(lib, "shoal_run"));
    host.struct_size = sizeof host;
    host.abi_version = SHOAL_ABI_VERSION;
    host.reserve = [](shoal_ctx*, size_t n) -> void* {
      void* p = out.data() + used;
      used += n;
      return p;
    };
    host.emit = [](shoal_ctx*, const void* d, size_t n) -> shoal_status {
      std::memcpy(out.data() + used, d, n);
      used += n;
      return SHOAL_OK;
    };
    host.report_error = [](shoal_ctx*, shoal_status, const char*) {};
    host.should_stop = [](shoal_ctx*) -> int32_t { return 0; };
    host.add_finalizer = [](shoal_ctx*, int32_t, shoal_finalizer_fn, void*) -> shoal_status { return SHOAL_OK; };
    host.resource = [](shoal_ctx*, const char*) -> void* { return nullptr; };
    host.param = [](shoal_ctx*, const char*) -> const char* { return nullptr; };
    host.log = [](shoal_ctx*, int32_t, const char*) {};
    host.worker_index = [](shoal_ctx*) -> uint32_t { return 0; };
    init(&host, nullptr, &user);
  }
  void call(const std::string& input) {
    used = 0;
    run(nullptr, user, shoal_bytes{input.data(), input.size()});
  }
};

// ---- workloads

void tiny_tasks() {
  const size_t n = g_quick ? 200'000 : 1'000'000;
  std::vector<std::string> inputs(n, "12345678");
  auto p = pool(SHOAL_BENCH_ECHO, 2);
  (void)p->map(std::vector<std::string>(10'000, "12345678"));  // warm-up: dispatch depth settles
  if (part("map")) {
    // Three maps, their median (as peers.py does for Pool.map): the first of a process
    // gets its 88 MB of outcomes in fresh pages, which on a VM whose freed memory goes
    // back to the hypervisor can cost more than the tasks (a_map_tiny_first).
    std::vector<double> rates;
    for (int rep = 0; rep < 3; ++rep) {
      auto t0 = Clock::now();
      auto outs = p->map(inputs);
      rates.push_back(static_cast<double>(n) / seconds_since(t0));
    }
    figure("a_map_tiny_first", rates[0], "tasks/s");
    figure("a_map_tiny", bench::median(rates), "tasks/s");
  }
  if (part("map")) {
    // The same map without an Outcome per task (item 3 of issue 19): each output seen in
    // place through map_views, its bytes summed as a consumer would read them.
    std::vector<double> rates;
    size_t seen = 0;
    for (int rep = 0; rep < 3; ++rep) {
      auto t0 = Clock::now();
      p->map_views(inputs, [&](size_t, const shoal::OutcomeView& v) { seen += v.output.size(); });
      rates.push_back(static_cast<double>(n) / seconds_since(t0));
    }
    if (seen == 0) std::fprintf(stderr, "bench: map_views saw no output\n");
    figure("a_map_views_tiny", bench::median(rates), "tasks/s");
  }
  if (part("submit")) {
    const size_t m = n / 5;
    auto t0 = Clock::now();
    std::vector<std::future<shoal::Outcome>> futures;
    futures.reserve(m);
    for (size_t i = 0; i < m; ++i) futures.push_back(p->submit(inputs[i]));
    for (auto& f : futures) f.get();
    figure("b_submit_tiny", static_cast<double>(m) / seconds_since(t0), "tasks/s");
  }
  if (part("unordered")) {
    auto t0 = Clock::now();
    size_t seen = 0;
    p->map_unordered(inputs, [&](size_t, shoal::Outcome&&) { ++seen; });
    figure("b_unordered_tiny", static_cast<double>(seen) / seconds_since(t0), "tasks/s");
  }
  p->join();
  if (!g_part.empty()) return;

  InProcess floor(SHOAL_BENCH_ECHO);
  auto t0 = Clock::now();
  for (size_t i = 0; i < n; ++i) floor.call(inputs[i]);
  figure("floor_tiny", static_cast<double>(n) / seconds_since(t0), "tasks/s");
}

void cpu_tasks() {
  // Calibrate the iteration count to ~100 µs in-process, then run 20,000 such tasks.
  InProcess floor(SHOAL_BENCH_CPU);
  // A vCPU that was idle runs slowly for a while: 0.2 s of the loop first, so the
  // calibration does not see a slow CPU and make the tasks a third of their intended size.
  for (auto warm = Clock::now(); seconds_since(warm) < 0.2;) floor.call("10000");
  auto t_cal = Clock::now();
  for (int i = 0; i < 200; ++i) floor.call("10000");
  auto iters = static_cast<uint64_t>(10000 * 100e-6 / (seconds_since(t_cal) / 200));
  const std::string task = std::to_string(iters);
  const size_t n = g_quick ? 4'000 : 20'000;
  auto one_loop = [&] {
    auto t0 = Clock::now();
    for (size_t i = 0; i < 2000; ++i) floor.call(task);
    return 2000 / seconds_since(t0);
  };
  // Two in-process loops at once, one per CPU: what both CPUs reach when both are busy.
  // On a VM whose vCPUs share a physical core, or lose time to their neighbours, it is
  // less than twice one loop's rate, for any pool.
  auto two_loops = [&] {
    auto t0 = Clock::now();
    std::thread other([&] {
      for (size_t i = 0; i < 2000; ++i) floor.call(task);
    });
    for (size_t i = 0; i < 2000; ++i) floor.call(task);
    other.join();
    return 4000 / seconds_since(t0);
  };
  // The machine's speed drifts within seconds here: the in-process rates are measured
  // before and after the pool's run, and their mean is the ideal.
  const double inproc_before = one_loop(), parallel_before = two_loops();

  auto p = pool(SHOAL_BENCH_CPU, 2);
  std::vector<std::string> inputs(n, task);
  auto t0 = Clock::now();
  auto outs = p->map(inputs);
  double rate = static_cast<double>(n) / seconds_since(t0);
  p->join();

  const double inproc_rate = (inproc_before + one_loop()) / 2;
  const double parallel_rate = (parallel_before + two_loops()) / 2;
  figure("c_cpu_task_us", 1e6 / inproc_rate, "us");
  figure("c_cpu_iterations", static_cast<double>(iters), "iterations");
  figure("c_cpu_map", rate, "tasks/s");
  figure("c_cpu_ideal", 2 * inproc_rate, "tasks/s");
  figure("c_cpu_efficiency", rate / (2 * inproc_rate), "ratio");
  figure("c_cpu_parallel", parallel_rate, "tasks/s");
  figure("c_cpu_efficiency_parallel", rate / parallel_rate, "ratio");
}

void percentiles(const char* prefix, std::vector<double>& us) {
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[static_cast<size_t>(q * static_cast<double>(us.size() - 1))]; };
  std::string name(prefix);
  figure((name + "_p50").c_str(), at(0.50), "us");
  figure((name + "_p99").c_str(), at(0.99), "us");
  figure((name + "_p999").c_str(), at(0.999), "us");
}

// The floor of (d), measured in the same run: two threads passing a counter back and
// forth through one shared cache line each way, both spinning (the bare ring's round
// trip), and both sleeping on a futex between messages with 1 ms pauses (the bare
// futex wake-up, both ways).
struct alignas(64) Line {
  std::atomic<uint32_t> value{0};
};

void futex_wait(std::atomic<uint32_t>& word, uint32_t seen) {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, seen, nullptr, nullptr, 0);
}
void futex_wake(std::atomic<uint32_t>& word) {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

void floor_round_trips() {
  const uint32_t busy = g_quick ? 20'000 : 100'000, idle = g_quick ? 300 : 1'000;
  Line ping, pong;
  std::vector<double> us(busy, 0.0);  // touched first, as in round_trips
  us.clear();
  std::thread echo([&] {
    for (uint32_t i = 1; i <= busy; ++i) {
      while (ping.value.load(std::memory_order_acquire) != i) __builtin_ia32_pause();
      pong.value.store(i, std::memory_order_release);
    }
  });
  for (uint32_t i = 1; i <= busy; ++i) {
    auto t0 = Clock::now();
    ping.value.store(i, std::memory_order_release);
    while (pong.value.load(std::memory_order_acquire) != i) __builtin_ia32_pause();
    us.push_back(seconds_since(t0) * 1e6);
  }
  echo.join();
  percentiles("d_floor_spin", us);
  us.clear();
  ping.value = 0;
  pong.value = 0;
  std::thread sleeper([&] {
    for (uint32_t i = 1; i <= idle; ++i) {
      for (uint32_t v; (v = ping.value.load(std::memory_order_acquire)) != i;) futex_wait(ping.value, v);
      pong.value.store(i, std::memory_order_release);
      futex_wake(pong.value);
    }
  });
  for (uint32_t i = 1; i <= idle; ++i) {
    std::this_thread::sleep_for(1ms);
    auto t0 = Clock::now();
    ping.value.store(i, std::memory_order_release);
    futex_wake(ping.value);
    for (uint32_t v; (v = pong.value.load(std::memory_order_acquire)) != i;) futex_wait(pong.value, v);
    us.push_back(seconds_since(t0) * 1e6);
  }
  sleeper.join();
  percentiles("d_floor_futex", us);
}

// Context switches of process `pid`'s threads (0: this process): voluntary ones (a thread
// went to sleep) and involuntary ones (it was preempted), of the calling thread and of
// all others apart. Read around the busy round trips: where their p99 goes.
struct Switches {
  long self_vol = 0, self_invol = 0, other_vol = 0, other_invol = 0;
};
Switches switches(int pid) {
  Switches s;
  const std::string task_dir = "/proc/" + (pid == 0 ? std::string("self") : std::to_string(pid)) + "/task";
  const std::string self_tid = std::to_string(pid == 0 ? ::gettid() : -1);
  for (const auto& task : std::filesystem::directory_iterator(task_dir)) {
    std::ifstream in(task.path() / "status");
    const bool self = task.path().filename() == self_tid;
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0) (self ? s.self_vol : s.other_vol) += std::stol(line.substr(24));
      if (line.rfind("nonvoluntary_ctxt_switches:", 0) == 0)
        (self ? s.self_invol : s.other_invol) += std::stol(line.substr(27));
    }
  }
  return s;
}

// Sequential round trips on one worker, busy (back to back) and idle (1 ms apart), two
// ways: Pool::apply, whose caller moves the task and its result itself (d_rtt_*), and a
// future's get(), whose result the loop thread hands over (d_rtt_future_*).
void round_trips() {
  floor_round_trips();
  auto p = pool(SHOAL_BENCH_ECHO, 1);
  // A fresh worker faults its rings in and calibrates its task clock on a thread of its
  // own for its first few milliseconds (worker/start.cpp, warm_up): the trips measured
  // here are those of a pool that has settled.
  std::this_thread::sleep_for(100ms);
  const size_t busy = g_quick ? 20'000 : 100'000, idle = g_quick ? 500 : 2'000;
  const std::pair<const char*, std::function<void()>> ways[] = {
      {"d_rtt", [&] { (void)p->apply("x"); }}, {"d_rtt_future", [&] { (void)p->submit("x").get(); }}};
  // Touched before the clock runs: reserve() alone leaves a page fault every 512 trips
  // inside the timed loop.
  std::vector<double> us(busy, 0.0);
  for (const auto& [name, trip] : ways) {
    // The first trips after an idle spell, apart: on this kind of guest a wake-up often
    // puts the woken thread on its waker's vCPU while the other is idle, and the two sides
    // then take turns on one CPU (every trip a sleep and a wake-up) until a scheduler
    // tick's balancing pulls them apart, 4 to 24 ms later (bench/NOTES.md, 1.5.0: the
    // trace). The steady busy figure below comes after 200 ms of trips, which also runs
    // the rings' first lap (a page fault every 102 tiny records).
    us.clear();
    std::this_thread::sleep_for(100ms);
    for (size_t i = 0; i < busy / 10; ++i) {
      auto t0 = Clock::now();
      trip();
      us.push_back(seconds_since(t0) * 1e6);
    }
    percentiles((std::string(name) + "_busy_after_idle").c_str(), us);
    for (auto until = Clock::now() + 200ms; Clock::now() < until;)
      for (size_t i = 0; i < 1000; ++i) trip();
    us.clear();
    const int worker = p->worker_pids().at(0);
    const Switches host0 = switches(0), worker0 = switches(worker);
    for (size_t i = 0; i < busy; ++i) {
      auto t0 = Clock::now();
      trip();
      us.push_back(seconds_since(t0) * 1e6);
    }
    const Switches host1 = switches(0), worker1 = switches(worker);
    percentiles((std::string(name) + "_busy").c_str(), us);
    // Per 1000 trips: the caller's sleeps and preemptions, the other host threads' (the
    // loop's) wake-ups, the worker's sleeps.
    const double per = 1000.0 / static_cast<double>(busy);
    const std::string prefix = std::string(name) + "_busy_switches_";
    figure((prefix + "caller_sleeps").c_str(), static_cast<double>(host1.self_vol - host0.self_vol) * per, "per_1000_trips");
    figure((prefix + "caller_preempted").c_str(), static_cast<double>(host1.self_invol - host0.self_invol) * per,
           "per_1000_trips");
    figure((prefix + "loop_sleeps").c_str(), static_cast<double>(host1.other_vol - host0.other_vol) * per, "per_1000_trips");
    figure((prefix + "worker_sleeps").c_str(), static_cast<double>(worker1.self_vol + worker1.other_vol - worker0.self_vol - worker0.other_vol) * per,
           "per_1000_trips");
    figure((prefix + "worker_preempted").c_str(),
           static_cast<double>(worker1.self_invol + worker1.other_invol - worker0.self_invol - worker0.other_invol) * per,
           "per_1000_trips");
    us.clear();
    for (size_t i = 0; i < idle; ++i) {
      std::this_thread::sleep_for(1ms);
      auto t0 = Clock::now();
      trip();
      us.push_back(seconds_since(t0) * 1e6);
    }
    percentiles((std::string(name) + "_idle").c_str(), us);
  }
  p->join();
}

void bandwidth() {
  auto p = pool(SHOAL_BENCH_ECHO, 2, 4u << 20);
  for (size_t size : {size_t{64} << 10, size_t{1} << 20}) {
    const size_t n = (g_quick ? 256u : 2048u) * (1u << 20) / size;
    std::vector<std::string> inputs(n, std::string(size, 'b'));
    // Zero copy out: each output is read where the worker wrote it (map_views); the check
    // touches every cache line of it, as a consumer would.
    size_t checked = 0;
    const auto check = [&](size_t, const shoal::OutcomeView& v) {
      uint64_t sum = 0;
      for (size_t i = 0; i < v.output.size(); i += 64) sum += static_cast<unsigned char>(v.output[i]);
      checked += sum == 'b' * ((v.output.size() + 63) / 64) ? 1u : 0u;
    };
    auto t0 = Clock::now();
    p->map_views(inputs, check);
    double gbs = static_cast<double>(n * size) / seconds_since(t0) / 1e9;
    if (checked != n) std::fprintf(stderr, "bench: %zu of %zu echo outputs wrong\n", n - checked, n);
    // Zero copy in as well: each input written straight into the ring (an InputWriter),
    // as a producer that makes its data there would; outputs read in place as above.
    checked = 0;
    const shoal::InputWriter fill{[size](size_t) { return size; },
                                  [](size_t, std::span<std::byte> dst) { std::memset(dst.data(), 'b', dst.size()); }};
    t0 = Clock::now();
    p->map_views(n, fill, check);
    double write_gbs = static_cast<double>(n * size) / seconds_since(t0) / 1e9;
    if (checked != n) std::fprintf(stderr, "bench: %zu of %zu written echo outputs wrong\n", n - checked, n);
    // The same through map, each output copied into its Outcome (a fresh allocation).
    t0 = Clock::now();
    auto outs = p->map(inputs);
    double map_gbs = static_cast<double>(n * size) / seconds_since(t0) / 1e9;
    std::vector<char> dst(size);
    t0 = Clock::now();
    for (size_t i = 0; i < n; ++i) {
      std::memcpy(dst.data(), inputs[i].data(), size);
      __asm__ volatile("" : : "r"(dst.data()) : "memory");
    }
    double memcpy_gbs = static_cast<double>(n * size) / seconds_since(t0) / 1e9;
    std::string tag = size == (64u << 10) ? "64k" : "1m";
    figure(("e_echo_" + tag).c_str(), gbs, "GB/s");
    figure(("e_echo_map_" + tag).c_str(), map_gbs, "GB/s");
    figure(("e_memcpy_" + tag).c_str(), memcpy_gbs, "GB/s");
    figure(("e_ratio_" + tag).c_str(), gbs / memcpy_gbs, "ratio");
    figure(("e_echo_written_" + tag).c_str(), write_gbs, "GB/s");
    figure(("e_ratio_written_" + tag).c_str(), write_gbs / memcpy_gbs, "ratio");
  }
  p->join();
}

void start_stop() {
  for (uint32_t workers : {2u, 16u}) {
    std::vector<double> start, stop;
    for (int rep = 0; rep < 5; ++rep) {
      auto t0 = Clock::now();
      auto p = pool(SHOAL_BENCH_ECHO, workers, 64u << 10);
      start.push_back(seconds_since(t0) * 1e3);
      t0 = Clock::now();
      p->close();
      p->join();
      stop.push_back(seconds_since(t0) * 1e3);
    }
    std::string w = std::to_string(workers);
    figure(("f_start_" + w).c_str(), bench::median(start), "ms");
    figure(("f_stop_" + w).c_str(), bench::median(stop), "ms");
  }
}

void memory() {
  auto p = pool(SHOAL_BENCH_ECHO, 2);
  const size_t batch = 1'000'000, batches = g_quick ? 2 : 10;
  std::vector<std::string> inputs(batch, "12345678");
  // Two batches first: the allocator's arenas reach their working size.
  (void)p->map(inputs);
  (void)p->map(inputs);
  long host0 = rss_kib(0);
  long worker0 = 0;
  for (int pid : p->worker_pids()) worker0 += rss_kib(pid);
  for (size_t b = 2; b < batches + 2; ++b) (void)p->map(inputs);
  long host1 = rss_kib(0);
  long worker1 = 0;
  for (int pid : p->worker_pids()) worker1 += rss_kib(pid);
  figure("g_host_rss_growth", static_cast<double>(host1 - host0), "KiB");
  figure("g_worker_rss_growth", static_cast<double>(worker1 - worker0), "KiB");
  figure("g_tasks", static_cast<double>(batch * batches), "tasks");
  p->join();
}

}  // namespace

int main(int argc, char** argv) {
  // --only NAME runs one workload (for a profiler): map, submit or unordered (one part of
  // tiny), tiny, ring, cpu, rtt, bandwidth, start, memory, run.
  if (argc > 1 && std::strcmp(argv[1], "--ring-peer") == 0) return bench::ring_floor_peer(argc, argv);
  std::string_view only;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) g_quick = true;
    if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc) only = argv[++i];
  }
  if (only == "map" || only == "submit" || only == "unordered") {
    g_part = only;
    only = "tiny";
  }
  const std::pair<std::string_view, void (*)()> workloads[] = {
      {"tiny", tiny_tasks},     {"ring", [] { bench::ring_stream_floor(g_quick); }},
      {"cpu", cpu_tasks},       {"rtt", round_trips},
      {"bandwidth", bandwidth}, {"start", start_stop},
      {"memory", memory},       {"run", [] { bench::shoal_run_lines(g_quick); }}};
  for (const auto& [name, fn] : workloads)
    if (only.empty() || only == name) fn();
  return 0;
}
