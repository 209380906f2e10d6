#include "redis/client.hpp"

#include "config/values.hpp"

#include <hiredis/hiredis.h>

#include <poll.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace shoal::detail::redis {

namespace {

Error bad_url(std::string_view text, const std::string& why) {
  return Error{Errc::config, "redis URL '" + redact_url(text) + "': " + why};
}

// %XX escapes, so a password may hold '@', ':' or '/'.
bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    const int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

}  // namespace

Result<Url> parse_url(std::string_view text) {
  Url url;
  constexpr std::string_view kTcp = "redis://", kUnix = "unix://";
  if (text.starts_with(kUnix)) {
    url.unix_path = std::string(text.substr(kUnix.size()));
    if (url.unix_path.empty() || url.unix_path[0] != '/') return bad_url(text, "expected unix:///ABSOLUTE/PATH");
    url.display = std::string(text);
    return url;
  }
  if (!text.starts_with(kTcp)) return bad_url(text, "expected redis://HOST[:PORT][/DB] or unix:///PATH");
  std::string_view rest = text.substr(kTcp.size());
  std::string_view auth;
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    auth = rest.substr(0, at);
    rest = rest.substr(at + 1);
  }
  if (!auth.empty()) {
    const auto colon = auth.find(':');
    const std::string_view user = colon == std::string_view::npos ? std::string_view{} : auth.substr(0, colon);
    const std::string_view pass = colon == std::string_view::npos ? auth : auth.substr(colon + 1);
    if (!percent_decode(user, url.user) || !percent_decode(pass, url.password))
      return bad_url(text, "bad %-escape in the user or password");
  }
  std::string_view hostport = rest;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    const std::string_view db = rest.substr(slash + 1);
    if (!db.empty() && !parse_int_in<int>(db, 0, 1 << 20, url.db))
      return bad_url(text, "database '" + std::string(db) + "' is not a number");
  }
  std::string_view host = hostport;
  if (hostport.starts_with('[')) {  // [::1]:6379
    const auto close = hostport.find(']');
    if (close == std::string_view::npos) return bad_url(text, "unterminated '[' in the host");
    host = hostport.substr(1, close - 1);
    hostport = hostport.substr(close + 1);
    if (!hostport.empty() && hostport[0] != ':') return bad_url(text, "expected ':' after ']'");
    if (!hostport.empty() && !parse_int_in<int>(hostport.substr(1), 1, 65535, url.port))
      return bad_url(text, "port '" + std::string(hostport.substr(1)) + "' is not from 1 to 65535");
  } else if (auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
    host = hostport.substr(0, colon);
    const std::string_view port = hostport.substr(colon + 1);
    if (!parse_int_in<int>(port, 1, 65535, url.port))
      return bad_url(text, "port '" + std::string(port) + "' is not from 1 to 65535");
  }
  if (host.empty()) return bad_url(text, "missing host");
  url.host = std::string(host);
  url.display = redact_url(text);
  return url;
}

// ---------------------------------------------------------------------------------------
// Replies

bool ReplyView::is_error() const noexcept { return r_ != nullptr && r_->type == REDIS_REPLY_ERROR; }
bool ReplyView::is_nil() const noexcept { return r_ == nullptr || r_->type == REDIS_REPLY_NIL; }
bool ReplyView::is_array() const noexcept { return r_ != nullptr && r_->type == REDIS_REPLY_ARRAY; }
bool ReplyView::is_string() const noexcept {
  return r_ != nullptr && (r_->type == REDIS_REPLY_STRING || r_->type == REDIS_REPLY_STATUS);
}
bool ReplyView::is_integer() const noexcept { return r_ != nullptr && r_->type == REDIS_REPLY_INTEGER; }

std::string_view ReplyView::str() const noexcept {
  if (r_ == nullptr || r_->str == nullptr) return {};
  if (r_->type != REDIS_REPLY_STRING && r_->type != REDIS_REPLY_STATUS && r_->type != REDIS_REPLY_ERROR) return {};
  return {r_->str, r_->len};
}

long long ReplyView::integer() const noexcept { return is_integer() ? r_->integer : 0; }
size_t ReplyView::size() const noexcept { return is_array() ? r_->elements : 0; }

ReplyView ReplyView::operator[](size_t i) const noexcept {
  return ReplyView(i < size() ? r_->element[i] : nullptr);
}

std::string ReplyView::error_text() const {
  return is_error() ? std::string(str()) : std::string("unexpected reply");
}

Reply::Reply(redisReply* r) noexcept : r_(r) {}
ReplyView Reply::view() const noexcept { return ReplyView(r_.get()); }
void Reply::Free::operator()(redisReply* r) const noexcept { freeReplyObject(r); }

// ---------------------------------------------------------------------------------------
// Connection

Connection::Connection(redisContext* ctx, std::string where) noexcept
    : ctx_(ctx), where_(std::move(where)), max_reply_(kMaxReplyBytes) {}

Connection::Connection(Connection&& o) noexcept
    : ctx_(std::exchange(o.ctx_, nullptr)), where_(std::move(o.where_)), timeout_(o.timeout_),
      interrupt_fd_(o.interrupt_fd_), max_reply_(o.max_reply_) {}

Connection& Connection::operator=(Connection&& o) noexcept {
  if (this != &o) {
    close();
    ctx_ = std::exchange(o.ctx_, nullptr);
    where_ = std::move(o.where_);
    timeout_ = o.timeout_;
    interrupt_fd_ = o.interrupt_fd_;
    max_reply_ = o.max_reply_;
  }
  return *this;
}

Connection::~Connection() { close(); }

void Connection::close() noexcept {
  if (ctx_ != nullptr) redisFree(ctx_);
  ctx_ = nullptr;
}

int Connection::fd() const noexcept { return ctx_ != nullptr ? ctx_->fd : -1; }

Result<Connection> Connection::open(const Url& url, std::chrono::milliseconds timeout) {
  const timeval tv = to_timeval(timeout);
  redisContext* ctx = url.unix_path.empty() ? redisConnectWithTimeout(url.host.c_str(), url.port, tv)
                                            : redisConnectUnixWithTimeout(url.unix_path.c_str(), tv);
  if (ctx == nullptr) return Error{Errc::io, url.display + ": cannot allocate a connection"};
  if (ctx->err != 0) {
    std::string why = ctx->errstr;
    redisFree(ctx);
    return Error{Errc::io, url.display + ": " + why};
  }
  // The connect timeout does not bound later reads and writes in hiredis 0.14; a server
  // that stops answering must end in an error, not a process stuck in read(2). Keepalive
  // notices a peer that vanished without a FIN (a machine that lost power).
  if (redisSetTimeout(ctx, tv) != REDIS_OK || (url.unix_path.empty() && redisEnableKeepAlive(ctx) != REDIS_OK)) {
    std::string why = ctx->errstr;
    redisFree(ctx);
    return Error{Errc::io, url.display + ": " + why};
  }
  Connection conn(ctx, url.display);
  conn.timeout_ = timeout;
  // A refused AUTH or SELECT does not pass with time (a wrong password, a database the
  // server does not have): Errc::config, so that callers stop instead of retrying forever.
  // Only a server still loading its data may say yes later.
  const auto refusal = [&](const Reply& r, const std::string& what) {
    const bool later = r.view().str().starts_with("LOADING");
    return Error{later ? Errc::io : Errc::config, url.display + ": " + what + ": " + std::string(r.str())};
  };
  if (!url.password.empty()) {
    Args auth = url.user.empty() ? Args{"AUTH", url.password} : Args{"AUTH", url.user, url.password};
    auto r = conn.command(auth);
    if (!r) return r.error();
    if (r->is_error()) return refusal(*r, "AUTH refused");
  }
  if (url.db != 0) {
    auto r = conn.command({"SELECT", std::to_string(url.db)});
    if (!r) return r.error();
    if (r->is_error()) return refusal(*r, "SELECT " + std::to_string(url.db));
  }
  // Without AUTH or SELECT nothing was asked yet: any server that accepts a connection
  // would pass for Redis, and each later command would fail and be retried forever.
  auto pong = conn.command({"PING"});
  if (!pong) return pong.error();
  if (pong->is_error() && !pong->str().starts_with("LOADING") && !pong->str().starts_with("NOAUTH"))
    return Error{Errc::failed, url.display + ": PING: " + std::string(pong->str())};
  return conn;
}

Error Connection::lost(std::string_view during) {
  std::string why = ctx_ == nullptr ? std::string("not connected") : std::string(ctx_->errstr);
  if (ctx_ != nullptr && ctx_->err == REDIS_ERR_IO && why.empty()) why = std::strerror(errno);
  // What answered does not speak Redis: reconnecting would get the same answer.
  const bool protocol = ctx_ != nullptr && ctx_->err == REDIS_ERR_PROTOCOL;
  // A timed-out read leaves half a reply in the buffer; the connection cannot be used
  // again, whatever the error was.
  close();
  if (protocol) return Error{Errc::failed, where_ + ": not a Redis server? " + std::string(during) + ": " + why};
  return Error{Errc::io, where_ + ": " + std::string(during) + ": " + (why.empty() ? "connection lost" : why)};
}

Result<void> Connection::append(const Args& args) {
  if (ctx_ == nullptr) return lost("send");
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  if (redisAppendCommandArgv(ctx_, static_cast<int>(args.size()), argv.data(), lens.data()) != REDIS_OK)
    return lost("send");
  return {};
}

Result<void> Connection::send(const Args& args) {
  if (auto a = append(args); !a) return a;
  int done = 0;
  while (done == 0) {
    if (redisBufferWrite(ctx_, &done) != REDIS_OK) return lost("send");
  }
  return {};
}

Result<Reply> Connection::receive() {
  if (ctx_ == nullptr) return lost("receive");
  // Not redisGetReply: it reads until a reply is whole, however long that takes and
  // however much arrives, deaf to signals. Here the whole reply has one deadline, one
  // size bound, and a stop signal (interrupt_fd_) ends the wait.
  int done = 0;
  while (done == 0) {
    if (redisBufferWrite(ctx_, &done) != REDIS_OK) return lost("send");
  }
  void* raw = nullptr;
  if (redisGetReplyFromReader(ctx_, &raw) != REDIS_OK) return lost("receive");
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  size_t received = 0;
  while (raw == nullptr) {
    pollfd p[2] = {{ctx_->fd, POLLIN, 0}, {interrupt_fd_, POLLIN, 0}};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      close();
      return Error{Errc::io, where_ + ": no whole reply within " + std::to_string(timeout_.count()) + " ms"};
    }
    const int n = ::poll(p, interrupt_fd_ >= 0 ? 2 : 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return lost("poll");
    if ((p[1].revents & POLLIN) != 0) {
      close();
      return Error{Errc::io, where_ + ": interrupted by a signal"};
    }
    if (n == 0) continue;
    const size_t before = ctx_->reader->len - ctx_->reader->pos;
    if (redisBufferRead(ctx_) != REDIS_OK) return lost("receive");
    received += ctx_->reader->len - ctx_->reader->pos - std::min(before, ctx_->reader->len - ctx_->reader->pos);
    if (redisGetReplyFromReader(ctx_, &raw) != REDIS_OK) return lost("receive");
    if (raw == nullptr && received > max_reply_) {
      close();
      return Error{Errc::failed, where_ + ": a reply larger than " + std::to_string(max_reply_) +
                                     " bytes (not a Redis server?)"};
    }
  }
  return Reply(static_cast<redisReply*>(raw));
}

Result<Reply> Connection::command(const Args& args) {
  if (auto a = append(args); !a) return a.error();
  return receive();  // which writes what append() buffered first
}

Result<std::vector<Reply>> Connection::pipeline(const std::vector<Args>& commands) {
  for (const auto& c : commands) {
    if (auto a = append(c); !a) return a.error();
  }
  std::vector<Reply> replies;
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    auto r = receive();
    if (!r) return r.error();
    replies.push_back(std::move(*r));
  }
  return replies;
}

std::chrono::milliseconds Backoff::next() noexcept {
  const auto now = next_;
  next_ = std::min(max_, next_ * 2);
  return now;
}

}  // namespace shoal::detail::redis
