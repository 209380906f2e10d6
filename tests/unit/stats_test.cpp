// Pool counters (runtime/src/pool/stats.*): the histogram's buckets and percentiles, and
// the bounded list of exit causes.
#include "pool/stats.hpp"

#include <catch2/catch.hpp>

using shoal::Outcome;
using shoal::ExitCause;
using shoal::kExitCauses;
using shoal::Status;
using shoal::detail::DurationHistogram;
using shoal::detail::PoolCounters;

TEST_CASE("stats: each bucket holds values within 12.5% of its upper bound", "[unit][stats]") {
  for (uint64_t v : {0ull, 7ull, 8ull, 17ull, 1000ull, 999'999ull, 1'000'000ull, 123'456'789'012ull}) {
    INFO("value " << v);
    const size_t i = DurationHistogram::index(v);
    const uint64_t upper = DurationHistogram::upper_bound(i);
    CHECK(upper >= v);
    CHECK(static_cast<double>(upper) <= static_cast<double>(v) * 1.125 + 1);
    if (i > 0) CHECK(DurationHistogram::upper_bound(i - 1) < v);  // the bucket below ends under it
  }
  CHECK(DurationHistogram::index(UINT64_MAX) == DurationHistogram::kBuckets - 1);
}

TEST_CASE("stats: percentiles of a known distribution", "[unit][stats]") {
  DurationHistogram h;
  CHECK(h.quantile(0.5) == 0);
  for (uint64_t i = 1; i <= 100; ++i) h.add(i * 1000);  // 1 µs .. 100 µs
  const double p50 = static_cast<double>(h.quantile(0.50)), p99 = static_cast<double>(h.quantile(0.99));
  CHECK(p50 >= 50'000);
  CHECK(p50 <= 50'000 * 1.125);
  CHECK(p99 >= 99'000);
  CHECK(p99 <= 99'000 * 1.125);
}

TEST_CASE("stats: outcomes per worker and pool, exit causes bounded", "[unit][stats]") {
  PoolCounters c(2);
  Outcome ok;
  ok.status = Status::ok;
  ok.worker = 1;
  ok.duration = std::chrono::microseconds(10);
  for (int i = 0; i < 5; ++i) c.on_outcome(ok.status, ok.worker, ok.duration);
  Outcome cancelled;
  cancelled.status = Status::cancelled;  // never ran: no worker
  c.on_outcome(cancelled.status, cancelled.worker, cancelled.duration);
  c.on_refused();
  c.on_start(0, 100);
  for (int i = 0; i < 20; ++i) {
    c.on_exit(0, 100 + i, "cause " + std::to_string(i), i % 2 == 0 ? ExitCause::signal : ExitCause::exit);
    c.on_start(0, 101 + i);
  }
  c.on_exit(0, 120, "cause 0", ExitCause::timeout_kill);   // known: counted under its own name
  c.on_start(0, 121);
  // A reload starts the replacement before the old process ends: the slot's pid stays
  // the replacement's.
  c.on_exit(0, 120, "cause 99", ExitCause::killed);  // new, and the list is full: "other"
  const auto s = c.snapshot();
  CHECK(s.outcomes[static_cast<size_t>(Status::ok)] == 5);
  CHECK(s.outcomes[static_cast<size_t>(Status::cancelled)] == 1);
  CHECK(s.outcomes[static_cast<size_t>(Status::rejected)] == 1);
  REQUIRE(s.workers.size() == 2);
  CHECK(s.workers[1].tasks == 5);
  CHECK(s.workers[1].busy == std::chrono::microseconds(50));
  CHECK(s.workers[0].tasks == 0);
  CHECK(s.workers[0].starts == 22);
  CHECK(s.restarts == 21);
  CHECK(s.workers[0].pid == 121);
  const auto& exits = s.workers[0].exits;
  CHECK(exits.size() == 17);  // 16 causes and "other"
  CHECK(exits.front() == std::make_pair(std::string("cause 0"), 2u));
  CHECK(exits.back() == std::make_pair(std::string("other"), 5u));  // causes 16..19 and 99
  // The fixed labels count every end, whatever the list of texts kept.
  const std::array<uint64_t, kExitCauses> causes{10, 0, 10, 1, 1};  // exit, error, signal, timeout_kill, killed
  CHECK(s.workers[0].exit_causes == causes);
  CHECK(s.exit_causes == causes);
}

TEST_CASE("stats: the fixed duration buckets count a value equal to a bound in that bucket", "[unit][stats]") {
  PoolCounters c(1);
  using namespace std::chrono_literals;
  for (auto d : {std::chrono::nanoseconds(1), std::chrono::nanoseconds(100us), std::chrono::nanoseconds(101us),
                 std::chrono::nanoseconds(1s), std::chrono::nanoseconds(61s)})
    c.on_outcome(Status::ok, 0, d);
  c.on_outcome(Status::crashed, 0, 2s);  // did not return: not a task duration
  const auto b = c.snapshot().durations;
  CHECK(b.cumulative[0] == 2);   // <= 100us
  CHECK(b.cumulative[1] == 3);   // <= 500us
  CHECK(b.cumulative[7] == 3);   // <= 500ms
  CHECK(b.cumulative[8] == 4);   // <= 1s
  CHECK(b.cumulative[12] == 4);  // <= 60s
  CHECK(b.cumulative[13] == 5);  // +Inf
  CHECK(b.sum == std::chrono::nanoseconds(1) + 100us + 101us + 1s + 61s);
}
