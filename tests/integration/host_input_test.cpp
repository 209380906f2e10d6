// What `shoal run` is pointed at must not be damaged or hang it: a --stats path that is a
// device, a FIFO or a link; a config or --input that is a FIFO nobody writes to (Ctrl-C
// must still work) or an endless file (/dev/zero); a line longer than a ring; and option
// values that hold control characters. The built binary, as a user runs it (as root here,
// which is what makes the --stats cases matter).
#include "fixture_paths.hpp"
#include "support/json_rows.hpp"
#include "support/redis_fleet.hpp"  // bounded(), eventually()
#include "support/run_rows.hpp"
#include "support/subprocess.hpp"
#include "support/test_env.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using namespace shoal::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string echo_config(const TempDir& dir, const std::string& extra = {}) {
  return dir
      .write("echo.yaml", "pools:\n  echo:\n    plugin: \"" + std::string(SHOAL_PLUGIN_ECHO) +
                              "\"\n    workers: 1\n    shutdown: {grace: 2s, fini_timeout: 2s}\n" + extra)
      .string();
}

ProcessResult shoal_run(std::vector<std::string> args, std::vector<std::pair<std::string, std::string>> env = {}) {
  args.insert(args.begin(), SHOAL_BIN);
  ProcessOptions opts;
  opts.timeout = bounded(30s);
  opts.env = std::move(env);
  auto r = run_process(args, opts);
  INFO(describe(r));
  REQUIRE(r.spawn_error.empty());
  REQUIRE_FALSE(r.timed_out);
  return r;
}

// A usage error: exit 2, no rows, one line on stderr; returns that line.
std::string one_line_error(const ProcessResult& r) {
  INFO(describe(r));
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
  const auto lines = lines_of(r.err);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].rfind("shoal: ", 0) == 0);
  return lines[0];
}

// The syscall a process is blocked in (the first field of /proc/PID/syscall), or -2.
long blocked_syscall(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/syscall");
  long nr = -2;
  return in >> nr ? nr : -2;
}

// A child that is reading nothing but needs a memory cap: without it, an unbounded
// buffer would take the machine's memory before failing. Not under sanitizers, whose
// shadow memory needs terabytes of address space.
std::vector<std::string> capped(std::vector<std::string> argv) {
  if (kSanitized) return argv;
  argv.insert(argv.begin(), {"/usr/bin/prlimit", "--as=4000000000", "--"});
  return argv;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// --stats

TEST_CASE("input: --stats into a device, a FIFO or a link to one writes in place and replaces nothing",
          "[integration][cli][input]") {
  TempDir dir;
  const std::string config = echo_config(dir);
  const auto in = dir.write("in.txt", "a\nb\n");

  SECTION("a character device (a copy of /dev/null) stays that device") {
    const auto dev = dir.path() / "null";
    if (::mknod(dev.c_str(), S_IFCHR | 0666, ::makedev(1, 3)) != 0) {
      WARN("mknod needs root (" << std::strerror(errno) << "): the character device case is not run");
      return;
    }
    const auto link = dir.path() / "null-link";
    fs::create_symlink(dev, link);
    for (const auto& target : {dev, link}) {
      auto r = shoal_run({"run", config, "--input", in.string(), "--stats", target.string()});
      CHECK(r.exit_code == 0);
      struct stat st {};
      REQUIRE(::stat(dev.c_str(), &st) == 0);
      CHECK(S_ISCHR(st.st_mode));
      CHECK(st.st_rdev == ::makedev(1, 3));
      CHECK(fs::is_symlink(link));
      // Nothing was left beside it either.
      size_t entries = 0;
      for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++entries;
      CHECK(entries == 4);  // echo.yaml, in.txt, null, null-link
    }
  }

  SECTION("a FIFO with a reader gets the documents and stays a FIFO") {
    const auto fifo = dir.path() / "stats.fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    // The reader holds the FIFO open for reading and writing, so it never sees EOF
    // between documents and the host never meets a FIFO without a reader.
    const int rd = ::open(fifo.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    REQUIRE(rd >= 0);
    auto r = shoal_run({"run", config, "--input", in.string(), "--stats", fifo.string()});
    CHECK(r.exit_code == 0);
    std::string got;
    char buf[4096];
    for (ssize_t n; (n = ::read(rd, buf, sizeof buf)) > 0;) got.append(buf, static_cast<size_t>(n));
    ::close(rd);
    const auto docs = lines_of(got);
    REQUIRE(docs.size() >= 2);  // the first write, and the final one
    CHECK(nlohmann::json::parse(docs.back())["final"] == true);
    struct stat st {};
    REQUIRE(::lstat(fifo.c_str(), &st) == 0);
    CHECK(S_ISFIFO(st.st_mode));
  }
}

TEST_CASE("input: --stats never follows a link planted at a temporary name", "[integration][cli][input]") {
  TempDir dir;
  const std::string config = echo_config(dir);
  const auto in = dir.write("in.txt", "a\n");
  const auto victim = dir.write("victim", "precious\n");
  const auto stats = dir.path() / "stats.json";
  // Where the old code wrote its temporary file, with O_TRUNC, following links.
  fs::create_symlink(victim, dir.path() / "stats.json.tmp");
  auto r = shoal_run({"run", config, "--input", in.string(), "--stats", stats.string()});
  CHECK(r.exit_code == 0);
  CHECK(read_file(victim) == "precious\n");
  CHECK(fs::is_symlink(dir.path() / "stats.json.tmp"));
  CHECK(fs::is_regular_file(fs::symlink_status(stats)));
  CHECK(nlohmann::json::parse(read_file(stats))["final"] == true);
}

TEST_CASE("input: --stats through a link to a regular file is refused, the file left alone",
          "[integration][cli][input]") {
  TempDir dir;
  const std::string config = echo_config(dir);
  const auto in = dir.write("in.txt", "a\n");
  const auto target = dir.write("log.txt", "a log line\n");
  const auto link = dir.path() / "stats.json";
  fs::create_symlink(target, link);
  const std::string line = one_line_error(shoal_run({"run", config, "--input", in.string(), "--stats", link.string()}));
  CHECK(line == "shoal: cannot write --stats " + link.string() +
                    ": a symbolic link to a regular file (give the file's own path)");
  CHECK(read_file(target) == "a log line\n");
  CHECK(fs::is_symlink(link));
}

TEST_CASE("input: a --stats file is replaced whole: a reader never sees part of one", "[integration][cli][input]") {
  TempDir dir;
  const std::string config =
      dir.write("fault.yaml", "pools:\n  fault:\n    plugin: \"" + fixture("fx_fault") +
                                  "\"\n    workers: 2\n    shutdown: {grace: 2s, fini_timeout: 2s}\n")
          .string();
  std::string input;
  for (int i = 0; i < 40; ++i) input += "sleep 30\n";
  const auto in = dir.write("in.txt", input);
  const auto stats = dir.path() / "stats.json";
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, partial{0};
  std::thread reader([&] {
    while (!done.load()) {
      const std::string text = read_file(stats);
      if (text.empty()) continue;  // not written yet
      ++reads;
      if (text.back() != '\n' || !nlohmann::json::accept(text)) ++partial;
    }
  });
  auto r = shoal_run({"run", config, "--input", in.string(), "--stats", stats.string(), "--stats-interval", "0.05"});
  done = true;
  reader.join();
  CHECK(r.exit_code == 0);
  CHECK(reads.load() > 10);
  CHECK(partial.load() == 0);
  // No temporary file is left behind.
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++entries;
  CHECK(entries == 3);  // fault.yaml, in.txt, stats.json
}

// ---------------------------------------------------------------------------------------
// Stop signals while opening

TEST_CASE("input: Ctrl-C and SIGTERM work while a config or --input FIFO has no writer", "[integration][cli][input]") {
  TempDir dir;
  const std::string config = echo_config(dir);
  const auto fifo = dir.path() / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const auto out = dir.path() / "out", err = dir.path() / "err";

  const auto stops_on = [&](std::vector<std::string> argv, int sig) {
    argv.insert(argv.begin(), SHOAL_BIN);
    Background run(argv, "/dev/null", out, err);
    REQUIRE(run.started());
    // Blocked in openat(2) on the FIFO, or already past it waiting for input: either way
    // the process has settled into waiting before the signal comes.
    CHECK(eventually(
        [&] {
          const long nr = blocked_syscall(run.pid());
          return nr == 257 /* openat */ || nr == 7 /* poll */ || nr == 271 /* ppoll */ || nr == 202 /* futex */;
        },
        10s));
    std::this_thread::sleep_for(100ms);  // settle: the point is a signal *while* it waits
    const auto sent = std::chrono::steady_clock::now();
    run.signal(sig);
    int code = -1;
    INFO("stderr: " << read_file(err));
    REQUIRE(run.wait(bounded(5s), code));
    CHECK(code == 128 + sig);
    CHECK(std::chrono::steady_clock::now() - sent < bounded(5s));
  };
  SECTION("config is the FIFO, SIGINT") { stops_on({"run", fifo.string()}, SIGINT); }
  SECTION("config is the FIFO, SIGTERM") { stops_on({"run", fifo.string()}, SIGTERM); }
  SECTION("--input is the FIFO, SIGINT") { stops_on({"run", config, "--input", fifo.string()}, SIGINT); }
  SECTION("--input is the FIFO, SIGTERM") { stops_on({"run", config, "--input", fifo.string()}, SIGTERM); }
  // serve and submit open their config and input the same way; nothing listens on port 1.
  SECTION("serve: config is the FIFO, SIGTERM") {
    stops_on({"serve", fifo.string(), "--redis", "redis://127.0.0.1:1"}, SIGTERM);
  }
  SECTION("submit: --input is the FIFO, SIGINT") {
    stops_on({"submit", "--redis", "redis://127.0.0.1:1", "--input", fifo.string()}, SIGINT);
  }
  SECTION("--output is the FIFO, SIGTERM") {
    const auto in = dir.write("in.txt", "a\n");
    stops_on({"run", config, "--input", in.string(), "--output", fifo.string()}, SIGTERM);
  }
}

// ---------------------------------------------------------------------------------------
// Unbounded reads

TEST_CASE("input: /dev/zero as a config is refused at the config size limit", "[integration][cli][input]") {
  ProcessOptions opts;
  opts.timeout = bounded(30s);
  auto r = run_process(capped({SHOAL_BIN, "run", "/dev/zero"}), opts);
  CHECK(one_line_error(r) == "shoal: /dev/zero: cannot read: larger than 16 MiB, the most a config file may hold");
}

TEST_CASE("input: a line longer than a ring is rejected without being held, the next lines run",
          "[integration][cli][input]") {
  TempDir dir;
  // 4 KiB rings: the largest input is a little under 4096 bytes.
  const std::string config = echo_config(dir, "    queue: {capacity: 4KiB}\n");
  const auto in = dir.write("in.txt", std::string(100000, 'x') + "\na\n" + std::string(5000, 'y') + "\nb\n");
  auto r = shoal_run({"run", config, "--input", in.string()});
  CHECK(r.exit_code == 1);
  const auto rows = run_rows(r.out);
  REQUIRE(rows.size() == 4);
  const std::string limit = "exceeds the task ring limit of ";
  CHECK(rows[0].at("status").text == "rejected");
  CHECK(rows[0].at("error").text.rfind("input of 100000 bytes " + limit, 0) == 0);
  CHECK(rows[0].at("error").text.find("(raise pools.echo.queue.capacity)") != std::string::npos);
  CHECK(rows[0].at("attempts").text == "0");
  CHECK(rows[1].at("status").text == "ok");
  CHECK(rows[1].at("output").text == "a");
  CHECK(rows[2].at("status").text == "rejected");
  CHECK(rows[2].at("error").text.rfind("input of 5000 bytes " + limit, 0) == 0);
  CHECK(rows[3].at("output").text == "b");
}

TEST_CASE("input: --input /dev/zero stays small and stops on SIGTERM", "[integration][cli][input]") {
  TempDir dir;
  const std::string config = echo_config(dir, "    queue: {capacity: 64KiB}\n");
  const auto out = dir.path() / "out", err = dir.path() / "err";
  Background run(capped({SHOAL_BIN, "run", config, "--input", "/dev/zero"}), "/dev/null", out, err);
  REQUIRE(run.started());
  // Reading zeros at full speed for two seconds: the old reader held the whole "line"
  // (gigabytes, then bad_alloc and abort); the host must hold about one ring's worth.
  const long peak = peak_rss_kib(run.pid(), 2s);
  INFO("stderr: " << read_file(err));
  CHECK(peak > 0);
  CHECK(peak < 200 * 1024);
  run.signal(SIGTERM);
  int code = -1;
  REQUIRE(run.wait(bounded(5s), code));
  CHECK(code == 128 + SIGTERM);
  CHECK(read_file(out).empty());  // the endless line never ended: no task, no row
}

// ---------------------------------------------------------------------------------------
// Small points: every value echoed on one line, escaped; every setting checked

TEST_CASE("input: bad SHOAL_LOG and SHOAL_LOG_FORMAT are errors like the flags", "[integration][cli][input]") {
  TempDir dir;
  const std::string config = echo_config(dir);
  CHECK(one_line_error(shoal_run({"run", config}, {{"SHOAL_LOG", "garbage"}})) ==
        "shoal: SHOAL_LOG: unknown value 'garbage' (debug, info, warn or error)");
  CHECK(one_line_error(shoal_run({"run", config}, {{"SHOAL_LOG_FORMAT", "xml"}})) ==
        "shoal: SHOAL_LOG_FORMAT: unknown value 'xml' (text or json)");
  // A flag overrides the variable, so a bad variable under a good flag is no error.
  CHECK(shoal_run({"--log-level", "warn", "run", config}, {{"SHOAL_LOG", "garbage"}}).exit_code == 0);
}

TEST_CASE("input: --stats-interval takes a duration or decimal seconds and nothing strtod would",
          "[integration][cli][input]") {
  TempDir dir;
  const std::string config = echo_config(dir);
  for (const std::string bad : {"0x10", "1e1", "inf", "nan", " 5", "5 s", "0.01"})
    CHECK(one_line_error(shoal_run({"run", config, "--stats-interval", bad})) ==
          "shoal: run: --stats-interval takes a duration from 50ms to 24h such as 500ms, 2s or 1m (a plain number "
          "is seconds), not '" + bad + "'");
  for (const std::string good : {"0.5", "5s"})
    CHECK(shoal_run({"run", config, "--stats-interval", good, "--stats", (dir.path() / "s.json").string()})
              .exit_code == 0);
}

TEST_CASE("input: control characters in option values are escaped, one line each", "[integration][cli][input]") {
  TempDir dir;
  const std::string config = echo_config(dir);
  CHECK(one_line_error(shoal_run({"--log-level", "warn\nerror", "run", config})) ==
        "shoal: option '--log-level': unknown value 'warn\\nerror' (debug, info, warn or error)");
  CHECK(one_line_error(shoal_run({"run", config, "--pool", "\x1b[31mred"})) ==
        "shoal: no pool named '\\x1b[31mred' in " + config + " (pools: echo)");
  CHECK(one_line_error(shoal_run({"run", config, "--bogus\x1b[2J"})) ==
        "shoal: run: unknown option '--bogus\\x1b[2J' (see 'shoal run --help')");
  CHECK(one_line_error(shoal_run({"run", config, "extra\rarg"})) == "shoal: run: unexpected argument 'extra\\x0darg'");
}
