// Issue 13, items 5-9: what a worker can reach (its shared memory, its descriptors, its
// control socket, its stdin) it can spoil for its own tasks only, never for the host or
// the other workers. The fx_hostile fixture does the damage from inside a task.
#include "support/hostile.hpp"
#include "support/subprocess.hpp"
#include "support/test_env.hpp"

#include "ipc/layout.hpp"

#include <shoal/runtime.hpp>

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

using namespace shoal;
using namespace shoal::test;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

// The outcomes that arrived before `deadline`, in submit order; nullopt for the others.
std::vector<std::optional<Outcome>> collect(std::vector<std::future<Outcome>>& futures, Clock::time_point deadline) {
  std::vector<std::optional<Outcome>> out;
  for (auto& f : futures) {
    if (f.wait_until(deadline) == std::future_status::ready) out.emplace_back(f.get());
    else out.emplace_back(std::nullopt);
  }
  return out;
}

// Input i of a run with one hostile task at `bad`: "echo i" everywhere else.
std::vector<std::string> echo_inputs(size_t n, size_t bad, const std::string& hostile) {
  std::vector<std::string> in;
  for (size_t i = 0; i < n; ++i) in.push_back(i == bad ? hostile : "echo " + std::to_string(i));
  return in;
}

// ok with its own output, or crashed (a task of the worker that damaged itself).
void check_echo_or_crashed(const std::vector<std::string>& inputs, size_t i, const Outcome& o, size_t& ok) {
  INFO("task " << i << " (" << inputs[i] << "): " << to_string(o.status) << " '" << o.output << "' " << o.error);
  CHECK((o.status == Status::ok || o.status == Status::crashed));
  if (o.status != Status::ok) return;
  if (inputs[i].rfind("echo ", 0) == 0) CHECK(o.output == inputs[i].substr(5));
  ++ok;
}

}  // namespace

// Item 5: the header every new worker checks must be out of a worker's reach.
TEST_CASE("a flipped byte in the pool header: replacements start, both workers serve on",
          "[integration][hostile][segment]") {
  auto pool = start_pool(hostile_config(2));
  Outcome flip = get(pool->submit("scribble-header"));
  INFO("scribble-header: " << to_string(flip.status) << " " << flip.output << flip.error);
  CHECK(get(pool->submit("segv")).status == Status::crashed);  // forces a new worker
  std::vector<std::future<Outcome>> oks;
  for (int i = 0; i < 20; ++i) oks.push_back(pool->submit("ok"));
  auto got = collect(oks, Clock::now() + 20s * kSlow);
  for (const auto& o : got) {
    REQUIRE(o.has_value());
    CHECK(o->status == Status::ok);
    CHECK(o->output == "ok");
  }
  // Both slots serve again: a slot whose replacements fail to start never answers.
  std::set<std::string> serving;
  auto deadline = Clock::now() + 10s * kSlow;
  while (serving.size() < 2 && Clock::now() < deadline) {
    std::vector<std::future<Outcome>> probe;
    for (int i = 0; i < 4; ++i) probe.push_back(pool->submit("whoami 50"));
    for (auto& o : collect(probe, deadline))
      if (o && o->status == Status::ok) serving.insert(o->output);
  }
  CHECK(serving == std::set<std::string>{"0", "1"});
  CHECK(pool->live_workers() == 2);
  CHECK(get(pool->submit("ok")).status == Status::ok);
  bounded_join(*pool);
}

// Item 6: a corrupt ring costs its worker, never the host's progress.
TEST_CASE("a worker that scribbles over its shared memory: map returns, its tasks crash, the others are ok",
          "[integration][hostile][segment]") {
  const std::string mode = GENERATE(as<std::string>{}, "random", "ones", "cursors");
  INFO("scribble " << mode);
  auto pool = start_pool(hostile_config(2));
  const auto inputs = echo_inputs(200, 50, "scribble " + mode);
  std::vector<Outcome> outcomes;
  returns_within("map", 20s * kSlow, [&] { outcomes = pool->map(inputs); }, [&] { pool->terminate(); });
  REQUIRE(outcomes.size() == inputs.size());
  size_t ok = 0;
  for (size_t i = 0; i < outcomes.size(); ++i) check_echo_or_crashed(inputs, i, outcomes[i], ok);
  CHECK(ok >= 150);
  bounded_join(*pool);
}

TEST_CASE("shoal run with a worker that scribbles over its shared memory: every row, and it exits",
          "[integration][hostile][segment][cli]") {
  const std::string mode = GENERATE(as<std::string>{}, "random", "ones", "cursors");
  INFO("scribble " << mode);
  TempDir dir;
  const auto inputs = echo_inputs(201, 50, "scribble " + mode);
  std::string lines;
  for (const auto& in : inputs) lines += in + "\n";
  auto cfg = dir.write("pools.yaml", hostile_yaml(2));
  auto input = dir.write("in.txt", lines);
  ProcessResult r = run_process({SHOAL_BIN, "run", cfg.string(), "--input", input.string()}, {}, 30s * kSlow);
  INFO(describe(r));
  REQUIRE_FALSE(r.timed_out);
  CHECK((r.exit_code == 0 || r.exit_code == 1));
  auto all = run_rows(r.out);
  REQUIRE(all.size() == inputs.size());
  auto rows = rows_by_seq(all, inputs.size());
  // DESIGN.md rule 10: what a worker writes, only its own tasks depend on. That includes
  // results it published before it scribbled that the host had not read yet: shoal run
  // formats its rows from the ring in place, so such a row may come out ok with whatever
  // the scribble left there. Every other slot's rows must be exact.
  const std::string scribbler = rows[50].at("worker").text;
  size_t ok = 0;
  size_t spoiled = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i != 50 && rows[i].at("worker").text == scribbler && rows[i].at("status").text == "ok" &&
        rows[i].at("output").text != inputs[i].substr(5)) {
      ++spoiled;
      continue;
    }
    Outcome o;
    o.status = rows[i].at("status").text == "ok" ? Status::ok
               : rows[i].at("status").text == "crashed" ? Status::crashed
                                                        : Status::rejected;
    o.output = rows[i].at("output").text;
    o.error = rows[i].at("error").text;
    check_echo_or_crashed(inputs, i, o, ok);
  }
  INFO(spoiled << " rows of the scribbler's slot (" << scribbler << ") spoiled");
  CHECK(ok >= 150);
}

// Item 7: the worker's channels to the host survive a plugin that closes its fds, or
// their loss is the worker's death; never silence.
TEST_CASE("a plugin that closes every descriptor: every outcome arrives, none is a false timeout",
          "[integration][hostile][fds]") {
  const bool with_timeout = GENERATE(false, true);
  INFO((with_timeout ? "task_timeout 2s" : "no task_timeout"));
  PoolConfig c = hostile_config(1);
  if (with_timeout) c.task_timeout = 2s;
  auto pool = start_pool(c);
  std::vector<std::future<Outcome>> futures;
  futures.push_back(pool->submit("close-fds"));
  for (int i = 1; i <= 50; ++i) futures.push_back(pool->submit("echo " + std::to_string(i)));
  auto got = collect(futures, Clock::now() + 20s * kSlow);
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("task " << i);
    CHECK(got[i].has_value());
    if (!got[i]) continue;
    INFO(to_string(got[i]->status) << " '" << got[i]->output << "' " << got[i]->error);
    CHECK(got[i]->status != Status::timeout);
    if (i == 0) {
      CHECK((got[i]->status == Status::ok || got[i]->status == Status::crashed));
    } else {
      CHECK(got[i]->status == Status::ok);
      CHECK(got[i]->output == std::to_string(i));
    }
  }
  bounded_join(*pool);
}

TEST_CASE("a plugin that closes its descriptors and opens files in their place: nothing lands in them",
          "[integration][hostile][fds]") {
  TempDir dir;
  auto pool = start_pool(hostile_config(1));
  std::vector<std::future<Outcome>> futures;
  futures.push_back(pool->submit("close-reopen-fds " + dir.path().string()));
  for (int i = 1; i <= 50; ++i) futures.push_back(pool->submit("echo " + std::to_string(i)));
  auto got = collect(futures, Clock::now() + 20s * kSlow);
  for (size_t i = 1; i < got.size(); ++i) {
    INFO("task " << i);
    CHECK(got[i].has_value());
    if (got[i]) CHECK(got[i]->output == std::to_string(i));
  }
  bounded_join(*pool);
  for (const char* name : {"fd-3", "fd-4", "fd-5"}) {
    INFO(name);
    auto path = dir.path() / name;
    REQUIRE(std::filesystem::exists(path));
    CHECK(std::filesystem::file_size(path) == 0);
  }
}

// Item 8: a worker's stdin is /dev/null, never the host's input.
TEST_CASE("a plugin that reads stdin: it reads nothing, and every input line is a row",
          "[integration][hostile][stdin][cli]") {
  const bool from_stdin = GENERATE(false, true);
  INFO((from_stdin ? "--input -" : "--input FILE, the same file on stdin"));
  TempDir dir;
  std::string lines = "read-stdin\n";
  for (int i = 1; i <= 1000; ++i) lines += "echo " + std::to_string(i) + "\n";
  auto input = dir.write("in.txt", lines);
  auto cfg = dir.write("pools.yaml", hostile_yaml(2));
  ProcessResult r = run_process({SHOAL_BIN, "run", cfg.string(), "--input", from_stdin ? "-" : input.string()},
                                input.string(), 60s * kSlow);
  INFO(describe(r));
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  auto all = run_rows(r.out);
  REQUIRE(all.size() == 1001);
  auto rows = rows_by_seq(all, 1001);
  CHECK(rows[0].at("status").text == "ok");
  CHECK(rows[0].at("output").text == "0");
  for (size_t i = 1; i < rows.size(); ++i) {
    INFO("row " << i);
    CHECK(rows[i].at("output").text == std::to_string(i));
  }
}

// Item 9: what the host buffers of one worker is bounded; a flooding worker is killed.
TEST_CASE("a worker that floods its control socket is killed, and the host's memory stays bounded",
          "[integration][hostile][control]") {
  const std::string payload = GENERATE(as<std::string>{}, "flood-control", "flood-big");
  INFO(payload);
  auto pool = start_pool(hostile_config(1));
  CHECK(get(pool->submit("ok")).status == Status::ok);
  reset_peak_rss();
  const long before = status_kib("VmRSS");
  Outcome o = get(pool->submit(payload), 30s * kSlow);
  const long peak = status_kib("VmHWM");
  INFO(to_string(o.status) << " '" << o.output << "' " << o.error << "; RSS " << before << " KiB, peak " << peak
                           << " KiB");
  CHECK(o.status == Status::crashed);
  CHECK(o.error.find("flooded its control channel") != std::string::npos);
  CHECK(peak - before < (64 << 10));
  Outcome next = get(pool->submit("echo next"));
  CHECK(next.status == Status::ok);
  CHECK(next.output == "next");
  bounded_join(*pool);
}

// Issue 14 item 8: a worker runs foreign code; the host's environment reaches it only by
// name (pool `env`, `env_inherit`) plus the basic variables every program needs.
TEST_CASE("hostile: a host variable the config does not name does not reach the worker",
          "[integration][hostile][secrets]") {
  REQUIRE(::setenv("SHOAL_TEST_HOST_SECRET", "host-only-value", 1) == 0);
  REQUIRE(::setenv("SHOAL_TEST_NAMED", "named-value", 1) == 0);
  auto ask = [](const PoolConfig& config, const std::string& name) {
    auto pool = start_pool(config);
    const Outcome o = get(pool->submit("getenv " + name));
    bounded_join(*pool);
    INFO(name << ": " << o.error);
    CHECK(o.status == Status::ok);
    return o.output;
  };
  PoolConfig config = hostile_config(1);
  CHECK(ask(config, "SHOAL_TEST_HOST_SECRET") == "<unset>");
  CHECK(ask(config, "SHOAL_TEST_NAMED") == "<unset>");
  CHECK(ask(config, "PATH") == std::getenv("PATH"));
  config.env_inherit = {"SHOAL_TEST_NAMED"};
  config.env["SHOAL_TEST_SET"] = "set-value";
  CHECK(ask(config, "SHOAL_TEST_NAMED") == "named-value");
  CHECK(ask(config, "SHOAL_TEST_SET") == "set-value");
  CHECK(ask(config, "SHOAL_TEST_HOST_SECRET") == "<unset>");
  config.env_inherit_all = true;  // the explicit opt-in to everything
  CHECK(ask(config, "SHOAL_TEST_HOST_SECRET") == "host-only-value");
  ::unsetenv("SHOAL_TEST_HOST_SECRET");
  ::unsetenv("SHOAL_TEST_NAMED");
}

// Issue 14, item 5: what a plugin can reach. The README's "What a plugin can reach" names
// these tests.
namespace {

// The field of /proc/PID/status, "" when the process is gone.
std::string proc_status(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) {
      auto v = line.substr(field.size() + 1);
      return v.substr(v.find_first_not_of(" \t"));
    }
  return {};
}

// "fd:R getfd:R vm:R ptrace:R": every R must be a refusal, none "ok".
void check_all_refused(const Outcome& o) {
  INFO(to_string(o.status) << " '" << o.output << "' " << o.error);
  REQUIRE(o.status == Status::ok);
  for (const char* way : {"fd:", "getfd:", "vm:", "ptrace:"}) {
    INFO(way);
    auto at = o.output.find(way);
    REQUIRE(at != std::string::npos);
    CHECK(o.output.substr(at + std::strlen(way), 2) != "ok");
  }
}

}  // namespace

TEST_CASE("a plugin cannot reach its host: /proc/HOST/fd, pidfd_getfd, process_vm_readv and ptrace are refused",
          "[integration][hostile][reach]") {
  auto pool = start_pool(hostile_config(1));
  // The host is not dumpable while it runs pools (RuntimeOptions::keep_host_dumpable).
  CHECK(::prctl(PR_GET_DUMPABLE) == 0);
  check_all_refused(get(pool->submit("reach-host")));
  bounded_join(*pool);
}

TEST_CASE("a plugin cannot reach its sibling workers' descriptors or memory", "[integration][hostile][reach]") {
  auto pool = start_pool(hostile_config(2));
  const auto pids = pool->worker_pids();
  REQUIRE(pids.size() == 2);
  // Tasks naming both workers' pids: a task that lands in the worker it names answers
  // "self"; the others attack the sibling.
  std::vector<std::string> inputs;
  for (int i = 0; i < 8; ++i) inputs.push_back("reach-pid " + std::to_string(pids[static_cast<size_t>(i % 2)]));
  size_t attacked = 0;
  for (const Outcome& o : pool->map(inputs)) {
    if (o.output == "self") continue;
    ++attacked;
    check_all_refused(o);
  }
  CHECK(attacked > 0);
  bounded_join(*pool);
}

TEST_CASE("a plugin reaches no shared memory but its own worker's block and rings", "[integration][hostile][reach]") {
  PoolConfig c = hostile_config(3);
  c.queue_capacity = 64 << 10;
  auto pool = start_pool(c);
  const detail::SegmentLayout own{detail::SegmentLayout::round_capacity(c.queue_capacity)};
  Outcome o = get(pool->submit("reach-memfd"));
  INFO(to_string(o.status) << " '" << o.output << "' " << o.error << "; own segment " << own.total() << " bytes");
  REQUIRE(o.status == Status::ok);
  REQUIRE(o.output.rfind("memfd ", 0) == 0);
  const uint64_t largest = std::stoull(o.output.substr(6));
  CHECK(largest <= own.total());
  bounded_join(*pool);
}

TEST_CASE("each worker's memfd is mode 0600, one per worker", "[integration][hostile][reach]") {
  auto pool = start_pool(hostile_config(3));
  size_t memfds = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(entry.path(), ec).string();
    if (ec || target.rfind("/memfd:shoal-worker", 0) != 0) continue;
    struct stat st {};
    REQUIRE(::stat(entry.path().c_str(), &st) == 0);
    INFO(target << " mode " << std::oct << (st.st_mode & 07777));
    CHECK((st.st_mode & 07777) == 0600);
    ++memfds;
  }
  CHECK(memfds == 3);
  bounded_join(*pool);
}

// Item 6: the worker's stop signals stay the worker's; what a plugin starts gets an empty
// mask and default dispositions, so kill -TERM ends it.
TEST_CASE("what a plugin starts has no signal blocked or ignored, and kill -TERM ends it",
          "[integration][hostile][signals]") {
  const std::string how = GENERATE(as<std::string>{}, "posix_spawn", "fork-exec");
  INFO(how);
  auto pool = start_pool(hostile_config(1));
  Outcome spawned = get(pool->submit("spawn " + how));
  INFO(to_string(spawned.status) << " '" << spawned.output << "' " << spawned.error);
  REQUIRE(spawned.status == Status::ok);
  const int pid = std::stoi(spawned.output);
  // Past its exec: before it, a forked child still runs the worker's code.
  const auto deadline = std::chrono::steady_clock::now() + 10s * kSlow;
  while (proc_status(pid, "Name") != "sleep" && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  REQUIRE(proc_status(pid, "Name") == "sleep");
  CHECK(proc_status(pid, "SigBlk") == "0000000000000000");
  // Signals 1-31 only: glibc's posix_spawn leaves its two internal signals (32, 33)
  // ignored in a child of a process that handles them; nothing else uses them.
  const uint64_t ignored = std::stoull(proc_status(pid, "SigIgn"), nullptr, 16);
  INFO("SigIgn " << proc_status(pid, "SigIgn"));
  CHECK((ignored & 0x7fffffffu) == 0);
  REQUIRE(::kill(pid, SIGTERM) == 0);
  Outcome reaped = get(pool->submit("reap " + std::to_string(pid)));
  INFO("reap: " << to_string(reaped.status) << " '" << reaped.output << "' " << reaped.error);
  CHECK(reaped.output == "signal 15");
  if (reaped.output == "running") {  // leave nothing behind
    ::kill(pid, SIGKILL);
    get(pool->submit("reap " + std::to_string(pid)));
  }
  bounded_join(*pool);
}

// Item 5 (c): the optional sandbox. Landlock limits what a worker opens to what the
// config lists (plus libraries, the plugin, /dev/null and its own /proc/PID); seccomp
// refuses the calls that reach another process, even one the worker started itself.
namespace {

bool landlock_available() {
  long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, 1U /* LANDLOCK_CREATE_RULESET_VERSION */);
  return abi >= 1;
}

}  // namespace

TEST_CASE("a sandboxed plugin opens only the files its config allows", "[integration][hostile][sandbox]") {
  if (!landlock_available()) {
    WARN("this kernel has no Landlock: the sandbox cannot start, nothing to test");
    return;
  }
  TempDir dir;
  const auto secret = dir.write("secret.txt", "not for plugins");
  std::filesystem::create_directories(dir.path() / "in");
  std::filesystem::create_directories(dir.path() / "out");
  const auto input = dir.write("in/data.txt", "for the plugin");

  // Unsandboxed, the same plugin reads the file: the refusal below is the sandbox's.
  {
    auto pool = start_pool(hostile_config(1));
    Outcome o = get(pool->submit("open " + secret.string()));
    INFO(to_string(o.status) << " '" << o.output << "' " << o.error);
    CHECK(o.status == Status::ok);
    CHECK(o.output == "opened");
    bounded_join(*pool);
  }
  PoolConfig c = hostile_config(1);
  c.sandbox.enabled = true;
  c.sandbox.filesystem = {{dir.path() / "in", false}, {dir.path() / "out", true}};
  auto pool = start_pool(c);
  auto run = [&](const std::string& payload) {
    Outcome o = get(pool->submit(payload));
    UNSCOPED_INFO(payload << ": " << to_string(o.status) << " '" << o.output << "' " << o.error);
    return o;
  };
  Outcome denied = run("open " + secret.string());
  CHECK(denied.status == Status::error);
  CHECK(denied.error.find("EACCES") != std::string::npos);
  Outcome allowed = run("open " + input.string());
  CHECK(allowed.status == Status::ok);
  CHECK(allowed.output == "opened");
  Outcome read_only = run("create " + (dir.path() / "in" / "new.txt").string());
  CHECK(read_only.status == Status::error);
  CHECK(read_only.error.find("EACCES") != std::string::npos);
  Outcome writable = run("create " + (dir.path() / "out" / "new.txt").string());
  CHECK(writable.status == Status::ok);
  CHECK(writable.output == "created");
  CHECK(std::filesystem::exists(dir.path() / "out" / "new.txt"));
  CHECK(run("open /dev/null").output == "opened");
  CHECK(run("open /proc/self/status").output == "opened");
  bounded_join(*pool);
}

TEST_CASE("a sandboxed plugin cannot ptrace or read even a process it started itself",
          "[integration][hostile][sandbox]") {
  if (!landlock_available()) {
    WARN("this kernel has no Landlock: the sandbox cannot start, nothing to test");
    return;
  }
  const bool sandboxed = GENERATE(false, true);
  INFO((sandboxed ? "sandboxed" : "not sandboxed"));
  PoolConfig c = hostile_config(1);
  c.sandbox.enabled = sandboxed;
  c.sandbox.filesystem = {{"/usr/bin", false}};  // to run /bin/sleep ("read" includes execute)
  auto pool = start_pool(c);
  Outcome spawned = get(pool->submit("spawn posix_spawn"));
  INFO("spawn: " << to_string(spawned.status) << " '" << spawned.output << "' " << spawned.error);
  REQUIRE(spawned.status == Status::ok);
  const int child = std::stoi(spawned.output);
  Outcome o = get(pool->submit("reach-pid " + spawned.output));
  INFO(to_string(o.status) << " '" << o.output << "' " << o.error);
  REQUIRE(o.status == Status::ok);
  if (sandboxed) {
    check_all_refused(o);
  } else {
    CHECK(o.output.find("ptrace:ok") != std::string::npos);  // the refusal above is the sandbox's
  }
  ::kill(child, SIGKILL);
  CHECK(get(pool->submit("reap " + spawned.output)).output == "signal 9");
  bounded_join(*pool);
}
