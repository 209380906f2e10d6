// The `shoal` command line as a user runs it: the built binary as a subprocess, real
// workers and plugins, input from a file, rows read back from stdout field by field.
#include "fixture_paths.hpp"
#include "support/json_rows.hpp"
#include "support/run_rows.hpp"
#include "support/subprocess.hpp"
#include "support/test_env.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

using namespace shoal::test;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> kKeys = {"seq", "status", "output", "error", "worker", "attempts", "ms", "reason"};
const std::regex kMs("^[0-9]+\\.[0-9]{3}$");
const std::regex kSummary(
    "^shoal: ([0-9]+) tasks?, ([0-9]+) ok, ([0-9]+) failed( \\(([a-z0-9, ]+)\\))?, [0-9]+\\.[0-9]{2} s, [0-9]+ tasks/s$");

// The shape every row has, whatever its status.
void check_row_shape(const Row& row, uint32_t workers) {
  INFO("seq " << row.at("seq").text);
  CHECK(row.keys == kKeys);
  CHECK(row.at("seq").kind == Value::Kind::number);
  CHECK(row.at("status").kind == Value::Kind::string);
  CHECK(row.at("output").kind == Value::Kind::string);
  CHECK(row.at("attempts").kind == Value::Kind::number);
  CHECK(std::regex_match(row.at("ms").text, kMs));
  const Value& worker = row.at("worker");
  if (worker.kind == Value::Kind::number) CHECK(std::stoul(worker.text) < workers);
}

// An ok row of the echo plugin for input `expected`.
void check_echo_row(const Row& row, uint64_t seq, const std::string& expected, uint32_t workers) {
  check_row_shape(row, workers);
  INFO("seq " << seq << ", input '" << expected << "'");
  CHECK(row.at("seq").text == std::to_string(seq));
  CHECK(row.at("status").text == "ok");
  CHECK(row.at("output").text == expected);
  CHECK(row.at("error").kind == Value::Kind::null);
  CHECK(row.at("worker").kind == Value::Kind::number);
  CHECK(row.at("attempts").text == "1");
}

struct Summary {
  uint64_t tasks = 0, ok = 0, failed = 0;
  std::string detail;  // "2 error, 1 crashed"
};

// The summary is the last line of stderr (worker log lines may come before it).
Summary summary_of(const ProcessResult& r) {
  auto lines = lines_of(r.err);
  INFO("stderr: " << r.err);
  REQUIRE(!lines.empty());
  std::smatch m;
  REQUIRE(std::regex_match(lines.back(), m, kSummary));
  return Summary{std::stoull(m[1]), std::stoull(m[2]), std::stoull(m[3]), m[5]};
}

constexpr uint32_t kWorkers = 2;

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

std::string pool_yaml(const std::string& name, const std::string& plugin, uint32_t workers) {
  return "  " + name + ":\n    plugin: " + quoted(plugin) + "\n    workers: " + std::to_string(workers) +
         "\n    shutdown: {grace: 2s, fini_timeout: 2s}\n";
}

std::string echo_config(const TempDir& dir) {
  return dir.write("echo.yaml", "pools:\n" + pool_yaml("echo", SHOAL_PLUGIN_ECHO, kWorkers)).string();
}

ProcessResult shoal_cli(std::vector<std::string> args, const std::string& stdin_file) {
  ProcessOptions options;
  options.stdin_file = stdin_file;
  return shoal::test::shoal_cli(std::move(args), std::move(options));
}

// A failure before any task: exit 2, nothing on stdout, exactly one line on stderr.
std::string check_one_line_error(const ProcessResult& r) {
  INFO(describe(r));
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
  auto lines = lines_of(r.err);
  REQUIRE(lines.size() == 1);
  CHECK(r.err.back() == '\n');
  CHECK(lines[0].rfind("shoal: ", 0) == 0);
  return lines[0];
}

}  // namespace

TEST_CASE("cli: run writes one JSON row per input line, in input order", "[integration][cli]") {
  TempDir dir;
  const std::string config = echo_config(dir);
  std::vector<std::string> inputs = {"alpha",
                                     "",
                                     "with \"quotes\", a \\ backslash and a / slash",
                                     "tab\there, bell \a, escape \x1b",
                                     "h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9D\x84\x9E",
                                     "{\"already\": \"json\"}"};
  for (int i = 0; i < 300; ++i) inputs.push_back("line " + std::to_string(i));
  std::string input;
  for (const auto& s : inputs) input += s + "\n";
  const auto input_file = dir.write("input.txt", input);

  SECTION("from stdin") {
    auto r = shoal_cli({"run", config}, input_file.string());
    INFO(describe(r));
    CHECK(r.exit_code == 0);
    auto rows = run_rows(r.out);
    REQUIRE(rows.size() == inputs.size());
    std::set<std::string> workers_used;
    for (size_t i = 0; i < rows.size(); ++i) {
      check_echo_row(rows[i], i, inputs[i], kWorkers);
      workers_used.insert(rows[i].at("worker").text);
    }
    auto s = summary_of(r);
    CHECK(s.tasks == inputs.size());
    CHECK(s.ok == inputs.size());
    CHECK(s.failed == 0);
    CHECK(s.detail.empty());
  }
  SECTION("from --input FILE, pool named explicitly") {
    auto r = shoal_cli({"run", config, "--pool", "echo", "--input", input_file.string()});
    INFO(describe(r));
    CHECK(r.exit_code == 0);
    auto rows = run_rows(r.out);
    REQUIRE(rows.size() == inputs.size());
    for (size_t i = 0; i < rows.size(); ++i) check_echo_row(rows[i], i, inputs[i], kWorkers);
  }
}

TEST_CASE("cli: line splitting and byte handling", "[integration][cli]") {
  TempDir dir;
  const std::string config = echo_config(dir);
  auto run_input = [&](const std::string& bytes) {
    auto r = shoal_cli({"run", config}, dir.write("in.txt", bytes).string());
    INFO(describe(r));
    CHECK(r.exit_code == 0);
    std::vector<std::string> outputs;
    for (const auto& row : run_rows(r.out)) {
      check_row_shape(row, kWorkers);
      CHECK(row.at("status").text == "ok");
      outputs.push_back(row.at("output").text);
    }
    return outputs;
  };
  using V = std::vector<std::string>;
  CHECK(run_input("a\nb\n") == V{"a", "b"});           // a final newline ends a line
  CHECK(run_input("a\nb") == V{"a", "b"});             // and is not needed
  CHECK(run_input("a\n\nb\n") == V{"a", "", "b"});     // an empty line is an empty task
  CHECK(run_input("\n") == V{""});
  CHECK(run_input("dos\r\nline\r\n") == V{"dos", "line"});  // one trailing \r stripped
  CHECK(run_input("in\rside\n") == V{"in\rside"});          // only a trailing one
  // Bytes that are not UTF-8 come back as U+FFFD, one per byte, valid ones untouched.
  CHECK(run_input("a\xFF" "b\n\xC3\n\xE2\x82\xAC\n") == V{"a\xEF\xBF\xBD" "b", "\xEF\xBF\xBD", "\xE2\x82\xAC"});
}

TEST_CASE("cli: empty input is a successful run with no rows", "[integration][cli]") {
  TempDir dir;
  auto r = shoal_cli({"run", echo_config(dir)}, dir.write("empty.txt", "").string());
  INFO(describe(r));
  CHECK(r.exit_code == 0);
  CHECK(r.out.empty());
  auto s = summary_of(r);
  CHECK(s.tasks == 0);
  CHECK(s.ok == 0);
  CHECK(s.failed == 0);
}

TEST_CASE("cli: --unordered writes the same rows, in completion order", "[integration][cli]") {
  TempDir dir;
  std::string input;
  std::map<std::string, std::string> expected;  // seq -> output
  for (int i = 0; i < 500; ++i) {
    input += "item-" + std::to_string(i) + "\n";
    expected[std::to_string(i)] = "item-" + std::to_string(i);
  }
  auto r = shoal_cli({"run", echo_config(dir), "--unordered"}, dir.write("in.txt", input).string());
  INFO(describe(r));
  CHECK(r.exit_code == 0);
  std::map<std::string, std::string> seen;
  for (const auto& row : run_rows(r.out)) {
    check_row_shape(row, kWorkers);
    CHECK(row.at("status").text == "ok");
    CHECK(row.at("error").kind == Value::Kind::null);
    CHECK(row.at("attempts").text == "1");
    CHECK(seen.emplace(row.at("seq").text, row.at("output").text).second);  // each seq once
  }
  CHECK(seen == expected);
  CHECK(summary_of(r).tasks == 500);
}

TEST_CASE("cli: --output FILE receives the rows, stdout stays empty", "[integration][cli]") {
  TempDir dir;
  const auto out_file = dir.path() / "rows.jsonl";
  auto r = shoal_cli({"run", echo_config(dir), "--output", out_file.string()},
                     dir.write("in.txt", "one\ntwo\nthree\n").string());
  INFO(describe(r));
  CHECK(r.exit_code == 0);
  CHECK(r.out.empty());
  ProcessResult as_stdout;
  as_stdout.out = read_file(out_file);
  auto rows = run_rows(as_stdout.out);
  REQUIRE(rows.size() == 3);
  check_echo_row(rows[0], 0, "one", kWorkers);
  check_echo_row(rows[1], 1, "two", kWorkers);
  check_echo_row(rows[2], 2, "three", kWorkers);
  CHECK(summary_of(r).tasks == 3);
}

TEST_CASE("cli: sha256 digests real files and an unreadable one is an error row with exit 1", "[integration][cli]") {
  TempDir dir;
  std::string big;
  for (uint32_t i = 0; i < 300000; ++i) big.push_back(static_cast<char>((i * 7919u) % 251u));
  const std::vector<std::string> files = {dir.write("empty.bin", "").string(),
                                          dir.write("text.txt", "The quick brown fox\n").string(),
                                          dir.write("big.bin", big).string()};
  const std::string missing = (dir.path() / "no-such-file.bin").string();

  // The reference digests come from coreutils, not from the code under test.
  std::vector<std::string> sum_args = {"sha256sum"};
  sum_args.insert(sum_args.end(), files.begin(), files.end());
  auto sums = run_process(sum_args);
  INFO(describe(sums));
  REQUIRE(sums.exit_code == 0);
  auto sum_lines = lines_of(sums.out);
  REQUIRE(sum_lines.size() == files.size());

  const std::string config =
      dir.write("digest.yaml", "pools:\n" + pool_yaml("digest", SHOAL_PLUGIN_SHA256, kWorkers)).string();
  std::string input = files[0] + "\n" + files[1] + "\n" + missing + "\n" + files[2] + "\n";
  auto r = shoal_cli({"run", config}, dir.write("paths.txt", input).string());
  INFO(describe(r));
  CHECK(r.exit_code == 1);
  auto rows = run_rows(r.out);
  REQUIRE(rows.size() == 4);
  const std::vector<size_t> file_rows = {0, 1, 3};
  for (size_t k = 0; k < files.size(); ++k) {
    const Row& row = rows[file_rows[k]];
    check_row_shape(row, kWorkers);
    INFO("file " << files[k]);
    CHECK(row.at("seq").text == std::to_string(file_rows[k]));
    CHECK(row.at("status").text == "ok");
    CHECK(row.at("output").text == sum_lines[k].substr(0, 64));
    CHECK(row.at("error").kind == Value::Kind::null);
    CHECK(row.at("attempts").text == "1");
  }
  const Row& bad = rows[2];
  check_row_shape(bad, kWorkers);
  CHECK(bad.at("seq").text == "2");
  CHECK(bad.at("status").text == "error");
  CHECK(bad.at("error").kind == Value::Kind::string);
  CHECK(bad.at("error").text.find(missing) != std::string::npos);
  CHECK(bad.at("attempts").text == "1");  // the plugin's failure is not retried

  auto s = summary_of(r);
  CHECK(s.tasks == 4);
  CHECK(s.ok == 3);
  CHECK(s.failed == 1);
  CHECK(s.detail == "1 error");
}

TEST_CASE("cli: a config error is exit 2, one FILE:LINE:COL line, no rows", "[integration][cli]") {
  TempDir dir;
  const auto config = dir.write("bad.yaml", "pools:\n  echo:\n    plugin: " + quoted(SHOAL_PLUGIN_ECHO) +
                                                "\n    wokers: 2\n");
  auto r = shoal_cli({"run", config.string()}, dir.write("in.txt", "a\n").string());
  const std::string line = check_one_line_error(r);
  INFO(line);
  // The key sits on line 4; the column is the loader's to choose.
  CHECK(std::regex_search(line, std::regex("^shoal: .*bad\\.yaml:4:[0-9]+: ")));
  CHECK(line.find("wokers") != std::string::npos);
}

TEST_CASE("cli: a pool that cannot start is exit 2, one line, no rows", "[integration][cli]") {
  TempDir dir;
  SECTION("missing plugin") {
    const std::string missing = (dir.path() / "missing-plugin.so").string();
    const auto config = dir.write("c.yaml", "pools:\n" + pool_yaml("p", missing, 1));
    const std::string line = check_one_line_error(shoal_cli({"run", config.string()}, dir.write("in.txt", "a\n").string()));
    CHECK(line.find("missing-plugin.so") != std::string::npos);
  }
  SECTION("plugin whose init fails") {
    const auto config = dir.write("c.yaml", "pools:\n" + pool_yaml("p", fixture("fx_init_fails"), 1));
    const std::string line = check_one_line_error(shoal_cli({"run", config.string()}, dir.write("in.txt", "a\n").string()));
    CHECK(line.find("init refused") != std::string::npos);
  }
}

TEST_CASE("cli: usage errors are exit 2 with one line naming the problem", "[integration][cli]") {
  TempDir dir;
  const std::string config = echo_config(dir);
  const std::string two_pools =
      dir.write("two.yaml", "pools:\n" + pool_yaml("first", SHOAL_PLUGIN_ECHO, 1) +
                                pool_yaml("second", SHOAL_PLUGIN_ECHO, 1))
          .string();

  SECTION("unknown option") {
    auto line = check_one_line_error(shoal_cli({"run", config, "--frobnicate"}));
    CHECK(line.find("--frobnicate") != std::string::npos);
  }
  SECTION("unknown option before the command") {
    auto line = check_one_line_error(shoal_cli({"--frobnicate"}));
    CHECK(line.find("--frobnicate") != std::string::npos);
  }
  SECTION("unknown command") {
    auto line = check_one_line_error(shoal_cli({"frobnicate"}));
    CHECK(line.find("frobnicate") != std::string::npos);
  }
  SECTION("no command") { check_one_line_error(shoal_cli({})); }
  SECTION("missing CONFIG") {
    auto line = check_one_line_error(shoal_cli({"run"}));
    CHECK(line.find("CONFIG") != std::string::npos);
  }
  SECTION("option without its value") {
    auto line = check_one_line_error(shoal_cli({"run", config, "--pool"}));
    CHECK(line.find("--pool") != std::string::npos);
  }
  SECTION("two CONFIG arguments") { check_one_line_error(shoal_cli({"run", config, config})); }
  SECTION("unknown --pool lists the pools") {
    auto line = check_one_line_error(shoal_cli({"run", two_pools, "--pool", "third"}));
    CHECK(line.find("third") != std::string::npos);
    CHECK(line.find("first") != std::string::npos);
    CHECK(line.find("second") != std::string::npos);
  }
  SECTION("several pools and no --pool lists them") {
    auto line = check_one_line_error(shoal_cli({"run", two_pools}));
    CHECK(line.find("--pool") != std::string::npos);
    CHECK(line.find("first") != std::string::npos);
    CHECK(line.find("second") != std::string::npos);
  }
  SECTION("missing config file") {
    auto line = check_one_line_error(shoal_cli({"run", (dir.path() / "nope.yaml").string()}));
    CHECK(line.find("nope.yaml") != std::string::npos);
  }
  SECTION("missing input file") {
    auto line = check_one_line_error(shoal_cli({"run", config, "--input", (dir.path() / "nope.txt").string()}));
    CHECK(line.find("nope.txt") != std::string::npos);
  }
  SECTION("an unknown command") {
    auto line = check_one_line_error(shoal_cli({"frobnicate", config}));
    CHECK(line.find("unknown command 'frobnicate'") != std::string::npos);
  }
}

TEST_CASE("cli: several pools, one chosen with --pool", "[integration][cli]") {
  TempDir dir;
  const std::string config = dir.write("two.yaml", "pools:\n" + pool_yaml("first", SHOAL_PLUGIN_ECHO, 1) +
                                                       pool_yaml("digest", SHOAL_PLUGIN_SHA256, 1))
                                 .string();
  auto r = shoal_cli({"run", config, "--pool", "first"}, dir.write("in.txt", "x\n").string());
  INFO(describe(r));
  CHECK(r.exit_code == 0);
  auto rows = run_rows(r.out);
  REQUIRE(rows.size() == 1);
  check_echo_row(rows[0], 0, "x", 1);
}

TEST_CASE("cli: help and version", "[integration][cli]") {
  for (const auto& args : std::vector<std::vector<std::string>>{{"--help"}, {"-h"}, {"help"}}) {
    auto r = shoal_cli(args);
    INFO(args[0] << ": " << describe(r));
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("Usage: shoal") != std::string::npos);
    CHECK(r.out.find("check CONFIG") != std::string::npos);
    CHECK(r.out.find("inspect FILE.so") != std::string::npos);
    CHECK(r.err.empty());
  }
  for (const auto& args : std::vector<std::vector<std::string>>{{"run", "--help"}, {"run", "-h"}, {"help", "run"}}) {
    auto r = shoal_cli(args);
    INFO(args[0] << " " << args[1] << ": " << describe(r));
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("Usage: shoal run CONFIG") != std::string::npos);
    CHECK(r.out.find("--unordered") != std::string::npos);
    CHECK(r.err.empty());
  }
  auto v = shoal_cli({"--version"});
  CHECK(v.exit_code == 0);
  CHECK(std::regex_search(v.out, std::regex("^shoal [0-9]+\\.[0-9]+\\.[0-9]+")));
}

TEST_CASE("cli: the shipped lookup example answers from SQLite through a resource per worker",
          "[integration][cli][examples]") {
  // words.txt is the source of build/data/words.db; the answers must be its definitions.
  std::map<std::string, std::string> words;
  for (const auto& line : lines_of(read_file(std::string(SHOAL_SOURCE_DIR) + "/config/examples/words.txt"))) {
    auto tab = line.find('\t');
    if (!line.empty() && line[0] != '#' && tab != std::string::npos) words[line.substr(0, tab)] = line.substr(tab + 1);
  }
  REQUIRE(words.size() >= 20);
  const std::string input = std::string(SHOAL_SOURCE_DIR) + "/config/examples/lookup-input.txt";
  auto asked = lines_of(read_file(input));
  auto r = shoal_cli({"run", std::string(SHOAL_SOURCE_DIR) + "/config/examples/lookup.yaml", "--input", input});
  CHECK(r.exit_code == 1);  // one word of the input is not in the database
  auto rows = run_rows(r.out);
  REQUIRE(rows.size() == asked.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    check_row_shape(rows[i], 2);
    INFO("word " << asked[i]);
    auto it = words.find(asked[i]);
    if (it == words.end()) {
      CHECK(rows[i].at("status").text == "error");
      CHECK(rows[i].at("error").text == "no entry for '" + asked[i] + "'");
    } else {
      CHECK(rows[i].at("status").text == "ok");
      CHECK(rows[i].at("output").text == it->second);
    }
  }
  Summary s = summary_of(r);
  CHECK(s.tasks == asked.size());
  CHECK(s.failed == 1);
}

TEST_CASE("cli: a plugin's stdout and stderr reach the host's log prefixed, never the rows",
          "[integration][cli]") {
  TempDir dir;
  const std::string config =
      dir.write("fault.yaml", "pools:\n" + pool_yaml("noisy", std::string(SHOAL_FX_DIR) + "/fx_fault.so", 1)).string();
  const auto input = dir.write("input.txt", "print hello from stdout\neprint partial line on stderr\n");
  auto r = shoal_cli({"run", config, "--input", input.string()});
  INFO(describe(r));
  CHECK(r.exit_code == 0);
  auto rows = run_rows(r.out);  // every stdout line is a row: the plugin's print did not land there
  REQUIRE(rows.size() == 2);
  for (const auto& row : rows) CHECK(row.at("output").text == "printed");
  auto lines = lines_of(r.err);
  CHECK(std::count(lines.begin(), lines.end(), "shoal: noisy[0]: hello from stdout") == 1);
  CHECK(std::count(lines.begin(), lines.end(), "shoal: noisy[0]: partial line on stderr") == 1);
}

TEST_CASE("cli: a crashed and a timed-out task are logged with their input line", "[integration][cli]") {
  TempDir dir;
  const std::string config =
      dir.write("fault.yaml", "pools:\n  f:\n    plugin: " + quoted(fixture("fx_fault")) +
                                  "\n    workers: 1\n    task_timeout: 200ms\n    shutdown: {grace: 2s, fini_timeout: 2s}\n")
          .string();
  const auto input = dir.write("in.txt", "echo a\nsegv\nwait-stop\necho b\n");
  auto r = shoal_cli({"run", config, "--input", input.string()});
  INFO(describe(r));
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("shoal: warning: input line 2 (seq 1) crashed: worker 0 died: signal 11 (SIGSEGV)\n") !=
        std::string::npos);
  CHECK(r.err.find("shoal: warning: input line 3 (seq 2) timeout: task_timeout 0.2s passed; the task stopped when asked\n") != std::string::npos);
  CHECK(r.err.find("input line 1 ") == std::string::npos);
  CHECK(r.err.find("input line 4 ") == std::string::npos);
}

TEST_CASE("cli: 100,000 lines of every status come back one row per line, in input order",
          "[integration][cli]") {
  // Rows are formatted as tasks complete, out of order, in batches: a row parked ahead of
  // its turn, or a refusal between two batches, must still land at its own line.
  TempDir dir;
  const std::string config =
      dir.write("fault.yaml", "pools:\n  f:\n    plugin: " + quoted(fixture("fx_fault")) +
                                  "\n    workers: 2\n    task_timeout: 300ms\n    queue: {capacity: 4KiB}\n"
                                  "    shutdown: {grace: 2s, fini_timeout: 2s}\n")
          .string();
  constexpr size_t kLines = 100000;
  std::vector<std::string> expected(kLines, "ok");
  std::string input;
  for (size_t i = 0; i < kLines; ++i) {
    if (i % 25013 == 7) {
      input += "segv\n";
      expected[i] = "crashed";
    } else if (i % 33331 == 11) {
      input += "wait-stop\n";
      expected[i] = "timeout";
    } else if (i % 20011 == 3) {
      input += std::string(5000, 'x') + "\n";  // longer than a 4 KiB ring
      expected[i] = "rejected";
    } else if (i % 1000 == 999) {
      input += "error e" + std::to_string(i) + "\n";
      expected[i] = "error";
    } else {
      input += "echo " + std::to_string(i) + "\n";
    }
  }
  const auto in = dir.write("in.txt", input);
  for (const bool unordered : {false, true}) {
    INFO((unordered ? "--unordered" : "ordered"));
    std::vector<std::string> args = {"run", config, "--input", in.string()};
    if (unordered) args.push_back("--unordered");
    auto r = shoal_cli(args, "/dev/null");
    INFO(describe(r).substr(0, 2000));
    CHECK(r.exit_code == 1);
    const auto rows = run_rows(r.out);
    REQUIRE(rows.size() == kLines);
    std::vector<int> seen(kLines, 0);
    std::map<std::string, int> statuses;
    for (size_t k = 0; k < rows.size(); ++k) {
      const size_t i = std::stoul(rows[k].at("seq").text);
      REQUIRE(i < kLines);
      if (!unordered) REQUIRE(i == k);
      ++seen[i];
      const std::string& status = rows[k].at("status").text;
      ++statuses[status];
      INFO("seq " << i);
      REQUIRE(status == expected[i]);
      if (status == "ok") REQUIRE(rows[k].at("output").text == std::to_string(i));
      if (status == "error") REQUIRE(rows[k].at("error").text == "e" + std::to_string(i));
    }
    CHECK(static_cast<size_t>(std::count(seen.begin(), seen.end(), 1)) == kLines);  // each line exactly once
    CHECK(statuses.size() == 5);
    const auto s = summary_of(r);
    CHECK(s.tasks == kLines);
    CHECK(s.failed == kLines - static_cast<uint64_t>(statuses["ok"]));
  }
}

namespace {

// Two workers, tasks of the fault fixture: "sleep MS" holds a worker, "echo N" is quick.
std::string two_worker_fault_pool(TempDir& dir) {
  return dir
      .write("fault2.yaml", "pools:\n  f:\n    plugin: " + quoted(fixture("fx_fault")) +
                                "\n    workers: 2\n    shutdown: {grace: 5s, fini_timeout: 2s}\n")
      .string();
}

// `lines` lines, "sleep MS" where `slow` says so and "echo N" elsewhere (N the seq).
std::string echo_lines(size_t lines, const std::function<std::optional<int>(size_t)>& slow) {
  std::string input;
  for (size_t i = 0; i < lines; ++i) {
    if (const auto ms = slow(i)) input += "sleep " + std::to_string(*ms) + "\n";
    else input += "echo " + std::to_string(i) + "\n";
  }
  return input;
}

struct TimedRun {
  ProcessResult result;
  std::chrono::duration<double> took;
};

TimedRun timed_run(const std::string& config, const std::string& in, bool unordered) {
  std::vector<std::string> args = {"run", config, "--input", in};
  if (unordered) args.push_back("--unordered");
  const auto start = std::chrono::steady_clock::now();
  auto r = shoal_cli(args, "/dev/null");
  return {std::move(r), std::chrono::steady_clock::now() - start};
}

// `lines` lines with the slow ones `slow` names, run on two workers; and the same count of
// echo lines alone, to measure what the quick ones cost on this build.
struct SlowRun {
  std::chrono::duration<double> alone;
  TimedRun mixed;
  std::vector<Row> rows;
};

SlowRun run_with_slow_lines(size_t lines, const std::function<std::optional<int>(size_t)>& slow, bool unordered) {
  TempDir dir;
  const std::string config = two_worker_fault_pool(dir);
  const auto quick = dir.write("quick.txt", echo_lines(lines, [](size_t) { return std::nullopt; }));
  const auto mixed = dir.write("mixed.txt", echo_lines(lines, slow));
  const auto alone = timed_run(config, quick.string(), unordered);
  REQUIRE(alone.result.exit_code == 0);
  auto r = timed_run(config, mixed.string(), unordered);
  INFO(describe(r.result).substr(0, 2000));
  REQUIRE(r.result.exit_code == 0);
  auto rows = run_rows(r.result.out);
  REQUIRE(rows.size() == lines);
  return {alone.took, std::move(r), std::move(rows)};
}

}  // namespace

TEST_CASE("cli: a slow line holds back no other line (--unordered)", "[integration][cli]") {
  // The chunksize trap users leave Python's Pool for: one slow task must not keep the
  // other worker idle, whatever the batches the lines travel in. While "sleep 3000" holds
  // one worker, the other runs all 50,000 echo lines, so each of their rows is written
  // before the slow one's.
  constexpr size_t kLines = 50001;
  const auto [alone, r, rows] =
      run_with_slow_lines(kLines, [](size_t i) { return i == 0 ? std::optional<int>(3000) : std::nullopt; }, true);
  INFO("alone " << alone.count() << " s, with the slow line " << r.took.count() << " s");
  size_t slow_at = rows.size();
  for (size_t k = 0; k < rows.size(); ++k)
    if (rows[k].at("seq").text == "0") slow_at = k;
  CHECK(slow_at == kLines - 1);  // every echo row came first
  // 3 s for the slow line, the echo lines beside it: the two do not add up. Generous for
  // sanitizer builds, where the echo lines alone take seconds.
  CHECK(r.took < std::chrono::duration<double>(3.0) + alone + std::chrono::duration<double>(0.5 * kSlow));
}

TEST_CASE("cli: slow lines 20,000 lines apart run side by side in ordered output", "[integration][cli]") {
  // Ordered output parks the rows after a slow line until it ends, but the lines after it
  // still run: the parked rows are bounded, not the next slow line's start. Four "sleep
  // 1000" at seq 0, 20,000, 40,000 and 60,000 on two workers run two at a time: about
  // 2 s beside the echo lines, not 4 s one after the other (what batches run one after
  // another gave: each slow line held back every line after its batch).
  constexpr size_t kLines = 80000;
  const auto [alone, r, rows] = run_with_slow_lines(
      kLines, [](size_t i) { return i % 20000 == 0 ? std::optional<int>(1000) : std::nullopt; }, false);
  INFO("alone " << alone.count() << " s, with the slow lines " << r.took.count() << " s");
  for (size_t k = 0; k < rows.size(); ++k) {
    INFO("row " << k);
    REQUIRE(rows[k].at("seq").text == std::to_string(k));
    REQUIRE(rows[k].at("output").text == (k % 20000 == 0 ? "slept" : std::to_string(k)));
  }
  // Two rounds of 1 s, and a second of margin either way: the four one after another
  // cross the bound.
  CHECK(r.took < std::chrono::duration<double>(3.0) + alone);
}
