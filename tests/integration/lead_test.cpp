// Callers on the data path (runtime/src/pool/lead.cpp): a caller blocked in map reads
// results itself, yet never runs another caller's code, and a task queued while a caller
// leads is never left unread when the leader goes.
#include "support/test_env.hpp"

#include <shoal/runtime.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace shoal;
using namespace shoal::test;

namespace {

std::vector<std::string> echo_inputs(size_t n, const std::string& tag) {
  std::vector<std::string> inputs;
  for (size_t i = 0; i < n; ++i) inputs.push_back("echo " + tag + std::to_string(i));
  return inputs;
}

// Runs map over `inputs` on its own thread until `stop`; counts outcomes that are not ok
// with their input's text.
struct Mapper {
  std::atomic<bool> stop{false};
  std::atomic<size_t> maps{0}, wrong{0};
  std::thread::id id;
  std::thread thread;

  Mapper(Pool& pool, std::vector<std::string> inputs) {
    thread = std::thread([this, &pool, inputs = std::move(inputs)] {
      while (!stop.load()) {
        const auto outcomes = pool.map(inputs);
        for (size_t i = 0; i < outcomes.size(); ++i)
          if (outcomes[i].status != Status::ok || "echo " + outcomes[i].output != inputs[i]) wrong.fetch_add(1);
        maps.fetch_add(1);
      }
    });
    id = thread.get_id();
  }
  ~Mapper() {
    stop.store(true);
    thread.join();
  }
};

}  // namespace

TEST_CASE("data path: callbacks run on the loop thread while another thread's map reads results itself",
          "[integration][pool][lead]") {
  auto pool = start_pool(pool_config(fixture("fx_fault"), 2));
  std::mutex mu;
  std::set<std::thread::id> threads;
  std::atomic<size_t> done{0}, wrong{0};
  constexpr size_t kTasks = 20000;
  {
    Mapper mapper(*pool, echo_inputs(2000, "m"));
    for (size_t i = 0; i < kTasks; ++i) {
      pool->submit("echo c" + std::to_string(i), [&, i](Outcome&& o) {
        if (o.status != Status::ok || o.output != "c" + std::to_string(i)) wrong.fetch_add(1);
        std::lock_guard lock(mu);
        threads.insert(std::this_thread::get_id());
        done.fetch_add(1);
      });
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60 * kSlow);
    while (done.load() < kTasks && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    CHECK(mapper.maps.load() > 0);
    CHECK(mapper.wrong.load() == 0);
    std::lock_guard lock(mu);
    CHECK(threads.count(mapper.id) == 0);  // the map's thread delivered none of them
  }
  CHECK(done.load() == kTasks);
  CHECK(wrong.load() == 0);
  CHECK(threads.size() == 1);  // the loop thread
  CHECK(threads.count(std::this_thread::get_id()) == 0);
  pool->join();
}

TEST_CASE("data path: futures submitted while maps read results all get their outcome", "[integration][pool][lead]") {
  auto pool = start_pool(pool_config(fixture("fx_fault"), 2));
  {
    Mapper first(*pool, echo_inputs(500, "a"));
    Mapper second(*pool, echo_inputs(3, "b"));  // short maps: its caller leads and leaves often
    for (int i = 0; i < 3000; ++i) {
      const Outcome o = get(pool->submit("echo f" + std::to_string(i)));
      REQUIRE(o.status == Status::ok);
      REQUIRE(o.output == "f" + std::to_string(i));
    }
    CHECK(first.wrong.load() == 0);
    CHECK(second.wrong.load() == 0);
    CHECK(second.maps.load() > 0);
  }
  pool->join();
}

TEST_CASE("data path: a callback that submits to its own pool gets that outcome too", "[integration][pool][lead]") {
  auto pool = start_pool(pool_config(fixture("fx_fault"), 2));
  std::promise<Outcome> inner;
  auto inner_done = inner.get_future();
  Mapper mapper(*pool, echo_inputs(200, "m"));
  pool->submit("echo outer", [&](Outcome&& o) {
    CHECK(o.output == "outer");
    pool->submit("echo inner", [&](Outcome&& p) { inner.set_value(std::move(p)); });
  });
  const Outcome o = get(std::move(inner_done));
  CHECK(o.status == Status::ok);
  CHECK(o.output == "inner");
}

TEST_CASE("data path: two map_views callers each get their own views one call at a time",
          "[integration][pool][lead]") {
  auto pool = start_pool(pool_config(SHOAL_PLUGIN_ECHO, 2));
  std::atomic<int> inside{0}, overlapped{0};
  std::mutex mu;
  std::set<std::thread::id> loop_side;  // threads other than the caller that delivered a view
  auto run = [&](const std::string& tag, std::atomic<size_t>& wrong) {
    std::vector<std::string> inputs;
    for (int i = 0; i < 5000; ++i) inputs.push_back(tag + std::to_string(i));
    std::vector<int> seen(inputs.size(), 0);
    const auto me = std::this_thread::get_id();
    for (int round = 0; round < 5; ++round) {
      pool->map_views(inputs, [&](size_t index, const OutcomeView& v) {
        if (inside.fetch_add(1) != 0) overlapped.fetch_add(1);
        ++seen[index];
        if (v.status != Status::ok || v.output != inputs[index]) wrong.fetch_add(1);
        if (std::this_thread::get_id() != me) {
          std::lock_guard lock(mu);
          loop_side.insert(std::this_thread::get_id());
        }
        inside.fetch_sub(1);
      });
    }
    for (int n : seen)
      if (n != 5) wrong.fetch_add(1);
  };
  std::atomic<size_t> wrong_a{0}, wrong_b{0};
  std::thread::id a_id;
  std::thread a([&] { run("a", wrong_a); });
  a_id = a.get_id();
  run("b", wrong_b);
  a.join();
  CHECK(wrong_a.load() == 0);
  CHECK(wrong_b.load() == 0);
  CHECK(overlapped.load() == 0);
  // Each caller's views came on its own thread or on the loop thread: never on the other
  // caller's, so at most one thread besides the two callers.
  CHECK(loop_side.count(a_id) == 0);
  CHECK(loop_side.count(std::this_thread::get_id()) == 0);
  CHECK(loop_side.size() <= 1);
  pool->join();
}

TEST_CASE("data path: apply returns each task's one outcome, whatever became of it", "[integration][pool][lead]") {
  auto cfg = pool_config(fixture("fx_fault"), 2);
  cfg.queue_capacity = 8192;
  auto pool = start_pool(cfg);
  for (int i = 0; i < 2000; ++i) {
    const Outcome o = pool->apply("echo " + std::to_string(i));
    REQUIRE(o.status == Status::ok);
    REQUIRE(o.output == std::to_string(i));
  }
  const Outcome error = pool->apply("error bad input");
  CHECK(error.status == Status::error);
  CHECK(error.error == "bad input");
  const Outcome crash = pool->apply("segv");
  CHECK(crash.status == Status::crashed);
  CHECK(crash.error.find("SIGSEGV") != std::string::npos);
  const Outcome big = pool->apply(std::string(9000, 'z'));
  CHECK(big.status == Status::rejected);
  CHECK(big.reason == Reason::input_too_large);
  // The replacement of the crashed worker serves the next one.
  CHECK(pool->apply("echo after").output == "after");
  pool->close();
  const Outcome closed = pool->apply("echo late");
  CHECK(closed.status == Status::rejected);
  CHECK(closed.reason == Reason::pool_closed);
  pool->join();
}

TEST_CASE("data path: apply from several threads beside submits and a dying worker", "[integration][pool][lead]") {
  auto pool = start_pool(pool_config(fixture("fx_fault"), 2));
  std::atomic<size_t> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1500; ++i) {
        const std::string text = std::to_string(t) + ":" + std::to_string(i);
        const Outcome o = pool->apply("echo " + text);
        if (o.status != Status::ok || o.output != text) wrong.fetch_add(1);
      }
    });
  std::vector<std::future<Outcome>> futures;
  for (int i = 0; i < 3000; ++i) futures.push_back(pool->submit("echo f" + std::to_string(i)));
  const Outcome crash = pool->apply("segv");  // a worker dies while the others lead
  for (auto& t : threads) t.join();
  CHECK(crash.status == Status::crashed);
  CHECK(wrong.load() == 0);
  for (int i = 0; i < 3000; ++i) {
    const Outcome o = get(std::move(futures[static_cast<size_t>(i)]));
    CHECK(o.output == "f" + std::to_string(i));
  }
  pool->join();
}

// The thread that runs a callback is the one that would deliver the outcomes a blocking
// call on the same pool waits for: such a call is refused at once, never a hung pool.
TEST_CASE("data path: a callback that calls its own pool's map, apply, reload or join gets a refusal, not a hang",
          "[integration][pool][lead]") {
  auto pool = start_pool(pool_config(fixture("fx_fault"), 2));
  auto other = start_pool(pool_config(fixture("fx_fault"), 1));
  struct Seen {
    Outcome applied, other_pool;
    std::vector<Outcome> mapped;
    std::string reload_error, join_error;
  };
  std::promise<Seen> done;
  pool->submit("echo outer", [&](Outcome&&) {
    Seen s;
    s.applied = pool->apply("echo inner");
    s.mapped = pool->map(std::vector<std::string>{"echo a", "echo b"});
    s.other_pool = other->apply("echo elsewhere");  // another pool's loop delivers it
    auto r = pool->reload(pool->config());
    if (!r.ok()) s.reload_error = r.error().message;
    try {
      pool->join();
    } catch (const std::system_error& e) {
      s.join_error = e.what();
    }
    done.set_value(std::move(s));
  });
  auto f = done.get_future();
  REQUIRE(f.wait_for(std::chrono::seconds(20) * kSlow) == std::future_status::ready);
  const Seen s = f.get();
  CHECK(s.applied.status == Status::rejected);
  CHECK(s.applied.reason == Reason::reentrant);
  CHECK(s.applied.error.find("outcome callback of the same pool") != std::string::npos);
  REQUIRE(s.mapped.size() == 2);
  for (const auto& o : s.mapped) CHECK(o.reason == Reason::reentrant);
  CHECK(s.other_pool.status == Status::ok);
  CHECK(s.other_pool.output == "elsewhere");
  CHECK(s.reload_error.find("cannot be called from an outcome callback") != std::string::npos);
  CHECK(s.join_error.find("join from an outcome callback") != std::string::npos);
  // The pool serves on, and from a map_views callback (on whichever thread runs it) the
  // same calls are refused the same way.
  std::vector<Reason> inner;
  pool->map_views(std::vector<std::string>{"echo x", "echo y"}, [&](size_t, const OutcomeView&) {
    inner.push_back(pool->apply("echo nested").reason);
  });
  CHECK(inner == std::vector<Reason>{Reason::reentrant, Reason::reentrant});
  CHECK(pool->apply("echo after").output == "after");
  pool->join();
  other->join();
}
