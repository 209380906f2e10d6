// Pool::reload and Pool::resize while tasks flow: every task gets exactly one outcome,
// each from one generation; a reload that cannot start its new generation rolls back and
// leaves the old one serving; a resize up and down loses nothing.
#include "support/test_env.hpp"

#include <shoal/runtime.hpp>

#include <catch2/catch.hpp>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

using namespace shoal;
using namespace shoal::test;
using namespace std::chrono_literals;

namespace {

PoolConfig versioned(uint32_t workers, const std::string& version) {
  PoolConfig c = pool_config(fixture("fx_fault"), workers);
  c.params["version"] = version;
  return c;
}

// Tasks submitted from a thread of their own as fast as the pool takes them, each
// asking for the version its worker runs; every outcome is recorded once. The record is
// shared with the callbacks: a test that fails half-way ends the Load before the pool,
// whose destructor still delivers (cancelled) outcomes.
class Load {
 public:
  Load(Pool& pool, size_t count, std::string task = "param version") : state_(std::make_shared<State>(count)) {
    feeder_ = std::thread([st = state_, &pool, task] {
      for (size_t i = 0; i < st->outcomes.size(); ++i) {
        pool.submit(task, [st, i](Outcome&& o) {
          std::lock_guard lock(st->mu);
          st->outcomes[i] = std::move(o);
          ++st->done;
          st->cv.notify_all();
        });
        // Keep a bounded backlog, so that the tasks spread over the whole reload.
        std::unique_lock lock(st->mu);
        st->cv.wait(lock, [&] { return i < st->done + 2000 || st->abandoned; });
        if (st->abandoned) return;
      }
    });
  }
  ~Load() {
    {
      std::lock_guard lock(state_->mu);
      state_->abandoned = true;
    }
    state_->cv.notify_all();
    if (feeder_.joinable()) feeder_.join();
  }
  /// Waits until `n` outcomes are in; false at the deadline.
  bool wait_done(size_t n, std::chrono::seconds limit = 60s) {
    std::unique_lock lock(state_->mu);
    return state_->cv.wait_for(lock, limit, [&] { return state_->done >= n; });
  }
  const std::vector<Outcome>& finish(const Pool& pool) {
    if (!wait_done(state_->outcomes.size())) {
      const PoolStats s = pool.stats();
      std::lock_guard lock(state_->mu);
      FAIL("outcomes in: " << state_->done << " of " << state_->outcomes.size() << "; the pool counted "
                           << s.outcomes[static_cast<size_t>(Status::ok)] << " ok; live workers "
                           << pool.live_workers());
    }
    feeder_.join();
    return state_->outcomes;
  }

 private:
  struct State {
    explicit State(size_t n) : outcomes(n) {}
    std::vector<Outcome> outcomes;
    std::mutex mu;
    std::condition_variable cv;
    size_t done = 0;
    bool abandoned = false;
  };
  std::shared_ptr<State> state_;
  std::thread feeder_;
};

std::set<int> pid_set(const Pool& pool) {
  const auto v = pool.worker_pids();
  return {v.begin(), v.end()};
}

}  // namespace

TEST_CASE("a reload under load: 100000 tasks each get one outcome from one version and each slot switches once",
          "[integration][reload]") {
  constexpr size_t kTasks = 100000;
  auto pool = start_pool(versioned(4, "A"));
  const auto old_pids = pool->worker_pids();
  Load load(*pool, kTasks);
  REQUIRE(load.wait_done(kTasks / 5));
  auto reloaded = pool->reload(versioned(4, "B"));
  REQUIRE(reloaded);
  // The roll is over when reload returns: every old process has stopped.
  CHECK(all_gone(old_pids, 0ms));
  const auto& outcomes = load.finish(*pool);
  size_t a = 0, b = 0;
  for (const Outcome& o : outcomes) {
    REQUIRE(o.status == Status::ok);
    REQUIRE(o.attempts == 1);
    // The output says which version ran it; the generation must say the same.
    if (o.output == "A") {
      ++a;
      REQUIRE(o.generation == 0);
    } else {
      REQUIRE(o.output == "B");
      REQUIRE(o.generation == 1);
      ++b;
    }
  }
  CHECK(a >= kTasks / 5);
  CHECK(b > 0);
  const PoolStats s = pool->stats();
  CHECK(s.generation == 1);
  CHECK(s.reloads == 1);
  CHECK(s.last_reload == "ok");
  CHECK(s.last_reload_duration > 0ns);
  CHECK(s.outcomes[static_cast<size_t>(Status::ok)] == kTasks);
  REQUIRE(s.workers.size() == 4);
  for (const WorkerStats& w : s.workers) CHECK(w.starts == 2);  // one process per generation
  CHECK(s.restarts == 4);
  CHECK(pool->config().params.at("version") == "B");
  // After the roll, new tasks run on the new version only.
  Outcome after = get(pool->submit("param version"));
  CHECK(after.output == "B");
  CHECK(after.generation == 1);
  pool->join();
}

TEST_CASE("a reload whose init fails in one worker rolls back and the old version serves on", "[integration][reload]") {
  auto pool = start_pool(versioned(3, "A"));
  const auto before = pid_set(*pool);
  Load load(*pool, 20000);
  REQUIRE(load.wait_done(2000));
  PoolConfig broken = versioned(3, "B");
  broken.params["fail_init_index"] = "1";  // worker 0 switches, worker 1 cannot: back
  auto reloaded = pool->reload(broken);
  REQUIRE(!reloaded);
  CHECK_THAT(reloaded.error().message, Catch::Contains("rolled back to generation 0"));
  CHECK_THAT(reloaded.error().message, Catch::Contains("init refused in worker 1"));
  const auto& outcomes = load.finish(*pool);
  // Worker 0 ran generation 1 for a while; every other outcome is the old version's, and
  // none was lost or failed.
  for (const Outcome& o : outcomes) {
    REQUIRE(o.status == Status::ok);
    REQUIRE(o.output == (o.generation == 0 ? "A" : "B"));
  }
  const PoolStats s = pool->stats();
  CHECK(s.generation == 0);
  CHECK(s.reloads == 0);
  CHECK_THAT(s.last_reload, Catch::Contains("rolled back"));
  // No new-generation process is left: three live workers, all on the old version.
  CHECK(pool->live_workers() == 3);
  const auto after = pid_set(*pool);
  CHECK(after.size() == 3);
  std::vector<std::future<Outcome>> probes;
  for (int i = 0; i < 60; ++i) probes.push_back(pool->submit("param version"));
  for (auto& f : probes) {
    Outcome o = get(std::move(f));
    CHECK(o.output == "A");
    CHECK(o.generation == 0);
  }
  CHECK(pool->config().params.at("version") == "A");
  // Slots 1 and 2 never switched: the same processes as before; slot 0 went to the new
  // version and back, so its process is a third one.
  size_t kept = 0;
  for (int pid : after) kept += before.count(pid);
  CHECK(kept == 2);
  pool->join();
}

TEST_CASE("a reload whose init hangs past start_timeout rolls back without leaving a process",
          "[integration][reload]") {
  auto pool = start_pool(versioned(2, "A"));
  const auto before = pid_set(*pool);
  Load load(*pool, 5000);
  PoolConfig hangs = versioned(2, "B");
  hangs.params["init_hang"] = "1";
  hangs.start_timeout = 1s;
  const auto t0 = std::chrono::steady_clock::now();
  auto reloaded = pool->reload(hangs);
  const auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE(!reloaded);
  CHECK_THAT(reloaded.error().message, Catch::Contains("start_timeout"));
  CHECK(took < 10s);
  for (const Outcome& o : load.finish(*pool)) {
    REQUIRE(o.status == Status::ok);
    REQUIRE(o.output == "A");
    REQUIRE(o.generation == 0);
  }
  // The first new process never became ready: nothing switched, the old processes serve.
  CHECK(pid_set(*pool) == before);
  CHECK(pool->stats().generation == 0);
  pool->join();
}

TEST_CASE("a reload that changes only task_timeout and retries applies at once without new processes",
          "[integration][reload]") {
  auto pool = start_pool(versioned(2, "A"));
  const auto before = pid_set(*pool);
  PoolConfig c = versioned(2, "A");
  c.task_timeout = 300ms;
  c.retries = 2;
  REQUIRE(pool->reload(c));
  CHECK(pid_set(*pool) == before);
  CHECK(pool->config().task_timeout == 300ms);
  Outcome o = get(pool->submit("wait-stop"));
  CHECK(o.status == Status::timeout);
  CHECK(o.generation == 0);
  // A config the worker reads (its params) changed, with nothing else: a roll.
  c.params["version"] = "B";
  REQUIRE(pool->reload(c));
  CHECK(get(pool->submit("param version")).output == "B");
  CHECK(pool->stats().generation == 1);
  // A new name or ring size cannot be reloaded; the pool is unchanged.
  PoolConfig renamed = c;
  renamed.name = "other";
  auto r = pool->reload(renamed);
  REQUIRE(!r);
  CHECK_THAT(r.error().message, Catch::Contains("rename"));
  PoolConfig bigger = c;
  bigger.queue_capacity *= 4;
  r = pool->reload(bigger);
  REQUIRE(!r);
  CHECK_THAT(r.error().message, Catch::Contains("queue.capacity"));
  PoolConfig missing = c;
  missing.plugin = "/nonexistent/plugin.so";
  r = pool->reload(missing);
  REQUIRE(!r);
  CHECK_THAT(r.error().message, Catch::Contains("/nonexistent/plugin.so"));
  CHECK(pool->stats().generation == 1);
  pool->join();
}

TEST_CASE("resize 2 to 8 to 1 under load loses no task", "[integration][reload][resize]") {
  auto pool = start_pool(versioned(2, "A"));
  Load load(*pool, 30000, "sleep 0");
  REQUIRE(load.wait_done(1000));
  REQUIRE(pool->resize(8));
  CHECK(pool->live_workers() == 8);
  CHECK(pool->stats().workers.size() == 8);
  CHECK(pool->config().workers == 8);
  REQUIRE(load.wait_done(10000));
  const auto eight = pool->worker_pids();
  REQUIRE(pool->resize(1));
  CHECK(pool->live_workers() == 1);
  CHECK(pool->stats().workers.size() == 1);
  size_t ran_by_high = 0;
  for (const Outcome& o : load.finish(*pool)) {
    REQUIRE(o.status == Status::ok);
    REQUIRE(o.attempts == 1);
    if (o.worker >= 2) ++ran_by_high;
  }
  CHECK(ran_by_high > 0);  // the grown workers took part
  // Seven of the eight processes stopped when resize returned.
  size_t gone = 0;
  for (int pid : eight)
    if (::kill(pid, 0) != 0) ++gone;
  CHECK(gone == 7);
  CHECK(get(pool->submit("index")).output == "0");
  pool->join();
}

TEST_CASE("a kill -9 of a new-generation worker during the roll leaves every task one outcome",
          "[integration][reload]") {
  auto pool = start_pool(versioned(3, "A"));
  const auto before = pid_set(*pool);
  Load load(*pool, 20000);
  PoolConfig slow = versioned(3, "B");
  slow.params["init_sleep_ms"] = "300";  // each new worker takes a while: time to kill one
  std::atomic<int> killed{0};
  std::thread killer([&] {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      for (int pid : pool->worker_pids())
        if (!before.count(pid)) {
          ::kill(pid, SIGKILL);
          killed = pid;
          return;
        }
      std::this_thread::sleep_for(1ms);
    }
  });
  auto reloaded = pool->reload(slow);
  killer.join();
  REQUIRE(killed != 0);
  // Killed while starting, the roll turns back; killed once serving, it is replaced.
  if (!reloaded) CHECK_THAT(reloaded.error().message, Catch::Contains("rolled back"));
  size_t crashed = 0;
  for (const Outcome& o : load.finish(*pool)) {
    if (o.status == Status::crashed) {
      ++crashed;
      continue;
    }
    REQUIRE(o.status == Status::ok);
    REQUIRE(o.output == (o.generation == 0 ? "A" : "B"));
  }
  CHECK(crashed <= 1);  // at most the task the killed worker ran
  CHECK(pool->live_workers() == 3);
  const uint32_t gen = pool->stats().generation;
  CHECK(gen == (reloaded ? 1u : 0u));
  CHECK(get(pool->submit("param version")).output == (reloaded ? "B" : "A"));
  pool->join();
}

TEST_CASE("reloads and resizes from several threads run one after the other", "[integration][reload]") {
  auto pool = start_pool(versioned(2, "A"));
  Load load(*pool, 20000);
  std::vector<std::thread> callers;
  std::atomic<int> ok{0};
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) {
    callers.emplace_back([&, i] {
      if (pool->reload(versioned(2, "v" + std::to_string(i)))) ++ok;
    });
    callers.emplace_back([&, i] {
      if (pool->resize(static_cast<size_t>(1 + i))) ++ok;
    });
  }
  for (auto& t : callers) t.join();
  CHECK(ok == 6);
  // Each operation begins as the one before ends, not at some later event of the pool
  // (an operation queued behind another once waited for the next task to finish).
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
  for (const Outcome& o : load.finish(*pool)) REQUIRE(o.status == Status::ok);
  const PoolStats s = pool->stats();
  CHECK(s.reloads == 3);
  CHECK(s.generation == 3);  // each reload changed the params: three rolls
  // The last operation decided the size; every live process serves the last version.
  CHECK(pool->live_workers() == s.workers.size());
  const std::string last = pool->config().params.at("version");
  for (size_t i = 0; i < 20; ++i) CHECK(get(pool->submit("param version")).output == last);
  // From an outcome callback (the pool's own loop thread) a reload would wait for itself.
  std::promise<std::string> refused;
  pool->submit("ok", [&](Outcome&&) { refused.set_value(pool->resize(1) ? "" : pool->resize(1).error().message); });
  CHECK_THAT(refused.get_future().get(), Catch::Contains("outcome callback"));
  pool->close();
  auto after_close = pool->resize(3);
  REQUIRE(!after_close);
  CHECK_THAT(after_close.error().message, Catch::Contains("closed"));
  pool->join();
}

TEST_CASE("a reload lets a running task finish within grace then asks it to stop and runs a cut one again",
          "[integration][reload]") {
  TempDir dir;
  PoolConfig a = versioned(1, "A");
  a.grace = 300ms;
  auto pool = start_pool(a);
  auto started = [&](const std::string& name) { return wait_for_file(dir.path() / name, 10s); };
  auto next = [&, n = 0]() mutable {
    PoolConfig c = a;
    c.params["version"] = "v" + std::to_string(++n);
    return c;
  };
  // Within grace: it finishes undisturbed in the old generation.
  auto within = pool->submit("@" + (dir.path() / "1").string() + " sleep 150");
  REQUIRE(started("1"));
  REQUIRE(pool->reload(next()));
  Outcome o = get(std::move(within));
  CHECK(o.status == Status::ok);
  CHECK(o.output == "slept");
  CHECK(o.generation == 0);
  CHECK(o.attempts == 1);
  // Past grace, a task that honours should_stop ends when asked, in its generation.
  auto stops = pool->submit("@" + (dir.path() / "2").string() + " wait-stop");
  REQUIRE(started("2"));
  REQUIRE(pool->reload(next()));
  o = get(std::move(stops));
  CHECK(o.status == Status::ok);
  CHECK(o.output == "stopped");
  CHECK(o.generation == 1);
  CHECK(o.attempts == 1);
  // One that ignores it is abandoned after a second grace (the old worker's chain runs)
  // and runs again, whole, in the new generation: not crashed, not lost.
  auto ignores = pool->submit("@" + (dir.path() / "3").string() + " sleep 4000");
  REQUIRE(started("3"));
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(pool->reload(next()));
  // The old worker did not wait for the task: 2 × grace, its chain and a new worker's
  // start (1.7 s under ThreadSanitizer), far less than the task's 4 s.
  CHECK(std::chrono::steady_clock::now() - t0 < 3000ms);
  o = get(std::move(ignores));
  CHECK(o.status == Status::ok);
  CHECK(o.output == "slept");
  CHECK(o.generation == 3);
  CHECK(o.attempts == 2);
  pool->join();
}

TEST_CASE("after a broken file is renamed over the plugin's path the old generation still respawns from its own file",
          "[integration][reload][deploy]") {
  // The deploy the README describes: the new file is written beside the old one and
  // renamed over it, then the pool is reloaded. The new file's init fails: the reload
  // rolls back, and a worker of the old generation that dies later must come back
  // running the old code, not fail on the new file now at its path.
  TempDir dir;
  const auto plugin = dir.path() / "plugin.so";
  std::filesystem::copy_file(fixture("fx_fault"), plugin);
  PoolConfig a = versioned(2, "A");
  a.plugin = plugin;
  auto pool = start_pool(a);
  std::filesystem::copy_file(fixture("fx_init_fails"), dir.path() / "plugin.so.new");
  std::filesystem::rename(dir.path() / "plugin.so.new", plugin);
  auto reloaded = pool->reload(a);  // same config, new file: it rolls
  REQUIRE(!reloaded);
  CHECK_THAT(reloaded.error().message, Catch::Contains("init refused"));
  CHECK_THAT(reloaded.error().message, Catch::Contains(plugin.string()));  // named as configured
  for (int round = 0; round < 3; ++round) {
    const auto pids = pool->worker_pids();
    REQUIRE(pids.size() == 2);
    ::kill(pids[0], SIGKILL);
    REQUIRE(all_gone({pids[0]}));
    // The replacement starts from the generation's own file: it serves the old version.
    for (int i = 0; i < 8; ++i) {
      Outcome o = get(pool->submit("param version"));
      REQUIRE(o.status == Status::ok);
      CHECK(o.output == "A");
    }
  }
  CHECK(pool->live_workers() == 2);
  CHECK(pool->stats().generation == 0);
  pool->join();
}
