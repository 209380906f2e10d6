// Finalizer chain order: highest priority first, ties last-registered first, each once.
#include "finalize/chain.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

using shoal::detail::FinalizerChain;

TEST_CASE("the chain runs by priority, ties last-registered first, each entry once", "[unit][chain]") {
  FinalizerChain chain;
  std::vector<std::string> ran;
  chain.add(0, "db", [&] { ran.push_back("db"); });
  chain.add(100, "fini", [&] { ran.push_back("fini"); });
  chain.add(0, "cache", [&] { ran.push_back("cache"); });
  chain.add(10, "log", [&] { ran.push_back("log"); });
  CHECK(chain.order() == std::vector<std::string>{"fini", "log", "cache", "db"});
  chain.run_all();
  CHECK(ran == std::vector<std::string>{"fini", "log", "cache", "db"});
  chain.run_all();  // a second path reaching the chain runs nothing again
  CHECK(ran.size() == 4);
}

TEST_CASE("an entry that re-enters the chain does not run anything twice", "[unit][chain]") {
  FinalizerChain chain;
  int a = 0, b = 0;
  chain.add(1, "b", [&] { ++b; });
  chain.add(2, "a", [&] {
    ++a;
    chain.run_all();
  });
  chain.run_all();
  CHECK(a == 1);
  CHECK(b == 1);
}

// The ABI makes this reachable: the control thread runs the chain for an abandoned task
// while the task thread, still inside shoal_run, calls add_finalizer. The running entry
// waits until the other thread has added enough entries to reallocate the chain's
// storage several times: an entry read without the lock before it ran is then unordered
// with the reallocation, which TSan reports (the TSan stage runs the unit tests). The
// flags between the two threads are relaxed on purpose: an acquire/release pair would
// order the read before the reallocation and hide the race from TSan.
TEST_CASE("the chain runs while another thread adds entries", "[unit][chain]") {
  FinalizerChain chain;
  constexpr int kAdded = 100;
  std::atomic<int> ran{0}, added{0};
  std::atomic<bool> running{false};
  std::thread adder([&] {
    while (!running.load(std::memory_order_relaxed)) std::this_thread::yield();
    for (int i = 0; i < kAdded; ++i) {
      chain.add(i % 7, "late " + std::to_string(i), [&] { ran.fetch_add(1); });
      added.fetch_add(1, std::memory_order_relaxed);
    }
  });
  chain.add(1000, "first", [&] {
    running.store(true, std::memory_order_relaxed);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (added.load(std::memory_order_relaxed) < kAdded && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
    ran.fetch_add(1);
  });
  chain.run_all();
  adder.join();
  CHECK(added.load() == kAdded);
  CHECK(ran.load() == 1 + kAdded);  // the entries added while it ran ran too
}
