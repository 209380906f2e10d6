// Finalizer chain order: highest priority first, ties last-registered first, each once.
#include "finalize/chain.hpp"

#include <catch2/catch.hpp>

#include <string>
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
