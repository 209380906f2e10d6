// What a new user meets at the terminal (issue 16, item 7): `| head`, a mistyped
// command, option or pool, --stats-interval in the config's units, shoal-worker run by
// hand, a start failure with several workers. The built binaries as subprocesses, at the
// default log level (the one a user has), real workers and fixture plugins.
#include "fixture_paths.hpp"
#include "support/json_rows.hpp"
#include "support/redis_fleet.hpp"
#include "support/run_rows.hpp"
#include "support/subprocess.hpp"
#include "support/test_env.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <vector>

using namespace shoal::test;
using namespace std::chrono_literals;

namespace {

// The fault fixture with `workers` workers, each appending "fini I" to `fini_marker`
// when its finalizer runs, plus any other params ("key: value" lines).
std::string fault_yaml(const TempDir& dir, uint32_t workers, const std::string& params = {}) {
  return dir
      .write("fault.yaml", "pools:\n  work:\n    plugin: \"" + fixture("fx_fault") + "\"\n    workers: " +
                               std::to_string(workers) + "\n    shutdown: {grace: 2s, fini_timeout: 2s}\n" +
                               "    params:\n      fini_marker: \"" + (dir.path() / "fini.txt").string() + "\"\n" +
                               params)
      .string();
}

// The one line a usage error prints, with exit 2 and nothing on stdout.
std::string usage_error(const std::vector<std::string>& args, const std::string& stdin_file = {}) {
  std::vector<std::string> argv{SHOAL_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_as_user(argv, stdin_file);
  INFO(describe(r));
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
  const auto lines = lines_of(r.err);
  REQUIRE(lines.size() == 1);
  return lines[0];
}

}  // namespace

TEST_CASE("terminal: shoal run piped into head stops quietly with exit 141 and runs every finalizer",
          "[integration][terminal]") {
  TempDir dir;
  const std::string config = fault_yaml(dir, 2);
  // Far more rows than a pipe holds: the run is still going when head leaves.
  std::string input;
  for (int i = 0; i < 50000; ++i) input += "pid\n";
  const auto input_file = dir.write("in.txt", input);
  const auto rc_file = dir.path() / "rc";
  const auto stats_file = dir.path() / "stats.json";
  const std::string script = "\"$0\" run \"$1\" --input \"$2\" --stats \"$3\" | head -n 3; echo \"${PIPESTATUS[0]}\" > \"$4\"";
  auto r = run_as_user({"bash", "-c", script, SHOAL_BIN, config, input_file.string(), stats_file.string(), rc_file.string()});
  INFO(describe(r));
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());  // no error line, no summary: the reader had enough
  CHECK(read_file(rc_file) == "141\n");
  const auto rows = run_rows(r.out);
  REQUIRE(rows.size() == 3);
  // Stopped as a signal stops it: the workers ran their finalizers and are gone.
  const auto fini = lines_of(read_file(dir.path() / "fini.txt"));
  CHECK(std::set<std::string>(fini.begin(), fini.end()) == std::set<std::string>{"fini 0", "fini 1"});
  std::vector<int> pids;
  for (const auto& row : rows) pids.push_back(std::stoi(row.at("output").text));
  CHECK(all_gone(pids));
  // The rest of the input was never read, or came back cancelled: far fewer than 50000 ran.
  const std::string stats = read_file(stats_file);
  INFO("stats: " << stats);
  CHECK(stats.find("\"final\":true") != std::string::npos);
  CHECK(stats.find("\"submitted\":50000") == std::string::npos);
}

TEST_CASE("terminal: shoal collect piped into head stops quietly with exit 141", "[integration][terminal][redis]") {
  Fleet fleet;
  // 3000 results of 300 bytes: far more than a pipe holds.
  const std::string result = "{\"output\":\"" + std::string(280, 'x') + "\"}";
  fleet.redis.command({"EVAL",
                       "for i = 1, 3000 do redis.call('XADD', KEYS[1], '*', 'id', 't:' .. i, 'status', 'ok', "
                       "'result', ARGV[1]) end return 0",
                       "1", kStream + ":results", result});
  REQUIRE(fleet.integer({"XLEN", kStream + ":results"}) == 3000);
  const auto rc_file = fleet.dir.path() / "rc";
  const std::string script = "\"$0\" collect \"$1\" --expect 3000 | head -n 3; echo \"${PIPESTATUS[0]}\" > \"$2\"";
  auto r = run_as_user({"bash", "-c", script, SHOAL_BIN, fleet.config("collect"), rc_file.string()});
  INFO(describe(r));
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  CHECK(read_file(rc_file) == "141\n");
  CHECK(lines_of(r.out) == std::vector<std::string>(3, result));
}

TEST_CASE("terminal: a mistyped command option or pool gets a did-you-mean", "[integration][terminal]") {
  TempDir dir;
  const std::string config = fault_yaml(dir, 1);
  CHECK(usage_error({"serv"}) == "shoal: unknown command 'serv' (did you mean 'serve'?)");
  CHECK(usage_error({"help", "colect"}) == "shoal: unknown command 'colect' (did you mean 'collect'?)");
  CHECK(usage_error({"--verison"}) == "shoal: unknown option '--verison' (did you mean '--version'?)");
  CHECK(usage_error({"run", config, "--unorderd"}) ==
        "shoal: run: unknown option '--unorderd' (did you mean '--unordered'?)");
  CHECK(usage_error({"submit", "--redis", "redis://127.0.0.1:1", "--strem", "s"}) ==
        "shoal: submit: unknown option '--strem' (did you mean '--stream'?)");
  CHECK(usage_error({"run", config, "--pool", "wrok"}) ==
        "shoal: no pool named 'wrok' in " + config + " (did you mean 'work'?)");
  // Nothing close: the pointer to the help, or the list of pools, as before.
  CHECK(usage_error({"frobnicate"}) == "shoal: unknown command 'frobnicate' (see 'shoal --help')");
  CHECK(usage_error({"run", config, "--frobnicate"}) ==
        "shoal: run: unknown option '--frobnicate' (see 'shoal run --help')");
  CHECK(usage_error({"run", config, "--pool", "elsewhere"}) ==
        "shoal: no pool named 'elsewhere' in " + config + " (pools: work)");
}

TEST_CASE("terminal: --stats-interval takes the config's duration units", "[integration][terminal]") {
  TempDir dir;
  const std::string config = fault_yaml(dir, 2);
  // Two workers sleep 1.2 s at once: the run lasts about that long.
  const auto input_file = dir.write("in.txt", "sleep 1200\nsleep 1200\n");
  const auto rows_file = dir.path() / "rows.jsonl";
  // /dev/stdout is a pipe here: each snapshot is appended, not replaced, so they can be
  // counted. One is written before the first task, then one per interval, then the final.
  const auto snapshots = [&](const std::string& every) {
    auto r = run_as_user({SHOAL_BIN, "run", config, "--input", input_file.string(), "--output", rows_file.string(),
                      "--stats", "/dev/stdout", "--stats-interval", every});
    INFO("--stats-interval " << every << ": " << describe(r));
    CHECK(r.exit_code == 0);
    CHECK(count_of(r.out, "\"final\":true") == 1);
    return count_of(r.out, "\"final\":false");
  };
  CHECK(snapshots("200ms") >= 3);
  CHECK(snapshots("0.2") >= 3);  // a plain number is still seconds
  CHECK(snapshots("1m") == 1);
  CHECK(snapshots("30s") == 1);
  for (const std::string bad : {"10ms", "2d", "5x", "-1s", "25h"}) {
    INFO(bad);
    const std::string line = usage_error({"run", config, "--stats-interval", bad});
    CHECK(line == "shoal: run: --stats-interval takes a duration from 50ms to 24h such as 500ms, 2s or 1m (a plain "
                  "number is seconds), not '" + bad + "'");
  }
}

TEST_CASE("terminal: shoal-worker --version --help and run by hand", "[integration][terminal]") {
  auto shoal = run_as_user({SHOAL_BIN, "--version"});
  auto worker = run_as_user({SHOAL_WORKER_BIN, "--version"});
  CHECK(worker.exit_code == 0);
  CHECK(worker.err.empty());
  REQUIRE(shoal.out.starts_with("shoal "));
  CHECK(worker.out == "shoal-worker " + shoal.out.substr(6));  // the same version and ABI
  for (const char* help : {"--help", "-h"}) {
    auto r = run_as_user({SHOAL_WORKER_BIN, help});
    INFO(describe(r));
    CHECK(r.exit_code == 0);
    CHECK(r.out.starts_with("Usage: shoal-worker"));
    CHECK(r.out.find("not meant to be started by hand") != std::string::npos);
    CHECK(r.err.empty());
  }
  auto by_hand = run_as_user({SHOAL_WORKER_BIN});
  INFO(describe(by_hand));
  CHECK(by_hand.exit_code == 2);
  CHECK(by_hand.out.empty());
  const auto lines = lines_of(by_hand.err);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].starts_with("shoal-worker: not started by a shoal host"));
}

TEST_CASE("terminal: a start failure with 4 workers prints its cause once and nothing before it",
          "[integration][terminal]") {
  TempDir dir;
  // Worker 2 refuses; 0, 1 and 3 are still in their init (1 s) when the pool stops them.
  const std::string config = fault_yaml(dir, 4, "      fail_init_index: \"2\"\n      init_sleep_ms: \"1000\"\n");
  const auto input_file = dir.write("in.txt", "ok\n");
  auto r = run_as_user({SHOAL_BIN, "run", config, "--input", input_file.string()});
  INFO(describe(r));
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
  const auto lines = lines_of(r.err);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] == "shoal: pool work: plugin " + fixture("fx_fault") + ": init failed: init refused in worker 2 (worker 2)");
  CHECK(r.err.find("stopped while") == std::string::npos);
}
