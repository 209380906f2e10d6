// SIGHUP to `shoal serve` (issue 15): CONFIG is read again and the pool reloaded while
// tasks flow, as an operator does it. A real redis-server, the built `shoal serve` in the
// background running the fault plugin (whose "param-after MS KEY" task answers with a
// pool parameter, so each output names the config that ran it), `shoal submit` and
// `shoal collect` as subprocesses (support/redis_fleet.hpp).
#include "support/redis_fleet.hpp"

#include <signal.h>

#include <algorithm>
#include <set>

using namespace shoal::test;
using namespace std::chrono_literals;

namespace {

// The host's config: pool `work` (two workers of the fault plugin) with params `version`
// and `extra_params`, more keys of the pool in `pool_extra` ("    key: value\n" each),
// the fleet's redis-server and stream. Written beside and renamed over the file, as a
// deploy would, so a reload never reads half of it.
struct HostConfig {
  std::string version = "one";
  std::string extra_params;  ///< ", key: value" pairs
  std::string pool_extra;
  std::string redis_extra;  ///< "  key: value\n" each
};

std::string config_text(const Fleet& fleet, const std::string& name, const HostConfig& c) {
  return "pools:\n  work:\n    plugin: \"" + fixture("fx_fault") +
         "\"\n    workers: 2\n    shutdown: {grace: 3s, fini_timeout: 2s}\n    params: {fini_marker: \"" +
         fleet.marker(name).string() + "\", version: " + c.version + c.extra_params + "}\n" + c.pool_extra +
         "redis:\n  url: " + fleet.redis.url() + "\n  stream: " + kStream +
         "\n  visibility_timeout: " + std::to_string(10 * kSlow) + "s\n" + c.redis_extra;
}

std::string write_config(const Fleet& fleet, const std::string& name, const std::string& text) {
  const auto tmp = fleet.dir.write(name + ".yaml.new", text);
  const auto path = fleet.dir.path() / (name + ".yaml");
  std::filesystem::rename(tmp, path);
  return path.string();
}

std::string write_config(const Fleet& fleet, const std::string& name, const HostConfig& c) {
  return write_config(fleet, name, config_text(fleet, name, c));
}

// The one line of the host's stderr that holds `needle` ("" if none).
std::string line_with(const Host& host, const std::string& needle) {
  for (const auto& line : lines_of(host.err()))
    if (line.find(needle) != std::string::npos) return line;
  return {};
}

// Serve with the log at info: the reload's result lines are info (ctest runs with warn).
const std::vector<std::string> kInfo = {"--log-level", "info"};

// Every worker process the host has had, seen at the moments this is called.
struct Seen {
  std::set<int> pids;
  void add(const Host& host) {
    for (int p : host.workers()) pids.insert(p);
  }
};

// Until `done`, or a failed reload was logged, or `limit` passed: notes the host's workers
// every 100 ms (both generations, while they overlap).
void watch_until(const Host& host, Seen& seen, const std::string& done, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + bounded(limit);
  while (std::chrono::steady_clock::now() < until && count_of(host.err(), "keeps serving") == 0 &&
         !logged(host, done, 100ms))
    seen.add(host);
}

// SIGTERM, exit 0, and nothing left: no worker process, no /dev/shm entry, every entry done.
void stop_host(Fleet& fleet, Host& host, Seen& seen) {
  seen.add(host);
  host.signal(SIGTERM);
  CHECK(host.wait_exit(20s) == 0);
  CHECK(all_gone(std::vector<int>(seen.pids.begin(), seen.pids.end()), bounded(10s)));
  for (const auto& e : std::filesystem::directory_iterator("/dev/shm")) {
    INFO("/dev/shm entry " << e.path());
    CHECK(e.path().filename().string().find("shoal") == std::string::npos);
  }
  check_drained(fleet);
}

// The generation field of each result entry of `jobs`, by task id.
std::map<std::string, std::string> stream_generations(const Fleet& fleet, const std::vector<std::string>& jobs) {
  std::map<std::string, std::string> out;
  for (const auto& job : jobs) {
    const std::string key = kStream + ":job:" + job + ":results";
    for (const auto& e : redis::parse_entries(fleet.redis.command({"XRANGE", key, "-", "+"}).view()))
      out[std::string(e.field("id").value_or(""))] = std::string(e.field("generation").value_or("<none>"));
  }
  return out;
}

// The rows of tasks PREFIX:0 to PREFIX:n-1: each there once, ok, with the output and
// generation given.
template <class Rows>
void check_rows(const Rows& rows, const std::string& prefix, size_t n, const std::string& output,
                const std::string& generation) {
  for (size_t i = 0; i < n; ++i) {
    const std::string task = prefix + ":" + std::to_string(i);
    INFO("task " << task);
    REQUIRE(rows.count(task) == 1);
    CHECK(rows.at(task).at("status").text == "ok");
    CHECK(rows.at(task).at("output").text == output);
    CHECK(rows.at(task).at("generation").text == generation);
  }
}

// Submits `n` tasks asking for the version param as a job, collects it, and checks them.
void serve_and_check(Fleet& fleet, size_t n, const std::string& output, const std::string& generation) {
  submit(fleet, fleet.config("submit"), std::vector<std::string>(n, "param-after 1 version"));
  const std::string prefix = id_prefix();
  check_rows(collect(fleet.config("collect"), n), prefix, n, output, generation);
}

// A host serving the first config ("a"), ready, its workers seen.
struct Serving {
  Fleet fleet;
  Seen seen;
  const std::string config = write_config(fleet, "a", HostConfig{});
  Host a{fleet, config, "a", kInfo};
  Serving() {
    wait_ready(fleet, {&a});
    seen.add(a);
  }
};

}  // namespace

TEST_CASE_METHOD(Serving, "reload: SIGHUP with new params while tasks flow: one result per task and each names its generation",
          "[integration][redis][reload][serve]") {

  // 5 ms tasks on two workers: about a second of work, the reload in the middle of it.
  constexpr size_t kFirst = 400;
  submit(fleet, fleet.config("submit"), std::vector<std::string>(kFirst, "param-after 5 version"));
  const std::string first = id_prefix();
  REQUIRE(eventually([&] { return fleet.results() >= 40; }, 20s));
  HostConfig two;
  two.version = "two";
  write_config(fleet, "a", two);
  a.signal(SIGHUP);
  watch_until(a, seen, "generation 1 serving", 20s);
  INFO("host stderr: " << a.err());
  REQUIRE(count_of(a.err(), "keeps serving") == 0);  // the reload did not fail
  REQUIRE(logged(a, "generation 1 serving", 20s));
  CHECK(line_with(a, "generation 1 serving").find("rolled in ") != std::string::npos);
  seen.add(a);

  // Queued once the roll is over: the new generation only.
  constexpr size_t kSecond = 100;
  submit(fleet, fleet.config("submit"), std::vector<std::string>(kSecond, "param-after 1 version"));
  const std::string second = id_prefix();

  auto rows = collect(fleet.config("collect"), kSecond);
  CHECK(fleet.results() == static_cast<int64_t>(kSecond));  // not one written twice
  rows.merge(collect(fleet.config("collect"), kFirst, 0, first));
  id_prefix() = first;
  CHECK(fleet.results() == static_cast<int64_t>(kFirst));
  const auto generations = stream_generations(fleet, {first, second});
  std::map<std::string, size_t> by_generation;
  const auto check_row = [&](const std::string& task) {
    INFO("task " << task);
    REQUIRE(rows.count(task) == 1);
    const Row& row = rows.at(task);
    CHECK(row.at("status").text == "ok");
    const std::string& generation = row.at("generation").text;
    // The whole task ran in one generation: its output is that generation's param.
    CHECK(row.at("output").text == (generation == "0" ? "one" : generation == "1" ? "two" : "?"));
    CHECK(generations.at(task) == generation);  // the stream field says the same
    ++by_generation[generation];
    return generation;
  };
  for (size_t i = 0; i < kFirst; ++i) check_row(first + ":" + std::to_string(i));
  for (size_t i = 0; i < kSecond; ++i) CHECK(check_row(second + ":" + std::to_string(i)) == "1");
  INFO("results by generation: 0: " << by_generation["0"] << ", 1: " << by_generation["1"]);
  CHECK(by_generation["0"] >= 40);  // done before the SIGHUP
  CHECK(by_generation["0"] + by_generation["1"] == kFirst + kSecond);

  stop_host(fleet, a, seen);
  // Every process of both generations ran its fini once: two old workers, two new.
  CHECK(lines_of(read_file(fleet.marker("a"))).size() == 4);
}

TEST_CASE_METHOD(Serving, "reload: SIGHUP with a broken config keeps the pool serving and logs FILE:LINE:COL",
          "[integration][redis][reload][serve]") {
  std::vector<int> workers = a.workers();
  std::sort(workers.begin(), workers.end());
  REQUIRE(workers.size() == 2);

  // The served results so far: all ok, generation 0, the first config's output.
  const auto serve_some = [&](size_t n) { serve_and_check(fleet, n, "one", "0"); };
  serve_some(50);

  // An unknown key, and tasks on their way meanwhile.
  HostConfig typo;
  typo.version = "two";
  typo.pool_extra = "    wrokers: 3\n";
  const std::string text = config_text(fleet, "a", typo);
  const size_t at = text.find("wrokers");
  const size_t line = static_cast<size_t>(std::count(text.begin(), text.begin() + static_cast<long>(at), '\n')) + 1;
  const size_t column = at - text.rfind('\n', at);
  write_config(fleet, "a", text);
  submit(fleet, fleet.config("submit"), std::vector<std::string>(200, "param-after 2 version"));
  const std::string during = id_prefix();
  a.signal(SIGHUP);
  const std::string position = config + ":" + std::to_string(line) + ":" + std::to_string(column) + ": ";
  INFO("host stderr: " << a.err());
  REQUIRE(logged(a, position, 20s));
  const std::string logged_line = line_with(a, position);
  CHECK(logged_line.find("wrokers") != std::string::npos);
  CHECK(logged_line.find("generation 0 keeps serving") != std::string::npos);
  check_rows(collect(fleet.config("collect"), 200), during, 200, "one", "0");

  // A plugin file that is not there: refused at the position of `plugin:`, as by `shoal check`.
  std::string missing = config_text(fleet, "a", HostConfig{});
  const std::string plugin_key = "plugin: \"";
  const size_t plugin_at = missing.find(plugin_key);
  missing.replace(plugin_at + plugin_key.size(), fixture("fx_fault").size(), fixture("fx_not_there"));
  write_config(fleet, "a", missing);
  a.signal(SIGHUP);
  const std::string plugin_position = config + ":3:13: ";
  REQUIRE(logged(a, plugin_position, 20s));
  CHECK(line_with(a, plugin_position).find("fx_not_there") != std::string::npos);
  CHECK(line_with(a, plugin_position).find("generation 0 keeps serving") != std::string::npos);
  serve_some(50);

  // The same processes served throughout, and nothing else was said about a reload.
  std::vector<int> after = a.workers();
  std::sort(after.begin(), after.end());
  CHECK(after == workers);
  CHECK(count_of(a.err(), "reload: ") == 4);  // per SIGHUP: reading, then the refusal
  CHECK(count_of(a.err(), " serving, rolled in ") == 0);
  stop_host(fleet, a, seen);
  check_fini(fleet, "a");
}

TEST_CASE_METHOD(Serving, "reload: a SIGHUP during a reload runs one more reload after it", "[integration][redis][reload][serve]") {

  // Each new worker takes 400 ms in init: the roll of two lasts 800 ms at least.
  HostConfig two;
  two.version = "two";
  two.extra_params = ", init_sleep_ms: 400";
  write_config(fleet, "a", two);
  a.signal(SIGHUP);
  INFO("host stderr: " << a.err());
  // A third worker is the first new one starting: CONFIG has been read.
  REQUIRE(eventually(
      [&] {
        seen.add(a);
        return a.workers().size() > 2 || count_of(a.err(), "keeps serving") > 0;
      },
      20s));
  REQUIRE(count_of(a.err(), "keeps serving") == 0);
  HostConfig three = two;
  three.version = "three";
  write_config(fleet, "a", three);
  a.signal(SIGHUP);
  watch_until(a, seen, "generation 2 serving", 20s);
  REQUIRE(count_of(a.err(), "keeps serving") == 0);
  REQUIRE(logged(a, "generation 1 serving", 20s));
  REQUIRE(logged(a, "generation 2 serving", 20s));
  CHECK(count_of(a.err(), "SIGHUP: reading") == 2);  // one more, not one per signal sent

  serve_and_check(fleet, 20, "three", "2");
  stop_host(fleet, a, seen);
}

TEST_CASE_METHOD(Serving, "reload: SIGHUP with a changed redis section reloads the pool only and says the rest needs a restart",
          "[integration][redis][reload][serve]") {

  HostConfig moved;
  moved.version = "two";
  moved.redis_extra = "  max_deliveries: 5\n";
  std::string text = config_text(fleet, "a", moved);
  const std::string stream_key = "stream: " + kStream + "\n";
  text.replace(text.find(stream_key), stream_key.size(), "stream: elsewhere\n");
  write_config(fleet, "a", text);
  a.signal(SIGHUP);
  INFO("host stderr: " << a.err());
  REQUIRE(logged(a, "the redis: section changed", 20s));
  const std::string note = line_with(a, "the redis: section changed");
  CHECK(note.find(config + ": ") != std::string::npos);
  CHECK(note.find("(stream, max_deliveries)") != std::string::npos);
  CHECK(note.find("restarts") != std::string::npos);
  watch_until(a, seen, "generation 1 serving", 20s);
  REQUIRE(count_of(a.err(), "keeps serving") == 0);
  REQUIRE(logged(a, "generation 1 serving", 20s));

  // Still the stream it started with, now with the new params.
  serve_and_check(fleet, 20, "two", "1");
  CHECK(fleet.integer({"EXISTS", "elsewhere"}) == 0);
  stop_host(fleet, a, seen);
}
