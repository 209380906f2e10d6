// Watching a run: `--stats FILE` cross-checked against the rows the same run wrote, the
// log formats (text and JSON, the runtime's lines and a plugin's), and the progress bar,
// shown under a pseudo-terminal and absent otherwise.
#include "fixture_paths.hpp"
#include "support/hostile.hpp"
#include "support/json_rows.hpp"
#include "support/run_rows.hpp"
#include "support/subprocess.hpp"
#include "support/test_env.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <map>
#include <regex>
#include <string>
#include <vector>

using namespace shoal::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

std::string fault_config(const TempDir& dir, uint32_t workers) {
  return dir
      .write("fault.yaml", "pools:\n  fault:\n    plugin: \"" + fixture("fx_fault") + "\"\n    workers: " +
                               std::to_string(workers) + "\n    shutdown: {grace: 2s, fini_timeout: 2s}\n")
      .string();
}

json parse_stats(const std::filesystem::path& file) {
  const std::string text = read_file(file);
  INFO("stats: " << text);
  REQUIRE(!text.empty());
  REQUIRE(text.back() == '\n');
  return json::parse(text);  // throws, failing the test, on anything but one document
}

ProcessResult run_shoal(std::vector<std::string> args, const std::string& stdin_file,
                        std::vector<std::pair<std::string, std::string>> env = {}) {
  args.insert(args.begin(), SHOAL_BIN);
  return run_as_user(args, stdin_file, std::move(env));
}

}  // namespace

TEST_CASE("watch: --stats agrees with the rows of the same run", "[integration][watch]") {
  TempDir dir;
  const std::string config = fault_config(dir, 2);
  // ok and error rows from both workers, and crashes that restart a worker each.
  std::string input;
  for (int i = 0; i < 60; ++i) input += i % 10 == 9 ? "error bad " + std::to_string(i) + "\n" : "sleep 2\n";
  input += "segv\nok\nsegv\nok\n";
  const auto input_file = dir.write("input.txt", input);
  const auto stats_file = dir.path() / "stats.json";

  auto r = run_shoal({"run", config, "--input", input_file.string(), "--stats", stats_file.string()}, {});
  CHECK(r.exit_code == 1);
  const auto rows = run_rows(r.out);
  REQUIRE(rows.size() == 64);

  std::map<std::string, uint64_t> by_status;
  std::map<std::string, std::map<std::string, uint64_t>> by_worker;  // worker -> status -> n
  uint64_t crash_deaths = 0;
  for (const auto& row : rows) {
    const std::string& status = row.at("status").text;
    ++by_status[status];
    if (row.at("worker").kind == Value::Kind::number) ++by_worker[row.at("worker").text][status];
    if (status == "crashed") crash_deaths += std::stoull(row.at("attempts").text);
  }
  REQUIRE(by_status["crashed"] == 2);
  REQUIRE(by_status["error"] == 6);

  const json s = parse_stats(stats_file);
  INFO("stats: " << s.dump());
  CHECK(s.at("final") == true);
  CHECK(s.at("submitted") == 64);
  CHECK(s.at("written") == 64);
  CHECK(s.at("host_rss_bytes").get<uint64_t>() > 0);
  REQUIRE(s.at("pools").size() == 1);
  const json& pool = s.at("pools")[0];
  CHECK(pool.at("name") == "fault");
  CHECK(pool.at("tasks") == 64);
  for (const char* status : {"ok", "error", "crashed", "timeout", "cancelled", "rejected"})
    CHECK(pool.at("outcomes").at(status).get<uint64_t>() == by_status[status]);
  // Each crash took its worker down; the slot was started again for the next task.
  CHECK(pool.at("restarts").get<uint64_t>() >= crash_deaths);
  const double p50 = pool.at("task_ms").at("p50"), p99 = pool.at("task_ms").at("p99");
  CHECK(p50 >= 1.5);  // "sleep 2" tasks, and the histogram rounds up, never down
  CHECK(p99 >= p50);
  // `shoal run` never reloads: the first generation, and no reload yet.
  CHECK(pool.at("generation") == 0);
  CHECK(pool.at("reloads") == 0);
  CHECK(pool.at("last_reload").is_null());
  CHECK(pool.at("last_reload_duration_s") == 0.0);
  CHECK(pool.at("shared") == json::array());  // no `shared:` data configured

  REQUIRE(pool.at("workers").size() == 2);
  uint64_t segv_exits = 0, worker_tasks = 0;
  for (const json& w : pool.at("workers")) {
    const std::string index = std::to_string(w.at("index").get<int>());
    INFO("worker " << index);
    for (const char* status : {"ok", "error", "crashed"})
      CHECK(w.at("outcomes").at(status).get<uint64_t>() == by_worker[index][status]);
    worker_tasks += w.at("tasks").get<uint64_t>();
    CHECK(w.at("tasks").get<uint64_t>() > 0);  // both did work
    CHECK(w.at("restarts") == w.at("starts").get<uint64_t>() - 1);
    for (const auto& [cause, n] : w.at("exits").items())
      if (cause.find("SIGSEGV") != std::string::npos) segv_exits += n.get<uint64_t>();
    const double busy = w.at("busy_fraction");
    CHECK(busy > 0.0);
    CHECK(busy <= 1.0);
    CHECK(w.at("rss_bytes").get<uint64_t>() > 0);
    CHECK(w.at("pid").is_null());  // the run has ended: no live process
  }
  CHECK(worker_tasks == 64);
  CHECK(segv_exits == crash_deaths);
}

TEST_CASE("watch: --stats names a worker the host killed by the kind of end", "[integration][watch]") {
  TempDir dir;
  const std::string config =
      dir.write("timeout.yaml", "pools:\n  fault:\n    plugin: \"" + fixture("fx_fault") +
                                    "\"\n    workers: 1\n    task_timeout: 200ms\n"
                                    "    shutdown: {grace: 200ms, fini_timeout: 2s}\n")
          .string();
  const auto input_file = dir.write("input.txt", "hang\nok\n");
  const auto stats_file = dir.path() / "stats.json";
  auto r = run_shoal({"run", config, "--input", input_file.string(), "--stats", stats_file.string()}, {});
  CHECK(r.exit_code == 1);
  const json s = parse_stats(stats_file);
  INFO("stats: " << s.dump());
  const json& pool = s.at("pools")[0];
  CHECK(pool.at("outcomes").at("timeout") == 1);
  CHECK(pool.at("outcomes").at("ok") == 1);
  const json& w = pool.at("workers")[0];
  CHECK(w.at("restarts") == 1);
  REQUIRE(w.at("exits").contains("killed by the host: task_timeout"));
  CHECK(w.at("exits").at("killed by the host: task_timeout") == 1);
}

TEST_CASE("watch: --stats is rewritten while the run goes on", "[integration][watch]") {
  TempDir dir;
  const std::string config = fault_config(dir, 2);
  std::string input;
  for (int i = 0; i < 10; ++i) input += "ok\n";
  input += "sleep " + std::to_string(1500 * kSlow) + "\nsleep " + std::to_string(1500 * kSlow) + "\n";
  const auto input_file = dir.write("input.txt", input);
  const auto stats_file = dir.path() / "stats.json";

  Background run({SHOAL_BIN, "run", config, "--stats", stats_file.string(), "--stats-interval", "0.1"}, input_file,
                 dir.path() / "out", dir.path() / "err");
  REQUIRE(run.started());
  // A snapshot in the middle: the ten quick rows written, the two long tasks running.
  bool seen_midway = false;
  std::string last;  // the last snapshot read, for the failure message
  const auto deadline = std::chrono::steady_clock::now() + 10s * kSlow;
  while (!seen_midway && std::chrono::steady_clock::now() < deadline) {
    if (wait_for_file(stats_file, 50ms)) {
      last = read_file(stats_file);
      json s = json::parse(last, nullptr, false);
      if (!s.is_discarded() && s.at("final") == true) break;  // missed: the run is over
      seen_midway = !s.is_discarded() && s.at("written") == 10 && !s.at("pools")[0].at("workers")[0].at("pid").is_null();
    }
    if (!seen_midway) wait_for_file(dir.path() / "never", 20ms);  // a bounded pause
  }
  INFO("last snapshot: " << last << "\nstderr: " << read_file(dir.path() / "err"));
  CHECK(seen_midway);
  int code = -1;
  REQUIRE(run.wait(30s * kSlow, code));
  CHECK(code == 0);
  const json s = parse_stats(stats_file);
  CHECK(s.at("final") == true);
  CHECK(s.at("written") == 12);
}

TEST_CASE("watch: --stats to a file that cannot be written is a usage error before any task", "[integration][watch]") {
  TempDir dir;
  const std::string config = fault_config(dir, 1);
  const auto input_file = dir.write("input.txt", "ok\n");
  const auto output = dir.write("rows.jsonl", "earlier rows\n");
  auto r = run_shoal({"run", config, "--input", input_file.string(), "--output", output.string(), "--stats",
                      (dir.path() / "no/such/dir/s.json").string()},
                     {});
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
  CHECK(r.err.find("cannot write --stats") != std::string::npos);
  CHECK(read_file(output) == "earlier rows\n");  // not truncated: the run never started
  auto bad = run_shoal({"run", config, "--stats-interval", "0"}, {});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("--stats-interval") != std::string::npos);
}

TEST_CASE("watch: --log-format json turns every stderr line into a JSON object", "[integration][watch]") {
  TempDir dir;
  const std::string config = fault_config(dir, 1);
  const auto input_file = dir.write("input.txt", "log from the plugin\nprint to stdout\nsegv\nok\n");
  auto r = run_shoal({"--log-format", "json", "run", config, "--input", input_file.string()}, {});
  CHECK(r.exit_code == 1);
  bool plugin_log = false, printed = false, death = false, summary = false;
  for (const auto& line : lines_of(r.err)) {
    INFO("stderr line: " << line);
    json j = json::parse(line);  // every line, or the test fails
    CHECK(j.contains("time"));
    CHECK(j.contains("level"));
    const std::string msg = j.at("message");
    if (msg == "from the plugin") {
      plugin_log = true;
      CHECK(j.at("level") == "warning");
      CHECK(j.at("pool") == "fault");
      CHECK(j.at("worker") == 0);
      CHECK(j.at("component") == "plugin");
    }
    if (j.value("stream", "") == "output" && msg.find("to stdout") != std::string::npos) printed = true;
    if (msg.find("SIGSEGV") != std::string::npos) death = j.at("level") == "warning";
    if (msg.find("4 tasks, 3 ok, 1 failed") == 0) summary = j.at("level") == "info";
  }
  CHECK(plugin_log);
  CHECK(printed);
  CHECK(death);
  CHECK(summary);

  SECTION("text is the default, and --log-level error hides the runtime's warnings") {
    auto text = run_shoal({"run", config, "--input", input_file.string()}, {});
    CHECK(text.err.find("shoal: warning: fault[0] plugin: from the plugin") != std::string::npos);
    auto quiet = run_shoal({"run", config, "--log-level=error", "--input", input_file.string()}, {});
    CHECK(quiet.err.find("from the plugin") == std::string::npos);
    CHECK(quiet.err.find("SIGSEGV") == std::string::npos);
    CHECK(quiet.err.find("4 tasks, 3 ok, 1 failed") != std::string::npos);  // the summary stays
  }
  SECTION("a long message stays one valid JSON line; a long printed line is cut into valid ones") {
    const auto long_input = dir.write("long.txt", "log " + std::string(20000, 'x') + "\nprint " + std::string(9000, 'y') + "\n");
    auto r2 = run_shoal({"--log-format=json", "run", config, "--input", long_input.string()}, {});
    CHECK(r2.exit_code == 0);
    size_t xs = 0, ys = 0;
    for (const auto& line : lines_of(r2.err)) {
      INFO("stderr line of " << line.size() << " bytes: " << line.substr(0, 120));
      json j = json::parse(line);
      const std::string msg = j.at("message");
      xs += static_cast<size_t>(std::count(msg.begin(), msg.end(), 'x'));
      ys += static_cast<size_t>(std::count(msg.begin(), msg.end(), 'y'));
    }
    CHECK(xs > 1000);    // the message, cut to the log's limit
    CHECK(xs < 20000);
    CHECK(ys == 9000);   // printed output is cut into pieces, none lost
    // Control bytes grow six-fold when escaped: the line must still arrive whole, as one
    // warning from the plugin, not as pieces of output.
    const auto ctl_input = dir.write("ctl.txt", "log " + std::string(3500, '\x01') + "\n");
    auto r4 = run_shoal({"--log-format=json", "run", config, "--input", ctl_input.string()}, {});
    const auto ctl_lines = lines_of(r4.err);
    REQUIRE(ctl_lines.size() == 2);  // the plugin's message and the summary
    json first = json::parse(ctl_lines[0]);
    CHECK(first.at("level") == "warning");
    CHECK(first.at("component") == "plugin");
    CHECK(first.at("message").get<std::string>().size() > 100);
  }
  SECTION("a message holding a newline is one text line") {
    const auto nl_input = dir.write("nl.txt", "log-lines first|second\n");
    auto r3 = run_shoal({"run", config, "--input", nl_input.string()}, {});
    CHECK(r3.err.find("shoal: warning: fault[0] plugin: first\\nsecond\n") != std::string::npos);
  }
  SECTION("a command's messages carry their level: check's verdict is info, not error") {
    auto checked = run_shoal({"--log-format", "json", "check", config}, {});
    CHECK(checked.exit_code == 0);
    bool verdict = false;
    for (const auto& line : lines_of(checked.err)) {
      json j = json::parse(line);
      const std::string msg = j.at("message");
      // The fixture declares no ABI version as data: a note (warning), then the verdict.
      if (msg.find(": ok (") != std::string::npos) verdict = j.at("level") == "info";
      else CHECK(j.at("level") == "warning");
    }
    CHECK(verdict);
  }
  SECTION("an unknown format or level is a usage error") {
    auto bad = run_shoal({"run", config, "--log-format", "xml"}, {});
    CHECK(bad.exit_code == 2);
    CHECK(bad.err.find("--log-format") != std::string::npos);
    auto bad_level = run_shoal({"--log-level", "loud", "check", config}, {});
    CHECK(bad_level.exit_code == 2);
  }
}

// Issue 14 item 7: what a plugin prints is data. The fixture prints lines shaped like the
// host's own (a JSON entry of another pool at level error, a "shoal: " line), terminal
// escapes, and writes a record of its own onto the worker's log pipe.
TEST_CASE("watch: a plugin's lines are wrapped and escaped, never taken for the host's log",
          "[integration][watch][logs]") {
  TempDir dir;
  const std::string config = dir.write("h.yaml", hostile_yaml(1)).string();
  const auto input_file = dir.write("input.txt", "forge-logs\n");
  SECTION("json: each line is the host's entry for pool h, worker 0, the printed line its message") {
    auto r = run_shoal({"--log-format", "json", "run", config, "--input", input_file.string()}, {});
    CHECK(r.exit_code == 0);
    size_t printed = 0, records = 0;
    for (const auto& line : lines_of(r.err)) {
      INFO("stderr line: " << line);
      json j = json::parse(line);  // every line, or the test fails
      const std::string msg = j.at("message");
      if (msg.find("forged") == std::string::npos) continue;
      CHECK(j.at("pool") == "h");
      CHECK(j.at("worker") == 0);
      if (j.value("stream", "") == "output") {
        ++printed;
        CHECK(j.at("level") == "info");
      } else {
        ++records;  // the record on descriptor 6: its level and component, the host's pool and worker
        CHECK(msg == "forged record");
        CHECK(j.at("component") == "other");
      }
    }
    CHECK(printed == 6);  // three lines, on stdout and on stderr
    CHECK(records == 1);
    CHECK(r.err.find("\"pool\":\"other\"") == std::string::npos);
    CHECK(r.err.find("\xc2\x9b") == std::string::npos);  // C1 CSI as \u009b
    CHECK(r.err.find("\\u009b") != std::string::npos);
  }
  SECTION("text: each printed line keeps its prefix, and no control byte reaches the terminal") {
    auto r = run_shoal({"run", config, "--input", input_file.string()}, {});
    CHECK(r.exit_code == 0);
    size_t printed = 0;
    for (const auto& line : lines_of(r.err)) {
      INFO("stderr line: " << line);
      if (line.find("forged") == std::string::npos) continue;
      if (line.starts_with("shoal: h[0]: ")) ++printed;
      else CHECK(line == "shoal: error: h[0] other: forged record");
    }
    CHECK(printed == 6);
    CHECK(r.err.find("shoal: h[0]: shoal: error: other[9]: forged text\n") != std::string::npos);
    CHECK(r.err.find("shoal: h[0]: forged \\x1b]0;retitled\\x07\\x1b[2J\\x0dforged escapes \\xc2\\x9b31m forged c1 "
                     "\\xff forged byte\n") != std::string::npos);
    for (char c : {'\x1b', '\x07', '\r', '\x9b', '\xff'}) {
      INFO("byte " << static_cast<int>(static_cast<unsigned char>(c)));
      CHECK(r.err.find(c) == std::string::npos);
    }
  }
}

TEST_CASE("watch: a progress bar under a terminal, none when stderr is a file", "[integration][watch]") {
  TempDir dir;
  const std::string config = fault_config(dir, 2);
  // 1.6 s of work: long enough for the ETA, which shows after the first second.
  std::string input;
  for (int i = 0; i < 40; ++i) input += i == 20 ? "log halfway\n" : "sleep 80\n";
  const auto input_file = dir.write("input.txt", input);
  const auto out_file = dir.path() / "rows.jsonl";
  const std::string cmd = std::string(SHOAL_BIN) + " run " + config + " --input " + input_file.string() + " --output " +
                          out_file.string();
  // script(1) gives the command a pseudo-terminal 80 columns wide and copies what it
  // wrote to stdout.
  ProcessOptions opts;
  opts.timeout = 60s * kSlow;
  auto r = run_process({"script", "-qec", "stty cols 80 rows 24; " + cmd, "/dev/null"}, opts);
  INFO(describe(r) << "\nterminal: " << r.out);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("] ") != std::string::npos);
  CHECK(r.out.find("/40 done, 0 failed") != std::string::npos);  // the total, counted up front
  CHECK(std::regex_search(r.out, std::regex("[0-9]/s, ETA [0-9]+s")));  // shown in 80 columns, not cut off
  CHECK(r.out.find("\x1b[K") != std::string::npos);  // redrawn in place
  // Every frame ("\r" ... "\x1b[K") fits in 79 columns: a wrapped one would leave rows behind.
  size_t frames = 0;
  for (size_t at = r.out.find('\r'); at != std::string::npos; at = r.out.find('\r', at + 1)) {
    const size_t end = r.out.find("\x1b[K", at);
    if (end == std::string::npos || r.out.find_first_of("\r\n", at + 1) < end) continue;
    ++frames;
    INFO("frame: " << r.out.substr(at + 1, end - at - 1));
    CHECK(end - at - 1 < 80);
  }
  CHECK(frames > 0);
  CHECK(r.out.find("40 tasks, 40 ok, 0 failed") != std::string::npos);
  // A log line written while the bar is up erases it first instead of landing on its row.
  const size_t log_at = r.out.find("shoal: warning: fault[");
  REQUIRE(log_at != std::string::npos);
  CHECK((log_at == 0 || r.out[log_at - 1] == '\n' || r.out.compare(log_at - 4, 4, "\r\x1b[K") == 0));
  CHECK(lines_of(read_file(out_file)).size() == 40);

  auto plain = run_shoal({"run", config, "--input", input_file.string(), "--output", out_file.string()}, {});
  CHECK(plain.exit_code == 0);
  CHECK(plain.err.find('\r') == std::string::npos);
  CHECK(plain.err.find("\x1b[") == std::string::npos);
  const auto lines = lines_of(plain.err);
  REQUIRE(lines.size() == 2);  // the plugin's log line and the summary, nothing redrawn
  CHECK(lines[0].find("halfway") != std::string::npos);
  CHECK(lines[1].find("40 tasks, 40 ok, 0 failed") != std::string::npos);
}
