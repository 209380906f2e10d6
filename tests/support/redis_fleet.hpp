// Scale-out as users run it, for the Redis tests: a real redis-server (redis_server.hpp),
// `shoal serve` hosts in the background running the fault plugin with real workers, and
// `shoal submit` / `shoal collect` as subprocesses. Header-only: one test file uses it.
#ifndef SHOAL_TESTS_REDIS_FLEET_HPP
#define SHOAL_TESTS_REDIS_FLEET_HPP

#include "fixture_paths.hpp"
#include "support/json_rows.hpp"
#include "support/redis_server.hpp"
#include "support/subprocess.hpp"
#include "support/test_env.hpp"

#include "redis/streams.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <sstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace shoal::test {

namespace redis = shoal::detail::redis;
using namespace std::chrono_literals;

inline const std::string kStream = "tasks";
inline const std::vector<std::string> kKeys = {"seq", "status", "output", "error",    "worker",    "attempts",
                                               "ms",  "reason", "id",     "consumer", "generation"};

/// A limit for something that should happen "promptly", scaled for sanitizer builds but
/// kept well under ctest's TIMEOUT of 120 s, so a failure is reported by the test (with
/// its stderr) rather than by ctest killing it.
inline std::chrono::milliseconds bounded(std::chrono::milliseconds limit) {
  return std::min<std::chrono::milliseconds>(limit * kSlow, 60s);
}

/// Checks `cond` every 10 ms until it holds or `limit` (bounded) passes.
inline bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + bounded(limit);
  for (;;) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

/// How a host's config differs from the usual one.
struct HostOptions {
  unsigned workers = 2;
  std::string grace = "3s";
  unsigned max_deliveries = 3;
  std::string url;          ///< empty: the fleet's redis-server
  std::string visibility;   ///< redis.visibility_timeout; empty: kSlow seconds
  std::string redis_extra;  ///< more keys of the redis: section, each "  key: value\n"

  HostOptions& with_workers(unsigned n) { return workers = n, *this; }
  HostOptions& with_grace(std::string g) { return grace = std::move(g), *this; }
  HostOptions& with_max_deliveries(unsigned n) { return max_deliveries = n, *this; }
  HostOptions& with_url(std::string u) { return url = std::move(u), *this; }
  HostOptions& with_visibility(std::string v) { return visibility = std::move(v), *this; }
  HostOptions& with_redis(std::string extra) { return redis_extra = std::move(extra), *this; }
};

/// One redis-server, a folder, and configs that point at both.
struct Fleet {
  explicit Fleet(RedisServer::Options options = {}) : redis(options) {}

  /// A config whose pool runs the fault plugin, each worker's fini appending to NAME.fini.
  std::string config(const std::string& name, const HostOptions& o = {}) const {
    const std::string text = "pools:\n  work:\n    plugin: \"" + fixture("fx_fault") +
                             "\"\n    workers: " + std::to_string(o.workers) + "\n    shutdown: {grace: " + o.grace +
                             ", fini_timeout: 2s}\n    params: {fini_marker: \"" + marker(name).string() +
                             "\"}\nredis:\n  url: " + (o.url.empty() ? redis.url() : o.url) +
                             "\n  stream: " + kStream + "\n  visibility_timeout: " +
                             (o.visibility.empty() ? std::to_string(kSlow) + "s" : o.visibility) +
                             "\n  max_deliveries: " + std::to_string(o.max_deliveries) + "\n" + o.redis_extra;
    return dir.write(name + ".yaml", text).string();
  }
  std::filesystem::path marker(const std::string& name) const { return dir.path() / (name + ".fini"); }

  int64_t integer(const redis::Args& args) const { return redis.command(args).view().integer(); }
  /// The results of the last submit()'s job.
  int64_t results() const;

  /// Consumers of the group, by name, with their pending counts.
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

/// `shoal serve` in the background; killed and reaped by the destructor if still running.
/// `env` ("NAME=VALUE" each) is added to its environment (through env(1), which execs it:
/// the pid stays the host's). Its --consumer is `consumer`, or `name` when that is empty.
class Host {
 public:
  Host(const Fleet& fleet, const std::string& config, const std::string& name,
       const std::vector<std::string>& flags = {}, const std::vector<std::string>& env = {},
       const std::string& consumer = "")
      : name_(name),
        err_(fleet.dir.path() / (name + ".err")),
        process_(argv(config, consumer.empty() ? name : consumer, flags, env), "/dev/null",
                 fleet.dir.path() / (name + ".out"), err_) {
    REQUIRE(process_.started());
  }
  const std::string& name() const { return name_; }
  int pid() const { return process_.pid(); }
  void signal(int sig) const { process_.signal(sig); }
  std::string err() const { return read_file(err_); }
  int wait_exit(std::chrono::seconds limit) {
    int code = -1;
    INFO(name_ << " stderr: " << err());
    REQUIRE(process_.wait(bounded(limit), code));
    return code;
  }
  /// CPU time the host process has used (its workers not included), in seconds.
  double cpu_seconds() const {
    const std::string stat = read_file("/proc/" + std::to_string(pid()) + "/stat");
    std::istringstream rest(stat.substr(stat.rfind(')') + 2));
    std::string field;
    unsigned long long ticks = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i)
      if (i >= 14) ticks += std::stoull(field);  // utime, stime
    return static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  /// The host's workers: the shoal-worker processes whose parent it is.
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
  static std::vector<std::string> argv(const std::string& config, const std::string& consumer,
                                       const std::vector<std::string>& flags, const std::vector<std::string>& env) {
    std::vector<std::string> a;
    if (!env.empty()) {
      a.push_back("/usr/bin/env");
      a.insert(a.end(), env.begin(), env.end());
    }
    a.insert(a.end(), {SHOAL_BIN, "serve", config, "--consumer", consumer});
    a.insert(a.end(), flags.begin(), flags.end());
    return a;
  }

  std::string name_;
  std::filesystem::path err_;
  Background process_;
};

inline size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

/// The host's stderr holds `needle` at least `n` times within `limit`.
inline bool logged(const Host& host, const std::string& needle, std::chrono::milliseconds limit, size_t n = 1) {
  return eventually([&] { return count_of(host.err(), needle) >= n; }, limit);
}

/// Waits until every host is connected with its group in place: each names its connection
/// shoal:CONSUMER once it is (Redis adds a consumer to XINFO only when it first gets entries).
inline void wait_ready(const Fleet& fleet, const std::vector<const Host*>& hosts) {
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

/// The job of the last submit(), whose task ids are JOB:0, JOB:1, … (id() below); JOB is
/// "t-" and the submit's own random part. Tests run one at a time.
inline std::string& id_prefix() {
  static std::string prefix = "t";
  return prefix;
}
inline const std::string& job() { return id_prefix(); }

/// The stream of the results of the last submit()'s job.
inline std::string results_key() { return kStream + ":job:" + job() + ":results"; }

inline int64_t Fleet::results() const { return integer({"XLEN", results_key()}); }

/// What `shoal submit --prefix t` printed for `n` tasks; sets id_prefix() from it.
inline void check_submitted(const std::string& out, size_t n) {
  std::smatch m;
  const std::regex printed("queued ([0-9]+) tasks? to " + kStream +
                           " as job (t-[0-9a-f]{16}) \\(ids \\2:0 to \\2:([0-9]+)\\)\n");
  INFO("submit printed: " << out);
  REQUIRE(std::regex_match(out, m, printed));
  CHECK(m[1].str() == std::to_string(n));
  CHECK(m[3].str() == std::to_string(n - 1));
  id_prefix() = m[2].str();
}

/// Queues `inputs` with ids ID_PREFIX:0, ID_PREFIX:1, …
inline void submit(const Fleet& fleet, const std::string& config, const std::vector<std::string>& inputs) {
  std::string text;
  for (const auto& s : inputs) text += s + "\n";
  const auto file = fleet.dir.write("input.txt", text);
  auto r = run_process({SHOAL_BIN, "submit", config, "--input", file.string(), "--prefix", "t"}, {}, bounded(30s));
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  check_submitted(r.out, inputs.size());
}

/// `shoal collect --job JOB --expect N` (the last submit()'s job unless given): the rows
/// by task id (each id printed once, checked).
inline std::map<std::string, Row> collect(const std::string& config, size_t expect, int expected_exit = 0,
                                          const std::string& of_job = job()) {
  auto r = run_process({SHOAL_BIN, "collect", config, "--job", of_job, "--expect", std::to_string(expect)}, {},
                       bounded(40s));
  INFO(describe(r));
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == expected_exit);
  std::map<std::string, Row> rows;
  for (const auto& line : lines_of(r.out)) {
    INFO("row: " << line);
    auto row = Parser(line).row();
    REQUIRE(row.has_value());
    CHECK(row->keys == kKeys);
    CHECK(row->at("id").text.starts_with(of_job + ":"));  // jobs never mix
    CHECK(rows.emplace(row->at("id").text, *row).second);
  }
  CHECK(rows.size() == expect);
  return rows;
}

inline std::string id(size_t i) { return id_prefix() + ":" + std::to_string(i); }

inline double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

/// Each worker's fini ran once: NAME.fini holds one line per worker.
inline void check_fini(const Fleet& fleet, const std::string& name, unsigned workers = 2) {
  const std::string text = read_file(fleet.marker(name));
  INFO(name << " fini marker: " << text);
  for (unsigned w = 0; w < workers; ++w) CHECK(text.find("fini " + std::to_string(w) + "\n") != std::string::npos);
  CHECK(lines_of(text).size() == workers);
}

/// Nothing left to do: every entry acknowledged and deleted, no retry bookkeeping left.
inline void check_drained(const Fleet& fleet) {
  CHECK(fleet.integer({"XLEN", kStream}) == 0);
  CHECK(fleet.redis.command({"XPENDING", kStream, "shoal"}).view()[0].integer() == 0);
  CHECK(fleet.integer({"HLEN", kStream + ":last"}) == 0);
}

}  // namespace shoal::test

#endif
