// A small synchronous Redis client over hiredis 0.14: a parsed URL, an owned reply, and
// an owned connection with pipelining. One connection belongs to one thread.
//
// Failures come in two kinds and stay apart: a reply of type error (WRONGTYPE, NOGROUP,
// BUSYGROUP …) is a value the caller inspects, while a Result error means the connection
// itself is gone (refused, reset, timed out, protocol error) and must be reopened.
#ifndef SHOAL_REDIS_CLIENT_HPP
#define SHOAL_REDIS_CLIENT_HPP

#include <shoal/result.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct redisContext;
struct redisReply;

namespace shoal::detail::redis {

/// Where a Redis server is: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH.
struct Url {
  std::string host;
  int port = 6379;
  std::string unix_path;  ///< non-empty for a unix socket
  std::string user;
  std::string password;
  int db = 0;
  /// The URL as given, without its password (for messages and logs).
  std::string display;
};

/// Parses a Redis URL; Errc::config with a one-line reason when it is not one.
Result<Url> parse_url(std::string_view text);

/// A read-only view of one node of a reply tree. Cheap to copy; valid while the Reply
/// that owns the tree lives.
class ReplyView {
 public:
  explicit ReplyView(const redisReply* r) noexcept : r_(r) {}
  bool is_error() const noexcept;
  bool is_nil() const noexcept;
  bool is_array() const noexcept;
  bool is_string() const noexcept;   ///< a bulk string or a status ("OK")
  bool is_integer() const noexcept;
  std::string_view str() const noexcept;  ///< string, status or error text; "" otherwise
  long long integer() const noexcept;
  size_t size() const noexcept;           ///< array length; 0 for anything else
  ReplyView operator[](size_t i) const noexcept;  ///< a nil view past the end
  /// The error text, or "unexpected reply" when it is not an error.
  std::string error_text() const;

 private:
  const redisReply* r_;
};

/// An owned reply tree (freed with freeReplyObject).
class Reply {
 public:
  Reply() = default;
  explicit Reply(redisReply* r) noexcept;
  ReplyView view() const noexcept;
  // Shortcuts over view().
  bool is_error() const noexcept { return view().is_error(); }
  std::string_view str() const noexcept { return view().str(); }

 private:
  struct Free {
    void operator()(redisReply* r) const noexcept;
  };
  std::unique_ptr<redisReply, Free> r_;
};

/// The words of one command; binary-safe.
using Args = std::vector<std::string>;

/// The most bytes one reply may take to arrive: a server that streams without end (or
/// one that is not Redis) must not grow the client without bound. Redis's own largest
/// bulk string is 512 MiB (proto-max-bulk-len).
inline constexpr size_t kMaxReplyBytes = size_t{512} << 20;

/// An owned connection. Blocking I/O bounded by a socket timeout.
class Connection {
 public:
  /// Connects, authenticates (AUTH), selects the database of `url` and checks with PING
  /// that Redis answers. Errc::io naming the server and the cause when the server cannot
  /// be reached (worth retrying); Errc::config when it refuses AUTH or SELECT, and
  /// Errc::failed when what answers does not speak Redis (retrying cannot help).
  /// `timeout` bounds the connect and each whole reply.
  static Result<Connection> open(const Url& url, std::chrono::milliseconds timeout);

  Connection() = default;
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  ~Connection();

  explicit operator bool() const noexcept { return ctx_ != nullptr; }

  /// One command, one round trip.
  Result<Reply> command(const Args& args);

  /// Several commands in one write, their replies in order: one round trip for all.
  Result<std::vector<Reply>> pipeline(const std::vector<Args>& commands);

  /// Sends a command without waiting for its reply (for a blocking read the caller
  /// polls on fd()). The next receive() returns its reply.
  Result<void> send(const Args& args);
  /// Reads the reply of the oldest command sent and not yet received.
  Result<Reply> receive();

  /// The socket, for poll(); -1 when closed.
  int fd() const noexcept;

  /// A descriptor (a signalfd) whose readiness cuts a wait for a reply short: the call
  /// fails as a lost connection, and the caller sees the signal. -1: none.
  void set_interrupt_fd(int fd) noexcept { interrupt_fd_ = fd; }
  /// The most bytes one reply may take (kMaxReplyBytes by default); past it the call
  /// fails with Errc::failed.
  void set_max_reply(size_t bytes) noexcept { max_reply_ = bytes; }

  /// Closes the connection (after an error, or to reconnect).
  void close() noexcept;

 private:
  explicit Connection(redisContext* ctx, std::string where) noexcept;
  Error lost(std::string_view during);
  Result<void> append(const Args& args);

  redisContext* ctx_ = nullptr;
  std::string where_;  // "redis://host:port" for messages
  std::chrono::milliseconds timeout_{0};
  int interrupt_fd_ = -1;
  size_t max_reply_;
};



/// Delays between attempts to reach a server: `first`, doubling up to `max`; reset()
/// after a success.
class Backoff {
 public:
  Backoff(std::chrono::milliseconds first, std::chrono::milliseconds max) noexcept
      : first_(first), max_(max), next_(first) {}
  std::chrono::milliseconds next() noexcept;
  void reset() noexcept { next_ = first_; }

 private:
  std::chrono::milliseconds first_, max_, next_;
};

}  // namespace shoal::detail::redis

#endif  // SHOAL_REDIS_CLIENT_HPP
