// Scale-out as users run it (support/redis_fleet.hpp): a real redis-server per test, the
// built `shoal serve` hosts in the background with real workers running the fault plugin,
// `shoal submit` and `shoal collect` as subprocesses. The stream's own state (results,
// dead letters, pending entries) is read back through the runtime's Redis client.
// Client-side failures (lost answers, silent connections) are in redis_client_test.cpp.
#include "support/redis_fleet.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <set>

using namespace shoal::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST_CASE("redis: 2000 tasks through two serve hosts, one result per task id", "[integration][redis]") {
  Fleet fleet;
  Host a(fleet, fleet.config("a"), "a");
  Host b(fleet, fleet.config("b"), "b");
  wait_ready(fleet, {&a, &b});
  std::vector<std::string> inputs;
  for (size_t i = 0; i < 2000; ++i) inputs.push_back("echo value-" + std::to_string(i));
  submit(fleet, fleet.config("submit"), inputs);

  const auto rows = collect(fleet.config("collect"), inputs.size());
  std::map<std::string, size_t> by_host;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto it = rows.find(id(i));
    INFO("task " << id(i));
    REQUIRE(it != rows.end());
    CHECK(it->second.at("status").text == "ok");
    CHECK(it->second.at("output").text == "value-" + std::to_string(i));
    CHECK(it->second.at("seq").text == std::to_string(i));
    CHECK(it->second.at("attempts").text == "1");
    ++by_host[it->second.at("consumer").text];
  }
  INFO("tasks per host: a " << by_host["a"] << ", b " << by_host["b"]);
  CHECK(by_host.size() == 2);
  CHECK(by_host["a"] > 0);
  CHECK(by_host["b"] > 0);
  CHECK(fleet.results() == 2000);  // no fault: no duplicate either
  // Without --expect, collect prints what is there and exits.
  auto all = run_process({SHOAL_BIN, "collect", fleet.config("collect"), "--job", job()}, {}, bounded(30s));
  INFO(describe(all));
  CHECK(all.exit_code == 0);
  CHECK(lines_of(all.out).size() == 2000);

  a.signal(SIGTERM);
  b.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
  CHECK(b.wait_exit(20s) == 0);
  check_fini(fleet, "a");
  check_fini(fleet, "b");
  check_drained(fleet);
  CHECK(fleet.consumers().empty());  // each host left the group, holding nothing
}

TEST_CASE("redis: kill -9 of a host mid-run, the other claims its entries", "[integration][redis]") {
  Fleet fleet;
  Host a(fleet, fleet.config("a"), "a");
  Host b(fleet, fleet.config("b"), "b");
  wait_ready(fleet, {&a, &b});
  constexpr size_t kTasks = 400;
  submit(fleet, fleet.config("submit"), std::vector<std::string>(kTasks, "sleep 5"));

  REQUIRE(eventually([&] { return fleet.results() >= 50 && fleet.consumers()["a"] > 0; }, 20s));
  const std::vector<int> workers = a.workers();
  CHECK(workers.size() == 2);
  a.signal(SIGKILL);
  CHECK(a.wait_exit(10s) == 128 + SIGKILL);

  // What the dead host held stays pending under its name until b claims it, a visibility
  // timeout later.
  std::set<std::string> orphans;
  auto pending = fleet.redis.command({"XPENDING", kStream, "shoal", "-", "+", "100", "a"});
  for (size_t i = 0; i < pending.view().size(); ++i) {
    const std::string entry(pending.view()[i][0].str());
    auto e = redis::parse_entries(fleet.redis.command({"XRANGE", kStream, entry, entry}).view());
    if (!e.empty()) orphans.insert(std::string(e[0].field("id").value_or("")));
  }
  REQUIRE_FALSE(orphans.empty());
  // Its workers follow it (parent-death signal), after the grace their tasks get.
  CHECK(all_gone(workers, bounded(10s)));

  const auto rows = collect(fleet.config("collect"), kTasks);
  for (size_t i = 0; i < kTasks; ++i) {
    INFO("task " << id(i));
    REQUIRE(rows.count(id(i)) == 1);
    CHECK(rows.at(id(i)).at("status").text == "ok");
  }
  // b ran every orphan.
  std::set<std::string> run_by_b;
  for (const auto& e : redis::parse_entries(fleet.redis.command({"XRANGE", results_key(), "-", "+"}).view()))
    if (e.field("consumer") == "b") run_by_b.insert(std::string(e.field("id").value_or("")));
  for (const auto& o : orphans) {
    INFO("orphan " << o);
    CHECK(run_by_b.count(o) == 1);
  }
  // a wrote each result in one transaction with its acknowledgement: what it left pending
  // has no result of a's, so none is written twice.
  const int64_t duplicates = fleet.results() - static_cast<int64_t>(kTasks);
  std::printf("kill -9 of a host: it held %zu entries, the other host ran them, %lld duplicate results\n",
              orphans.size(), static_cast<long long>(duplicates));
  CHECK(duplicates == 0);

  b.signal(SIGTERM);
  CHECK(b.wait_exit(20s) == 0);
  check_fini(fleet, "b");
  check_drained(fleet);
}

TEST_CASE("redis: SIGTERM and SIGINT mid-run hand back what did not start at once, running tasks get one grace",
          "[integration][redis]") {
  Fleet fleet;
  // Every task outlasts the grace, so those running at the signal are cut short. Each
  // marks its start in `started`. max_deliveries 2, while some entries are handed back
  // twice: a hand-back is no failed delivery.
  constexpr size_t kTasks = 12;
  const auto started = fleet.dir.path() / "started";
  std::filesystem::create_directory(started);
  std::vector<std::string> inputs;
  for (size_t i = 0; i < kTasks; ++i) inputs.push_back("@" + (started / std::to_string(i)).string() + " sleep 4000");
  const auto running = [&] {
    return std::distance(std::filesystem::directory_iterator(started), std::filesystem::directory_iterator{});
  };
  const auto options = [](unsigned workers) {
    return HostOptions().with_workers(workers).with_grace("1500ms").with_max_deliveries(2);
  };

  // Stops `host` with `sig` while each of its workers runs a task and as many wait in its
  // pool (two entries held per worker), and checks what a stop promises.
  const auto stop_mid_run = [&](Host& host, int sig, unsigned workers) {
    const int64_t held = 2 * workers;
    REQUIRE(eventually([&] { return running() == workers && fleet.consumers()[host.name()] == held; }, 10s));
    const auto signalled = Clock::now();
    host.signal(sig);
    // The ones waiting come back at once, idle past the visibility timeout for any host.
    const std::string visibility = std::to_string(1000 * kSlow);
    CHECK(eventually(
        [&] {
          auto idle = fleet.redis.command({"XPENDING", kStream, "shoal", "IDLE", visibility, "-", "+", "100", host.name()});
          return idle.view().size() == workers;
        },
        500ms));
    CHECK(host.wait_exit(20s) == 0);
    // The running ones had shutdown.grace, and once only (not before it, nor twice).
    const double secs = seconds_since(signalled);
    CHECK(secs >= 1.4);
    CHECK(secs < 1.5 + 0.9 * kSlow);
    CHECK(host.err().find("stopping on " + std::string(sig == SIGINT ? "SIGINT" : "SIGTERM")) != std::string::npos);
    CHECK(host.err().find(" " + std::to_string(held) + " handed back") != std::string::npos);
    check_fini(fleet, host.name(), workers);
    std::filesystem::remove_all(started);
    std::filesystem::create_directory(started);
  };

  Host a(fleet, fleet.config("a", options(2)), "a");
  wait_ready(fleet, {&a});
  submit(fleet, fleet.config("submit"), inputs);
  stop_mid_run(a, SIGTERM, 2);
  // b claims the four a handed back first, runs them, and reads four more.
  Host b(fleet, fleet.config("b", options(4)), "b");
  stop_mid_run(b, SIGINT, 4);
  CHECK(fleet.results() == 0);

  // c runs all twelve at once, the four handed back twice among them.
  Host c(fleet, fleet.config("c", options(12)), "c");
  const auto rows = collect(fleet.config("collect"), kTasks);
  for (size_t i = 0; i < kTasks; ++i) {
    INFO("task " << id(i));
    REQUIRE(rows.count(id(i)) == 1);
    CHECK(rows.at(id(i)).at("status").text == "ok");
    CHECK(rows.at(id(i)).at("consumer").text == "c");
  }
  CHECK(fleet.results() == static_cast<int64_t>(kTasks));  // no duplicate
  CHECK(fleet.integer({"XLEN", kStream + ":dead"}) == 0);
  c.signal(SIGTERM);
  CHECK(c.wait_exit(20s) == 0);
  check_fini(fleet, "c", 12);
  check_drained(fleet);
}

TEST_CASE("redis: submit waits while the stream is full and drops nothing", "[integration][redis]") {
  Fleet fleet;
  std::string text;
  for (size_t i = 0; i < 40; ++i) text += "echo " + std::to_string(i) + "\n";
  const auto input = fleet.dir.write("input.txt", text);
  const auto out = fleet.dir.path() / "submit.out", err = fleet.dir.path() / "submit.err";
  Background submitter({SHOAL_BIN, "submit", fleet.config("submit", HostOptions().with_redis("  max_stream_length: 10\n")), "--input",
                        input.string(), "--prefix", "t"},
                       "/dev/null", out, err);
  REQUIRE(submitter.started());
  // No host yet: it fills the stream up to the limit, not one entry more, and waits.
  REQUIRE(eventually([&] { return read_file(err).find("waiting") != std::string::npos; }, 10s));
  CHECK(fleet.integer({"XLEN", kStream}) == 10);

  Host a(fleet, fleet.config("a"), "a");
  int code = -1;
  REQUIRE(submitter.wait(bounded(30s), code));
  CHECK(code == 0);
  check_submitted(read_file(out), 40);
  const auto rows = collect(fleet.config("collect"), 40);
  for (size_t i = 0; i < 40; ++i) {
    INFO("task " << id(i));
    REQUIRE(rows.count(id(i)) == 1);
    CHECK(rows.at(id(i)).at("output").text == std::to_string(i));
  }
  a.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
  check_drained(fleet);
}

TEST_CASE("redis: a task that crashes every time ends in the dead-letter stream", "[integration][redis]") {
  Fleet fleet;
  Host a(fleet, fleet.config("a"), "a");
  wait_ready(fleet, {&a});
  std::vector<std::string> inputs;
  for (size_t i = 0; i < 10; ++i) inputs.push_back(i == 5 ? "segv" : "echo " + std::to_string(i));
  submit(fleet, fleet.config("submit"), inputs);

  const auto rows = collect(fleet.config("collect"), inputs.size(), 1);
  for (size_t i = 0; i < inputs.size(); ++i) {
    INFO("task " << id(i));
    REQUIRE(rows.count(id(i)) == 1);
    CHECK(rows.at(id(i)).at("status").text == (i == 5 ? "crashed" : "ok"));
  }
  CHECK(rows.at(id(5)).at("error").text.find("SIGSEGV") != std::string::npos);

  const auto dead = redis::parse_entries(fleet.redis.command({"XRANGE", kStream + ":dead", "-", "+"}).view());
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].field("id") == std::optional<std::string_view>(id(5)));
  CHECK(dead[0].field("input") == std::optional<std::string_view>("segv"));
  CHECK(dead[0].field("deliveries") == std::optional<std::string_view>("3"));
  const auto result = Parser(std::string(dead[0].field("result").value_or(""))).row();
  REQUIRE(result.has_value());
  CHECK(result->at("status").text == "crashed");
  CHECK(result->at("id").text == id(5));
  CHECK(fleet.results() == static_cast<int64_t>(inputs.size()));

  a.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
  CHECK(a.err().find("1 dead-lettered, 2 retried") != std::string::npos);
  check_drained(fleet);
}

TEST_CASE("redis: Redis restarted mid-run, the hosts reconnect and every task completes", "[integration][redis]") {
  Fleet fleet;
  Host a(fleet, fleet.config("a"), "a");
  // b is stopped while Redis is down; its grace passes during the outage.
  Host b(fleet, fleet.config("b", HostOptions().with_grace("100ms")), "b");
  wait_ready(fleet, {&a, &b});
  constexpr size_t kTasks = 400;
  submit(fleet, fleet.config("submit"), std::vector<std::string>(kTasks, "sleep 20"));

  REQUIRE(eventually([&] { return fleet.results() >= 80; }, 20s));
  CHECK(fleet.results() < static_cast<int64_t>(kTasks));  // the hosts hold work when it stops
  REQUIRE(fleet.redis.stop());
  // Both notice while it is down, then find it again on the same port and data folder.
  REQUIRE(eventually([&] { return a.err().find("retrying") != std::string::npos &&
                                  b.err().find("retrying") != std::string::npos; }, 10s));
  // Meanwhile they hold outcomes they cannot write, and must wait for Redis, not spin: an
  // outage well past a third of the visibility timeout, when refreshes would fall due,
  // and past the grace of b, stopped with its outcomes unwritten.
  b.signal(SIGTERM);
  const double cpu_a = a.cpu_seconds(), cpu_b = b.cpu_seconds();
  const auto down = Clock::now();
  const auto outage = std::chrono::milliseconds(1500 * kSlow);
  eventually([&] { return Clock::now() - down >= outage; }, outage + 1s);  // the window measured
  const double wall = seconds_since(down);
  INFO("outage " << wall << " s; CPU a " << a.cpu_seconds() - cpu_a << " s, b " << b.cpu_seconds() - cpu_b << " s");
  CHECK(a.cpu_seconds() - cpu_a < 0.2 * wall);
  CHECK(b.cpu_seconds() - cpu_b < 0.2 * wall);
  REQUIRE(fleet.redis.start());
  // b writes what it held once Redis is back, then exits.
  CHECK(b.wait_exit(20s) == 0);

  const auto rows = collect(fleet.config("collect"), kTasks);
  for (size_t i = 0; i < kTasks; ++i) {
    INFO("task " << id(i));
    REQUIRE(rows.count(id(i)) == 1);
    CHECK(rows.at(id(i)).at("status").text == "ok");
  }
  const long long duplicates = static_cast<long long>(fleet.results()) - static_cast<long long>(kTasks);
  std::printf("redis restart: %lld duplicate results\n", duplicates);
  // At most the entries both held, each run by its owner and claimed by the other host
  // before its owner refreshed it.
  CHECK(duplicates >= 0);
  CHECK(duplicates <= 8);
  a.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
  CHECK(a.err().find("connected again") != std::string::npos);
  CHECK(b.err().find("connected again") != std::string::npos);
  check_drained(fleet);
}

TEST_CASE("redis: a task longer than the visibility timeout is not taken from a live host", "[integration][redis]") {
  Fleet fleet;
  // One entry in flight per host: the owner is full while the task runs, the other idle.
  Host a(fleet, fleet.config("a", HostOptions().with_redis("  in_flight: 1\n")), "a");
  Host b(fleet, fleet.config("b", HostOptions().with_redis("  in_flight: 1\n")), "b");
  wait_ready(fleet, {&a, &b});
  const auto started = fleet.dir.path() / "started";
  submit(fleet, fleet.config("submit"), {"@" + started.string() + " sleep " + std::to_string(3500 * kSlow)});
  REQUIRE(wait_for_file(started, bounded(10s)));
  const double cpu_a = a.cpu_seconds(), cpu_b = b.cpu_seconds();

  // 3.5 times the visibility timeout: the owner and the delivery count never change while
  // the other host keeps looking for idle entries.
  std::set<std::string> owners;
  int64_t max_deliveries = 0, checks = 0;
  CHECK(eventually(
      [&] {
        auto p = fleet.redis.command({"XPENDING", kStream, "shoal", "-", "+", "10"});
        if (p.view().size() == 0) return true;  // done and acknowledged
        owners.insert(std::string(p.view()[0][1].str()));
        max_deliveries = std::max<int64_t>(max_deliveries, p.view()[0][3].integer());
        ++checks;
        return false;
      },
      10s));
  CHECK(checks > 100);
  CHECK(owners.size() == 1);
  CHECK(max_deliveries == 1);
  // Neither the full host nor the idle one spins while they wait (3.5 s of wall time).
  CHECK(a.cpu_seconds() - cpu_a < 0.5 * kSlow);
  CHECK(b.cpu_seconds() - cpu_b < 0.5 * kSlow);

  const auto rows = collect(fleet.config("collect"), 1);
  REQUIRE(rows.count(id(0)) == 1);
  CHECK(rows.at(id(0)).at("status").text == "ok");
  CHECK(rows.at(id(0)).at("consumer").text == *owners.begin());
  CHECK(fleet.results() == 1);
  a.signal(SIGTERM);
  b.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
  CHECK(b.wait_exit(20s) == 0);
}

TEST_CASE("redis: serve warns once when Redis runs without an append-only file", "[integration][redis]") {
  Fleet fleet(RedisServer::Options{false});
  Host a(fleet, fleet.config("a"), "a");
  wait_ready(fleet, {&a});
  a.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
  const std::string err = a.err();
  INFO(err);
  size_t warnings = 0;
  for (const auto& line : lines_of(err))
    if (line.find("appendonly no") != std::string::npos) ++warnings;
  CHECK(warnings == 1);
}

TEST_CASE("redis: usage errors of serve, submit and collect", "[integration][redis]") {
  TempDir dir;
  const std::string bare = dir.write("bare.yaml", "pools:\n  p:\n    plugin: /x.so\n").string();
  const auto one_line = [](const std::vector<std::string>& args, const std::string& expected) {
    std::vector<std::string> argv = {SHOAL_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run_process(argv, {}, bounded(30s));
    INFO(describe(r));
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    REQUIRE(lines_of(r.err).size() == 1);
    CHECK(r.err.find(expected) != std::string::npos);
  };
  one_line({"serve"}, "serve: missing CONFIG");
  one_line({"serve", bare}, "missing --redis URL");
  one_line({"submit", "--redis", "http://x"}, "expected redis://");
  one_line({"submit", "--redis", "redis://h:99999"}, "port '99999'");
  one_line({"collect", "--redis", "redis://127.0.0.1:1", "--expect", "many"}, "--expect needs a positive number");
  one_line({"collect", "--redis", "redis://127.0.0.1:1", "--bogus"}, "unknown option '--bogus'");
  one_line({"collect", "--redis", "redis://127.0.0.1:1"}, "127.0.0.1:1");  // nothing listens there
}
