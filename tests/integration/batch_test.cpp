// map, map_unordered and map_views hand the loop one queue entry per call, and their
// tasks are made as they are dispatched: an input too large for the ring is rejected at
// dispatch, a terminate cancels the undispatched rest, and calls from several threads
// each get their own outcomes.
#include "support/test_env.hpp"

#include <shoal/runtime.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <stdexcept>
#include <thread>

using namespace shoal;
using namespace shoal::test;

namespace {

const std::string kTooLarge = "input of 9000 bytes exceeds the task ring limit of 8160 bytes (raise pools.test.queue.capacity)";

uint64_t count(const PoolStats& s, Status status) { return s.outcomes[static_cast<size_t>(status)]; }

}  // namespace

TEST_CASE("map: an input too large for the ring is rejected at its index, its neighbours run", "[integration][pool][batch]") {
  auto cfg = pool_config(SHOAL_PLUGIN_ECHO, 2);
  cfg.queue_capacity = 8192;
  auto pool = start_pool(cfg);
  std::vector<std::string> inputs;
  for (int i = 0; i < 500; ++i) inputs.push_back(i == 0 || i == 250 || i == 499 ? std::string(9000, 'z') : "n" + std::to_string(i));
  auto outs = pool->map(inputs);
  REQUIRE(outs.size() == inputs.size());
  for (size_t i = 0; i < outs.size(); ++i) {
    if (i == 0 || i == 250 || i == 499) {
      CHECK(outs[i].status == Status::rejected);
      CHECK(outs[i].error == kTooLarge);
      CHECK(outs[i].reason == Reason::input_too_large);
      CHECK(outs[i].attempts == 0);
      CHECK(outs[i].worker == -1);
    } else {
      CHECK(outs[i].status == Status::ok);
      CHECK(outs[i].output == inputs[i]);
    }
  }
  PoolStats s = pool->stats();
  CHECK(count(s, Status::rejected) == 3);
  CHECK(count(s, Status::ok) == 497);
  pool->join();
}

TEST_CASE("terminate during a large map: each index gets one outcome, ok or cancelled", "[integration][pool][batch]") {
  auto pool = start_pool(pool_config(SHOAL_PLUGIN_ECHO, 2));
  const std::vector<std::string> inputs(1'000'000, "x");
  std::vector<int> seen(inputs.size(), 0);
  size_t ok = 0, cancelled = 0, calls = 0;
  // The callback runs on this thread: terminate from it once the map is under way.
  pool->map_unordered(inputs, [&](size_t index, Outcome&& o) {
    REQUIRE(index < inputs.size());
    ++seen[index];
    if (++calls == 1000) pool->terminate();
    if (o.status == Status::ok) {
      ++ok;
      CHECK(o.output == "x");
    } else {
      ++cancelled;
      CHECK(o.status == Status::cancelled);
      CHECK(o.error == "pool terminated before the task started");
      CHECK(o.attempts == 0);
    }
  });
  CHECK(calls == inputs.size());
  CHECK(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; }));
  CHECK(ok >= 1000);
  CHECK(cancelled > 0);
  CHECK(ok + cancelled == inputs.size());
  pool->join();
}

TEST_CASE("terminate while map still makes its outcome slots: each index ok or cancelled, in order", "[integration][pool][batch]") {
  auto pool = start_pool(pool_config(SHOAL_PLUGIN_ECHO, 2));
  std::vector<std::string> inputs(1'000'000);
  for (size_t i = 0; i < inputs.size(); ++i) inputs[i] = std::to_string(i);
  // map makes its slots while its first tasks run: the terminate comes with the first
  // outcomes, while most of the million slots are still being made.
  std::thread terminator([&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (count(pool->stats(), Status::ok) == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    pool->terminate();
  });
  auto outs = pool->map(inputs);
  terminator.join();
  REQUIRE(outs.size() == inputs.size());
  size_t ok = 0, cancelled = 0;
  for (size_t i = 0; i < outs.size(); ++i) {
    if (outs[i].status == Status::ok && outs[i].output == inputs[i]) ++ok;
    else if (outs[i].status == Status::cancelled && outs[i].reason == Reason::terminated && outs[i].attempts == 0)
      ++cancelled;
  }
  CHECK(ok >= 1);
  CHECK(cancelled > 0);
  CHECK(ok + cancelled == inputs.size());
  pool->join();
}

TEST_CASE("maps from several threads at once each get their own outcomes in order", "[integration][pool][batch]") {
  auto pool = start_pool(pool_config(SHOAL_PLUGIN_ECHO, 2));
  constexpr int kThreads = 4;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round) {
        std::vector<std::string> inputs;
        for (int i = 0; i < 2000; ++i) inputs.push_back(std::to_string(t) + ":" + std::to_string(round) + ":" + std::to_string(i));
        auto outs = pool->map(inputs);
        if (outs.size() != inputs.size()) ++wrong;
        for (size_t i = 0; i < outs.size(); ++i)
          if (outs[i].status != Status::ok || outs[i].output != inputs[i]) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(wrong.load() == 0);
  CHECK(count(pool->stats(), Status::ok) == kThreads * 5 * 2000);
  pool->join();
}

TEST_CASE("map after close: every input is rejected at once with the reason", "[integration][pool][batch]") {
  auto pool = start_pool(pool_config(SHOAL_PLUGIN_ECHO, 1));
  pool->close();
  const std::vector<std::string> inputs = {"a", "b", "c"};
  auto outs = pool->map(inputs);
  REQUIRE(outs.size() == 3);
  for (const Outcome& o : outs) {
    CHECK(o.status == Status::rejected);
    CHECK(o.error == "pool closed");
  }
  size_t views = 0;
  pool->map_views(inputs, [&](size_t, const OutcomeView& v) {
    ++views;
    CHECK(v.status == Status::rejected);
  });
  CHECK(views == 3);
  CHECK(count(pool->stats(), Status::rejected) == 6);
  pool->join();
}

TEST_CASE("map_unordered: a callback that throws ends the call only after every task is done",
          "[integration][pool][batch]") {
  auto pool = start_pool(pool_config(SHOAL_PLUGIN_ECHO, 2));
  const std::vector<std::string> inputs(20'000, "t");
  size_t calls = 0;
  CHECK_THROWS_WITH(pool->map_unordered(inputs,
                                        [&](size_t, Outcome&&) {
                                          if (++calls == 10) throw std::runtime_error("consumer failed");
                                        }),
                    "consumer failed");
  CHECK(calls == 10);  // dropped after the throw
  // Every task of that call was delivered before it returned: the pool is quiet and its
  // counters hold all of them.
  CHECK(count(pool->stats(), Status::ok) == inputs.size());
  auto after = pool->map(std::vector<std::string>{"still", "here"});
  REQUIRE(after.size() == 2);
  CHECK(after[1].output == "here");
  pool->join();
}
