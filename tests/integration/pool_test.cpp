// A real pool of shoal-worker processes running the echo plugin and the fixture plugin:
// submit, map, unordered, outcomes of every kind, shutdown, and the chunksize test.
#include "support/test_env.hpp"

#include <shoal/runtime.hpp>

#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>

using namespace shoal;
using namespace shoal::test;
using namespace std::chrono_literals;

namespace {

size_t shm_entries() { return entries_in("/dev/shm"); }

}  // namespace

TEST_CASE("submit returns the plugin's output with worker, attempts and duration", "[integration][pool]") {
  auto pool = start_pool(pool_config(SHOAL_PLUGIN_ECHO, 2));
  CHECK(pool->live_workers() == 2);
  Outcome o = get(pool->submit("hello shoal"));
  CHECK(o.status == Status::ok);
  CHECK(o.output == "hello shoal");
  CHECK(o.error.empty());
  CHECK((o.worker == 0 || o.worker == 1));
  CHECK(o.attempts == 1);
  CHECK(o.duration.count() >= 0);
  Outcome empty = get(pool->submit(""));
  CHECK(empty.status == Status::ok);
  CHECK(empty.output.empty());
  auto pids = pool->worker_pids();
  pool->close();
  pool->join();
  CHECK(all_gone(pids, 0ms));
  CHECK(no_child_left());
}

TEST_CASE("map returns outcomes in input order, unordered yields each exactly once", "[integration][pool]") {
  auto pool = start_pool(pool_config(SHOAL_PLUGIN_ECHO, 2));
  std::vector<std::string> inputs;
  for (int i = 0; i < 5000; ++i) inputs.push_back("task-" + std::to_string(i) + std::string(static_cast<size_t>(i % 97), 'x'));
  auto outcomes = pool->map(inputs);
  REQUIRE(outcomes.size() == inputs.size());
  std::set<int32_t> workers_used;
  for (size_t i = 0; i < inputs.size(); ++i) {
    REQUIRE(outcomes[i].status == Status::ok);
    REQUIRE(outcomes[i].output == inputs[i]);
    workers_used.insert(outcomes[i].worker);
  }
  CHECK(workers_used == std::set<int32_t>{0, 1});

  std::vector<int> seen(inputs.size(), 0);
  size_t calls = 0;
  pool->map_unordered(inputs, [&](size_t index, Outcome&& o) {
    REQUIRE(index < inputs.size());
    ++seen[index];
    ++calls;
    CHECK(o.status == Status::ok);
    CHECK(o.output == inputs[index]);
  });
  CHECK(calls == inputs.size());
  CHECK(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; }));
  pool->join();
}

TEST_CASE("submit with a callback calls it exactly once per task", "[integration][pool]") {
  auto pool = start_pool(pool_config(SHOAL_PLUGIN_ECHO, 2));
  std::atomic<int> ok{0}, calls{0};
  for (int i = 0; i < 1000; ++i)
    pool->submit("x" + std::to_string(i), [&, i](Outcome&& o) {
      ++calls;
      if (o.status == Status::ok && o.output == "x" + std::to_string(i)) ++ok;
    });
  pool->close();
  pool->join();  // join waits for every outcome
  CHECK(calls == 1000);
  CHECK(ok == 1000);
}

TEST_CASE("no chunksize trap: 16 tasks of 200 ms on 4 workers take about 0.8 s", "[integration][pool][chunksize]") {
  auto pool = start_pool(pool_config(fixture("fx_fault"), 4));
  std::vector<std::string> inputs(16, "sleep 200");
  auto t0 = std::chrono::steady_clock::now();
  auto outcomes = pool->map(inputs);
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double ideal = 16 * 0.2 / 4;
  std::printf("chunksize test: %.3f s for 16 x 200 ms on 4 workers (ideal %.1f s, ratio %.2f)\n", elapsed, ideal,
              elapsed / ideal);
  std::map<int32_t, int> per_worker;
  for (const auto& o : outcomes) {
    CHECK(o.status == Status::ok);
    ++per_worker[o.worker];
  }
  CHECK(elapsed >= ideal * 0.99);
  CHECK(elapsed < 1.2);
  CHECK(per_worker.size() == 4);
  for (auto [w, n] : per_worker) CHECK(n == 4);
  pool->join();
}

TEST_CASE("plugin failures become error outcomes and the pool goes on", "[integration][pool]") {
  auto pool = start_pool(pool_config(fixture("fx_fault"), 1));
  Outcome reported = get(pool->submit("error the input was malformed"));
  CHECK(reported.status == Status::error);
  CHECK(reported.error == "the input was malformed");
  CHECK(reported.attempts == 1);
  Outcome thrown = get(pool->submit("throw std::runtime_error from run"));
  CHECK(thrown.status == Status::error);
  CHECK(thrown.error == "std::runtime_error from run");
  Outcome code = get(pool->submit("fail"));
  CHECK(code.status == Status::error);
  CHECK(code.error == "shoal_run returned -1");
  Outcome unknown = get(pool->submit("nonsense"));
  CHECK(unknown.status == Status::error);
  CHECK(unknown.error == "unknown fixture command 'nonsense'");
  Outcome after = get(pool->submit("echo still here"));
  CHECK(after.status == Status::ok);
  CHECK(after.output == "still here");
  pool->join();
}

TEST_CASE("an input larger than the task ring is rejected naming the size, limit and key", "[integration][pool]") {
  auto cfg = pool_config(SHOAL_PLUGIN_ECHO, 1);
  cfg.queue_capacity = 8192;
  auto pool = start_pool(cfg);
  Outcome fits = get(pool->submit(std::string(8192 - 32, 'a')));
  CHECK(fits.status == Status::ok);
  CHECK(fits.output.size() == 8192 - 32);
  Outcome big = get(pool->submit(std::string(8192 - 31, 'a')));
  CHECK(big.status == Status::rejected);
  CHECK(big.attempts == 0);
  CHECK(big.worker == -1);
  CHECK(big.error == "input of 8161 bytes exceeds the task ring limit of 8160 bytes (raise pools.test.queue.capacity)");
  pool->join();
}

TEST_CASE("an output larger than the result ring is an error naming queue.capacity", "[integration][pool]") {
  auto cfg = pool_config(fixture("fx_fault"), 1);
  cfg.queue_capacity = 8192;
  auto pool = start_pool(cfg);
  Outcome big = get(pool->submit("big 9000"));
  CHECK(big.status == Status::error);
  CHECK(big.error == "output does not fit the result ring (raise queue.capacity)");
  Outcome fits = get(pool->submit("big 8000"));
  CHECK(fits.status == Status::ok);
  CHECK(fits.output == std::string(8000, 'x'));
  pool->join();
}

TEST_CASE("submit after close or terminate is rejected at once", "[integration][pool]") {
  auto pool = start_pool(pool_config(SHOAL_PLUGIN_ECHO, 1));
  pool->close();
  auto f = pool->submit("late");
  REQUIRE(f.wait_for(0s) == std::future_status::ready);
  Outcome o = f.get();
  CHECK(o.status == Status::rejected);
  CHECK(o.error == "pool closed");
  pool->join();
  Outcome after_join = get(pool->submit("later"), 1s * kSlow);
  CHECK(after_join.status == Status::rejected);
}

TEST_CASE("close and join run every worker's fini, then no worker is left", "[integration][pool]") {
  TempDir dir;
  auto marker = dir.path() / "fini.txt";
  auto cfg = pool_config(fixture("fx_fault"), 3);
  cfg.params["fini_marker"] = marker.string();
  auto pool = start_pool(cfg);
  std::vector<std::string> inputs(30, "sleep 5");
  auto outcomes = pool->map(inputs);
  for (const auto& o : outcomes) CHECK(o.status == Status::ok);
  auto pids = pool->worker_pids();
  CHECK(pids.size() == 3);
  CHECK(read_file(marker).empty());  // fini has not run while the pool is open
  pool->close();
  pool->join();
  std::string text = read_file(marker);
  CHECK(std::count(text.begin(), text.end(), '\n') == 3);
  CHECK(text.find("fini 0\n") != std::string::npos);
  CHECK(text.find("fini 1\n") != std::string::npos);
  CHECK(text.find("fini 2\n") != std::string::npos);
  CHECK(all_gone(pids, 0ms));
  CHECK(pool->live_workers() == 0);
}

TEST_CASE("terminate cancels queued tasks and stops running ones within grace", "[integration][pool]") {
  auto cfg = pool_config(fixture("fx_fault"), 2);
  cfg.grace = 300ms;
  auto pool = start_pool(cfg);
  TempDir dir;
  auto started_a = dir.path() / "a", started_b = dir.path() / "b";
  auto stoppable = pool->submit("@" + started_a.string() + " wait-stop");  // honours should_stop
  auto stubborn = pool->submit("@" + started_b.string() + " sleep 20000");  // ignores it: killed after grace
  std::vector<std::future<Outcome>> queued;
  for (int i = 0; i < 6; ++i) queued.push_back(pool->submit("sleep 1"));
  REQUIRE(wait_for_file(started_a, 10s * kSlow));
  REQUIRE(wait_for_file(started_b, 10s * kSlow));
  auto pids = pool->worker_pids();
  auto t0 = std::chrono::steady_clock::now();
  pool->terminate();
  Outcome s = get(std::move(stoppable), 10s);
  Outcome k = get(std::move(stubborn), 10s);
  pool->join();
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(s.status == Status::ok);
  CHECK(s.output == "stopped");
  CHECK(k.status == Status::cancelled);
  CHECK(k.attempts == 1);
  CHECK(k.error == "terminated while running, grace 0.3s passed");
  int cancelled = 0;
  for (auto& f : queued) {
    Outcome o = get(std::move(f), 10s);
    if (o.status == Status::cancelled) {
      ++cancelled;
      CHECK(o.attempts == 0);
      CHECK(o.error == "pool terminated before the task started");
    } else {
      CHECK(o.status == Status::ok);  // a short task may have run before terminate
    }
  }
  CHECK(cancelled >= 4);
  CHECK(took < 5.0);
  CHECK(all_gone(pids, 0ms));
}

TEST_CASE("a worker that dies mid-task gives crashed, is replaced, and the pool goes on", "[integration][pool]") {
  auto pool = start_pool(pool_config(fixture("fx_fault"), 1));
  std::string pid_before = get(pool->submit("pid")).output;
  Outcome segv = get(pool->submit("segv"));
  CHECK(segv.status == Status::crashed);
  CHECK(segv.attempts == 1);
  CHECK(segv.worker == 0);
  CHECK(segv.error == "worker 0 died: signal 11 (SIGSEGV)");
  Outcome exited = get(pool->submit("exit 7"));
  CHECK(exited.status == Status::crashed);
  CHECK(exited.error == "worker 0 died: exit code 7");
  Outcome after = get(pool->submit("pid"));
  CHECK(after.status == Status::ok);
  CHECK(after.output != pid_before);
  pool->join();
  CHECK(no_child_left());
}

TEST_CASE("retries re-run a crashed task and attempts counts the starts", "[integration][pool]") {
  auto cfg = pool_config(fixture("fx_fault"), 2);
  cfg.retries = 2;
  auto pool = start_pool(cfg);
  // Tasks queued behind the crashing one in the same ring go back to the pool untouched.
  std::vector<std::future<Outcome>> futures;
  futures.push_back(pool->submit("segv"));
  for (int i = 0; i < 20; ++i) futures.push_back(pool->submit("echo " + std::to_string(i)));
  Outcome crashed = get(std::move(futures[0]));
  CHECK(crashed.status == Status::crashed);
  CHECK(crashed.attempts == 3);
  for (int i = 0; i < 20; ++i) {
    Outcome o = get(std::move(futures[static_cast<size_t>(i) + 1]));
    CHECK(o.status == Status::ok);
    CHECK(o.output == std::to_string(i));
    CHECK(o.attempts == 1);
  }
  pool->join();
}

TEST_CASE("params reach the plugin and the worker index is stable", "[integration][pool]") {
  auto cfg = pool_config(fixture("fx_fault"), 1);
  cfg.params["algorithm"] = "sha256";
  cfg.params["nested"] = "{a: 1}";
  auto pool = start_pool(cfg);
  CHECK(get(pool->submit("param algorithm")).output == "sha256");
  CHECK(get(pool->submit("param nested")).output == "{a: 1}");
  CHECK(get(pool->submit("param missing")).output == "<unset>");
  CHECK(get(pool->submit("index")).output == "0");
  pool->join();
}

TEST_CASE("a pool destroyed without join stops its workers and leaves nothing behind", "[integration][pool]") {
  size_t shm_before = shm_entries();
  std::vector<int> pids;
  std::future<Outcome> pending;
  {
    auto pool = start_pool(pool_config(fixture("fx_fault"), 2));
    pids = pool->worker_pids();
    CHECK(pids.size() == 2);
    CHECK(shm_entries() == shm_before);  // memfd: nothing named in /dev/shm
    pending = pool->submit("wait-stop");
  }
  Outcome o = get(std::move(pending), 1s * kSlow);
  CHECK((o.status == Status::ok || o.status == Status::cancelled));
  CHECK(all_gone(pids, 0ms));
  CHECK(no_child_left());
  CHECK(shm_entries() == shm_before);
}

TEST_CASE("Runtime starts pools from YAML on first use", "[integration][pool][runtime]") {
  std::string yaml = std::string("pools:\n  echo:\n    plugin: ") + SHOAL_PLUGIN_ECHO +
                     "\n    workers: 2\n  other:\n    plugin: " + SHOAL_PLUGIN_ECHO + "\n    workers: 1\n";
  auto rt = Runtime::from_string(yaml, ".");
  REQUIRE(rt.ok());
  auto pool = rt->pool("echo");
  REQUIRE(pool.ok());
  CHECK((*pool)->live_workers() == 2);
  CHECK(get((*pool)->submit("via runtime")).output == "via runtime");
  auto same = rt->pool("echo");
  REQUIRE(same.ok());
  CHECK(*same == *pool);
  auto missing = rt->pool("nope");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == Errc::not_found);
  CHECK(missing.error().message == "no pool named 'nope' (pools: echo, other)");
}
