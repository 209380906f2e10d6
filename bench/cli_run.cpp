// h_run_lines: issue 19's item 6, lines per second through the built `shoal run` with the
// echo plugin and 2 workers, input from a file and rows to /dev/null, timed from the
// spawn to the exit of the whole process (its start, its pool's start and stop, reading,
// formatting and writing included). bench/peers.py does the same job with Pool.imap and
// json.dumps rows (py_pool_imap_json) over the same lines.
#include "bench.hpp"

#include "common/fd.hpp"
#include "process/spawn.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace bench {

using namespace shoal::detail;

namespace {

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "shoal_bench: shoal run: %s\n", why.c_str());
  std::exit(2);
}

// One `shoal run`; its summary goes to this process's standard error.
double run_seconds(const std::string& config, const std::string& input) {
  Fd null(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  if (!null) fail("cannot open /dev/null");
  SpawnRequest req;
  req.executable = SHOAL_BENCH_SHOAL;
  req.argv = {"shoal", "run", config, "--input", input, "--output", "/dev/null"};
  req.env = environment_with({}, {.all = true, .names = {}});
  req.stdout_to = null.get();
  req.stdin_null = true;
  const auto t0 = Clock::now();
  auto child = spawn_process(req);
  if (!child) fail(child.error().message);
  pollfd exited{child->pidfd.get(), POLLIN, 0};
  ExitStatus st;
  if (::poll(&exited, 1, 600'000) != 1 || !reap(child->pidfd.get(), st)) {
    signal_child(child->pidfd.get(), SIGKILL);
    fail("no exit within 10 minutes");
  }
  const double secs = seconds_since(t0);
  if (!st.exited || st.code != 0) fail(describe(st));
  return secs;
}

}  // namespace

void shoal_run_lines(bool quick) {
  const long n = quick ? 200'000 : 1'000'000;
  const auto dir = std::filesystem::temp_directory_path() / ("shoal-bench-run-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string config = (dir / "echo.yaml").string(), input = (dir / "lines.txt").string();
  std::ofstream(config) << "pools:\n  echo:\n    plugin: \"" SHOAL_BENCH_ECHO "\"\n    workers: 2\n";
  {
    // Distinct 8-byte lines (the tiny map's input size); peers.py writes the same ones.
    std::ofstream in(input);
    char line[32];
    for (long i = 0; i < n; ++i) {
      std::snprintf(line, sizeof line, "%08ld\n", i);
      in << line;
    }
  }
  (void)run_seconds(config, input);  // warm-up: the binary and the plugin in the page cache
  std::vector<double> rates;
  for (int rep = 0; rep < 3; ++rep) rates.push_back(static_cast<double>(n) / run_seconds(config, input));
  std::filesystem::remove_all(dir);
  figure("h_run_lines", median(rates), "lines/s");
}

}  // namespace bench
