// Pool::map_views: outcomes read in place from the result ring, one callback per input,
// whatever became of it (ok, error, crashed, rejected at once), and a callback that
// throws does not stop the others.
#include "support/hostile.hpp"
#include "support/test_env.hpp"

#include <shoal/runtime.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <set>
#include <stdexcept>
#include <thread>

using namespace shoal;
using namespace shoal::test;

TEST_CASE("map_views: each input once, its output in place, large and small", "[integration][pool][views]") {
  auto cfg = pool_config(SHOAL_PLUGIN_ECHO, 2);
  cfg.queue_capacity = 4u << 20;
  auto pool = start_pool(cfg);
  std::vector<std::string> inputs;
  for (int i = 0; i < 3000; ++i) inputs.push_back("v" + std::to_string(i) + std::string(static_cast<size_t>(i % 113), 'y'));
  for (int i = 0; i < 8; ++i) inputs.push_back(std::string(1u << 20, static_cast<char>('a' + i)));  // 1 MiB each
  std::vector<int> seen(inputs.size(), 0);
  std::set<int32_t> workers;
  std::set<std::thread::id> threads;
  std::atomic<int> inside{0};
  int overlapped = 0;
  pool->map_views(inputs, [&](size_t index, const OutcomeView& v) {
    if (inside.fetch_add(1) != 0) ++overlapped;
    struct Leave {
      std::atomic<int>& n;
      ~Leave() { n.fetch_sub(1); }
    } leave{inside};
    REQUIRE(index < inputs.size());
    ++seen[index];
    CHECK(v.status == Status::ok);
    CHECK(v.output == inputs[index]);
    CHECK(v.error.empty());
    CHECK(v.attempts == 1);
    workers.insert(v.worker);
    threads.insert(std::this_thread::get_id());
  });
  CHECK(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; }));
  CHECK(workers == std::set<int32_t>{0, 1});
  // One call at a time, on this thread while it reads results itself, else on the loop
  // thread (pool/lead.cpp): never a third one.
  CHECK(overlapped == 0);
  threads.erase(std::this_thread::get_id());
  CHECK(threads.size() <= 1);
  pool->join();
}

TEST_CASE("map_views: errors, crashes and rejections arrive as views too", "[integration][pool][views]") {
  auto cfg = pool_config(fixture("fx_fault"), 2);
  cfg.queue_capacity = 8192;
  auto pool = start_pool(cfg);
  const std::vector<std::string> inputs = {"echo a", "error bad input", "segv", "echo b", std::string(9000, 'z')};
  std::vector<Status> status(inputs.size(), Status::ok);
  std::vector<std::string> errors(inputs.size());
  size_t calls = 0;
  pool->map_views(inputs, [&](size_t index, const OutcomeView& v) {
    ++calls;
    status[index] = v.status;
    errors[index] = std::string(v.error);  // copied: the view ends with the call
  });
  CHECK(calls == inputs.size());
  CHECK(status[0] == Status::ok);
  CHECK(status[1] == Status::error);
  CHECK(errors[1] == "bad input");
  CHECK(status[2] == Status::crashed);
  CHECK(status[3] == Status::ok);
  CHECK(status[4] == Status::rejected);
  CHECK(errors[4].find("queue.capacity") != std::string::npos);
  pool->join();
}

TEST_CASE("map_views: a callback that throws is logged and the rest still arrive", "[integration][pool][views]") {
  auto pool = start_pool(pool_config(SHOAL_PLUGIN_ECHO, 2));
  std::vector<std::string> inputs(500, "x");
  size_t calls = 0;
  pool->map_views(inputs, [&](size_t index, const OutcomeView&) {
    ++calls;
    if (index % 7 == 0) throw std::runtime_error("callback refused");
  });
  CHECK(calls == inputs.size());
  // The pool still works afterwards.
  CHECK(get(pool->submit("after")).output == "after");
  pool->join();
}

// map_views and map_unordered hand outcomes over as they come: they keep no Outcome
// (88 bytes) per input. Both once made one anyway, for nothing: 44 MB for these inputs.
TEST_CASE("map_views and map_unordered keep no outcome slot per input", "[integration][pool][views]") {
  auto cfg = pool_config(SHOAL_PLUGIN_ECHO, 2);
  cfg.queue_capacity = 1u << 20;
  auto pool = start_pool(cfg);
  const std::vector<std::string> inputs(500'000, "x");  // short strings: 32 bytes each, no heap
  size_t views = 0, outcomes = 0;
  pool->map_views(inputs, [&](size_t, const OutcomeView& v) { views += v.output == "x" ? 1u : 0u; });  // warm-up
  views = 0;
  reset_peak_rss();
  const long before = status_kib("VmHWM");
  pool->map_views(inputs, [&](size_t, const OutcomeView& v) { views += v.output == "x" ? 1u : 0u; });
  pool->map_unordered(inputs, [&](size_t, Outcome&& o) { outcomes += o.output == "x" ? 1u : 0u; });
  const long grown = status_kib("VmHWM") - before;
  CHECK(views == inputs.size());
  CHECK(outcomes == inputs.size());
  INFO("peak RSS grew by " << grown << " KiB");
  // 500,000 slots are 43,000 KiB per call, and both calls' made 106 MB of peak growth in
  // the g++ build. A sanitizer's allocator keeps freed blocks aside for a while (ASan's
  // quarantine): 21 MB of growth there without any slot.
  CHECK(grown < (kSanitized ? 40 : 16) * 1024);
  pool->join();
}
