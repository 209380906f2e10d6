// Issue 13, "cleanup always runs" and "nothing hangs" (items 1-4 and 12): host death at
// every phase of a worker, `_exit` mid-task, start failures with siblings still in init,
// a crash right before close, a pool that fails while tasks are queued, SIGTERM during
// start. Each test reads the lifecycle fixtures' event log (support/lifecycle_events.hpp).
#include "support/hostile.hpp"
#include "support/lifecycle_events.hpp"
#include "support/subprocess.hpp"
#include "support/test_env.hpp"

#include <shoal/runtime.hpp>

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <string>
#include <vector>

using namespace shoal;
using namespace shoal::test;
using namespace std::chrono_literals;

namespace {

bool both_last(const Events& e, const std::string& event) {
  if (e.size() != 2) return false;
  for (const auto& [pid, events] : e)
    if (events.empty() || events.back() != event) return false;
  return true;
}

bool every_chain_ended(const Events& e) {
  for (const auto& [pid, events] : e)
    if (events.empty() || events.back() != "close cache") return false;
  return !e.empty();
}

// Runs `shoal run` on the lifecycle pool with `lines` copies of `line`, SIGKILLs the host
// once `ready(events)` holds, and returns the events once every worker ended its chain
// (or 5 s × kSlow passed).
template <class Ready>
Events kill_host_when(const TempDir& dir, const PoolConfig& c, const std::string& line, Ready ready) {
  auto log = std::filesystem::path(c.params.at("log"));
  auto cfg = dir.write("pools.yaml", yaml_for(c));
  std::string lines;
  for (int i = 0; i < 8; ++i) lines += line + "\n";
  auto input = dir.write("in.txt", lines);
  Background host({SHOAL_BIN, "run", cfg.string(), "--input", input.string()}, input, dir.path() / "out.jsonl",
                  dir.path() / "err.txt");
  REQUIRE(host.started());
  Events before = wait_events(log, 10s * kSlow, ready);
  INFO("err: " << read_file(dir.path() / "err.txt"));
  REQUIRE(ready(before));
  host.signal(SIGKILL);
  int code = 0;
  REQUIRE(host.wait(5s, code));
  CHECK(code == 128 + SIGKILL);
  return wait_events(log, 5s * kSlow, every_chain_ended);
}

// What every worker opened it closed, and a plugin that finished init ran its fini.
void check_opened_closed(const Events& ev, const std::vector<int>& skip = {}) {
  for (const auto& [pid, events] : ev) {
    if (std::find(skip.begin(), skip.end(), pid) != skip.end()) continue;
    INFO("pid " << pid << ": " << Catch::Detail::stringify(events));
    if (logged(events, "open db")) CHECK(logged(events, "close db"));
    if (logged(events, "open cache")) CHECK(logged(events, "close cache"));
    if (logged(events, "init")) CHECK(logged(events, "fini"));
  }
}

bool any_logged(const Events& ev, const std::string& event) {
  for (const auto& [pid, events] : ev)
    if (logged(events, event)) return true;
  return false;
}

}  // namespace

// Item 1: the "ready" written after the host died must not end the worker (SIGPIPE).
TEST_CASE("host kill -9 while workers are in init: init finishes, then every chain runs",
          "[integration][hostile][host]") {
  TempDir dir;
  PoolConfig c = lifecycle_config(dir.path() / "events.log", 2);
  c.params["init_sleep_ms"] = "1500";
  // A stop that finds init running may wait up to grace for it; 3 s lets the 1.5 s init
  // finish, so the whole chain (fini, the finalizers init adds) has something to run.
  c.grace = 3s;
  // Killed once both are inside init: between the last open and init the plugin is still
  // loading, and a stop seen then rightly skips init (slow under a sanitizer).
  c.params["init_started_dir"] = dir.path().string();
  const auto in_init = [&] {
    size_t n = 0;
    for (const auto& f : std::filesystem::directory_iterator(dir.path()))
      n += f.path().filename().string().starts_with("init-started.") ? 1u : 0u;
    return n;
  };
  Events ev = kill_host_when(dir, c, "echo a", [&](const Events& e) { return both_last(e, "open cache") && in_init() == 2; });
  REQUIRE(ev.size() == 2);
  for (const auto& [pid, events] : ev) CHECK(events == full_life());
  CHECK(all_gone(pids_of(ev), 2000ms * kSlow));
}

// Item 1: the "task abandoned" note written after the host died must not end the worker.
TEST_CASE("host kill -9 while workers run a long task that ignores stop: every chain runs",
          "[integration][hostile][host]") {
  TempDir dir;
  PoolConfig c = lifecycle_config(dir.path() / "events.log", 2);
  Events ev = kill_host_when(dir, c, "busy 3000", [](const Events& e) { return both_last(e, "busy"); });
  REQUIRE(ev.size() == 2);
  for (const auto& [pid, events] : ev) CHECK(events == life_with({"busy"}));
  CHECK(all_gone(pids_of(ev), 2000ms * kSlow));
}

// Item 1: a task that never returns; the chain runs on the control thread.
TEST_CASE("host kill -9 while tasks hang: every chain runs", "[integration][hostile][host]") {
  TempDir dir;
  PoolConfig c = lifecycle_config(dir.path() / "events.log", 2);
  Events ev = kill_host_when(dir, c, "hang", [](const Events& e) { return both_last(e, "hang"); });
  REQUIRE(ev.size() == 2);
  for (const auto& [pid, events] : ev) CHECK(events == life_with({"hang"}));
  CHECK(all_gone(pids_of(ev), 2000ms * kSlow));
}

// Item 2 (`_exit` in a task) is a case of lifecycle_test's "SIGKILL or _exit(N) of a worker".

// Item 3: a sibling still in init is stopped through its chain, not SIGKILLed.
TEST_CASE("a start that fails while a sibling is in init: the sibling closes what it opened",
          "[integration][hostile][start]") {
  TempDir dir;
  auto log = dir.path() / "events.log";
  PoolConfig c = lifecycle_config(log, 2);
  c.params["fail_init_index"] = "1";
  c.params["fail_init_after"] = "open cache";  // worker 0 has opened both resources
  c.params["init_sleep_ms"] = "2000";
  auto t0 = std::chrono::steady_clock::now();
  auto pool = Pool::start(c);
  CHECK(std::chrono::steady_clock::now() - t0 < 10s * kSlow);
  REQUIRE_FALSE(pool.ok());
  INFO(pool.error().message);
  CHECK(pool.error().message.find("init refused: worker 1 (worker 1)") != std::string::npos);
  CHECK((::waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD));
  Events ev = read_events(log);
  REQUIRE(ev.size() == 2);
  int sleeper = 0;
  for (const auto& [pid, events] : ev)
    if (!logged(events, "init-refused") && logged(events, "open cache")) sleeper = pid;
  REQUIRE(sleeper != 0);  // worker 0 got as far as its init
  check_opened_closed(ev);
  CHECK(all_gone(pids_of(ev), 2000ms * kSlow));
}

// Item 3: the replacement of a SIGKILLed worker is still starting when the pool stops;
// the recover hooks must run somewhere all the same.
TEST_CASE("a crash right before close: the recover hooks run, every open is closed", "[integration][hostile][recover]") {
  const bool terminate = GENERATE(false, true);
  INFO((terminate ? "terminate" : "close + join"));
  TempDir dir;
  auto log = dir.path() / "events.log";
  auto pool = start_pool(lifecycle_config(log, 1));
  int first = pool->worker_pids().at(0);
  Outcome o = get(pool->submit("kill9"));
  CHECK(o.status == Status::crashed);
  if (terminate) pool->terminate();
  else pool->close();
  returns_within("join", 10s * kSlow, [&] { pool->join(); });
  Events ev = read_events(log);
  CHECK(any_logged(ev, "recover db worker=0 cause=signal 9 (SIGKILL)"));
  CHECK(any_logged(ev, "recover cache worker=0 cause=signal 9 (SIGKILL)"));
  CHECK(any_logged(ev, "recover plugin worker=0 cause=signal 9 (SIGKILL)"));
  check_opened_closed(ev, {first});
  CHECK(all_gone(pids_of(ev), 2000ms * kSlow));
}

// Item 4: the tasks queued on the healthy worker when the pool fails get their outcome,
// and `shoal run` exits.
TEST_CASE("a pool that fails while tasks are queued: shoal run writes every row and exits 1",
          "[integration][hostile][crashloop]") {
  TempDir dir;
  auto log = dir.path() / "events.log";
  auto flag = dir.path() / "database-down";
  PoolConfig c = lifecycle_config(log, 2);
  c.resources.clear();
  c.params["fail_init_if"] = flag.string();
  auto cfg = dir.write("pools.yaml", yaml_for(c));
  // The worker that runs "kill9-after" has served a task or waits for the other's: either
  // way it dies once the flag exists, and every replacement's init is refused.
  std::string lines = "touch " + flag.string() + "\nkill9-after " + flag.string() + "\n";
  // 9 s of work on one worker (more where starts are slower): the five failed starts
  // and their back-off (3.75 s) end first, with tasks still queued.
  for (int i = 0; i < 30; ++i) lines += "sleep " + std::to_string(300 * kSlow) + "\n";
  auto input = dir.write("in.txt", lines);
  auto t0 = std::chrono::steady_clock::now();
  ProcessOptions opts;
  opts.stdin_file = input.string();
  opts.timeout = 20s * kSlow;
  opts.env = {{"SHOAL_LOG", "warn"}};
  ProcessResult r = run_process({SHOAL_BIN, "run", cfg.string()}, opts);
  INFO(describe(r));
  REQUIRE_FALSE(r.timed_out);
  CHECK(std::chrono::steady_clock::now() - t0 < 20s * kSlow);
  CHECK(r.exit_code == 1);
  auto all = run_rows(r.out);
  REQUIRE(all.size() == 32);
  auto rows = rows_by_seq(all, 32);
  CHECK(rows[0].at("status").text == "ok");
  CHECK(rows[1].at("status").text == "crashed");
  int failed_pool_rows = 0;
  for (size_t i = 2; i < rows.size(); ++i) {
    const std::string status = rows[i].at("status").text;
    INFO("row " << i << ": " << status << " " << rows[i].at("error").text);
    if (status == "ok") continue;
    CHECK((status == "rejected" || status == "cancelled"));
    CHECK(rows[i].at("error").text.find("init refused") != std::string::npos);
    CHECK(rows[i].at("reason").text == "pool_failed");
    ++failed_pool_rows;
  }
  CHECK(failed_pool_rows > 0);  // the pool failed while tasks remained
  CHECK(all_gone(pids_of(read_events(log)), 2000ms * kSlow));
}

// Item 12: a stop during a long init is bounded by grace and fini_timeout, and what the
// worker opened is closed.
TEST_CASE("host SIGTERM while workers are in a long init: exits within its timeouts, resources closed",
          "[integration][hostile][host]") {
  TempDir dir;
  auto log = dir.path() / "events.log";
  PoolConfig c = lifecycle_config(log, 2);
  c.params["init_sleep_ms"] = "10000";
  c.grace = 1s;
  c.fini_timeout = 1s;
  auto cfg = dir.write("pools.yaml", yaml_for(c));
  auto input = dir.write("in.txt", "echo a\necho b\n");
  Background host({SHOAL_BIN, "run", cfg.string(), "--input", input.string()}, input, dir.path() / "out.jsonl",
                  dir.path() / "err.txt");
  REQUIRE(host.started());
  REQUIRE(both_last(wait_events(log, 10s * kSlow, [](const Events& e) { return both_last(e, "open cache"); }),
                    "open cache"));
  auto t0 = std::chrono::steady_clock::now();
  host.signal(SIGTERM);
  int code = -1;
  bool exited = host.wait(4s * kSlow, code);
  INFO("err: " << read_file(dir.path() / "err.txt"));
  CHECK(exited);
  CHECK(std::chrono::steady_clock::now() - t0 < 4s * kSlow);
  CHECK(code == 128 + SIGTERM);
  Events ev = wait_events(log, 2s * kSlow, every_chain_ended);
  REQUIRE(ev.size() == 2);
  for (const auto& [pid, events] : ev) {
    INFO("pid " << pid << ": " << Catch::Detail::stringify(events));
    CHECK(logged(events, "close db"));
    CHECK(logged(events, "close cache"));
  }
  CHECK(all_gone(pids_of(ev), 2000ms * kSlow));
}
