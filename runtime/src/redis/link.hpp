// One connection of a Redis client that waits for a server to come back (`submit`,
// `collect`, shoal::Client): a failure closes it, and reconnect() pauses with back-off,
// an interruption ending the pause, until it is open again, for at most `give_up` without
// one answer (0: no limit). A refused AUTH or SELECT, or a server that does not speak
// Redis, is fatal: retrying would never end.
#ifndef SHOAL_REDIS_LINK_HPP
#define SHOAL_REDIS_LINK_HPP

#include "redis/client.hpp"

#include <chrono>
#include <functional>
#include <string>

namespace shoal::detail::redis {

class Link {
 public:
  struct Hooks {
    /// Readable when the caller wants the wait over (a signalfd, an eventfd); -1: none.
    int interrupt_fd = -1;
    /// After interrupt_fd woke a wait or a command failed: nonzero (a signal number, or
    /// 1) when the caller is to stop. Null: interrupt_fd readable means stop (code 1).
    std::function<int()> interrupted;
    /// A line for the user: a retry (warning) or a connection back (not).
    std::function<void(bool warning, const std::string& line)> say;
    /// Named in the message when `give_up` passes: what sets that limit.
    std::string limit_name = "--connect-timeout";
  };

  Link(Url url, std::string name, std::chrono::milliseconds give_up, std::chrono::milliseconds io_timeout,
       Hooks hooks);

  /// The most bytes one reply may take (kMaxReplyBytes unless set before open()).
  void set_max_reply(size_t bytes) { max_reply_ = bytes; }

  Result<void> open();

  Connection& conn() { return conn_; }
  explicit operator bool() const { return bool(conn_); }
  const Url& url() const { return url_; }

  /// As below, but an error that retrying cannot cure (a server that does not speak
  /// Redis, a reply past the bound) ends the work: fatal().
  void lost(const Error& e);
  /// The connection failed (or Redis refused for a while): closes it and says so. An
  /// interruption that cut a wait short is no failure to report: it ends the work.
  void lost(const std::string& why);
  /// Opens the connection again after a pause; false when an interruption came first
  /// (stopped_by()) or the server refused for good (fatal()). Call while !*this.
  bool reconnect();
  /// Waits `ms` unless interrupted first; false then.
  bool pause(std::chrono::milliseconds ms);
  /// A command went through: the next outage starts with short pauses again, and its
  /// own give-up limit.
  void ok();

  int stopped_by() const { return stopped_by_; }
  const std::string& fatal() const { return fatal_; }
  const std::string& name() const { return name_; }
  /// A line for the user through the hooks.
  void say(bool warning, const std::string& line) const {
    if (hooks_.say) hooks_.say(warning, line);
  }

 private:
  using Clock = std::chrono::steady_clock;
  int poll_interrupted();
  void opened(Connection&& c);

  Url url_;
  std::string name_;
  std::chrono::milliseconds give_up_, io_timeout_;
  Hooks hooks_;
  Clock::time_point failing_since_{};  // the first failure since the last answer
  uint64_t failures_ = 0;
  std::string last_error_;
  size_t max_reply_ = kMaxReplyBytes;
  Connection conn_;
  // Short at first (a restart takes a moment), never long enough to matter once it is back.
  Backoff backoff_{std::chrono::milliseconds(100), std::chrono::seconds(2)};
  int stopped_by_ = 0;
  std::string fatal_;
};

}  // namespace shoal::detail::redis

#endif  // SHOAL_REDIS_LINK_HPP
