// `shoal serve` under a service manager (issue 16): the sd_notify datagrams systemd
// would receive, with a datagram socket of the test standing in for systemd's, and the
// start while Redis is down (waiting, not serving; --connect-timeout). A real
// redis-server and the built `shoal serve` (support/redis_fleet.hpp).
#include "support/redis_fleet.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

using namespace shoal::test;
using namespace std::chrono_literals;

namespace {

using SteadyClock = std::chrono::steady_clock;

/// systemd's end of $NOTIFY_SOCKET: every datagram the host sends, with when it came.
class NotifySocket {
 public:
  struct Message {
    std::string text;
    SteadyClock::time_point at;
  };

  explicit NotifySocket(const TempDir& dir) : path_((dir.path() / "notify.sock").string()) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    REQUIRE(path_.size() < sizeof a.sun_path);
    std::memcpy(a.sun_path, path_.c_str(), path_.size() + 1);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~NotifySocket() { ::close(fd_); }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  std::string env() const { return "NOTIFY_SOCKET=" + path_; }

  /// Receives until a message starting with `prefix` came after `from` (an index into
  /// messages()), or `limit` passed. The index of that message, or -1.
  long wait_for(const std::string& prefix, size_t from, std::chrono::milliseconds limit) {
    const auto deadline = SteadyClock::now() + bounded(limit);
    for (;;) {
      for (size_t i = from; i < messages_.size(); ++i)
        if (messages_[i].text.starts_with(prefix)) return static_cast<long>(i);
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
      if (left.count() <= 0) return -1;
      receive(left);
    }
  }
  /// Takes what arrived within `span` (a bound, not a wait for something).
  void drain(std::chrono::milliseconds span) {
    const auto until = SteadyClock::now() + span;
    while (SteadyClock::now() < until)
      receive(std::chrono::duration_cast<std::chrono::milliseconds>(until - SteadyClock::now()));
  }
  const std::vector<Message>& messages() const { return messages_; }
  std::string all() const {
    std::string out;
    for (const auto& m : messages_) out += "[" + m.text + "] ";
    return out;
  }

 private:
  void receive(std::chrono::milliseconds limit) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::max<long>(1, limit.count()))) != 1) return;
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) messages_.push_back({std::string(buf, static_cast<size_t>(n)), SteadyClock::now()});
  }

  std::string path_;
  int fd_ = -1;
  std::vector<Message> messages_;
};

std::string environ_of(int pid) {
  std::string text = read_file("/proc/" + std::to_string(pid) + "/environ");
  std::replace(text.begin(), text.end(), '\0', '\n');
  return text;
}

}  // namespace

TEST_CASE("serve: systemd hears READY then WATCHDOG at half its interval then RELOADING and READY then STOPPING",
          "[integration][redis][serve][notify]") {
  Fleet fleet;
  NotifySocket systemd(fleet.dir);
  const std::string config = fleet.config("a");
  // 3 s: the watchdog wants a word every 1.5 s, and fails the unit after 3 s of silence.
  Host host(fleet, config, "a", {"--log-level", "info"}, {systemd.env(), "WATCHDOG_USEC=3000000"});

  const long starting = systemd.wait_for("STATUS=starting pool work", 0, 10s);
  INFO("datagrams: " << systemd.all() << "\nstderr: " << host.err());
  REQUIRE(starting >= 0);
  const long ready = systemd.wait_for("READY=1", 0, 20s);
  REQUIRE(ready > starting);
  CHECK(systemd.messages()[static_cast<size_t>(ready)].text.find("\nSTATUS=serving pool work from tasks as a") !=
        std::string::npos);

  // Neither the variables nor systemd's socket reach plugin code.
  const auto workers = host.workers();
  REQUIRE(workers.size() == 2);
  // (The host's own /proc/PID/environ keeps the block it was started with; unsetenv
  // changes only what its children get.)
  for (int w : workers) {
    CHECK(environ_of(w).find("NOTIFY_SOCKET") == std::string::npos);
    CHECK(environ_of(w).find("WATCHDOG_USEC") == std::string::npos);
  }

  // Fed while tasks run and while idle: no gap reaches the interval.
  submit(fleet, config, {"echo one", "sleep 300", "echo three"});
  collect(config, 3);
  systemd.drain(4s);
  std::vector<SteadyClock::time_point> pings;
  for (const auto& m : systemd.messages())
    if (m.text == "WATCHDOG=1") pings.push_back(m.at);
  REQUIRE(pings.size() >= 3);
  for (size_t i = 1; i < pings.size(); ++i) CHECK(pings[i] - pings[i - 1] < 3s);

  const size_t before_reload = systemd.messages().size();
  host.signal(SIGHUP);
  const long reloading = systemd.wait_for("RELOADING=1\nMONOTONIC_USEC=", before_reload, 10s);
  REQUIRE(reloading >= 0);
  const long reloaded = systemd.wait_for("READY=1", static_cast<size_t>(reloading) + 1, 20s);
  CHECK(reloaded > reloading);
  CHECK(logged(host, "no worker setting or file changed", 5s));

  const size_t before_stop = systemd.messages().size();
  host.signal(SIGTERM);
  const long stopping = systemd.wait_for("STOPPING=1\nSTATUS=stopping on SIGTERM", before_stop, 10s);
  CHECK(stopping >= 0);
  CHECK(host.wait_exit(30s) == 0);
  check_fini(fleet, "a");
  CHECK(all_gone(workers));
}

TEST_CASE("serve: started while Redis is down it waits and is not ready until Redis answers",
          "[integration][redis][serve][notify]") {
  Fleet fleet;
  NotifySocket systemd(fleet.dir);
  const std::string config = fleet.config("a");
  REQUIRE(fleet.redis.stop());
  Host host(fleet, config, "a", {"--log-level", "info"}, {systemd.env()});

  REQUIRE(logged(host, "waiting for Redis at " + fleet.redis.url() + ": Connection refused (not serving until it answers)",
                 20s));
  const long waiting = systemd.wait_for("STATUS=waiting for Redis at " + fleet.redis.url(), 0, 10s);
  INFO("datagrams: " << systemd.all() << "\nstderr: " << host.err());
  CHECK(waiting >= 0);
  // Several attempts later, still waiting: no READY, no "serving".
  systemd.drain(1500ms);
  CHECK(systemd.wait_for("READY=1", 0, 0ms) == -1);
  CHECK(host.err().find("serving pool") == std::string::npos);

  REQUIRE(fleet.redis.start());
  CHECK(systemd.wait_for("READY=1", 0, 20s) > waiting);
  CHECK(logged(host, "shoal: serving pool work from tasks as a", 5s));
  submit(fleet, config, {"echo after"});
  const auto rows = collect(config, 1);
  CHECK(rows.at(id(0)).at("status").text == "ok");

  // Redis going away again: not ready, and said why; back: ready again.
  const size_t before = systemd.messages().size();
  REQUIRE(fleet.redis.stop());
  CHECK(systemd.wait_for("STATUS=Redis at " + fleet.redis.url() + " unreachable: ", before, 20s) >= 0);
  REQUIRE(fleet.redis.start());
  CHECK(systemd.wait_for("READY=1", before, 20s) >= 0);

  host.signal(SIGTERM);
  CHECK(host.wait_exit(30s) == 0);
  check_fini(fleet, "a");
}

TEST_CASE("serve: --connect-timeout ends a host that never reached Redis with exit 2 and the cause",
          "[integration][redis][serve]") {
  Fleet fleet;
  const std::string config = fleet.config("a");
  REQUIRE(fleet.redis.stop());
  const auto start = SteadyClock::now();
  Host host(fleet, config, "a", {"--connect-timeout", "1500ms"});
  CHECK(host.wait_exit(30s) == 2);
  const double took = seconds_since(start);
  CHECK(took >= 1.5);
  const auto lines = lines_of(host.err());
  REQUIRE(!lines.empty());
  CHECK(lines.back() == "shoal: serve: no connection to Redis at " + fleet.redis.url() +
                            " within --connect-timeout 1500ms: Connection refused");
  // The pool had started: every worker's finalizer chain ran on the way out.
  check_fini(fleet, "a");

  for (const char* bad : {"soon", "-1s", "5 s"}) {
    auto r = run_process({SHOAL_BIN, "serve", config, "--connect-timeout", bad}, {}, bounded(10s));
    INFO(describe(r));
    CHECK(r.exit_code == 2);
    CHECK(r.err == std::string("shoal: serve: --connect-timeout: expected a duration such as 30s or 0, found '") +
                       bad + "'\n");
  }
}
