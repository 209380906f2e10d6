// The termination matrix of DESIGN.md, row by row: the lifecycle fixtures log every
// event of each worker's life (pid-tagged), and each test asserts the exact order and
// count of those events for one way a worker ends.
#include "support/lifecycle_events.hpp"
#include "support/subprocess.hpp"
#include "support/test_env.hpp"

#include <shoal/runtime.hpp>

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <thread>

using namespace shoal;
using namespace shoal::test;
using namespace std::chrono_literals;

TEST_CASE("close and join: every worker opens, inits, then runs the whole chain in priority order once",
          "[integration][lifecycle]") {
  TempDir dir;
  auto log = dir.path() / "events.log";
  auto pool = start_pool(lifecycle_config(log, 2));
  CHECK(get(pool->submit("resource db")).output == "found");
  CHECK(get(pool->submit("resource nope")).output == "missing");
  auto pids = pool->worker_pids();
  pool->close();
  pool->join();
  Events ev = read_events(log);
  REQUIRE(ev.size() == 2);
  for (int pid : pids) CHECK(ev[pid] == full_life());
}

TEST_CASE("terminate: queued tasks are cancelled, a stop-aware task finishes, every chain runs once",
          "[integration][lifecycle]") {
  TempDir dir;
  auto log = dir.path() / "events.log";
  auto pool = start_pool(lifecycle_config(log, 1));
  auto running = pool->submit("wait-stop");
  auto queued = pool->submit("echo never");
  auto pids = pool->worker_pids();
  int pid = pids.at(0);
  REQUIRE(wait_events(log, 5s, [&](const Events& e) { return e.count(pid) && e.at(pid).size() == 4; }).size() == 1);
  pool->terminate();
  Outcome r = get(std::move(running));
  Outcome q = get(std::move(queued));
  pool->join();
  CHECK(r.status == Status::ok);
  CHECK(r.output == "stopped");
  CHECK(q.status == Status::cancelled);
  CHECK(q.attempts == 0);
  std::vector<std::string> expect = kStart;
  expect.push_back("wait-stop");
  expect.insert(expect.end(), kChain.begin(), kChain.end());
  CHECK(read_events(log)[pid] == expect);
}

TEST_CASE("a task stuck past grace during a stop: the chain runs on the control thread, then the worker exits",
          "[integration][lifecycle]") {
  TempDir dir;
  auto log = dir.path() / "events.log";
  auto pool = start_pool(lifecycle_config(log, 1));
  auto stuck = pool->submit("hang");
  auto pid = pool->worker_pids().at(0);
  // "hang" logs once it runs, then never returns.
  REQUIRE(wait_events(log, 5s, [&](const Events& e) { return e.count(pid) && e.at(pid).size() == 4; }).size() == 1);
  auto t0 = std::chrono::steady_clock::now();
  pool->terminate();
  Outcome o = get(std::move(stuck));
  pool->join();
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  CHECK(o.status == Status::cancelled);
  CHECK(o.attempts == 1);
  CHECK(o.error == "terminated while running, grace 0.3s passed");
  std::vector<std::string> expect = kStart;
  expect.push_back("hang");
  expect.insert(expect.end(), kChain.begin(), kChain.end());
  CHECK(read_events(log)[pid] == expect);
  CHECK(all_gone({pid}, 0ms));
}

TEST_CASE("a finalizer stuck past fini_timeout: the worker exits, the rest of the chain does not run",
          "[integration][lifecycle]") {
  TempDir dir;
  auto log = dir.path() / "events.log";
  PoolConfig c = lifecycle_config(log, 1);
  c.params["fini_hang"] = "1";
  c.fini_timeout = 300ms;
  auto input = dir.write("in.txt", "echo a\n");
  auto cfg = dir.write("pools.yaml", yaml_for(c));
  auto t0 = std::chrono::steady_clock::now();
  ProcessResult r = run_process({SHOAL_BIN, "run", cfg.string(), "--input", input.string()}, {}, 20s);
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.err.find("finalizer 'plugin fini' of worker 0 (pid ") != std::string::npos);
  CHECK(r.err.find(") did not return within shutdown.fini_timeout 0.3s") != std::string::npos);
  // The chain was cut short, so db and cache never closed: with no replacement to come,
  // a process of its own runs every recover hook before the run ends.
  Events ev = read_events(log);
  REQUIRE(ev.size() == 2);
  std::vector<std::vector<std::string>> lives;
  for (const auto& [pid, events] : ev) lives.push_back(events);
  const std::vector<std::string> cut = {"open db", "open cache", "init", "finalizer p=200 #3", "fini-start"};
  const std::string why = "cause=exit code 4";
  const std::vector<std::string> recovery = {"recover db worker=0 " + why, "recover cache worker=0 " + why,
                                             "recover plugin worker=0 " + why};
  CHECK(std::count(lives.begin(), lives.end(), cut) == 1);
  CHECK(std::count(lives.begin(), lives.end(), recovery) == 1);
}

TEST_CASE("max_tasks_per_worker: N tasks on one worker make ceil(N/k) lives, none lost or repeated",
          "[integration][lifecycle]") {
  TempDir dir;
  auto log = dir.path() / "events.log";
  PoolConfig c = lifecycle_config(log, 1);
  c.max_tasks_per_worker = 3;
  auto pool = start_pool(c);
  std::vector<std::string> inputs;
  for (int i = 0; i < 10; ++i) inputs.push_back("echo " + std::to_string(i));
  auto outcomes = pool->map(inputs);
  for (size_t i = 0; i < outcomes.size(); ++i) {
    CHECK(outcomes[i].status == Status::ok);
    CHECK(outcomes[i].output == std::to_string(i));
    CHECK(outcomes[i].attempts == 1);
  }
  pool->close();
  pool->join();
  Events ev = read_events(log);
  CHECK(ev.size() == 4);
  for (const auto& [pid, events] : ev) CHECK(events == full_life());
}

TEST_CASE("max_memory: a worker past its RSS limit runs its chain and is replaced between tasks",
          "[integration][lifecycle]") {
  TempDir dir;
  auto log = dir.path() / "events.log";
  PoolConfig c = lifecycle_config(log, 1);
  c.max_memory = 96u << 20;
  auto pool = start_pool(c);
  std::vector<std::string> inputs(6, "alloc 40");
  auto outcomes = pool->map(inputs);
  for (const auto& o : outcomes) CHECK(o.status == Status::ok);
  pool->close();
  pool->join();
  Events ev = read_events(log);
  // 40 MiB kept per task: the third task passes 96 MiB, so each life serves 3 tasks at most.
  CHECK(ev.size() >= 2);
  for (const auto& [pid, events] : ev) CHECK(events == full_life());
}

TEST_CASE("exit() inside run: the chain runs from the exit path, the task is crashed, a replacement starts",
          "[integration][lifecycle]") {
  TempDir dir;
  auto log = dir.path() / "events.log";
  auto pool = start_pool(lifecycle_config(log, 1));
  int first = pool->worker_pids().at(0);
  Outcome o = get(pool->submit("exit 3"));
  CHECK(o.status == Status::crashed);
  CHECK(o.error == "worker 0 died: exit code 3");
  CHECK(get(pool->submit("echo after")).output == "after");
  pool->close();
  pool->join();
  Events ev = read_events(log);
  REQUIRE(ev.size() == 2);
  CHECK(ev[first] == full_life());
  for (const auto& [pid, events] : ev) CHECK(events == full_life());
}

TEST_CASE("exit() in a child the plugin forked runs no chain: the worker's resources stay open, its chain runs once",
          "[integration][lifecycle]") {
  // The child inherits the worker's atexit handler: it must not run fini and the closes
  // (a shared connection closed under the worker), nor report the chain to the host.
  TempDir dir;
  auto log = dir.path() / "events.log";
  auto pool = start_pool(lifecycle_config(log, 1));
  const int worker = pool->worker_pids().at(0);
  CHECK(get(pool->submit("fork-exit")).output == "child exited");
  CHECK(get(pool->submit("echo after")).output == "after");
  CHECK(pool->worker_pids().at(0) == worker);
  pool->close();
  pool->join();
  Events ev = read_events(log);
  REQUIRE(ev.size() == 1);  // only the worker wrote: the child logged no fini, no close
  CHECK(ev[worker] == full_life());
}

// `_exit` skips the chain as surely as a signal does (issue 13, item 2).
TEST_CASE("SIGKILL or _exit(N) of a worker: no chain in it, recover hooks in its replacement before open and init",
          "[integration][lifecycle]") {
  const auto [payload, cause] = GENERATE(table<std::string, std::string>(
      {{"kill9", "signal 9 (SIGKILL)"}, {"_exit 7", "exit code 7"}}));
  INFO(payload);
  TempDir dir;
  auto log = dir.path() / "events.log";
  auto pool = start_pool(lifecycle_config(log, 1));
  int first = pool->worker_pids().at(0);
  Outcome o = get(pool->submit(payload));
  CHECK(o.status == Status::crashed);
  CHECK(o.error == "worker 0 died: " + cause);
  CHECK(get(pool->submit("echo next")).output == "next");
  int second = pool->worker_pids().at(0);
  pool->close();
  pool->join();
  Events ev = read_events(log);
  CHECK(ev.size() == 2);
  CHECK(ev[first] == kStart);  // nothing ran after the kill
  std::vector<std::string> expect = {"recover db worker=0 cause=" + cause, "open db",
                                     "recover cache worker=0 cause=" + cause, "open cache",
                                     "recover plugin worker=0 cause=" + cause, "init"};
  expect.insert(expect.end(), kChain.begin(), kChain.end());
  CHECK(ev[second] == expect);
}

TEST_CASE("a resource that fails to open fails the start with its message, and what opened is closed",
          "[integration][lifecycle]") {
  TempDir dir;
  auto log = dir.path() / "events.log";
  PoolConfig c = lifecycle_config(log, 1);
  c.resources[1].params["fail_open"] = "1";
  auto pool = Pool::start(c);
  REQUIRE_FALSE(pool.ok());
  CHECK(pool.error().message == "pool test: resource cache (" + fixture("fx_resource") +
                                    "): open failed: cannot connect to cache: refused (worker 0)");
  CHECK((::waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD));
  Events ev = read_events(log);
  REQUIRE(ev.size() == 1);
  CHECK(ev.begin()->second == std::vector<std::string>{"open db", "close db"});
}

TEST_CASE("SIGTERM to one worker from outside is a stop request, not a crash", "[integration][lifecycle]") {
  TempDir dir;
  auto log = dir.path() / "events.log";
  auto pool = start_pool(lifecycle_config(log, 1));
  int first = pool->worker_pids().at(0);
  // wait-stop returns only once the worker saw the stop: a fixed sleep raced the kill,
  // and a slow (sanitized, loaded) caller sent it after the worker had run everything.
  auto running = pool->submit("wait-stop");
  std::vector<std::future<Outcome>> queued;
  for (int i = 0; i < 5; ++i) queued.push_back(pool->submit("echo " + std::to_string(i)));
  REQUIRE(wait_events(log, 5s, [&](const Events& e) { return e.count(first) && e.at(first).size() == 4; }).size() == 1);
  ::kill(first, SIGTERM);
  Outcome r = get(std::move(running));
  CHECK(r.status == Status::ok);
  CHECK(r.output == "stopped");
  for (int i = 0; i < 5; ++i) {
    Outcome o = get(std::move(queued[static_cast<size_t>(i)]));
    CHECK(o.status == Status::ok);
    CHECK(o.output == std::to_string(i));
  }
  pool->close();
  pool->join();
  Events ev = read_events(log);
  CHECK(ev.size() == 2);
  std::vector<std::string> stopped = kStart;
  stopped.push_back("wait-stop");
  stopped.insert(stopped.end(), kChain.begin(), kChain.end());
  CHECK(ev[first] == stopped);
  for (const auto& [pid, events] : ev)
    if (pid != first) CHECK(events == full_life());
}

TEST_CASE("host SIGTERM or SIGHUP: shoal run finishes in-flight tasks and cancels the rest and every chain runs",
          "[integration][lifecycle][host]") {
  // A batch run has nothing to reload: SIGHUP stops it as SIGTERM does (shoal run --help).
  const int sig = GENERATE(SIGTERM, SIGHUP);
  INFO("signal " << sig);
  TempDir dir;
  auto log = dir.path() / "events.log";
  PoolConfig c = lifecycle_config(log, 2);
  auto cfg = dir.write("pools.yaml", yaml_for(c));
  std::string lines;
  for (int i = 0; i < 200; ++i) lines += "sleep 20\n";
  auto input = dir.write("in.txt", lines);
  auto out = dir.path() / "out.jsonl";
  Background host({SHOAL_BIN, "run", cfg.string(), "--input", input.string()}, input, out, dir.path() / "err.txt");
  REQUIRE(host.started());
  REQUIRE(wait_for_file(out, 5s));
  // Wait for a few rows so that tasks are in flight.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  auto rows_written = [&] {
    std::string text = read_file(out);
    return std::count(text.begin(), text.end(), '\n');
  };
  while (rows_written() < 4 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  host.signal(sig);
  int code = -1;
  REQUIRE(host.wait(10s, code));
  CHECK(code == 128 + sig);
  std::string rows = read_file(out);
  size_t n = static_cast<size_t>(std::count(rows.begin(), rows.end(), '\n'));
  CHECK(n == 200);  // every task has its row: ok or cancelled
  CHECK(rows.find("\"status\":\"cancelled\"") != std::string::npos);
  CHECK(rows.back() == '\n');
  Events ev = read_events(log);
  CHECK(ev.size() == 2);
  for (const auto& [pid, events] : ev) CHECK(events == full_life());
}

TEST_CASE("host kill -9: every worker runs its chain and exits within 2 s, nothing is left",
          "[integration][lifecycle][host]") {
  TempDir dir;
  auto log = dir.path() / "events.log";
  PoolConfig c = lifecycle_config(log, 2);
  auto cfg = dir.write("pools.yaml", yaml_for(c));
  std::string lines;
  for (int i = 0; i < 500; ++i) lines += "sleep 20\n";
  auto input = dir.write("in.txt", lines);
  Background host({SHOAL_BIN, "run", cfg.string(), "--input", input.string()}, input, dir.path() / "out.jsonl",
                  dir.path() / "err.txt");
  REQUIRE(host.started());
  Events started = wait_events(log, 10s, [](const Events& e) {
    int inits = 0;
    for (const auto& [pid, events] : e) inits += events.size() >= 3 ? 1 : 0;
    return inits == 2;
  });
  REQUIRE(started.size() == 2);
  host.signal(SIGKILL);
  int code = 0;
  REQUIRE(host.wait(5s, code));
  CHECK(code == 128 + SIGKILL);
  auto t0 = std::chrono::steady_clock::now();
  Events ev = wait_events(log, 2s * kSlow, [](const Events& e) {
    for (const auto& [pid, events] : e)
      if (events.empty() || events.back() != "close cache") return false;
    return true;
  });
  CHECK(std::chrono::steady_clock::now() - t0 <= 2100ms * kSlow);
  std::vector<int> pids;
  for (const auto& [pid, events] : ev) {
    CHECK(events == full_life());
    pids.push_back(pid);
  }
  CHECK(all_gone(pids, 2000ms * kSlow));
}

TEST_CASE("an init that hangs past start_timeout fails the start with the limit and its key, and leaves no worker",
          "[integration][lifecycle][start]") {
  TempDir dir;
  auto log = dir.path() / "events.log";
  PoolConfig c = lifecycle_config(log, 2);
  c.resources.clear();
  c.params["init_hang"] = "1";
  c.start_timeout = 500ms;
  auto t0 = std::chrono::steady_clock::now();
  auto pool = Pool::start(c);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE_FALSE(pool.ok());
  CHECK(pool.error().message.find("did not finish init within start_timeout 0.5s (raise pools.test.start_timeout)") !=
        std::string::npos);
  CHECK(took >= 0.5);
  CHECK(took < 10.0 * kSlow);
  // Every worker that began its init is gone: killed at the deadline, not left hanging.
  // Killed, it closed nothing: a process of its own ran the recover hooks (and nothing
  // else) before the start returned.
  std::vector<int> pids;
  size_t hung = 0;
  for (const auto& [pid, events] : read_events(log)) {
    if (std::find(events.begin(), events.end(), "init-hang") != events.end()) ++hung;
    else {
      REQUIRE(events.size() == 1);
      CHECK(events[0].rfind("recover plugin worker=", 0) == 0);
      CHECK(events[0].find("did not finish init within start_timeout 0.5s") != std::string::npos);
    }
    pids.push_back(pid);
  }
  CHECK(hung >= 1);
  CHECK(all_gone(pids, 2000ms * kSlow));
}

TEST_CASE("workers that keep failing to start back off, then the pool fails and its tasks are rejected",
          "[integration][lifecycle][crashloop]") {
  TempDir dir;
  auto log = dir.path() / "events.log";
  auto flag = dir.path() / "broken";
  PoolConfig c = lifecycle_config(log, 1);
  c.resources.clear();
  c.params["fail_init_if"] = flag.string();
  auto pool = start_pool(c);
  dir.write("broken", "");  // from now on every new worker's init fails
  auto t0 = std::chrono::steady_clock::now();
  Outcome crashed = get(pool->submit("segv"));
  CHECK(crashed.status == Status::crashed);
  std::vector<std::future<Outcome>> waiting;
  for (int i = 0; i < 3; ++i) waiting.push_back(pool->submit("echo " + std::to_string(i)));
  const std::string cause = "pool failed: 5 workers in a row failed to start; last: plugin " + fixture("fx_lifecycle") +
                            ": init failed: init refused: " + flag.string() + " exists (worker 0)";
  for (auto& f : waiting) {
    Outcome o = get(std::move(f));
    CHECK(o.status == Status::rejected);
    CHECK(o.error == cause);
    CHECK(o.attempts == 0);
  }
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Back-off between the five failed starts: 0 + 0.25 + 0.5 + 1 + 2 s.
  CHECK(took >= 3.7);
  CHECK(took < 8.0 * kSlow);
  Outcome late = get(pool->submit("echo late"));
  CHECK(late.status == Status::rejected);
  CHECK(late.error == cause);
  pool->join();
  // The first replacement recovers after the SIGSEGV, then is refused like the others.
  size_t refused = 0, recovered = 0;
  for (const auto& [pid, events] : read_events(log)) {
    if (events.empty() || events.back() != "init-refused") continue;
    ++refused;
    recovered += events.front() == "recover plugin worker=0 cause=signal 11 (SIGSEGV)";
  }
  CHECK(refused == 5);
  CHECK(recovered == 1);
  CHECK((::waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD));
}
