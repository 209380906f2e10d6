// What `shoal serve`, `submit` and `collect` share besides the stream layout
// (redis/streams.hpp): the setup every one of them does before its first command, the
// timings of a connection, and the re-opening of a lost one that a stop signal cuts short.
// Header-only, like the rest of the CLI's shared code.
#ifndef SHOAL_CLI_SCALE_OUT_SHARED_HPP
#define SHOAL_CLI_SCALE_OUT_SHARED_HPP

#include "options.hpp"
#include "terminal.hpp"

#include "redis/client.hpp"
#include "redis/streams.hpp"

#include <shoal/config.hpp>
#include <shoal/runtime.hpp>

#include <poll.h>
#include <signal.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shoal::cli {

namespace redis = shoal::detail::redis;

/// How long one command may take before the connection counts as lost.
inline constexpr auto kIoTimeout = std::chrono::milliseconds(5000);

/// The pauses between attempts to reach a server that went away: short at first (a
/// restart takes a moment), never long enough to matter once it is back.
inline redis::Backoff reconnect_backoff() {
  return redis::Backoff(std::chrono::milliseconds(100), std::chrono::seconds(2));
}

/// hiredis writes with write(2): a server that closed the connection must surface as
/// EPIPE, not kill the process.
inline void ignore_sigpipe() { ::signal(SIGPIPE, SIG_IGN); }

/// The status word of a result ("ok", "crashed", …); nullopt for another word.
inline std::optional<Status> status_from(std::string_view word) {
  for (Status s : {Status::ok, Status::error, Status::crashed, Status::timeout, Status::cancelled, Status::rejected})
    if (to_string(s) == word) return s;
  return std::nullopt;
}

/// Where a command talks to: the settings (config file, flags on top) and their URL.
struct RedisTarget {
  RedisConfig settings;
  redis::Url url;
};

/// The `redis:` section `from_file` with the flags on top, and its parsed URL. The error
/// is the one-line message for the user.
inline Result<RedisTarget> redis_target(const RedisConfig& from_file, const RedisFlags& flags,
                                        std::string_view command) {
  auto settings = redis_settings(from_file, flags, command);
  if (!settings) return settings.error();
  auto url = redis::parse_url(settings->url);
  if (!url) return url.error();
  return RedisTarget{std::move(*settings), std::move(*url)};
}

/// For the commands whose CONFIG is optional (`submit`, `collect`): its `redis:` section
/// when given, the defaults otherwise, with the flags on top.
inline Result<RedisTarget> redis_target(const std::vector<std::string>& positional, const RedisFlags& flags,
                                        std::string_view command) {
  RedisConfig from_file;
  if (!positional.empty()) {
    auto config = load_config_file(positional[0]);
    if (!config) return config.error();
    from_file = config->redis;
  }
  return redis_target(from_file, flags, command);
}

/// One connection of a client that may wait for a server to come back (`submit`,
/// `collect`): a failure closes it, and reconnect() pauses with back-off, a stop signal
/// ending the pause, until it is open again. A refused AUTH or SELECT is fatal: retrying
/// would never end.
class RedisLink {
 public:
  RedisLink(redis::Url url, StopSignals& signals, std::string command)
      : url_(std::move(url)), signals_(signals), command_(std::move(command)) {}

  Result<void> open() {
    auto c = redis::Connection::open(url_, kIoTimeout);
    if (!c) return c.error();
    conn_ = std::move(*c);
    backoff_.reset();
    return {};
  }

  redis::Connection& conn() { return conn_; }
  explicit operator bool() const { return bool(conn_); }
  const redis::Url& url() const { return url_; }

  /// The connection failed (or Redis refused for a while): closes it and says so.
  void lost(const std::string& why) {
    conn_.close();
    print_warning(command_ + ": " + why + "; retrying");
  }

  /// Opens the connection again after a pause; false when a stop signal came first
  /// (stopped_by()) or the server refused for good (fatal()). Call while !*this.
  bool reconnect() {
    while (!conn_ && stopped_by_ == 0 && fatal_.empty()) {
      if (!pause(backoff_.next())) break;
      auto c = redis::Connection::open(url_, kIoTimeout);
      if (!c) {
        if (c.error().code != Errc::io) fatal_ = c.error().message;
        continue;
      }
      conn_ = std::move(*c);
      print_info(command_ + ": connected again to " + url_.display);
    }
    return bool(conn_);
  }

  /// Waits `ms` unless a stop signal comes first; false then.
  bool pause(std::chrono::milliseconds ms) {
    pollfd p{signals_.fd(), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(ms.count()));
    if (int sig = signals_.poll(); sig != 0) stopped_by_ = sig;
    return stopped_by_ == 0;
  }

  /// A command went through: the next outage starts with short pauses again.
  void ok() { backoff_.reset(); }

  int stopped_by() const { return stopped_by_; }
  const std::string& fatal() const { return fatal_; }

 private:
  redis::Url url_;
  StopSignals& signals_;
  std::string command_;
  redis::Connection conn_;
  redis::Backoff backoff_ = reconnect_backoff();
  int stopped_by_ = 0;
  std::string fatal_;
};

}  // namespace shoal::cli

#endif
