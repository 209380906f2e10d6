// shoal_bench_shared: issue 18's benchmark, read-only data shared by a pool's workers.
//
//   shoal_bench_shared [--reps N] [--words N] [--workers N]
//
// Writes a table of WORDS (default 2,000,000) deterministic key→value lines to a temporary
// file (bench/shared_data.hpp), ~252 MiB once loaded into plugins/dictionary's structure,
// then in each repetition, one after the other (never two pools at once):
//   empty    a pool of WORKERS (16) bench_shared workers with no table: PSS per worker
//   shared   the same pool with a `shared:` entry (dictionary_builder over the file),
//            every worker reading all of the table in init: the pool's PSS, the builder's
//            time (SharedStats::build_time) and the segment's bytes used (one copy)
//   private  each worker building the same structure from the file in its own memory in
//            init (bench/shared_plugin.cpp, mode private): PSS and start time
//   python   bench/shared_peer.py: a dict of the same lines in the parent, a fork Pool
//            whose workers each read all of it in their initializer: the workers' PSS
//   start    Pool::start of WORKERS workers with the shared table (not read) and without
//            one; the builder's time is taken off the first and reported apart
//   lookups  1-worker pools, shared and private: 500,000 lookups of keys in a fixed
//            pseudo-random order, once cold (the first task) and 3 times warm (median)
// PSS is the sum of Pss in /proc/PID/smaps_rollup over the workers; shoal's workers are
// made dumpable for it (limits.core_dumps: a non-dumpable process's smaps_rollup is
// unreadable to its siblings and to us). Every figure is the median over the repetitions
// of that repetition's value or ratio. Exits 1 on a failed start or task.
#include "bench.hpp"
#include "shared_data.hpp"

#include <shoal/runtime.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kSegmentMib = 320;  // the table uses ~252 MiB of it
constexpr uint64_t kLookups = 500'000;

struct Plan {
  int reps = 3;
  uint64_t words = 2'000'000;
  uint32_t workers = 16;
  std::string file;
};

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "shoal_bench_shared: %s\n", why.c_str());
  std::exit(1);
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

using bench::median;

double pss_mib(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Pss:", 0) == 0) return std::stod(line.substr(4)) / 1024;
  fail("no Pss in /proc/" + std::to_string(pid) + "/smaps_rollup (is the worker dumpable?)");
}

double pool_pss_mib(const shoal::Pool& pool) {
  double sum = 0;
  for (int pid : pool.worker_pids()) sum += pss_mib(pid);
  return sum;
}

shoal::PoolConfig config(const Plan& plan, const char* mode, uint32_t workers, bool touch) {
  shoal::PoolConfig c;
  c.name = "bench";
  c.plugin = SHOAL_BENCH_SHARED_PLUGIN;
  c.workers = workers;
  c.queue_capacity = 64u << 10;
  c.start_timeout = 600s;  // private: 16 builds on this machine's CPUs
  c.limits.core_dumps = true;
  c.params = {{"mode", mode},
              {"words", std::to_string(plan.words)},
              {"touch", touch ? "true" : "false"},
              {"file", plan.file},
              {"segment_mib", std::to_string(kSegmentMib)}};
  if (std::strcmp(mode, "shared") == 0) {
    shoal::SharedConfig s;
    s.name = "table";
    s.builder = SHOAL_BENCH_DICTIONARY_BUILDER;
    s.size = kSegmentMib << 20;
    s.params = {{"file", plan.file}};
    c.shared.push_back(std::move(s));
  }
  return c;
}

struct Started {
  std::unique_ptr<shoal::Pool> pool;
  double start_ms = 0;
};

Started start(const shoal::PoolConfig& c) {
  const auto t0 = Clock::now();
  auto p = shoal::Pool::start(c);
  if (!p) fail(std::string("pool start (mode ") + c.params.at("mode") + "): " + p.error().message);
  return {std::move(*p), ms(Clock::now() - t0)};
}

// Nanoseconds per lookup of one task of kLookups lookups.
double lookup_ns(shoal::Pool& pool) {
  auto outcome = pool.submit(std::to_string(kLookups)).get();
  if (outcome.status != shoal::Status::ok) fail("lookup task: " + outcome.error);
  std::istringstream out(outcome.output);
  uint64_t ns = 0, hits = 0;
  out >> ns >> hits;
  if (hits != kLookups) fail("lookup task found " + std::to_string(hits) + " of " + std::to_string(kLookups));
  return static_cast<double>(ns) / kLookups;
}

// Figures of one lookup pool: cold (its first task), warm (median of the next 3).
std::pair<double, double> lookups(const Plan& plan, const char* mode) {
  auto s = start(config(plan, mode, 1, false));
  const double cold = lookup_ns(*s.pool);
  std::vector<double> warm;
  for (int i = 0; i < 3; ++i) warm.push_back(lookup_ns(*s.pool));
  s.pool->join();
  return {cold, median(warm)};
}

// bench/shared_peer.py's "name value" lines.
std::map<std::string, double> python_peer(const Plan& plan) {
  const std::string cmd = "python3 " SHOAL_BENCH_SHARED_PEER " " + plan.file + " " + std::to_string(plan.workers);
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) fail("cannot run " + cmd);
  std::map<std::string, double> figures;
  char name[64];
  double value = 0;
  while (std::fscanf(p, "%63s %lf", name, &value) == 2) figures[name] = value;
  if (::pclose(p) != 0 || !figures.count("py_pss_workers_mib")) fail(cmd + " failed");
  return figures;
}

using Figures = std::map<std::string, double>;

Figures repetition(const Plan& plan) {
  Figures f;
  const double n = plan.workers;
  {
    auto s = start(config(plan, "none", plan.workers, false));
    f["empty_worker_pss_mib"] = pool_pss_mib(*s.pool) / n;
    s.pool->join();
  }
  {
    auto s = start(config(plan, "shared", plan.workers, true));
    const auto stats = s.pool->stats();
    if (stats.shared.size() != 1) fail("the shared pool reports " + std::to_string(stats.shared.size()) + " segments");
    f["copy_mib"] = static_cast<double>(stats.shared[0].used) / (1 << 20);
    f["build_ms"] = ms(stats.shared[0].build_time);
    f["shared_pss_mib"] = pool_pss_mib(*s.pool);
    f["shared_mappings"] = stats.shared[0].mappings;
    s.pool->join();
  }
  {
    auto s = start(config(plan, "private", plan.workers, true));
    f["private_pss_mib"] = pool_pss_mib(*s.pool);
    f["private_start_ms"] = s.start_ms;
    s.pool->join();
  }
  for (const auto& [k, v] : python_peer(plan)) f[k] = v;
  {
    auto s = start(config(plan, "none", plan.workers, false));
    f["start_none_ms"] = s.start_ms;
    s.pool->join();
  }
  {
    auto s = start(config(plan, "shared", plan.workers, false));
    f["start_shared_ms"] = s.start_ms;
    f["start_shared_build_ms"] = ms(s.pool->stats().shared.at(0).build_time);
    s.pool->join();
  }
  std::tie(f["lookup_shared_cold_ns"], f["lookup_shared_ns"]) = lookups(plan, "shared");
  std::tie(f["lookup_private_cold_ns"], f["lookup_private_ns"]) = lookups(plan, "private");
  // Ratios within the repetition.
  f["r_pss_goal"] = f["shared_pss_mib"] / (1.1 * f["copy_mib"] + n * f["empty_worker_pss_mib"]);
  f["r_pss_over_floor"] = (f["shared_pss_mib"] - n * f["empty_worker_pss_mib"]) / f["copy_mib"];
  f["r_private_vs_shared"] = f["private_pss_mib"] / f["shared_pss_mib"];
  f["r_python_vs_shared"] = f["py_pss_workers_mib"] / f["shared_pss_mib"];
  f["r_start"] = (f["start_shared_ms"] - f["start_shared_build_ms"]) / f["start_none_ms"];
  f["r_lookup"] = f["lookup_private_ns"] / f["lookup_shared_ns"];
  f["r_lookup_cold"] = f["lookup_private_cold_ns"] / f["lookup_shared_cold_ns"];
  return f;
}

void write_table(const Plan& plan) {
  std::ofstream out(plan.file, std::ios::binary);
  std::string k, v;
  for (uint64_t i = 0; i < plan.words; ++i) {
    bench_shared::key(i, k);
    bench_shared::value(i, v);
    out << k << '\t' << v << '\n';
  }
  if (!out.flush()) fail("cannot write " + plan.file);
}

}  // namespace

int main(int argc, char** argv) {
  Plan plan;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) plan.reps = std::max(1, std::atoi(argv[++i]));
    else if (std::strcmp(argv[i], "--words") == 0 && i + 1 < argc) plan.words = std::stoull(argv[++i]);
    else if (std::strcmp(argv[i], "--workers") == 0 && i + 1 < argc) plan.workers = static_cast<uint32_t>(std::atoi(argv[++i]));
    else fail(std::string("usage: shoal_bench_shared [--reps N] [--words N] [--workers N] (unknown: ") + argv[i] + ")");
  }
  char dir[] = "/tmp/shoal-bench-shared.XXXXXX";
  if (::mkdtemp(dir) == nullptr) fail("mkdtemp failed");
  plan.file = std::string(dir) + "/table.txt";
  write_table(plan);
  std::printf("# shoal_bench_shared: %u workers, %llu words (%.0f MiB of text), %u CPUs, %d repetitions\n",
              plan.workers, static_cast<unsigned long long>(plan.words),
              static_cast<double>(fs::file_size(plan.file)) / (1 << 20), std::thread::hardware_concurrency(), plan.reps);
  std::fflush(stdout);

  std::map<std::string, std::vector<double>> all;
  for (int r = 1; r <= plan.reps; ++r) {
    const Figures f = repetition(plan);
    std::printf("# rep %d:", r);
    for (const auto& [k, v] : f) {
      std::printf(" %s=%.4g", k.c_str(), v);
      all[k].push_back(v);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  fs::remove_all(dir);
  Figures m;
  for (const auto& [k, v] : all) m[k] = median(v);
  std::printf("# medians:");
  for (const auto& [k, v] : m) std::printf(" %s=%.4g", k.c_str(), v);
  std::printf("\n");
  std::printf("one copy (segment bytes used): %.1f MiB; an empty worker: %.1f MiB PSS; builder: %.0f ms\n",
              m["copy_mib"], m["empty_worker_pss_mib"], m["build_ms"]);
  std::printf("pool PSS, %u workers that read all of it: shared %.0f MiB | private copies %.0f MiB | Python fork "
              "Pool %.0f MiB (its parent %.0f MiB more)\n",
              plan.workers, m["shared_pss_mib"], m["private_pss_mib"], m["py_pss_workers_mib"], m["py_pss_parent_mib"]);
  std::printf("(a) shared PSS / (1.1 x one copy + %u x empty worker): %.3f   goal <= 1: %s\n", plan.workers,
              m["r_pss_goal"], m["r_pss_goal"] <= 1 ? "met" : "missed");
  std::printf("    (shared PSS - %u x empty worker) / one copy: %.3f; private / shared: %.1f; Python / shared: %.1f\n",
              plan.workers, m["r_pss_over_floor"], m["r_private_vs_shared"], m["r_python_vs_shared"]);
  std::printf("(b) start of %u workers with the table (less the builder's %.0f ms) / without: %.2f (%.1f - %.1f ms "
              "against %.1f ms)   goal <= 2: %s\n",
              plan.workers, m["start_shared_build_ms"], m["r_start"], m["start_shared_ms"], m["start_shared_build_ms"],
              m["start_none_ms"], m["r_start"] <= 2 ? "met" : "missed");
  std::printf("    each worker building its own copy instead: %.0f ms\n", m["private_start_ms"]);
  std::printf("(c) lookups, shared / private speed: %.2f (%.0f against %.0f ns each; cold first task %.2f)   goal >= "
              "0.5: %s\n",
              m["r_lookup"], m["lookup_shared_ns"], m["lookup_private_ns"], m["r_lookup_cold"],
              m["r_lookup"] >= 0.5 ? "met" : "missed");
  return 0;
}
