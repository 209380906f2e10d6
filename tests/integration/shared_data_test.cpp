// Shared read-only data (issue 18), the workers' side, with real processes: segments the
// builder fixture (tests/fixtures/fx_shared_builder.c) builds once, mapped read-only by
// every worker, every replacement and every reload's new generation; read from C
// (fx_shared_reader.c) and C++ (fx_shared_words.cpp).
#include "support/test_env.hpp"

#include <shoal/runtime.hpp>

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace shoal;
using namespace shoal::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

size_t shm_entries() { return entries_in("/dev/shm"); }

// The builder fixture's objects for `count` numbers, its "built" lines in `events`.
SharedConfig entry(const std::string& name, const fs::path& events, uint64_t count = 1000,
                   const std::string& mode = "ok") {
  SharedConfig e;
  e.name = name;
  e.builder = fixture("fx_shared_builder");
  e.size = 4 << 20;
  e.params = {{"mode", mode}, {"count", std::to_string(count)}, {"events", events.string()}};
  return e;
}

PoolConfig reader_pool(uint32_t workers, std::vector<SharedConfig> shared) {
  PoolConfig config = pool_config(fixture("fx_shared_reader"), workers);
  config.shared = std::move(shared);
  return config;
}

// "count=N sum=S" as fx_shared_reader answers "sum numbers" for the builder's i*i.
std::string sum_line(uint64_t count) {
  uint64_t sum = 0;
  for (uint64_t i = 0; i < count; ++i) sum += i * i;
  return "count=" + std::to_string(count) + " sum=" + std::to_string(sum);
}

size_t lines_in(const fs::path& file) {
  const std::string text = read_file(file);
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

// Every input `n` times, each outcome ok with `expected` of its input; the workers that
// answered.
std::set<int32_t> all_answer(Pool& pool, const std::vector<std::pair<std::string, std::string>>& expected, size_t n) {
  std::vector<std::string> inputs;
  for (size_t i = 0; i < n; ++i)
    for (const auto& [in, out] : expected) inputs.push_back(in);
  const auto outcomes = pool.map(inputs);
  REQUIRE(outcomes.size() == inputs.size());
  std::set<int32_t> workers;
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const auto& want = expected[i % expected.size()];
    INFO(want.first << " on worker " << outcomes[i].worker << ": " << outcomes[i].error);
    CHECK(outcomes[i].status == Status::ok);
    CHECK(outcomes[i].output == want.second);
    workers.insert(outcomes[i].worker);
  }
  return workers;
}

// Waits until the pool's stats say `mappings` for segment `name` (the loop publishes a
// process's start and end as it sees them).
SharedStats settled(Pool& pool, const std::string& name, uint32_t mappings) {
  const auto deadline = std::chrono::steady_clock::now() + 10s * kSlow;
  for (;;) {
    for (const auto& s : pool.stats().shared)
      if (s.name == name && s.mappings == mappings) return s;
    if (std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(10ms);
  }
  FAIL("segment " << name << " never had " << mappings << " mappings");
  return {};
}

}  // namespace

TEST_CASE("shared data: every worker of a pool reads the builder's objects from any thread",
          "[integration][shared]") {
  TempDir dir;
  const size_t shm_before = shm_entries();
  std::vector<int> pids;
  {
    auto pool = start_pool(reader_pool(8, {entry("data", dir.path() / "events", 100000)}));
    pids = pool->worker_pids();
    REQUIRE(pids.size() == 8);
    const auto workers = all_answer(*pool,
                                    {{"sum numbers", sum_line(100000)},
                                     {"greeting", "hello from the builder"},
                                     {"index", "count=100000 ok"},
                                     {"threads", "threads ok"},
                                     {"missing", "missing: null"}},
                                    32);
    CHECK(workers == std::set<int32_t>{0, 1, 2, 3, 4, 5, 6, 7});
    CHECK(lines_in(dir.path() / "events") == 1);
    pool->close();
    pool->join();
  }
  CHECK(all_gone(pids));
  CHECK(no_child_left());
  CHECK(shm_entries() == shm_before);  // memfds: nothing named in /dev/shm
}

TEST_CASE("shared data: a worker that writes to the segment crashes and the others read it intact",
          "[integration][shared]") {
  TempDir dir;
  std::vector<int> pids;
  {
    // 100000 numbers: a task takes long enough that every worker gets some.
    auto pool = start_pool(reader_pool(4, {entry("data", dir.path() / "events", 100000)}));
    pids = pool->worker_pids();
    const Outcome wrote = get(pool->submit("write numbers"));
    CHECK(wrote.status == Status::crashed);
    CHECK(wrote.reason == Reason::crashed);
    CHECK(wrote.error.find("SIGSEGV") != std::string::npos);
    // Its replacement maps the same sealed segment (its init looks "numbers" up), and
    // every worker, the replacement among them, still reads i*i.
    const auto deadline = std::chrono::steady_clock::now() + 10s * kSlow;
    while (pool->stats().restarts < 1 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
    REQUIRE(pool->stats().restarts == 1);
    settled(*pool, "data", 4);
    const auto now = pool->worker_pids();
    CHECK(now.size() == 4);
    CHECK(now != pids);
    const auto workers = all_answer(*pool, {{"sum numbers", sum_line(100000)}, {"threads", "threads ok"}}, 40);
    CHECK(workers.size() == 4);
    CHECK(lines_in(dir.path() / "events") == 1);
    pids.insert(pids.end(), now.begin(), now.end());
    pool->close();
    pool->join();
  }
  CHECK(all_gone(pids));
  CHECK(no_child_left());
}

TEST_CASE("shared data: 100 respawns map the segment without building it again", "[integration][shared]") {
  TempDir dir;
  PoolConfig config = reader_pool(2, {entry("data", dir.path() / "events")});
  config.max_tasks_per_worker = 1;  // every task ends its process: the next one maps again
  std::vector<int> pids;
  {
    auto pool = start_pool(config);
    pids = pool->worker_pids();
    all_answer(*pool, {{"sum numbers", sum_line(1000)}}, 100);
    const PoolStats stats = pool->stats();
    CHECK(stats.restarts >= 98);
    REQUIRE(stats.shared.size() == 1);
    CHECK(stats.shared[0].generation == 0);
    CHECK(lines_in(dir.path() / "events") == 1);  // the builder ran once
    pool->close();
    pool->join();
  }
  CHECK(all_gone(pids));
  CHECK(no_child_left());
}

TEST_CASE("shared data: Pool::stats reports each segment with its live mappings", "[integration][shared]") {
  TempDir dir;
  auto pool = start_pool(reader_pool(5, {entry("first", dir.path() / "a"), entry("second", dir.path() / "b", 10)}));
  const auto pids = pool->worker_pids();
  const SharedStats first = settled(*pool, "first", 5);
  settled(*pool, "second", 5);
  const auto shared = pool->stats().shared;
  REQUIRE(shared.size() == 2);
  CHECK(shared[0].name == "first");  // in `shared:` order
  CHECK(shared[1].name == "second");
  for (const auto& s : shared) {
    INFO(s.name);
    CHECK(s.generation == 0);
    CHECK(s.size == 4u << 20);
    CHECK(s.used > 0);
    CHECK(s.used < s.size);
    CHECK(s.build_time.count() > 0);
  }
  CHECK(shared[0].used > shared[1].used);  // 1000 numbers and their index against 10
  CHECK(first.used == shared[0].used);
  REQUIRE(pool->resize(2).ok());
  settled(*pool, "first", 2);
  pool->close();
  pool->join();
  CHECK(all_gone(pids));
}

TEST_CASE("shared data: a builder that fails fails Pool::start and leaves nothing behind", "[integration][shared]") {
  TempDir dir;
  const size_t shm_before = shm_entries();
  auto pool = Pool::start(reader_pool(4, {entry("good", dir.path() / "a"), entry("bad", dir.path() / "b", 10, "fail")}));
  REQUIRE_FALSE(pool.ok());
  INFO(pool.error().message);
  CHECK(pool.error().message.rfind("pool 'test': shared 'bad': ", 0) == 0);
  CHECK(pool.error().message.find("builder said no") != std::string::npos);
  CHECK(pool.error().message.find('\n') == std::string::npos);
  CHECK(no_child_left());  // no worker was spawned, no builder is left
  CHECK(lines_in(dir.path() / "a") == 1);  // built in order: the first one, then the failure
  CHECK(shm_entries() == shm_before);
}

TEST_CASE("shared data: a reload builds only the changed entry and its new workers map the new data",
          "[integration][shared]") {
  TempDir dir;
  const fs::path a = dir.path() / "a", b = dir.path() / "b";
  PoolConfig config = reader_pool(4, {entry("fixed", a), entry("numbers", b, 1000)});
  std::vector<int> pids;
  {
    auto pool = start_pool(config);
    pids = pool->worker_pids();
    all_answer(*pool, {{"sum numbers", sum_line(1000)}}, 8);
    // "numbers" is looked up in the list's order: the first entry holds it, so the
    // changed one goes first for the readers to see its data.
    config.shared = {entry("numbers", b, 2000), entry("fixed", a)};
    auto reloaded = pool->reload(config);
    INFO((reloaded ? std::string() : reloaded.error().message));
    REQUIRE(reloaded.ok());
    CHECK(lines_in(a) == 1);  // unchanged: the same segment
    CHECK(lines_in(b) == 2);  // changed: built once more
    const auto workers = all_answer(*pool, {{"sum numbers", sum_line(2000)}}, 16);
    CHECK(workers.size() >= 1);
    const auto now = pool->worker_pids();
    for (int pid : now) CHECK(std::find(pids.begin(), pids.end(), pid) == pids.end());
    pids.insert(pids.end(), now.begin(), now.end());
    settled(*pool, "numbers", 4);
    const auto shared = pool->stats().shared;
    REQUIRE(shared.size() == 2);  // the old "numbers" went with the old generation
    CHECK(shared[0].name == "numbers");
    CHECK(shared[0].generation == 1);
    CHECK(shared[1].name == "fixed");
    CHECK(shared[1].generation == 0);
    CHECK(shared[1].mappings == 4);
    CHECK(pool->stats().generation == 1);
    pool->close();
    pool->join();
  }
  CHECK(all_gone(pids));
  CHECK(no_child_left());
}

TEST_CASE("shared data: a reload whose build fails leaves the old workers serving the old data",
          "[integration][shared]") {
  TempDir dir;
  const fs::path a = dir.path() / "a";
  PoolConfig config = reader_pool(3, {entry("data", a, 1000)});
  std::vector<int> pids;
  {
    auto pool = start_pool(config);
    pids = pool->worker_pids();
    config.shared = {entry("data", dir.path() / "failed", 5000, "fail")};
    auto reloaded = pool->reload(config);
    REQUIRE_FALSE(reloaded.ok());
    INFO(reloaded.error().message);
    CHECK(reloaded.error().message.rfind("pool test: reload failed, generation 0 serves on: shared 'data': ", 0) == 0);
    CHECK(reloaded.error().message.find("builder said no") != std::string::npos);
    CHECK(pool->worker_pids() == pids);
    const PoolStats stats = pool->stats();
    CHECK(stats.generation == 0);
    CHECK(stats.reloads == 0);
    CHECK(stats.last_reload == reloaded.error().message.substr(std::string("pool test: ").size()));
    all_answer(*pool, {{"sum numbers", sum_line(1000)}}, 9);
    CHECK(lines_in(a) == 1);
    CHECK(lines_in(dir.path() / "failed") == 1);  // the builder ran, and failed, once
    pool->close();
    pool->join();
  }
  CHECK(all_gone(pids));
  CHECK(no_child_left());
}

TEST_CASE("shared data: kill -9 of workers maps the segment again without a build", "[integration][shared]") {
  TempDir dir;
  std::vector<int> pids;
  {
    auto pool = start_pool(reader_pool(4, {entry("data", dir.path() / "events")}));
    pids = pool->worker_pids();
    for (uint32_t round = 0; round < 3; ++round) {
      const auto before = pool->worker_pids();
      for (int pid : before) REQUIRE(::kill(pid, SIGKILL) == 0);
      REQUIRE(all_gone(before));
      const auto deadline = std::chrono::steady_clock::now() + 20s * kSlow;
      while (pool->stats().restarts < 4u * (round + 1) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(10ms);
      settled(*pool, "data", 4);
      const auto now = pool->worker_pids();
      pids.insert(pids.end(), now.begin(), now.end());
      all_answer(*pool, {{"sum numbers", sum_line(1000)}, {"index", "count=1000 ok"}}, 8);
    }
    CHECK(lines_in(dir.path() / "events") == 1);
    pool->close();
    pool->join();
  }
  CHECK(all_gone(pids));
  CHECK(no_child_left());
}
