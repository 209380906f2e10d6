#include "redis/link.hpp"

#include <poll.h>

namespace shoal::detail::redis {

Link::Link(Url url, std::string name, std::chrono::milliseconds give_up, std::chrono::milliseconds io_timeout,
           Hooks hooks)
    : url_(std::move(url)), name_(std::move(name)), give_up_(give_up), io_timeout_(io_timeout),
      hooks_(std::move(hooks)) {}

void Link::opened(Connection&& c) {
  conn_ = std::move(c);
  conn_.set_interrupt_fd(hooks_.interrupt_fd);
  conn_.set_max_reply(max_reply_);
}

Result<void> Link::open() {
  auto c = Connection::open(url_, io_timeout_);
  if (!c) return c.error();
  opened(std::move(*c));
  backoff_.reset();
  return {};
}

int Link::poll_interrupted() {
  if (hooks_.interrupted) return hooks_.interrupted();
  if (hooks_.interrupt_fd < 0) return 0;
  pollfd p{hooks_.interrupt_fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 ? 1 : 0;
}

void Link::lost(const Error& e) {
  if (e.code == Errc::failed) {
    conn_.close();
    fatal_ = e.message;
    return;
  }
  lost(e.message);
}

void Link::lost(const std::string& why) {
  conn_.close();
  if (int code = poll_interrupted(); code != 0) {
    stopped_by_ = code;
    return;
  }
  if (failing_since_ == Clock::time_point{}) failing_since_ = Clock::now();
  ++failures_;
  last_error_ = why;
  say(true, name_ + ": " + why + "; retrying");
}

bool Link::reconnect() {
  while (!conn_ && stopped_by_ == 0 && fatal_.empty()) {
    if (give_up_.count() > 0 && failing_since_ != Clock::time_point{} && Clock::now() - failing_since_ >= give_up_) {
      fatal_ = "no answer from " + url_.display + " for " + std::to_string(give_up_.count() / 1000) + " s (" +
               std::to_string(failures_) + " failed attempts, the last: " + last_error_ + "); " + hooks_.limit_name +
               " sets this limit";
      break;
    }
    if (!pause(backoff_.next())) break;
    auto c = Connection::open(url_, io_timeout_);
    if (!c) {
      ++failures_;
      last_error_ = c.error().message;
      if (c.error().code != Errc::io) fatal_ = c.error().message;
      continue;
    }
    opened(std::move(*c));
    say(false, name_ + ": connected again to " + url_.display);
  }
  return bool(conn_);
}

bool Link::pause(std::chrono::milliseconds ms) {
  pollfd p{hooks_.interrupt_fd, POLLIN, 0};
  ::poll(&p, 1, static_cast<int>(ms.count()));
  if (int code = poll_interrupted(); code != 0) stopped_by_ = code;
  return stopped_by_ == 0;
}

void Link::ok() {
  backoff_.reset();
  failing_since_ = {};
  failures_ = 0;
}

}  // namespace shoal::detail::redis
