// shoal_bench_redis: issue 20's yardstick for scale-out. Against Celery shoal is far
// ahead; the real limit is the broker. This program measures, in one run and on one
// redis-server of its own, how fast the broker itself lets K consumers go through the
// cycle `shoal serve` does, and how fast K `shoal serve` hosts go:
//
//   floor  K forked minimal consumers, each: XREADGROUP COUNT 4 BLOCK 1000 → echo the
//          input in-process → one pipelined MULTI { XADD STREAM:results ×k, XACK, XDEL }
//          EXEC, the shape of ServeState::flush (runtime/cli/serve_state.cpp), then read
//          again. No worker processes, nothing else.
//   shoal  K `shoal serve` hosts (the built shoal, the echo plugin, 2 workers each, so
//          COUNT is at most 4 = in_flight, as for the floor) on the same stream and group.
//
// Each run pre-fills N tiny tasks (8-byte inputs, the entry `shoal submit` writes) with
// pipelined XADDs of 512 while the consumers wait blocked, and is timed from the first XADD
// until the results stream holds a result for every task id. Floor and shoal alternate
// for K = 1, 2, 4 within each repetition; the figures are medians over the repetitions.
// Per run: the Redis server's CPU and the consumers' CPU (shoal: host processes and their
// workers apart) from /proc/PID/stat, and per task the commands Redis ran (INFO
// commandstats deltas) and its read events (INFO stats total_reads_processed, about one
// per round trip a client makes).
//
//   shoal_bench_redis [--quick] [--reps R] [--tasks N] [--hosts 1,2,4] [--in-flight N] [--floor-count N]
//
// For a diagnosis, not used by bench/run: --in-flight N sets redis.in_flight of the hosts
// and the COUNT of the floor's reads (default 4: 2 per worker, serve's default);
// --floor-count N then sets the floor's COUNT alone.
//
// Prints "name value unit" lines as shoal_bench does (bench/report.py reads them):
//   redis_floor_hK, redis_shoal_hK  tasks/s;   redis_ratio_hK  shoal ÷ floor (median of the
//   repetitions' ratios);   redis_MODE_hK_WHAT  CPU (cpus = CPU-seconds per second) and
//   per-task counts. Its redis-server, hosts, consumers and folder go when it exits, also
//   on an error or a signal.
#include "bench.hpp"

#include "common/fd.hpp"
#include "process/spawn.hpp"
#include "redis/client.hpp"
#include "redis/streams.hpp"

#include <shoal/runtime.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace redis = shoal::detail::redis;
using bench::Clock;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------
// What both sides write and read, in one place: change these when `shoal submit` or
// `shoal serve` change their entries.

constexpr uint32_t kWorkers = 2;  // per shoal host
// The floor's XREADGROUP COUNT: a host's in_flight, 2 per worker by default (serve.cpp),
// which bounds what one of its reads asks for (COUNT free slots). --in-flight N sets both.
size_t g_in_flight = 2 * kWorkers;
bool g_in_flight_set = false;  // written into the hosts' config only when given
size_t g_floor_count = 0;      // --floor-count N: the floor's COUNT alone (0: g_in_flight)
constexpr size_t kFillBatch = 512;           // submit.cpp: kBatch XADDs per pipeline
const std::string kStream = "bench:tasks";
const std::string kGroup = "shoal";          // serve's default group
const std::string kPrefix = "bench";         // task ids bench-RUN:SEQ, as submit's PREFIX-RUN:SEQ

const redis::Keys& keys() {
  static const redis::Keys k = redis::Keys::of(kStream);
  return k;
}

// A run's tasks are one job, as `shoal submit` queues them (shoal::Client): its hash
// holds the result ttl (24 h, the default), so that the hosts renew the keys' expiry with
// each transaction, as they do for a real job.
std::string job_of_run(const std::string& run) { return kPrefix + "-" + run; }
constexpr const char* kTtlMs = "86400000";

// The entry of task SEQ (redis::task_entry, what submit queues); the input is 8 bytes,
// the size of shoal_bench's tiny tasks.
redis::Args task_entry(const std::string& run, uint64_t seq) {
  char input[32];
  std::snprintf(input, sizeof input, "%08llu", static_cast<unsigned long long>(seq % 100000000));
  return redis::task_entry(keys(), job_of_run(run), seq, input);
}

// The result entry the floor writes for an echoed task: the one ServeState::flush writes
// (redis::result_entry).
redis::Args floor_result(const redis::Task& t, const std::string& consumer) {
  shoal::Outcome o;
  o.status = shoal::Status::ok;
  o.output = t.input.value_or("");
  o.worker = 0;
  o.attempts = 1;
  o.duration = std::chrono::nanoseconds(1000);
  return redis::result_entry(keys(), t, o, consumer);
}

// What a result entry is counted by: its task id (the `id` field), or its entry id when
// it has none. A task run twice (at-least-once) has two entries and counts once.
std::string result_key(const redis::Entry& e) {
  const auto id = e.field("id");
  return id && !id->empty() ? std::string(*id) : e.id;
}

// ---------------------------------------------------------------------------------------
// Children, the folder, and leaving nothing behind.

struct Proc {
  pid_t pid;
  std::string name;
  fs::path log;  // empty for forked consumers
};
std::vector<Proc> g_procs;  // live children: redis-server, hosts, floor consumers
fs::path g_dir;
bool g_child = false;  // a forked floor consumer: fail() only exits
volatile sig_atomic_t g_signal = 0;

void on_signal(int sig) { g_signal = sig; }

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// SIGTERM to `pids`, up to `grace` for them to exit, then SIGKILL; all reaped. Returns the
// wait statuses by pid (-1: had to be killed).
std::map<pid_t, int> stop_pids(const std::vector<pid_t>& pids, std::chrono::milliseconds grace) {
  std::map<pid_t, int> status;
  for (pid_t p : pids) ::kill(p, SIGTERM);
  const auto deadline = Clock::now() + grace;
  std::vector<pid_t> left = pids;
  while (!left.empty() && Clock::now() < deadline) {
    std::erase_if(left, [&](pid_t p) {
      int st = 0;
      const pid_t r = ::waitpid(p, &st, WNOHANG);
      if (r == p || (r < 0 && errno == ECHILD)) {
        status[p] = r == p ? st : 0;
        return true;
      }
      return false;
    });
    if (!left.empty()) std::this_thread::sleep_for(5ms);
  }
  for (pid_t p : left) {
    ::kill(p, SIGKILL);
    int st = 0;
    ::waitpid(p, &st, 0);
    status[p] = -1;
  }
  return status;
}

void cleanup() {
  std::vector<pid_t> pids;
  for (const auto& p : g_procs) pids.push_back(p.pid);
  if (!pids.empty()) stop_pids(pids, 20s);
  g_procs.clear();
  if (!g_dir.empty()) {
    std::error_code ec;
    fs::remove_all(g_dir, ec);
    g_dir.clear();
  }
}

[[noreturn]] void fail(const std::string& why) {
  if (g_child) ::_exit(3);
  std::fprintf(stderr, "shoal_bench_redis: %s\n", why.c_str());
  cleanup();
  std::exit(2);
}

void check_signal() {
  if (g_signal != 0) fail("stopped by signal " + std::to_string(static_cast<int>(g_signal)));
}

// Fails when one of `pids` (children we expect to be running) has exited, with its log.
void check_alive(const std::vector<pid_t>& pids) {
  for (pid_t p : pids) {
    int st = 0;
    if (::waitpid(p, &st, WNOHANG) != p) continue;
    std::string what = "child " + std::to_string(p);
    for (auto it = g_procs.begin(); it != g_procs.end(); ++it) {
      if (it->pid != p) continue;
      what = it->name;
      if (!it->log.empty()) what += " (log: " + read_text(it->log) + ")";
      g_procs.erase(it);
      break;
    }
    fail(what + " exited early with wait status " + std::to_string(st));
  }
}

std::string find_redis_server() {
  if (const char* env = std::getenv("SHOAL_REDIS_SERVER"); env != nullptr && *env != '\0') return env;
  const char* path = std::getenv("PATH");
  std::string dirs = std::string(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin") + ":/usr/sbin:/usr/bin";
  std::stringstream s(dirs);
  std::string d;
  while (std::getline(s, d, ':')) {
    const fs::path candidate = fs::path(d) / "redis-server";
    if (!d.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  fail("no redis-server on PATH (apt-get install redis-server, or set SHOAL_REDIS_SERVER)");
}

// Spawns `argv` (argv[0] an absolute path) with stdout and stderr to `log`.
pid_t spawn(const std::vector<std::string>& argv, const fs::path& log, const std::string& name) {
  shoal::detail::Fd out(::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!out) fail("cannot open " + log.string() + ": " + std::strerror(errno));
  shoal::detail::SpawnRequest req;
  req.executable = argv[0];
  req.argv = argv;
  req.env = shoal::detail::environment_with({}, {.all = true, .names = {}});
  req.stdin_null = true;
  req.stdout_to = out.get();
  req.fds = {{out.get(), STDERR_FILENO}};
  auto child = shoal::detail::spawn_process(req);
  if (!child) fail("cannot start " + name + ": " + child.error().message);
  g_procs.push_back({child->pid, name, log});
  return child->pid;  // the pidfd closes here: waitpid reaps it
}

// Stops the children `pids` (SIGTERM), waits up to `grace`, drops them from g_procs, and
// returns true when every one exited with status 0.
bool stop_children(const std::vector<pid_t>& pids, std::chrono::milliseconds grace, std::string* why = nullptr) {
  const auto status = stop_pids(pids, grace);
  bool clean = true;
  for (const auto& [pid, st] : status) {
    const bool ok = st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!ok && why != nullptr) {
      for (const auto& p : g_procs)
        if (p.pid == pid) *why += p.name + " ended with wait status " + std::to_string(st) + "; ";
    }
    clean = clean && ok;
  }
  std::erase_if(g_procs, [&](const Proc& p) { return status.count(p.pid) != 0; });
  return clean;
}

// ---------------------------------------------------------------------------------------
// Redis

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

struct Server {
  pid_t pid = -1;
  std::string url_text;
  redis::Url url;
};

redis::Connection connect(const redis::Url& url) {
  auto c = redis::Connection::open(url, 30s);
  if (!c) fail(c.error().message);
  return std::move(*c);
}

redis::Reply command(redis::Connection& c, const redis::Args& args) {
  auto r = c.command(args);
  if (!r) fail(args[0] + ": " + r.error().message);
  if (r->is_error()) fail(args[0] + ": " + std::string(r->str()));
  return std::move(*r);
}

// Its own redis-server on a free loopback port, as shoal serve expects it (append-only
// file on, fsync every second, no RDB snapshots). The AOF is not rewritten on its own
// during a run (a fork and a copy of the results stream in the middle of a measurement);
// the bench empties the server and rewrites it between runs.
Server start_redis() {
  const std::string exe = find_redis_server();
  const fs::path dir = g_dir / "redis";
  fs::create_directories(dir);
  for (int attempt = 0; attempt < 5; ++attempt) {
    const int port = free_port();
    if (port == 0) continue;
    Server s;
    s.url_text = "redis://127.0.0.1:" + std::to_string(port);
    auto url = redis::parse_url(s.url_text);
    if (!url) fail(url.error().message);
    s.url = *url;
    s.pid = spawn({exe, "--port", std::to_string(port), "--bind", "127.0.0.1", "--dir", dir.string(), "--appendonly",
                   "yes", "--appendfsync", "everysec", "--save", "", "--auto-aof-rewrite-percentage", "0",
                   "--daemonize", "no", "--logfile", ""},
                  dir / "redis.log", "redis-server");
    const auto deadline = Clock::now() + 10s;
    while (Clock::now() < deadline) {
      check_signal();
      int st = 0;
      if (::waitpid(s.pid, &st, WNOHANG) == s.pid) {  // the port was taken: another one
        std::erase_if(g_procs, [&](const Proc& p) { return p.pid == s.pid; });
        s.pid = -1;
        break;
      }
      if (auto c = redis::Connection::open(s.url, 500ms)) {
        auto pong = c->command({"PING"});
        if (pong && pong->str() == "PONG") return s;
      }
      std::this_thread::sleep_for(10ms);
    }
    if (s.pid > 0) stop_children({s.pid}, 5s);
  }
  fail("redis-server did not start (log: " + read_text(dir / "redis.log") + ")");
}

// Empties the server between runs and rewrites its AOF (now tiny), so that the next run
// starts from the same state and the file does not grow from run to run.
void reset(redis::Connection& c) {
  command(c, {"FLUSHALL"});
  auto r = c.command({"BGREWRITEAOF"});
  if (!r) fail("BGREWRITEAOF: " + r.error().message);
  const auto deadline = Clock::now() + 60s;
  for (;;) {
    check_signal();
    const std::string info(command(c, {"INFO", "persistence"}).str());
    if (info.find("aof_rewrite_in_progress:0") != std::string::npos &&
        info.find("aof_rewrite_scheduled:0") != std::string::npos)
      break;
    if (Clock::now() > deadline) fail("the AOF rewrite did not end within 60 s");
    std::this_thread::sleep_for(10ms);
  }
}

// INFO commandstats: command → (calls, usec).
std::map<std::string, std::pair<double, double>> commandstats(redis::Connection& c) {
  std::map<std::string, std::pair<double, double>> out;
  std::stringstream s{std::string(command(c, {"INFO", "commandstats"}).str())};
  std::string line;
  while (std::getline(s, line)) {
    if (!line.starts_with("cmdstat_")) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string name = line.substr(8, colon - 8);
    double calls = 0, usec = 0;
    std::stringstream fields(line.substr(colon + 1));
    std::string kv;
    while (std::getline(fields, kv, ',')) {
      if (kv.starts_with("calls=")) calls = std::stod(kv.substr(6));
      if (kv.starts_with("usec=")) usec = std::stod(kv.substr(5));
    }
    out[name] = {calls, usec};
  }
  return out;
}

double info_number(redis::Connection& c, const std::string& section, const std::string& key) {
  const std::string info(command(c, {"INFO", section}).str());
  const auto at = info.find("\r\n" + key + ":");
  if (at == std::string::npos) fail("INFO " + section + " has no " + key);
  return std::stod(info.substr(at + key.size() + 3));
}

// ---------------------------------------------------------------------------------------
// CPU from /proc

struct Stat {
  pid_t ppid = 0;
  double cpu = 0;  // utime + stime, seconds (every thread of the process)
};

std::optional<Stat> stat_of(pid_t pid) {
  const std::string text = read_text("/proc/" + std::to_string(pid) + "/stat");
  const auto close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::stringstream rest(text.substr(close + 2));
  std::string field;
  Stat s;
  unsigned long long ticks = 0;
  // Fields from 3 (state): 4 ppid, 14 utime, 15 stime.
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 4) s.ppid = static_cast<pid_t>(std::stol(field));
    if (i >= 14) ticks += std::stoull(field);
  }
  s.cpu = static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  return s;
}

// Every process below `roots` (workers, and theirs).
std::vector<pid_t> descendants(const std::vector<pid_t>& roots) {
  std::multimap<pid_t, pid_t> children;
  for (const auto& d : fs::directory_iterator("/proc")) {
    const std::string name = d.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    if (auto s = stat_of(pid)) children.emplace(s->ppid, pid);
  }
  std::vector<pid_t> out, todo = roots;
  while (!todo.empty()) {
    const pid_t p = todo.back();
    todo.pop_back();
    auto [a, b] = children.equal_range(p);
    for (auto it = a; it != b; ++it) {
      out.push_back(it->second);
      todo.push_back(it->second);
    }
  }
  return out;
}

double cpu_of(const std::vector<pid_t>& pids) {
  double sum = 0;
  for (pid_t p : pids)
    if (auto s = stat_of(p)) sum += s->cpu;
  return sum;
}

double self_cpu() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

// ---------------------------------------------------------------------------------------
// The floor consumer (a forked child; never returns)

[[noreturn]] void floor_consumer(int index, const redis::Url& url) {
  g_child = true;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) ::signal(sig, SIG_DFL);
  const std::string consumer = "floor-" + std::to_string(index);
  auto c = redis::Connection::open(url, 10s);
  if (!c) ::_exit(3);
  if (auto r = c->command({"CLIENT", "SETNAME", "floor:" + consumer}); !r || r->is_error()) ::_exit(3);
  const size_t count = g_floor_count != 0 ? g_floor_count : g_in_flight;
  const redis::Args ask = {"XREADGROUP", "GROUP", kGroup, consumer,  "COUNT", std::to_string(count),
                           "BLOCK",      "1000",  "STREAMS", kStream, ">"};
  std::vector<redis::Args> tx;
  for (;;) {
    auto r = c->command(ask);
    if (!r || r->is_error()) ::_exit(3);
    const auto entries = redis::parse_read(r->view());
    if (entries.empty()) continue;
    // ServeState::flush's transaction for k results of one job: MULTI, XADD ×k, XACK,
    // XDEL, PEXPIRE of the job's two keys, EXEC, sent in one write.
    tx.assign(1, {"MULTI"});
    redis::Args ack = {"XACK", kStream, kGroup};
    redis::Args del = {"XDEL", kStream};
    std::string job;
    for (const auto& e : entries) {
      const redis::Task t = redis::task_of(e);
      job = t.job;
      tx.push_back(floor_result(t, consumer));
      ack.push_back(e.id);
      del.push_back(e.id);
    }
    tx.push_back(std::move(ack));
    tx.push_back(std::move(del));
    tx.push_back({"PEXPIRE", keys().job_results(job), kTtlMs});
    tx.push_back({"PEXPIRE", keys().job_meta(job), kTtlMs});
    tx.push_back({"EXEC"});
    auto replies = c->pipeline(tx);
    if (!replies || !replies->back().view().is_array()) ::_exit(3);
  }
}

// ---------------------------------------------------------------------------------------
// One run

enum class Mode { floor, shoal };
const char* mode_name(Mode m) { return m == Mode::floor ? "floor" : "shoal"; }

struct Sample {
  Clock::time_point t;
  std::map<std::string, std::pair<double, double>> cmds;
  double reads = 0;
  double redis_cpu = 0, hosts_cpu = 0, workers_cpu = 0, driver_cpu = 0;
};

struct RunResult {
  double rate = 0;                        // tasks/s
  std::map<std::string, double> figures;  // WHAT → value, with its unit in units()
};

std::map<std::string, std::string>& units() {
  static std::map<std::string, std::string> u;
  return u;
}

struct Setup {
  Server server;
  std::string shoal_config;
};

// Waits until each name in `names` has a connection (CLIENT LIST name=) that is blocked
// (flags b): the consumer is up and waiting in XREADGROUP.
void wait_blocked(redis::Connection& c, const std::vector<std::string>& names, const std::vector<pid_t>& pids) {
  const auto deadline = Clock::now() + 60s;
  for (;;) {
    check_signal();
    check_alive(pids);
    const std::string list(command(c, {"CLIENT", "LIST"}).str());
    size_t blocked = 0;
    for (const auto& name : names) {
      std::stringstream s(list);
      std::string line;
      while (std::getline(s, line)) {
        if (line.find(" name=" + name + " ") == std::string::npos) continue;
        const auto f = line.find(" flags=");
        if (f != std::string::npos && line.substr(f + 7, line.find(' ', f + 7) - f - 7).find('b') != std::string::npos)
          ++blocked;
        break;
      }
    }
    if (blocked == names.size()) return;
    if (Clock::now() > deadline) fail("the consumers were not all waiting within 60 s: " + list);
    std::this_thread::sleep_for(5ms);
  }
}

Sample sample(redis::Connection& c, pid_t redis_pid, const std::vector<pid_t>& hosts,
              const std::vector<pid_t>& workers) {
  Sample s;
  s.t = Clock::now();
  s.redis_cpu = cpu_of({redis_pid});
  s.hosts_cpu = cpu_of(hosts);
  s.workers_cpu = cpu_of(workers);
  s.driver_cpu = self_cpu();
  s.cmds = commandstats(c);
  s.reads = info_number(c, "stats", "total_reads_processed");
  return s;
}

RunResult run(const Setup& setup, Mode mode, int hosts_n, size_t n, const std::string& run_id) {
  auto c = connect(setup.server.url);
  reset(c);
  // The group from the stream's start, as the first host would create it.
  command(c, {"XGROUP", "CREATE", kStream, kGroup, "0", "MKSTREAM"});

  std::vector<pid_t> pids;
  std::vector<std::string> names;
  for (int i = 0; i < hosts_n; ++i) {
    if (mode == Mode::floor) {
      std::fflush(nullptr);
      const pid_t pid = ::fork();
      if (pid < 0) fail(std::string("fork: ") + std::strerror(errno));
      if (pid == 0) floor_consumer(i, setup.server.url);
      g_procs.push_back({pid, "floor consumer " + std::to_string(i), {}});
      pids.push_back(pid);
      names.push_back("floor:floor-" + std::to_string(i));
    } else {
      const std::string consumer = "h" + std::to_string(i);
      pids.push_back(spawn({SHOAL_BENCH_SHOAL, "serve", setup.shoal_config, "--consumer", consumer},
                           g_dir / ("host-" + consumer + ".log"), "shoal serve --consumer " + consumer));
      names.push_back("shoal:" + consumer);
    }
  }
  wait_blocked(c, names, pids);
  const std::vector<pid_t> workers = descendants(pids);

  // The tasks, built before the clock starts.
  std::vector<std::vector<redis::Args>> batches;
  for (size_t i = 0; i < n; i += kFillBatch) {
    batches.emplace_back();
    for (size_t k = i; k < std::min(n, i + kFillBatch); ++k) batches.back().push_back(task_entry(run_id, k));
  }

  const std::string results = keys().job_results(job_of_run(run_id));
  command(c, {"HSET", keys().job_meta(job_of_run(run_id)), "ttl", kTtlMs, "next", std::to_string(n)});
  const Sample before = sample(c, setup.server.pid, pids, workers);
  const auto t0 = Clock::now();
  for (const auto& b : batches) {
    auto replies = c.pipeline(b);
    if (!replies) fail("XADD: " + replies.error().message);
    for (const auto& r : *replies)
      if (r.is_error()) fail("XADD: " + std::string(r.str()));
  }

  // The results: XLEN every millisecond until the stream can hold a result for every
  // task (the entries beyond the distinct ones seen so far are repeats); then read the new
  // entries and count their distinct task ids. The clock stops at that XLEN.
  std::unordered_set<std::string> seen;
  size_t entries_read = 0;
  std::string cursor = "0-0";
  std::optional<Sample> after;
  Clock::time_point t1;
  const auto deadline = Clock::now() + std::chrono::seconds(static_cast<long>(60 + n / 1000));
  while (seen.size() < n) {
    check_signal();
    check_alive(pids);
    auto len = c.command({"XLEN", results});
    if (!len || !len->view().is_integer()) fail("XLEN " + results + ": no answer");
    const auto now = Clock::now();
    const size_t repeats = entries_read - seen.size();
    if (static_cast<size_t>(len->view().integer()) >= n + repeats) {
      t1 = now;
      after = sample(c, setup.server.pid, pids, workers);
      for (;;) {
        auto r = command(c, {"XREAD", "COUNT", "10000", "STREAMS", results, cursor});
        const auto entries = redis::parse_read(r.view());
        if (entries.empty()) break;
        for (const auto& e : entries) seen.insert(result_key(e));
        entries_read += entries.size();
        cursor = entries.back().id;
      }
      continue;
    }
    if (now > deadline)
      fail(std::string(mode_name(mode)) + " with " + std::to_string(hosts_n) + " hosts: " +
           std::to_string(len->view().integer()) + " results of " + std::to_string(n) + " after " +
           std::to_string(std::chrono::duration<double>(now - t0).count()) + " s");
    std::this_thread::sleep_for(1ms);
  }
  const double secs = std::chrono::duration<double>(t1 - t0).count();

  std::string why;
  if (mode == Mode::floor) {
    stop_pids(pids, 10s);  // SIGTERM ends a floor consumer where it is: its work is done
    std::erase_if(g_procs, [&](const Proc& p) { return std::find(pids.begin(), pids.end(), p.pid) != pids.end(); });
  } else if (!stop_children(pids, 60s, &why)) {
    fail("a shoal serve host did not stop cleanly: " + why);
  }
  if (const auto left = command(c, {"XLEN", kStream}).view().integer(); left != 0)
    fail(std::string(mode_name(mode)) + ": " + std::to_string(left) + " task entries left in " + kStream);

  RunResult out;
  out.rate = static_cast<double>(n) / secs;
  const double dt = std::chrono::duration<double>(after->t - before.t).count();
  const double per = 1.0 / static_cast<double>(n);
  auto put = [&](const std::string& what, double value, const char* unit) {
    out.figures[what] = value;
    units()[what] = unit;
  };
  put("redis_cpu", (after->redis_cpu - before.redis_cpu) / dt, "cpus");
  put("hosts_cpu", (after->hosts_cpu - before.hosts_cpu) / dt, "cpus");
  if (mode == Mode::shoal) put("workers_cpu", (after->workers_cpu - before.workers_cpu) / dt, "cpus");
  put("driver_cpu", (after->driver_cpu - before.driver_cpu) / dt, "cpus");
  put("redis_cpu_us", (after->redis_cpu - before.redis_cpu) * 1e6 * per, "us_per_task");
  // calls (field 0) or usec (field 1) of `cmd` during the run.
  auto delta = [&](const std::string& cmd, int field) {
    auto of = [&](const Sample& s) {
      const auto it = s.cmds.find(cmd);
      return it == s.cmds.end() ? 0.0 : (field == 0 ? it->second.first : it->second.second);
    };
    return of(*after) - of(before);
  };
  // The commands the consumers send, per task; XADD without the fill's N.
  const double result_xadds = delta("xadd", 0) - static_cast<double>(n);
  for (const char* cmd :
       {"xreadgroup", "exec", "xack", "xdel", "pexpire", "xclaim", "xautoclaim", "xpending", "client|unblock"}) {
    std::string what = std::string(cmd) + "_per_task";
    std::replace(what.begin(), what.end(), '|', '_');
    put(what, delta(cmd, 0) * per, "per_task");
  }
  put("xadd_per_task", result_xadds * per, "per_task");
  // Everything Redis ran but the driver's own commands (the fill, XLEN, INFO).
  double total_calls = 0, total_usec = 0;
  for (const auto& [cmd, cu] : after->cmds) {
    (void)cu;
    total_usec += delta(cmd, 1);
    if (cmd != "xlen" && cmd != "info" && cmd != "xread") total_calls += delta(cmd, 0);
  }
  put("commands_per_task", (total_calls - static_cast<double>(n)) * per, "per_task");
  put("redis_cmd_us", total_usec * per, "us_per_task");
  put("reads_per_task", (after->reads - before.reads) * per, "per_task");
  put("tasks_per_xreadgroup", static_cast<double>(n) / std::max(1.0, delta("xreadgroup", 0)), "tasks");
  put("results_per_exec", result_xadds / std::max(1.0, delta("exec", 0)), "tasks");
  return out;
}

std::vector<int> parse_hosts(const std::string& text) {
  std::vector<int> out;
  std::stringstream s(text);
  std::string item;
  while (std::getline(s, item, ','))
    if (!item.empty()) out.push_back(std::atoi(item.c_str()));
  if (out.empty() || std::any_of(out.begin(), out.end(), [](int k) { return k < 1 || k > 64; }))
    fail("--hosts takes a list like 1,2,4");
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 3;
  size_t n = 200'000;
  std::vector<int> hosts = {1, 2, 4};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--quick") n = 50'000;
    else if (a == "--reps" && has_value) reps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--tasks" && has_value) n = static_cast<size_t>(std::max(1000L, std::atol(argv[++i])));
    else if (a == "--hosts" && has_value) hosts = parse_hosts(argv[++i]);
    else if (a == "--in-flight" && has_value) {
      g_in_flight = static_cast<size_t>(std::clamp(std::atoi(argv[++i]), 1, 65536));
      g_in_flight_set = true;
    } else if (a == "--floor-count" && has_value) {
      g_floor_count = static_cast<size_t>(std::clamp(std::atoi(argv[++i]), 1, 65536));
    }
    else {
      std::fprintf(stderr,
                   "usage: shoal_bench_redis [--quick] [--reps R] [--tasks N] [--hosts 1,2,4] [--in-flight N] "
                   "[--floor-count N]\n");
      return 2;
    }
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  g_dir = fs::temp_directory_path() / ("shoal-bench-redis-" + std::to_string(::getpid()));
  fs::create_directories(g_dir);
  Setup setup;
  setup.server = start_redis();
  setup.shoal_config = (g_dir / "host.yaml").string();
  {
    std::ofstream config(setup.shoal_config);
    config << "pools:\n  echo:\n    plugin: \"" SHOAL_BENCH_ECHO "\"\n    workers: " << kWorkers
           << "\nredis:\n  url: " << setup.server.url_text << "\n  stream: " << kStream << "\n  group: " << kGroup
           << "\n";
    if (g_in_flight_set) config << "  in_flight: " << g_in_flight << "\n";
  }

  // Warm-up (not counted): the binaries, the plugin and Redis's allocator.
  for (Mode m : {Mode::floor, Mode::shoal}) (void)run(setup, m, 1, std::max<size_t>(n / 10, 1000), "warm");

  std::map<std::string, std::vector<double>> values;  // figure → one value per repetition
  std::map<std::string, std::string> unit_of;
  for (int rep = 0; rep < reps; ++rep) {
    for (size_t ki = 0; ki < hosts.size(); ++ki) {
      const int k = hosts[ki];
      // Alternate which goes first, so that a drift over the run does not favour one.
      const bool floor_first = (static_cast<size_t>(rep) + ki) % 2 == 0;
      std::map<Mode, RunResult> r;
      for (Mode m : floor_first ? std::vector{Mode::floor, Mode::shoal} : std::vector{Mode::shoal, Mode::floor}) {
        const std::string run_id = std::to_string(rep) + "-" + std::to_string(k) + "-" + mode_name(m);
        const auto t = Clock::now();
        r[m] = run(setup, m, k, n, run_id);
        std::fprintf(stderr, "redis bench: repetition %d of %d, %s with %d host%s: %.0f tasks/s (%.1f s)\n", rep + 1,
                     reps, mode_name(m), k, k == 1 ? "" : "s", r[m].rate, bench::seconds_since(t));
        const std::string base = std::string("redis_") + mode_name(m) + "_h" + std::to_string(k);
        values[base].push_back(r[m].rate);
        unit_of[base] = "tasks/s";
        for (const auto& [what, v] : r[m].figures) {
          values[base + "_" + what].push_back(v);
          unit_of[base + "_" + what] = units()[what];
        }
      }
      const std::string ratio = "redis_ratio_h" + std::to_string(k);
      values[ratio].push_back(r[Mode::shoal].rate / r[Mode::floor].rate);
      unit_of[ratio] = "ratio";
    }
  }
  for (const auto& [name, v] : values) bench::figure(name.c_str(), bench::median(v), unit_of[name].c_str());
  std::vector<pid_t> server = {setup.server.pid};
  std::string why;
  if (!stop_children(server, 30s, &why)) std::fprintf(stderr, "shoal_bench_redis: redis-server: %s\n", why.c_str());
  cleanup();
  return 0;
}
