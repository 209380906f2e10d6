// Supervision under faults: every mode of the fault plugin gives its outcome and text,
// and the pool goes on serving; task timeouts (including a SIGSTOPped worker); limits.
#include "support/test_env.hpp"

#include <shoal/runtime.hpp>

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <string>

using namespace shoal;
using namespace shoal::test;
using namespace std::chrono_literals;

namespace {

// The pool still answers after a fault: a fresh task runs to ok.
void still_serving(Pool& pool) {
  Outcome o = get(pool.submit("echo alive"));
  CHECK(o.status == Status::ok);
  CHECK(o.output == "alive");
}

std::string proc_field(int pid, const std::string& file, const std::string& prefix) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + file);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) return line;
  return {};
}

}  // namespace

TEST_CASE("fault modes: each gives its outcome and text, and the pool goes on", "[integration][fault]") {
  auto cfg = pool_config(fixture("fx_fault"), 2);
  cfg.queue_capacity = 64 * 1024;
  auto pool = start_pool(cfg);
  struct Case {
    std::string payload;
    Status status;
    std::string error;
    std::string output;
  };
  const std::vector<Case> cases = {
      {"ok", Status::ok, "", "ok"},
      {"error bad input", Status::error, "bad input", ""},
      {"throw it broke", Status::error, "it broke", ""},
      {"segv", Status::crashed, "worker 0 died: signal 11 (SIGSEGV)", ""},
      {"abort", Status::crashed, "worker 0 died: signal 6 (SIGABRT)", ""},
      {"exit 9", Status::crashed, "worker 0 died: exit code 9", ""},
      {"sleep 20", Status::ok, "", "slept"},
      {"close-stdio", Status::ok, "", "closed"},
      {"big-output 1000", Status::ok, "", std::string(1000, 'x')},
      {"big-output 100000", Status::error, "output does not fit the result ring (raise queue.capacity)", ""},
  };
  for (const auto& c : cases) {
    INFO("payload: " << c.payload);
    // One worker at a time sees the crashes, so the name in the error is predictable.
    auto pool1 = c.status == Status::crashed ? start_pool(pool_config(fixture("fx_fault"), 1)) : nullptr;
    Pool& p = pool1 ? *pool1 : *pool;
    Outcome o = get(p.submit(c.payload));
    CHECK(o.status == c.status);
    CHECK(o.error == c.error);
    if (c.status == Status::ok) CHECK(o.output == c.output);
    CHECK(o.attempts == 1);
    still_serving(p);
    if (pool1) pool1->join();
  }
  pool->join();
}

TEST_CASE("fork-child: a grandchild does not outlive its worker", "[integration][fault]") {
  auto pool = start_pool(pool_config(fixture("fx_fault"), 1));
  Outcome o = get(pool->submit("fork-child"));
  REQUIRE(o.status == Status::ok);
  int grandchild = std::stoi(o.output);
  CHECK(::kill(grandchild, 0) == 0);  // alive while its worker is
  pool->join();
  CHECK(all_gone({grandchild}, 2000ms * kSlow));
}

TEST_CASE("task_timeout: a task that honours should_stop gets timeout and its worker lives on",
          "[integration][fault][timeout]") {
  auto cfg = pool_config(fixture("fx_fault"), 1);
  cfg.task_timeout = 200ms;
  cfg.grace = 2s;
  auto pool = start_pool(cfg);
  int pid = pool->worker_pids().at(0);
  auto t0 = std::chrono::steady_clock::now();
  Outcome o = get(pool->submit("wait-stop"));
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(o.status == Status::timeout);
  CHECK(o.error == "task_timeout 0.2s passed; the task stopped when asked");
  CHECK(o.output == "stopped");
  CHECK(o.attempts == 1);
  CHECK(took >= 200ms);
  CHECK(took < 1500ms * kSlow);
  CHECK(pool->worker_pids() == std::vector<int>{pid});  // not killed, not replaced
  still_serving(*pool);
  pool->join();
}

TEST_CASE("task_timeout: a task that ignores should_stop is killed after grace and gets timeout",
          "[integration][fault][timeout]") {
  auto cfg = pool_config(fixture("fx_fault"), 1);
  cfg.task_timeout = 200ms;
  cfg.grace = 200ms;
  auto pool = start_pool(cfg);
  int pid = pool->worker_pids().at(0);
  for (const char* payload : {"hang", "spin"}) {
    INFO(payload);
    auto t0 = std::chrono::steady_clock::now();
    Outcome o = get(pool->submit(payload));
    auto took = std::chrono::steady_clock::now() - t0;
    CHECK(o.status == Status::timeout);
    CHECK(o.error == "task_timeout 0.2s passed and the task did not stop within shutdown.grace 0.2s; worker 0 killed");
    CHECK(o.attempts == 1);
    CHECK(took >= 400ms);
    CHECK(took < 3s * kSlow);
    still_serving(*pool);
  }
  CHECK(pool->worker_pids().at(0) != pid);
  pool->join();
}

TEST_CASE("task_timeout with retries: the task is tried again, then reported", "[integration][fault][timeout]") {
  auto cfg = pool_config(fixture("fx_fault"), 1);
  cfg.task_timeout = 100ms;
  cfg.grace = 100ms;
  cfg.retries = 1;
  auto pool = start_pool(cfg);
  Outcome o = get(pool->submit("hang"));
  CHECK(o.status == Status::timeout);
  CHECK(o.attempts == 2);
  pool->join();
}

TEST_CASE("a SIGSTOPped worker is caught by the task timeout like a hung task", "[integration][fault][timeout]") {
  auto cfg = pool_config(fixture("fx_fault"), 1);
  cfg.task_timeout = 300ms;
  cfg.grace = 200ms;
  auto pool = start_pool(cfg);
  TempDir dir;
  auto started = dir.path() / "started";
  int pid = pool->worker_pids().at(0);
  auto f = pool->submit("@" + started.string() + " sleep 100");
  REQUIRE(wait_for_file(started, 5s * kSlow));
  ::kill(pid, SIGSTOP);
  Outcome o = get(std::move(f));
  CHECK(o.status == Status::timeout);
  CHECK(o.error.find("did not stop within shutdown.grace") != std::string::npos);
  still_serving(*pool);
  CHECK(all_gone({pid}, 2000ms * kSlow));
  pool->join();
}

// Sanitizer runtimes reserve terabytes of address space: a worker built with one cannot
// run under an address-space limit, and "oom" would exhaust the machine instead
// (kSanitized, support/test_env.hpp).

TEST_CASE("limits: address space, open files, core dumps and no_new_privs reach the worker",
          "[integration][fault][limits]") {
  auto cfg = pool_config(fixture("fx_fault"), 1);
  if (!kSanitized) cfg.limits.address_space = 1ull << 30;
  cfg.limits.open_files = 64;
  cfg.limits.no_new_privs = true;
  auto pool = start_pool(cfg);
  int pid = pool->worker_pids().at(0);
  CHECK(proc_field(pid, "limits", "Max open files").find(" 64 ") != std::string::npos);
  CHECK(proc_field(pid, "limits", "Max core file size").find(" 0 ") != std::string::npos);
  CHECK(proc_field(pid, "status", "NoNewPrivs:").find('1') != std::string::npos);
  // The OOM killer's first choice is a worker, never the host.
  std::ifstream score("/proc/" + std::to_string(pid) + "/oom_score_adj");
  int adj = 0;
  score >> adj;
  CHECK(adj == 1000);
  if (!kSanitized) {
    CHECK(proc_field(pid, "limits", "Max address space").find(" 1073741824 ") != std::string::npos);
    // A plugin that allocates without bound sees its allocation fail: an error, not an OOM kill.
    Outcome o = get(pool->submit("oom"));
    CHECK(o.status == Status::error);
    CHECK(o.error == "out of memory (std::bad_alloc)");
  }
  still_serving(*pool);
  pool->join();
}

TEST_CASE("limits: cpu_seconds ends a spinning worker with SIGXCPU", "[integration][fault][limits]") {
  auto cfg = pool_config(fixture("fx_fault"), 1);
  cfg.limits.cpu_seconds = 1;
  auto pool = start_pool(cfg);
  Outcome o = get(pool->submit("spin"), 20s);
  CHECK(o.status == Status::crashed);
  CHECK((o.error == "worker 0 died: signal 24 (SIGXCPU)" || o.error == "worker 0 died: signal 9 (SIGKILL)"));
  still_serving(*pool);
  pool->join();
}
