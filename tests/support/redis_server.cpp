#include "support/redis_server.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>

namespace shoal::test {

namespace redis = shoal::detail::redis;
using Clock = std::chrono::steady_clock;

namespace {

// A port the kernel just handed out for 127.0.0.1. Another process may take it before
// redis-server binds it; the caller then tries again with another one.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

}  // namespace

std::string redis_server_path() {
  if (const char* env = std::getenv("SHOAL_REDIS_SERVER"); env != nullptr && *env != '\0') return env;
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  dirs += ":/usr/sbin:/usr/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::filesystem::path candidate = std::filesystem::path(dirs.substr(start, end - start)) / "redis-server";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    start = end + 1;
  }
  return "redis-server";
}

RedisServer::RedisServer(Options options) : options_(options) {
  bool ok = false;
  for (int attempt = 0; attempt < 5 && !ok; ++attempt) {
    port_ = free_port();
    ok = port_ != 0 && launch() && wait_ready(std::chrono::seconds(10 * kSlow));
    if (!ok) process_.reset();
  }
  INFO("redis-server " << redis_server_path() << " log: " << read_file(dir() / "redis-1.log"));
  REQUIRE(ok);
}

RedisServer::~RedisServer() { process_.reset(); }

std::string RedisServer::url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

bool RedisServer::launch() {
  ++launches_;
  const auto log = dir() / ("redis-" + std::to_string(launches_) + ".log");
  process_ = std::make_unique<Background>(
      std::vector<std::string>{redis_server_path(), "--port", std::to_string(port_), "--bind", "127.0.0.1",
                               "--dir", dir().string(), "--appendonly", options_.appendonly ? "yes" : "no",
                               "--appendfsync", "everysec", "--save", "", "--daemonize", "no", "--logfile", "",
                               "--databases", "2"},
      "/dev/null", log, log.string() + ".err");
  return process_->started();
}

bool RedisServer::wait_ready(std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  const auto url = redis::parse_url(this->url());
  if (!url) return false;
  while (Clock::now() < deadline) {
    if (auto c = redis::Connection::open(*url, std::chrono::milliseconds(500))) {
      auto pong = c->command({"PING"});
      if (pong && pong->str() == "PONG") return true;
    }
    // Waiting on the process doubles as the pause between attempts: a server that
    // exited (its port was taken) ends the wait at once.
    int code = 0;
    if (process_->wait(std::chrono::milliseconds(10), code)) return false;
  }
  return false;
}

bool RedisServer::stop(std::chrono::milliseconds limit) {
  if (!process_) return true;
  process_->signal(SIGTERM);
  int code = 0;
  if (!process_->wait(limit, code)) return false;
  process_.reset();
  return true;
}

bool RedisServer::start(std::chrono::milliseconds limit) {
  if (!launch()) return false;
  if (wait_ready(limit)) return true;
  INFO("redis-server log: " << read_file(dir() / ("redis-" + std::to_string(launches_) + ".log")));
  return false;
}

redis::Connection RedisServer::connect() const {
  auto url = redis::parse_url(this->url());
  REQUIRE(url.ok());
  auto c = redis::Connection::open(*url, std::chrono::seconds(5 * kSlow));
  INFO((c ? std::string() : c.error().message));
  REQUIRE(c.ok());
  return std::move(*c);
}

redis::Reply RedisServer::command(const redis::Args& args) const {
  auto c = connect();
  auto r = c.command(args);
  INFO((r ? std::string() : r.error().message));
  REQUIRE(r.ok());
  return std::move(*r);
}

}  // namespace shoal::test
