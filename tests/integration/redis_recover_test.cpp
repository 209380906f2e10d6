// Scale-out (support/redis_fleet.hpp): entries delivered to a host whose answer never
// reached it. Redis keeps them pending to that host, which never saw them; after it
// connects again the host hands them back at once (ServeState::recover) instead of leaving
// them for the visibility timeout. Most hosts here run with the default 30 s timeout, so
// a stall shows as a time far past the bounds below.
#include "support/cut_proxy.hpp"
#include "support/redis_fleet.hpp"

#include <signal.h>

#include <cstdio>

using namespace shoal::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Entries delivered and not yet acknowledged, in the whole group.
int64_t pending(const redis::Url& url) {
  auto c = redis::Connection::open(url, 1s);
  if (!c) return -1;
  auto r = c->command({"XPENDING", kStream, "shoal"});
  return r && r->view().is_array() ? r->view()[0].integer() : -1;
}

// Times a task counting its runs in `file` ran ("+FILE CMD" in the fault plugin).
size_t runs(const std::filesystem::path& file) { return lines_of(read_file(file)).size(); }

// The outage took the reply: redis_fleet's bounds are for work done, not this timeout.
void check_no_timeout(const char* what, double seconds, std::chrono::milliseconds limit) {
  std::printf("%s: %.2f s (visibility timeout 30 s)\n", what, seconds);
  INFO("took " << seconds << " s; the visibility timeout is 30 s");
  CHECK(seconds < std::chrono::duration<double>(bounded(limit)).count());
}

}  // namespace

TEST_CASE("redis: entries whose XREADGROUP answer was lost run at once and not after the visibility timeout",
          "[integration][redis]") {
  Fleet fleet;
  const auto url = redis::parse_url(fleet.redis.url());
  REQUIRE(url.ok());
  // Queued before the host starts: its first read takes all four, Redis makes them
  // pending to it, and the answer is cut off.
  submit(fleet, fleet.config("submit"), {"echo 0", "echo 1", "echo 2", "echo 3"});
  CutProxy proxy(fleet.redis.port(), CutProxy::Options::cut("XREADGROUP", [u = *url] { return pending(u) == 4; }));
  REQUIRE(proxy.ok());
  const auto started = Clock::now();
  Host a(fleet, fleet.config("a", HostOptions().with_url(proxy.url()).with_visibility("30s")), "a");
  const auto rows = collect(fleet.config("collect"), 4);
  check_no_timeout("answer to XREADGROUP lost: host start to results", seconds_since(started), 5s);
  INFO("a stderr: " << a.err());
  for (size_t i = 0; i < 4; ++i) {
    INFO("task " << id(i));
    REQUIRE(rows.count(id(i)) == 1);
    CHECK(rows.at(id(i)).at("output").text == std::to_string(i));
  }
  CHECK(proxy.cuts() == 1);
  CHECK(count_of(a.err(), "redis: 4 entries delivered while the connection was down: handed back") == 1);
  CHECK(fleet.results() == 4);
  a.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
  CHECK(a.err().find("4 handed back") != std::string::npos);
  check_drained(fleet);
}

TEST_CASE("redis: a Redis restart that takes the answer to a read costs no visibility timeout and held tasks run once",
          "[integration][redis]") {
  Fleet fleet;
  Host a(fleet, fleet.config("a", HostOptions().with_visibility("30s")), "a");
  wait_ready(fleet, {&a});
  // Two tasks run across the restart; two slots stay free, so the host waits in a
  // blocking XREADGROUP meanwhile.
  const auto dir = fleet.dir.path();
  const std::string sleep = " sleep " + std::to_string(1000 * kSlow);
  submit(fleet, fleet.config("submit"), {"@" + (dir / "started0").string() + " +" + (dir / "runs0").string() + sleep,
                                         "@" + (dir / "started1").string() + " +" + (dir / "runs1").string() + sleep});
  REQUIRE(wait_for_file(dir / "started0", bounded(10s)));
  REQUIRE(wait_for_file(dir / "started1", bounded(10s)));
  // In one write, so that Redis runs both in one turn of its loop: the XADD serves the
  // host's blocked read (recorded in the append-only file) and SHUTDOWN exits before
  // that turn ends, when the answer would have been written.
  // The third task is the job's too: its seq reserved and counted in the sealed total,
  // as a producer adding to the job would (collect ends at the total).
  fleet.redis.command({"HSET", kStream + ":job:" + job(), "next", "3", "total", "3"});
  {
    auto c = fleet.redis.connect();
    auto r = c.pipeline({{"XADD", kStream, "*", "id", id(2), "job", job(), "seq", "2", "input",
                          "+" + (dir / "runs2").string() + " echo lost"},
                         {"SHUTDOWN"}});
    CHECK_FALSE(r.ok());  // no answers: Redis is gone
  }
  REQUIRE(fleet.redis.stop());  // reaps it
  REQUIRE(logged(a, "retrying", 10s));
  REQUIRE(fleet.redis.start());
  const auto restarted = Clock::now();
  const auto rows = collect(fleet.config("collect"), 3);
  check_no_timeout("Redis restart: restart to results", seconds_since(restarted), 5s);
  INFO("a stderr: " << a.err());
  REQUIRE(rows.count(id(2)) == 1);
  CHECK(rows.at(id(2)).at("output").text == "lost");
  for (size_t i = 0; i < 2; ++i) {
    INFO("task " << id(i));
    REQUIRE(rows.count(id(i)) == 1);
    CHECK(rows.at(id(i)).at("output").text == "slept");
  }
  CHECK(count_of(a.err(), "redis: 1 entry delivered while the connection was down: handed back") == 1);
  // Held across the restart: refreshed, not handed back, so run once.
  CHECK(runs(dir / "runs0") == 1);
  CHECK(runs(dir / "runs1") == 1);
  CHECK(runs(dir / "runs2") == 1);
  CHECK(fleet.results() == 3);
  a.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
  check_drained(fleet);
}

TEST_CASE("redis: a delivery lost with the connection is no failed delivery of a task that crashes",
          "[integration][redis]") {
  Fleet fleet;
  const auto url = redis::parse_url(fleet.redis.url());
  REQUIRE(url.ok());
  const auto counter = fleet.dir.path() / "runs";
  submit(fleet, fleet.config("submit"), {"+" + counter.string() + " segv"});
  CutProxy proxy(fleet.redis.port(), CutProxy::Options::cut("XREADGROUP", [u = *url] { return pending(u) == 1; }));
  REQUIRE(proxy.ok());
  // The usual short visibility timeout: the retries after each crash are not timed here.
  Host a(fleet, fleet.config("a", HostOptions().with_url(proxy.url()).with_max_deliveries(3)), "a");
  const auto rows = collect(fleet.config("collect"), 1, 1);
  REQUIRE(rows.count(id(0)) == 1);
  CHECK(rows.at(id(0)).at("status").text == "crashed");
  CHECK(proxy.cuts() == 1);
  // Three runs that crashed, after a delivery that never arrived.
  CHECK(runs(counter) == 3);
  const auto dead = redis::parse_entries(fleet.redis.command({"XRANGE", kStream + ":dead", "-", "+"}).view());
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].field("deliveries") == std::optional<std::string_view>("4"));
  a.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
  INFO("a stderr: " << a.err());
  CHECK(count_of(a.err(), "1 entry delivered while the connection was down: handed back") == 1);
  CHECK(a.err().find("failed delivery 3 of 3: dead letter") != std::string::npos);
  CHECK(a.err().find("1 dead-lettered, 2 retried, 1 handed back") != std::string::npos);
  check_drained(fleet);
}

TEST_CASE("redis: a host started again under its --consumer runs at once what it held before",
          "[integration][redis]") {
  Fleet fleet;
  const auto dir = fleet.dir.path();
  const std::string config = fleet.config("a", HostOptions().with_visibility("30s"));
  {
    Host before(fleet, config, "before", {}, {}, "a");
    submit(fleet, fleet.config("submit"), {"@" + (dir / "started").string() + " +" + (dir / "runs").string() +
                                           " sleep " + std::to_string(1000 * kSlow)});
    REQUIRE(wait_for_file(dir / "started", bounded(10s)));
    const std::vector<int> workers = before.workers();
    before.signal(SIGKILL);
    CHECK(before.wait_exit(10s) == 128 + SIGKILL);
    CHECK(all_gone(workers, bounded(10s)));
  }
  const auto restarted = Clock::now();
  Host a(fleet, config, "a");
  const auto rows = collect(fleet.config("collect"), 1);
  check_no_timeout("host started again: start to result", seconds_since(restarted), 5s);
  INFO("a stderr: " << a.err());
  REQUIRE(rows.count(id(0)) == 1);
  CHECK(rows.at(id(0)).at("output").text == "slept");
  CHECK(runs(dir / "runs") == 2);
  // The process before may have died of the task: that delivery counts as failed.
  CHECK(count_of(a.err(), "redis: 1 entry pending to consumer a from an earlier run: handed back as failed "
                          "deliveries") == 1);
  a.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
  check_drained(fleet);
}

TEST_CASE("redis: a second live host with the same --consumer keeps its entries", "[integration][redis]") {
  Fleet fleet;
  const auto dir = fleet.dir.path();
  const std::string config = fleet.config("a", HostOptions().with_visibility("30s"));
  Host a(fleet, config, "a");
  wait_ready(fleet, {&a});
  submit(fleet, fleet.config("submit"), {"@" + (dir / "started").string() + " +" + (dir / "runs").string() +
                                         " sleep " + std::to_string(2000 * kSlow)});
  REQUIRE(wait_for_file(dir / "started", bounded(10s)));
  // A misconfiguration: the entry pending to "a" is running in the other process.
  Host twin(fleet, config, "twin", {}, {}, "a");
  CHECK(logged(twin, "redis: another connection is named shoal:a: 1 entry pending to consumer a", 10s));
  const auto rows = collect(fleet.config("collect"), 1);
  REQUIRE(rows.count(id(0)) == 1);
  CHECK(rows.at(id(0)).at("consumer").text == "a");
  CHECK(runs(dir / "runs") == 1);
  CHECK(fleet.results() == 1);
  for (Host* h : {&a, &twin}) {
    h->signal(SIGTERM);
    CHECK(h->wait_exit(20s) == 0);
  }
  CHECK(twin.err().find("handed back") == std::string::npos);
  check_drained(fleet);
}
