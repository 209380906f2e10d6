// Scale-out as users run it: a real redis-server per test (support/redis_server.hpp), the
// built `shoal serve` hosts in the background with real workers running the fault plugin,
// `shoal submit` and `shoal collect` as subprocesses. The stream's own state (results,
// dead letters, pending entries) is read back through the runtime's Redis client.
#include "fixture_paths.hpp"
#include "support/json_rows.hpp"
#include "support/redis_server.hpp"
#include "support/subprocess.hpp"
#include "support/test_env.hpp"

#include "redis/streams.hpp"

#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>

using namespace shoal::test;
using namespace std::chrono_literals;
namespace redis = shoal::detail::redis;

namespace {

const std::string kStream = "tasks";
const std::vector<std::string> kKeys = {"seq", "status", "output", "error", "worker", "attempts", "ms", "id",
                                        "consumer"};

// Checks `cond` every 10 ms until it holds or `limit` passes.
bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit * kSlow;
  for (;;) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

// One redis-server, a folder, and configs that point at both.
struct Fleet {
  explicit Fleet(RedisServer::Options options = {}) : redis(options) {}

  // A config whose pool runs the fault plugin, each worker's fini appending to NAME.fini.
  std::string config(const std::string& name, const std::string& redis_extra = "") const {
    const std::string text = "pools:\n  work:\n    plugin: \"" + fixture("fx_fault") +
                             "\"\n    workers: 2\n    shutdown: {grace: 3s, fini_timeout: 2s}\n"
                             "    params: {fini_marker: \"" + marker(name).string() + "\"}\n"
                             "redis:\n  url: " + redis.url() + "\n  stream: " + kStream +
                             "\n  visibility_timeout: " + std::to_string(kSlow) + "s\n  max_deliveries: 3\n" +
                             redis_extra;
    return dir.write(name + ".yaml", text).string();
  }
  std::filesystem::path marker(const std::string& name) const { return dir.path() / (name + ".fini"); }

  int64_t integer(const redis::Args& args) const { return redis.command(args).view().integer(); }
  int64_t results() const { return integer({"XLEN", kStream + ":results"}); }

  // Consumers of the group, by name, with their pending counts.
  std::map<std::string, int64_t> consumers() const {
    std::map<std::string, int64_t> out;
    auto r = redis.command({"XINFO", "CONSUMERS", kStream, "shoal"});
    for (size_t i = 0; i < r.view().size(); ++i) {
      const auto c = r.view()[i];
      std::string name;
      int64_t pending = 0;
      for (size_t k = 0; k + 1 < c.size(); k += 2) {
        if (c[k].str() == "name") name = std::string(c[k + 1].str());
        if (c[k].str() == "pending") pending = c[k + 1].integer();
      }
      out[name] = pending;
    }
    return out;
  }

  RedisServer redis;
  TempDir dir;
};

// `shoal serve` in the background; killed and reaped by the destructor if still running.
class Host {
 public:
  Host(const Fleet& fleet, const std::string& config, const std::string& name)
      : name_(name),
        err_(fleet.dir.path() / (name + ".err")),
        process_({SHOAL_BIN, "serve", config, "--consumer", name}, "/dev/null", fleet.dir.path() / (name + ".out"),
                 err_) {
    REQUIRE(process_.started());
  }
  const std::string& name() const { return name_; }
  int pid() const { return process_.pid(); }
  void signal(int sig) const { process_.signal(sig); }
  std::string err() const { return read_file(err_); }
  int wait_exit(std::chrono::seconds limit) {
    int code = -1;
    INFO(name_ << " stderr: " << err());
    REQUIRE(process_.wait(limit * kSlow, code));
    return code;
  }
  // CPU time the host process has used (its workers not included), in seconds.
  double cpu_seconds() const {
    const std::string stat = read_file("/proc/" + std::to_string(pid()) + "/stat");
    std::istringstream rest(stat.substr(stat.rfind(')') + 2));
    std::string field;
    unsigned long long ticks = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i)
      if (i >= 14) ticks += std::stoull(field);  // utime, stime
    return static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  // The host's workers: the shoal-worker processes whose parent it is.
  std::vector<int> workers() const {
    std::vector<int> pids;
    for (const auto& d : std::filesystem::directory_iterator("/proc")) {
      const std::string stat = read_file(d.path() / "stat");
      const auto close = stat.rfind(')');
      if (close == std::string::npos || stat.find("(shoal-worker)") == std::string::npos) continue;
      std::istringstream rest(stat.substr(close + 2));
      std::string state;
      int ppid = 0;
      rest >> state >> ppid;
      if (ppid == pid()) pids.push_back(std::stoi(d.path().filename().string()));
    }
    return pids;
  }

 private:
  std::string name_;
  std::filesystem::path err_;
  Background process_;
};

// Waits until every host is connected with its group in place: each names its connection
// shoal:CONSUMER once it is (Redis adds a consumer to XINFO only when it first gets entries).
void wait_ready(const Fleet& fleet, const std::vector<const Host*>& hosts) {
  const bool ready = eventually(
      [&] {
        const std::string clients(fleet.redis.command({"CLIENT", "LIST"}).str());
        return std::all_of(hosts.begin(), hosts.end(), [&](const Host* h) {
          return clients.find(" name=shoal:" + h->name() + " ") != std::string::npos;
        });
      },
      10s);
  std::string errs;
  for (const Host* h : hosts) errs += h->name() + " stderr: " + h->err() + "\n";
  INFO(errs);
  REQUIRE(ready);
}

// Queues `inputs` with ids t:0, t:1, …
void submit(const Fleet& fleet, const std::string& config, const std::vector<std::string>& inputs) {
  std::string text;
  for (const auto& s : inputs) text += s + "\n";
  const auto file = fleet.dir.write("input.txt", text);
  auto r = run_process({SHOAL_BIN, "submit", config, "--input", file.string(), "--prefix", "t"}, {}, 30s * kSlow);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "queued " + std::to_string(inputs.size()) + (inputs.size() == 1 ? " task" : " tasks") + " to " +
                     kStream + " (ids t:0 to t:" + std::to_string(inputs.size() - 1) + ")\n");
}

// `shoal collect --expect N`: the rows by task id (each id printed once, checked).
std::map<std::string, Row> collect(const std::string& config, size_t expect, int expected_exit = 0) {
  auto r = run_process({SHOAL_BIN, "collect", config, "--expect", std::to_string(expect)}, {}, 60s * kSlow);
  INFO(describe(r));
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == expected_exit);
  std::map<std::string, Row> rows;
  for (const auto& line : lines_of(r.out)) {
    INFO("row: " << line);
    auto row = Parser(line).row();
    REQUIRE(row.has_value());
    CHECK(row->keys == kKeys);
    CHECK(rows.emplace(row->at("id").text, *row).second);
  }
  CHECK(rows.size() == expect);
  return rows;
}

std::string id(size_t i) { return "t:" + std::to_string(i); }

// Each worker's fini ran once: NAME.fini holds one line per worker.
void check_fini(const Fleet& fleet, const std::string& name) {
  const std::string text = read_file(fleet.marker(name));
  INFO(name << " fini marker: " << text);
  CHECK(text.find("fini 0\n") != std::string::npos);
  CHECK(text.find("fini 1\n") != std::string::npos);
  CHECK(lines_of(text).size() == 2);
}

// Nothing left to do: every entry acknowledged and deleted, no retry bookkeeping left.
void check_drained(const Fleet& fleet) {
  CHECK(fleet.integer({"XLEN", kStream}) == 0);
  CHECK(fleet.redis.command({"XPENDING", kStream, "shoal"}).view()[0].integer() == 0);
  CHECK(fleet.integer({"HLEN", kStream + ":last"}) == 0);
}

}  // namespace

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
  auto all = run_process({SHOAL_BIN, "collect", fleet.config("collect")}, {}, 30s * kSlow);
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
  CHECK(all_gone(workers, 10s * kSlow));

  const auto rows = collect(fleet.config("collect"), kTasks);
  for (size_t i = 0; i < kTasks; ++i) {
    INFO("task " << id(i));
    REQUIRE(rows.count(id(i)) == 1);
    CHECK(rows.at(id(i)).at("status").text == "ok");
  }
  // b ran every orphan (collect prints the first result of a task, which is a's own when
  // a wrote it and died before acknowledging).
  std::set<std::string> run_by_b;
  for (const auto& e : redis::parse_entries(fleet.redis.command({"XRANGE", kStream + ":results", "-", "+"}).view())) {
    const auto row = Parser(std::string(e.field("result").value_or(""))).row();
    REQUIRE(row.has_value());
    if (row->at("consumer").text == "b") run_by_b.insert(row->at("id").text);
  }
  for (const auto& o : orphans) {
    INFO("orphan " << o);
    CHECK(run_by_b.count(o) == 1);
  }
  // A duplicate is a result a wrote and did not acknowledge before it died: at most what
  // it held (2 per worker).
  const int64_t duplicates = fleet.results() - static_cast<int64_t>(kTasks);
  std::printf("kill -9 of a host: it held %zu entries, the other host ran them, %lld duplicate results\n",
              orphans.size(), static_cast<long long>(duplicates));
  CHECK(duplicates >= 0);
  CHECK(duplicates <= 4);

  b.signal(SIGTERM);
  CHECK(b.wait_exit(20s) == 0);
  check_fini(fleet, "b");
  check_drained(fleet);
}

TEST_CASE("redis: SIGTERM of a host mid-run, no duplicate, no loss, finalizers ran", "[integration][redis]") {
  Fleet fleet;
  Host a(fleet, fleet.config("a"), "a");
  Host b(fleet, fleet.config("b"), "b");
  wait_ready(fleet, {&a, &b});
  constexpr size_t kTasks = 300;
  submit(fleet, fleet.config("submit"), std::vector<std::string>(kTasks, "sleep 10"));

  REQUIRE(eventually([&] { return fleet.results() >= 60 && fleet.consumers()["a"] > 0; }, 20s));
  a.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
  CHECK(a.err().find("stopping on SIGTERM") != std::string::npos);
  check_fini(fleet, "a");
  CHECK(fleet.consumers().count("a") == 0);  // nothing held: it left the group

  const auto rows = collect(fleet.config("collect"), kTasks);
  std::map<std::string, size_t> by_host;
  for (size_t i = 0; i < kTasks; ++i) {
    INFO("task " << id(i));
    REQUIRE(rows.count(id(i)) == 1);
    CHECK(rows.at(id(i)).at("status").text == "ok");
    ++by_host[rows.at(id(i)).at("consumer").text];
  }
  CHECK(by_host["a"] > 0);
  CHECK(by_host["b"] > 0);
  CHECK(fleet.results() == static_cast<int64_t>(kTasks));  // no duplicate

  b.signal(SIGTERM);
  CHECK(b.wait_exit(20s) == 0);
  check_fini(fleet, "b");
  check_drained(fleet);
}

TEST_CASE("redis: submit waits while the stream is full and drops nothing", "[integration][redis]") {
  Fleet fleet;
  std::string text;
  for (size_t i = 0; i < 40; ++i) text += "echo " + std::to_string(i) + "\n";
  const auto input = fleet.dir.write("input.txt", text);
  const auto out = fleet.dir.path() / "submit.out", err = fleet.dir.path() / "submit.err";
  Background submitter({SHOAL_BIN, "submit", fleet.config("submit", "  max_stream_length: 10\n"), "--input",
                        input.string(), "--prefix", "t"},
                       "/dev/null", out, err);
  REQUIRE(submitter.started());
  // No host yet: it fills the stream up to the limit, not one entry more, and waits.
  REQUIRE(eventually([&] { return read_file(err).find("waiting") != std::string::npos; }, 10s));
  CHECK(fleet.integer({"XLEN", kStream}) == 10);

  Host a(fleet, fleet.config("a"), "a");
  int code = -1;
  REQUIRE(submitter.wait(30s * kSlow, code));
  CHECK(code == 0);
  CHECK(read_file(out) == "queued 40 tasks to " + kStream + " (ids t:0 to t:39)\n");
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
  CHECK(dead[0].field("id") == std::optional<std::string_view>("t:5"));
  CHECK(dead[0].field("input") == std::optional<std::string_view>("segv"));
  CHECK(dead[0].field("deliveries") == std::optional<std::string_view>("3"));
  const auto result = Parser(std::string(dead[0].field("result").value_or(""))).row();
  REQUIRE(result.has_value());
  CHECK(result->at("status").text == "crashed");
  CHECK(result->at("id").text == "t:5");
  CHECK(fleet.results() == static_cast<int64_t>(inputs.size()));

  a.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
  CHECK(a.err().find("1 dead-lettered, 2 retried") != std::string::npos);
  check_drained(fleet);
}

TEST_CASE("redis: Redis restarted mid-run, the hosts reconnect and every task completes", "[integration][redis]") {
  Fleet fleet;
  Host a(fleet, fleet.config("a"), "a");
  Host b(fleet, fleet.config("b"), "b");
  wait_ready(fleet, {&a, &b});
  constexpr size_t kTasks = 400;
  submit(fleet, fleet.config("submit"), std::vector<std::string>(kTasks, "sleep 5"));

  REQUIRE(eventually([&] { return fleet.results() >= 80; }, 20s));
  REQUIRE(fleet.redis.stop());
  // Both notice while it is down, then find it again on the same port and data folder.
  REQUIRE(eventually([&] { return a.err().find("retrying") != std::string::npos &&
                                  b.err().find("retrying") != std::string::npos; }, 10s));
  REQUIRE(fleet.redis.start());

  const auto rows = collect(fleet.config("collect"), kTasks);
  for (size_t i = 0; i < kTasks; ++i) {
    INFO("task " << id(i));
    REQUIRE(rows.count(id(i)) == 1);
    CHECK(rows.at(id(i)).at("status").text == "ok");
  }
  const long long duplicates = static_cast<long long>(fleet.results()) - static_cast<long long>(kTasks);
  std::printf("redis restart: %lld duplicate results\n", duplicates);
  a.signal(SIGTERM);
  b.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
  CHECK(b.wait_exit(20s) == 0);
  CHECK(a.err().find("connected again") != std::string::npos);
  CHECK(b.err().find("connected again") != std::string::npos);
  check_drained(fleet);
}

TEST_CASE("redis: a task longer than the visibility timeout is not taken from a live host", "[integration][redis]") {
  Fleet fleet;
  // One entry in flight per host: the owner is full while the task runs, the other idle.
  Host a(fleet, fleet.config("a", "  in_flight: 1\n"), "a");
  Host b(fleet, fleet.config("b", "  in_flight: 1\n"), "b");
  wait_ready(fleet, {&a, &b});
  const auto started = fleet.dir.path() / "started";
  submit(fleet, fleet.config("submit"), {"@" + started.string() + " sleep " + std::to_string(3500 * kSlow)});
  REQUIRE(wait_for_file(started, 10s * kSlow));
  const double cpu_a = a.cpu_seconds(), cpu_b = b.cpu_seconds();

  // 3.5 times the visibility timeout: the owner and the delivery count never change while
  // the other host keeps looking for idle entries.
  std::set<std::string> owners;
  int64_t max_deliveries = 0, checks = 0;
  eventually(
      [&] {
        auto p = fleet.redis.command({"XPENDING", kStream, "shoal", "-", "+", "10"});
        if (p.view().size() == 0) return true;  // done and acknowledged
        owners.insert(std::string(p.view()[0][1].str()));
        max_deliveries = std::max<int64_t>(max_deliveries, p.view()[0][3].integer());
        ++checks;
        return false;
      },
      10s);
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
    auto r = run_process(argv, {}, 30s);
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
