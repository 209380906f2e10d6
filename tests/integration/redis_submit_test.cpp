// Issue 14, items 8 and 9: `shoal submit` against a server that is not Redis (garbage,
// an endless reply) ends with an error in bounded time and hears SIGTERM; two submits
// never share a task id; a Redis password given by file or environment variable is in no
// argv and reaches no worker.
#include "support/redis_fleet.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <thread>

using namespace shoal::test;

namespace {

// A TCP server on a loopback port that answers like something that is not Redis. One
// connection at a time; the destructor stops it whatever it is doing.
class FakeServer {
 public:
  enum class Mode {
    garbage,  // an HTTP error to whatever is sent
    endless,  // +PONG to the first command, then a bulk string that never ends
    silent,   // reads, never answers
  };
  explicit FakeServer(Mode mode) : mode_(mode) {
    listen_ = listen_loopback(port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeServer() {
    stop_ = true;
    ::shutdown(listen_, SHUT_RDWR);
    if (int c = conn_.load(); c >= 0) ::shutdown(c, SHUT_RDWR);
    thread_.join();
    ::close(listen_);
  }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  uint64_t streamed() const { return streamed_.load(); }
  int connections() const { return connections_.load(); }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{listen_, POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) continue;
      const int c = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      ++connections_;
      conn_ = c;
      talk(c);
      conn_ = -1;
      ::close(c);
    }
  }
  void talk(int c) {
    char buf[4096];
    if (::recv(c, buf, sizeof buf, 0) <= 0) return;
    if (mode_ == Mode::silent) {
      while (!stop_ && ::recv(c, buf, sizeof buf, 0) > 0) {
      }
      return;
    }
    if (mode_ == Mode::garbage) {
      send_all(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    if (!send_all(c, "+PONG\r\n") || ::recv(c, buf, sizeof buf, 0) <= 0) return;
    if (!send_all(c, "$1099511627776\r\n")) return;
    const std::string chunk(64 << 10, 'x');
    while (!stop_ && send_all(c, chunk)) streamed_ += chunk.size();
  }
  static bool send_all(int c, std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(c, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  Mode mode_;
  int listen_ = -1;
  int port_ = 0;
  std::atomic<int> conn_{-1};
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> streamed_{0};
  std::atomic<int> connections_{0};
  std::thread thread_;
};

std::string one_task(const TempDir& dir) { return dir.write("input.txt", "echo 1\n").string(); }

}  // namespace

TEST_CASE("redis submit: a server that is not Redis is an error at once, not retried forever",
          "[integration][redis][submit]") {
  FakeServer http(FakeServer::Mode::garbage);
  TempDir dir;
  const auto start = std::chrono::steady_clock::now();
  auto r = run_process({SHOAL_BIN, "submit", "--redis", http.url(), "--input", one_task(dir)}, {}, bounded(20s));
  INFO(describe(r));
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("not a Redis server") != std::string::npos);
  CHECK(http.connections() == 1);
  CHECK(seconds_since(start) < 5.0 * kSlow);
}

TEST_CASE("redis submit: an endless reply is cut at a bound, and SIGTERM ends the wait",
          "[integration][redis][submit]") {
  TempDir dir;
  SECTION("bounded: an error after one reply past the limit, no retry") {
    FakeServer endless(FakeServer::Mode::endless);
    auto r = run_process({SHOAL_BIN, "submit", "--redis", endless.url(), "--input", one_task(dir)}, {}, bounded(30s));
    INFO(describe(r));
    REQUIRE_FALSE(r.timed_out);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("a reply larger than 65536 bytes") != std::string::npos);
    CHECK(endless.connections() == 1);
  }
  SECTION("SIGTERM while the reply streams: exit 128+15 at once") {
    FakeServer endless(FakeServer::Mode::endless);
    // A bound the stream cannot reach in time: only the signal can end it.
    const auto out = dir.path() / "out", err = dir.path() / "err";
    Background submit({SHOAL_BIN, "submit", "--redis", endless.url(), "--input", one_task(dir)}, "/dev/null", out,
                      err);
    REQUIRE(submit.started());
    REQUIRE(eventually([&] { return endless.connections() >= 1; }, 10s));
    // What it reads first goes to the reply bound; the signal must be heard before.
    REQUIRE(eventually([&] { return endless.streamed() > 0; }, 10s));
    const auto sent = std::chrono::steady_clock::now();
    submit.signal(SIGTERM);
    int code = -1;
    REQUIRE(submit.wait(bounded(5s), code));
    INFO("stderr: " << read_file(err));
    CHECK((code == 128 + SIGTERM || code == 2));  // the signal, or the bound if it came first
    CHECK(seconds_since(sent) < 2.0 * kSlow);
  }
}

TEST_CASE("redis submit: gives up after --connect-timeout without an answer", "[integration][redis][submit]") {
  TempDir dir;
  Fleet fleet;
  const auto input = dir.write("input.txt", "echo 1\n");
  // The first connection works (a full stream makes submit wait), then Redis goes away
  // for good: submit tries again until the limit, then says so.
  const auto out = dir.path() / "out", err = dir.path() / "err";
  fleet.redis.command({"XADD", kStream, "*", "id", "x", "seq", "0", "input", "echo 0"});
  Background submit({SHOAL_BIN, "submit", fleet.config("s", HostOptions().with_redis("  max_stream_length: 1\n")),
                     "--input", input.string(), "--connect-timeout", "2s"},
                    "/dev/null", out, err);
  REQUIRE(submit.started());
  REQUIRE(eventually([&] { return read_file(err).find("waiting") != std::string::npos; }, 10s));
  REQUIRE(fleet.redis.stop());
  int code = -1;
  REQUIRE(submit.wait(bounded(30s), code));
  INFO("stderr: " << read_file(err));
  CHECK(code == 2);
  CHECK(read_file(err).find("--connect-timeout") != std::string::npos);
}

TEST_CASE("redis submit: two jobs on one stream with the same --prefix are collected apart",
          "[integration][redis][submit][job]") {
  Fleet fleet;
  submit(fleet, fleet.config("submit"), {"echo a0", "echo a1", "echo a2"});
  const std::string first = job();
  submit(fleet, fleet.config("submit"), {"echo b0", "echo b1", "echo b2"});
  const std::string second = job();
  CHECK(second != first);
  Host a(fleet, fleet.config("a"), "a");
  // collect() checks that every row it gets belongs to the job it asked for.
  for (const auto& [j, letter] : {std::pair{first, "a"}, std::pair{second, "b"}}) {
    const auto rows = collect(fleet.config("collect"), 3, 0, j);
    for (size_t i = 0; i < 3; ++i) {
      REQUIRE(rows.count(j + ":" + std::to_string(i)) == 1);
      CHECK(rows.at(j + ":" + std::to_string(i)).at("output").text == letter + std::to_string(i));
    }
  }
  // Without --expect, a sealed job's collect ends by itself once its three are in.
  auto whole = run_process({SHOAL_BIN, "collect", fleet.config("collect"), "--job", first}, {}, bounded(20s));
  INFO(describe(whole));
  CHECK(whole.exit_code == 0);
  CHECK(lines_of(whole.out).size() == 3);
  a.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
}

TEST_CASE("redis: a password from a file or $SHOAL_REDIS_PASSWORD is in no argv and reaches no worker",
          "[integration][redis][secrets]") {
  Fleet fleet;
  const std::string password = "pw-" + std::to_string(::getpid()) + "-hunter2";
  REQUIRE_FALSE(fleet.redis.command({"ACL", "SETUSER", "shoal", "on", ">" + password, "~*", "&*", "+@all"}).is_error());
  const std::string url = "redis://shoal:@127.0.0.1:" + std::to_string(fleet.redis.port());
  const auto file = fleet.dir.write("password", password + "\n");
  const auto with_file = HostOptions().with_url(url).with_redis("  password_file: " + file.string() + "\n");

  // The host gets it from its environment, beside another secret that no config names.
  REQUIRE(::setenv("SHOAL_REDIS_PASSWORD", password.c_str(), 1) == 0);
  REQUIRE(::setenv("SHOAL_TEST_HOST_SECRET", "host-only-value", 1) == 0);
  Host a(fleet, fleet.config("a", HostOptions().with_url(url)), "a");
  ::unsetenv("SHOAL_REDIS_PASSWORD");
  ::unsetenv("SHOAL_TEST_HOST_SECRET");
  wait_ready(fleet, {&a});
  submit(fleet, fleet.config("submit", with_file), {"echo 0", "echo 1"});
  const auto rows = collect(fleet.config("collect", with_file), 2);
  CHECK(rows.at(id(1)).at("output").text == "1");

  CHECK(read_file("/proc/" + std::to_string(a.pid()) + "/cmdline").find(password) == std::string::npos);
  const auto workers = a.workers();
  REQUIRE(workers.size() == 2);
  for (int w : workers) {
    const std::string env = read_file("/proc/" + std::to_string(w) + "/environ");
    INFO("worker " << w);
    CHECK(env.find(password) == std::string::npos);
    CHECK(env.find("host-only-value") == std::string::npos);
    CHECK(env.find("PATH=") != std::string::npos);  // what it needs, it has
  }

  SECTION("a refused password is not in the message") {
    ProcessOptions opts;
    opts.env = {{"SHOAL_REDIS_PASSWORD", "wrong-hunter3"}};
    opts.timeout = bounded(20s);
    auto r = run_process({SHOAL_BIN, "submit", "--redis", url, "--input", file.string()}, opts);
    INFO(describe(r));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("AUTH refused") != std::string::npos);
    CHECK(r.err.find("wrong-hunter3") == std::string::npos);
  }
  SECTION("a password given twice is refused, and redacted") {
    auto r = run_process({SHOAL_BIN, "submit", "--redis", "redis://shoal:inline-hunter4@127.0.0.1:1",
                          "--redis-password-file", file.string(), "--input", file.string()},
                         {}, bounded(20s));
    INFO(describe(r));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("more than once") != std::string::npos);
    CHECK(r.err.find("inline-hunter4") == std::string::npos);
  }
  a.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
}

TEST_CASE("redis: a password written in --redis is gone from the command line while the client runs",
          "[integration][redis][secrets]") {
  // `ps` shows /proc/PID/cmdline to every user: the password in it is overwritten at start.
  FakeServer silent(FakeServer::Mode::silent);
  TempDir dir;
  const std::string password = "inline/hunter5@x";  // '/' and '@' unescaped, as the parser takes them
  const std::string url = "redis://shoal:" + password + "@" + silent.url().substr(std::string("redis://").size());
  const auto out = dir.path() / "out", err = dir.path() / "err";
  Background submit({SHOAL_BIN, "submit", "--redis", url, "--input", one_task(dir), "--connect-timeout", "0"},
                    "/dev/null", out, err);
  REQUIRE(submit.started());
  // It connected, so it parsed the real URL: the scrubbed copy is not what it uses.
  REQUIRE(eventually([&] { return silent.connections() >= 1; }, 10s));
  const std::string cmdline = read_file("/proc/" + std::to_string(submit.pid()) + "/cmdline");
  INFO(cmdline);
  CHECK(cmdline.find(password) == std::string::npos);
  CHECK(cmdline.find("redis://shoal:" + std::string(password.size(), '*') + "@127.0.0.1:") != std::string::npos);
  submit.signal(SIGTERM);
  int code = -1;
  REQUIRE(submit.wait(bounded(10s), code));
  CHECK(code == 128 + SIGTERM);
  CHECK(read_file(err).find(password) == std::string::npos);
}

TEST_CASE("redis submit: a line past redis.max_input is not queued nor held, and the next lines are",
          "[integration][redis][submit]") {
  Fleet fleet;
  const auto config = fleet.config("s", HostOptions().with_redis("  max_input: 1KiB\n"));
  SECTION("a long line between two short ones") {
    const auto input = fleet.dir.write("input.txt", "echo a\n" + std::string(5000, 'x') + "\necho b\n");
    auto r = run_process({SHOAL_BIN, "submit", config, "--input", input.string()}, {}, bounded(20s));
    INFO(describe(r));
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("submit: input line 2 is 5000 bytes, more than redis.max_input (1024 bytes): not queued") !=
          std::string::npos);
    std::vector<std::string> queued;
    for (const auto& e : redis::parse_entries(fleet.redis.command({"XRANGE", kStream, "-", "+"}).view()))
      queued.emplace_back(e.field("input").value_or(""));
    CHECK(queued == std::vector<std::string>{"echo a", "echo b"});
  }
  SECTION("/dev/zero: memory stays small, SIGTERM ends it") {
    const auto out = fleet.dir.path() / "out", err = fleet.dir.path() / "err";
    Background submit({SHOAL_BIN, "submit", config, "--input", "/dev/zero"}, "/dev/null", out, err);
    REQUIRE(submit.started());
    const long peak = peak_rss_kib(submit.pid(), 1s);
    CHECK(peak > 0);
    CHECK(peak < 200 * 1024);
    submit.signal(SIGTERM);
    int code = -1;
    REQUIRE(submit.wait(bounded(5s), code));
    INFO("stderr: " << read_file(err));
    CHECK(code == 128 + SIGTERM);
    CHECK(fleet.integer({"XLEN", kStream}) == 0);
  }
}
