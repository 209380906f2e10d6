// A real redis-server for a test: a free loopback port, its own temporary data folder,
// append-only file on (as DESIGN.md asks of tests), killed and reaped by the destructor
// whatever the test did. It can be stopped and started again on the same port and
// folder, to test a restart.
#ifndef SHOAL_TESTS_REDIS_SERVER_HPP
#define SHOAL_TESTS_REDIS_SERVER_HPP

#include "support/test_env.hpp"

#include "redis/client.hpp"

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

namespace shoal::test {

class RedisServer {
 public:
  struct Options {
    bool appendonly = true;
  };

  /// Starts the server and waits until it answers PING; fails the test when it cannot.
  explicit RedisServer(Options options);
  RedisServer() : RedisServer(Options{}) {}
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  /// redis://127.0.0.1:PORT
  std::string url() const;
  const std::filesystem::path& dir() const { return dir_.path(); }
  int pid() const { return process_ ? process_->pid() : -1; }

  /// SIGTERM (Redis syncs the append-only file and exits) and waits; false on timeout.
  bool stop(std::chrono::milliseconds limit = std::chrono::seconds(10));
  /// Starts it again on the same port and folder and waits until it answers; false when
  /// it does not within `limit` (the server's log is in the test's output then).
  bool start(std::chrono::milliseconds limit = std::chrono::seconds(10));

  /// A connection for the test's own checks; fails the test when it cannot connect.
  detail::redis::Connection connect() const;
  /// One command on a fresh connection; fails the test on a lost connection.
  detail::redis::Reply command(const detail::redis::Args& args) const;

 private:
  bool launch();
  bool wait_ready(std::chrono::milliseconds limit);

  Options options_;
  TempDir dir_;
  int port_ = 0;
  std::unique_ptr<Background> process_;
  int launches_ = 0;
};

/// The redis-server executable: $SHOAL_REDIS_SERVER, else redis-server on PATH.
std::string redis_server_path();

}  // namespace shoal::test

#endif
