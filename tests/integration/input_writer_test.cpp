// map_views over an InputWriter (1.5): inputs written straight into the task rings.
// Every byte arrives, a writer that throws costs its own task only, an input too large
// is refused without a write, a retried task is written again, and the writer runs on
// its caller's thread or the loop thread, never another caller's.
#include "support/hostile.hpp"
#include "support/test_env.hpp"

#include <shoal/runtime.hpp>

#include <catch2/catch.hpp>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace shoal;
using namespace shoal::test;
using namespace std::chrono_literals;

namespace {

// Input i: "echo " and then i's own bytes (every byte value, in an order that depends on
// i), 5 to ~30 KiB long: an output that is off by one byte, or another input's, shows.
std::string payload(size_t i) {
  std::string s(5 + (i * 7919) % 30000, '\0');
  for (size_t k = 0; k < s.size(); ++k) s[k] = static_cast<char>((k * 131 + i * 17) & 0xff);
  return s;
}

InputWriter echo_writer(std::atomic<size_t>& writes) {
  return InputWriter{[](size_t i) { return 5 + payload(i).size(); },
                     [&writes](size_t i, std::span<std::byte> dst) {
                       const std::string p = payload(i);
                       // Not REQUIRE: this may run on the loop thread. A throw fails the task.
                       if (dst.size() != 5 + p.size()) throw std::logic_error("wrong size");
                       std::memcpy(dst.data(), "echo ", 5);
                       std::memcpy(dst.data() + 5, p.data(), p.size());
                       writes.fetch_add(1);
                     }};
}

}  // namespace

TEST_CASE("input writer: every input written in place comes back exactly", "[integration][pool][writer]") {
  auto pool = start_pool(pool_config(fixture("fx_fault"), 2));
  constexpr size_t kN = 400;
  std::atomic<size_t> writes{0};
  std::vector<int> seen(kN, 0);
  size_t wrong = 0;
  returns_within("map_views", 30s * kSlow, [&] {
    pool->map_views(kN, echo_writer(writes), [&](size_t i, const OutcomeView& v) {
      ++seen[i];
      if (v.status != Status::ok || v.output != payload(i)) ++wrong;
    });
  }, [&] { pool->terminate(); });
  CHECK(wrong == 0);
  CHECK(writes.load() == kN);
  CHECK(std::count(seen.begin(), seen.end(), 1) == static_cast<long>(kN));
  bounded_join(*pool);
}

TEST_CASE("input writer: a write that throws fails its own task, an input too large is refused unwritten",
          "[integration][pool][writer]") {
  auto pool = start_pool(pool_config(fixture("fx_fault"), 2));
  const size_t too_large = 64 * 1024;  // the ring itself (pool_config's queue capacity)
  std::atomic<size_t> writes_of_large{0};
  InputWriter writer{[&](size_t i) { return i == 3 ? too_large : size_t{8}; },
                     [&](size_t i, std::span<std::byte> dst) {
                       if (i == 3) writes_of_large.fetch_add(1);
                       if (i == 7) throw std::runtime_error("boom");
                       std::memcpy(dst.data(), "echo ", 5);
                       const std::string n = std::to_string(100 + i);  // 3 bytes
                       std::memcpy(dst.data() + 5, n.data(), 3);
                     }};
  std::vector<Outcome> outs(20);
  pool->map_views(20, writer, [&](size_t i, const OutcomeView& v) {
    outs[i].status = v.status;
    outs[i].reason = v.reason;
    outs[i].output = std::string(v.output);
    outs[i].error = std::string(v.error);
  });
  for (size_t i = 0; i < 20; ++i) {
    INFO("input " << i << ": " << to_string(outs[i].status) << " " << outs[i].output << outs[i].error);
    if (i == 3) {
      CHECK(outs[i].status == Status::rejected);
      CHECK(outs[i].reason == Reason::input_too_large);
    } else if (i == 7) {
      CHECK(outs[i].status == Status::error);
      CHECK(outs[i].error == "input writer for index 7 threw: boom");
    } else {
      CHECK(outs[i].status == Status::ok);
      CHECK(outs[i].output == std::to_string(100 + i));
    }
  }
  CHECK(writes_of_large.load() == 0);
  CHECK_THROWS_AS(pool->map_views(1, InputWriter{}, [](size_t, const OutcomeView&) {}), std::invalid_argument);
  CHECK(pool->apply("echo after").output == "after");  // the pool serves on
  bounded_join(*pool);
}

// The worker running a written task is killed: the task is retried (retries: 1), and its
// input is written again into the replacement's ring.
TEST_CASE("input writer: a task retried after its worker died is written again", "[integration][pool][writer]") {
  auto cfg = pool_config(fixture("fx_fault"), 1);
  cfg.retries = 1;
  auto pool = start_pool(cfg);
  const auto marker = std::filesystem::temp_directory_path() / ("shoal-writer-" + std::to_string(::getpid()));
  std::filesystem::remove(marker);
  const std::string input = "@" + marker.string() + " sleep 300";
  std::atomic<int> writes{0};
  InputWriter writer{[&](size_t) { return input.size(); },
                     [&](size_t, std::span<std::byte> dst) {
                       std::memcpy(dst.data(), input.data(), input.size());
                       writes.fetch_add(1);
                     }};
  Outcome got;
  std::thread caller([&] {
    pool->map_views(1, writer, [&](size_t, const OutcomeView& v) {
      got.status = v.status;
      got.output = std::string(v.output);
      got.attempts = v.attempts;
    });
  });
  REQUIRE(wait_for_file(marker, 20s * kSlow));
  const int pid = pool->worker_pids().at(0);
  REQUIRE(::kill(pid, SIGKILL) == 0);
  caller.join();
  std::filesystem::remove(marker);
  CHECK(got.status == Status::ok);
  CHECK(got.output == "slept");
  CHECK(got.attempts == 2);
  CHECK(writes.load() == 2);
  bounded_join(*pool);
}

TEST_CASE("input writer: it runs on its caller's thread or the loop thread, never another caller's",
          "[integration][pool][writer]") {
  auto pool = start_pool(pool_config(fixture("fx_fault"), 2));
  std::promise<std::thread::id> loop_id;
  pool->submit("echo x", [&](Outcome&&) { loop_id.set_value(std::this_thread::get_id()); });
  const std::thread::id loop = loop_id.get_future().get();
  std::atomic<size_t> foreign{0}, wrong{0};
  auto caller = [&](int tag) {
    const std::thread::id self = std::this_thread::get_id();
    const std::string text = "echo " + std::to_string(tag);
    InputWriter writer{[&](size_t) { return text.size(); },
                       [&](size_t, std::span<std::byte> dst) {
                         const auto on = std::this_thread::get_id();
                         if (on != self && on != loop) foreign.fetch_add(1);
                         std::memcpy(dst.data(), text.data(), text.size());
                       }};
    for (int round = 0; round < 50; ++round)
      pool->map_views(200, writer, [&](size_t, const OutcomeView& v) {
        if (v.status != Status::ok || v.output != std::to_string(tag)) wrong.fetch_add(1);
      });
  };
  returns_within("two writers' callers", 60s * kSlow, [&] {
    std::thread a(caller, 1), b(caller, 2);
    a.join();
    b.join();
  }, [&] { pool->terminate(); });
  CHECK(foreign.load() == 0);
  CHECK(wrong.load() == 0);
  bounded_join(*pool);
}
