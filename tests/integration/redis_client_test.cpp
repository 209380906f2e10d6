// Scale-out, the client side of failures (support/redis_fleet.hpp): answers lost after
// Redis applied a request and connections that never answer (a proxy that fails on cue,
// support/cut_proxy.hpp), refused AUTH/SELECT, how submit batches and resends, and flags
// over the config's redis: section. The fleet-level behaviour is in redis_test.cpp.
#include "support/cut_proxy.hpp"
#include "support/redis_fleet.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <set>

using namespace shoal::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST_CASE("redis: an answer lost after the outcomes were written repeats no result", "[integration][redis]") {
  Fleet fleet;
  const auto url = redis::parse_url(fleet.redis.url());
  REQUIRE(url.ok());
  std::vector<std::string> inputs;
  for (size_t i = 0; i < 20; ++i) inputs.push_back("echo " + std::to_string(i));
  submit(fleet, fleet.config("submit"), inputs);
  // The host's first write of results reaches Redis and is carried out; its answer never
  // comes back, the connection is cut instead.
  const std::string results = results_key();
  CutProxy proxy(fleet.redis.port(),
                 CutProxy::Options::cut("XADD\r\n$" + std::to_string(results.size()) + "\r\n" + results,
                                        [u = *url, results] {
                                          auto c = redis::Connection::open(u, 1s);
                                          if (!c) return false;
                                          auto r = c->command({"XLEN", results});
                                          return r && r->view().integer() > 0;
                                        }));
  REQUIRE(proxy.ok());
  Host a(fleet, fleet.config("a", HostOptions().with_url(proxy.url())), "a");
  wait_ready(fleet, {&a});

  const auto rows = collect(fleet.config("collect"), inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    INFO("task " << id(i));
    REQUIRE(rows.count(id(i)) == 1);
    CHECK(rows.at(id(i)).at("output").text == std::to_string(i));
  }
  CHECK(proxy.cuts() == 1);
  CHECK(fleet.results() == static_cast<int64_t>(inputs.size()));  // none written twice
  a.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
  CHECK(a.err().find("connected again") != std::string::npos);
  check_drained(fleet);
}

TEST_CASE("redis: a wake-up connection that never answers holds outcomes up briefly", "[integration][redis]") {
  Fleet fleet;
  // The host's main connection works; every later one (its wake-up connection) is
  // accepted and never answered.
  CutProxy proxy(fleet.redis.port(), CutProxy::Options::answer_first(1));
  REQUIRE(proxy.ok());
  Host a(fleet, fleet.config("a", HostOptions().with_url(proxy.url()).with_redis("  in_flight: 8\n")), "a");
  wait_ready(fleet, {&a});
  // Fewer tasks than slots: the host blocks in XREADGROUP while they run, and tries to
  // wake itself when their outcomes arrive.
  submit(fleet, fleet.config("submit"), std::vector<std::string>(5, "sleep 100"));
  const auto submitted = Clock::now();
  const auto rows = collect(fleet.config("collect"), 5);
  // A wake-up that hangs costs a third of the visibility timeout at most, never the 5 s
  // of a command's timeout (which would leave the entries idle past the visibility timeout).
  CHECK(seconds_since(submitted) < 3.0 * kSlow);
  CHECK(rows.size() == 5);
  a.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
}

TEST_CASE("redis: a refused AUTH or SELECT ends serve, submit and collect, no retrying", "[integration][redis]") {
  Fleet fleet;
  const std::string where = "127.0.0.1:" + std::to_string(fleet.redis.port());
  const std::pair<std::string, std::string> cases[] = {{"redis://:wrong@" + where, "AUTH refused"},
                                                       {"redis://" + where + "/5", "SELECT 5"}};
  int n = 0;
  for (const auto& [url, expected] : cases) {
    INFO(url);
    const std::string name = "h" + std::to_string(n++);
    Host h(fleet, fleet.config(name, HostOptions().with_url(url)), name);
    CHECK(h.wait_exit(10s) == 2);
    CHECK(h.err().find(expected) != std::string::npos);
    CHECK(h.err().find("retrying") == std::string::npos);
    check_fini(fleet, name);
    for (const std::string command : {"submit", "collect"}) {
      auto r = run_process({SHOAL_BIN, command, "--redis", url}, {}, bounded(10s));
      INFO(describe(r));
      CHECK(r.exit_code == 2);
      REQUIRE(lines_of(r.err).size() == 1);
      CHECK(r.err.find(expected) != std::string::npos);
    }
  }
}

TEST_CASE("redis: submit queues lines as they come, not when a batch is full", "[integration][redis]") {
  Fleet fleet;
  int pipe_fds[2];
  REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
  const auto out = fleet.dir.path() / "submit.out", err = fleet.dir.path() / "submit.err";
  // A producer that writes a few lines and keeps its end open, like `tail -f`.
  Background submitter({SHOAL_BIN, "submit", fleet.config("submit"), "--prefix", "t"},
                       "/proc/self/fd/" + std::to_string(pipe_fds[0]), out, err);
  ::close(pipe_fds[0]);
  REQUIRE(submitter.started());
  const auto write_lines = [&](const std::string& text) {
    REQUIRE(::write(pipe_fds[1], text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  };
  write_lines("echo 0\necho 1\necho 2\n");
  CHECK(eventually([&] { return fleet.integer({"XLEN", kStream}) == 3; }, 5s));
  write_lines("echo 3\n");
  CHECK(eventually([&] { return fleet.integer({"XLEN", kStream}) == 4; }, 5s));
  ::close(pipe_fds[1]);
  int code = -1;
  REQUIRE(submitter.wait(bounded(10s), code));
  CHECK(code == 0);
  check_submitted(read_file(out), 4);
}

TEST_CASE("redis: submit sends again only what Redis refused, never what it queued", "[integration][redis]") {
  Fleet fleet;
  // Memory for a part of the batch: Redis refuses the rest (OOM) until there is room. The
  // job's first reservation starts Redis's Lua engine, which takes ~75 KB of it.
  const std::string info(fleet.redis.command({"INFO", "memory"}).str());
  const auto at = info.find("used_memory:");
  REQUIRE(at != std::string::npos);
  const long long used = std::stoll(info.substr(at + 12));
  REQUIRE(fleet.redis.command({"CONFIG", "SET", "maxmemory", std::to_string(used + 300000)}).str() == "OK");
  constexpr size_t kLines = 400;
  std::string text;
  for (size_t i = 0; i < kLines; ++i) text += std::string(1000, 'x') + "\n";
  const auto input = fleet.dir.write("input.txt", text);
  const auto out = fleet.dir.path() / "submit.out", err = fleet.dir.path() / "submit.err";
  Background submitter({SHOAL_BIN, "submit", fleet.config("submit"), "--input", input.string(), "--prefix", "t"},
                       "/dev/null", out, err);
  REQUIRE(submitter.started());
  REQUIRE(eventually([&] { return read_file(err).find("OOM") != std::string::npos; }, 10s));
  const int64_t queued_before = fleet.integer({"XLEN", kStream});
  CHECK(queued_before > 0);
  CHECK(queued_before < static_cast<int64_t>(kLines));
  REQUIRE(fleet.redis.command({"CONFIG", "SET", "maxmemory", "0"}).str() == "OK");
  int code = -1;
  REQUIRE(submitter.wait(bounded(20s), code));
  INFO(read_file(err));
  CHECK(code == 0);
  check_submitted(read_file(out), 400);
  std::set<std::string> ids;
  for (const auto& e : redis::parse_entries(fleet.redis.command({"XRANGE", kStream, "-", "+"}).view()))
    ids.insert(std::string(e.field("id").value_or("")));
  CHECK(ids.size() == kLines);
  CHECK(fleet.integer({"XLEN", kStream}) == static_cast<int64_t>(kLines));  // none queued twice
}

TEST_CASE("redis: flags override the keys of the config's redis: section", "[integration][redis]") {
  Fleet fleet;
  // The file names a server where nothing listens and another stream; the flags win.
  const std::string elsewhere =
      fleet.dir.write("elsewhere.yaml", "pools:\n  work:\n    plugin: \"" + fixture("fx_fault") +
                                            "\"\n    workers: 2\nredis:\n  url: redis://127.0.0.1:1\n"
                                            "  stream: elsewhere\n  group: other\n").string();
  const std::vector<std::string> flags = {"--redis", fleet.redis.url(), "--stream", kStream};
  const auto input = fleet.dir.write("input.txt", "echo 0\necho 1\n");
  std::vector<std::string> argv = {SHOAL_BIN, "submit", elsewhere, "--input", input.string(), "--prefix", "t"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  auto r = run_process(argv, {}, bounded(10s));
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  CHECK(fleet.integer({"XLEN", kStream}) == 2);
  CHECK(fleet.integer({"EXISTS", "elsewhere"}) == 0);

  std::vector<std::string> serve_flags = flags;
  serve_flags.insert(serve_flags.end(), {"--group", "shoal"});
  Host a(fleet, elsewhere, "a", serve_flags);
  check_submitted(r.out, 2);
  argv = {SHOAL_BIN, "collect", elsewhere, "--job", job(), "--expect", "2"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  auto c = run_process(argv, {}, bounded(20s));
  INFO(describe(c));
  CHECK(c.exit_code == 0);
  CHECK(lines_of(c.out).size() == 2);
  CHECK(fleet.consumers().count("a") == 1);  // in the group the flag named
  a.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
  check_drained(fleet);
}
