#include "sd_notify.hpp"

#include "common/log.hpp"
#include "common/printable.hpp"

#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace shoal::cli {

namespace {

std::string monotonic_usec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::to_string(static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
                        static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL);
}

std::string take_env(const char* name) {
  const char* v = std::getenv(name);
  std::string value = v != nullptr ? v : "";
  ::unsetenv(name);
  return value;
}

bool parse_u64(const std::string& s, unsigned long long& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && end == s.data() + s.size();
}

}  // namespace

SystemdNotifier::SystemdNotifier(std::string& problem) {
  const std::string path = take_env("NOTIFY_SOCKET");
  const std::string usec = take_env("WATCHDOG_USEC");
  const std::string pid = take_env("WATCHDOG_PID");
  if (path.empty()) return;
  // "@name" is the abstract namespace: a leading NUL in sun_path, no terminator counted.
  if ((path[0] != '/' && path[0] != '@') || path.size() >= sizeof(address_.sun_path)) {
    problem = "NOTIFY_SOCKET: '" + detail::printable(path, 80) +
              "' is not an absolute path or @name that fits a socket address; not notifying systemd";
    return;
  }
  address_.sun_family = AF_UNIX;
  std::memcpy(address_.sun_path, path.data(), path.size());
  if (path[0] == '@') address_.sun_path[0] = '\0';
  address_size_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1));
  socket_ = detail::Fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!socket_) {
    problem = std::string("NOTIFY_SOCKET: socket: ") + std::strerror(errno) + "; not notifying systemd";
    return;
  }
  unsigned long long us = 0, for_pid = 0;
  // The watchdog is meant for the process systemd started; a value inherited by another
  // (WATCHDOG_PID names someone else) is not ours to feed.
  if (!usec.empty() && (pid.empty() || (parse_u64(pid, for_pid) && for_pid == static_cast<unsigned long long>(::getpid())))) {
    if (parse_u64(usec, us) && us > 0) watchdog_ = std::chrono::microseconds(us);
    else problem = "WATCHDOG_USEC: '" + detail::printable(usec, 40) + "' is not a positive number of microseconds; no watchdog";
  }
}

bool SystemdNotifier::send(std::string_view state) {
  if (!socket_) return false;
  const ssize_t n = ::sendto(socket_.get(), state.data(), state.size(), MSG_NOSIGNAL,
                             reinterpret_cast<const sockaddr*>(&address_), address_size_);
  if (n == static_cast<ssize_t>(state.size())) return true;
  if (!failure_reported_.exchange(true))
    detail::log_line(detail::LogLevel::warn, std::string("NOTIFY_SOCKET: cannot send to systemd: ") +
                                                 (n < 0 ? std::strerror(errno) : "datagram cut short"),
                     {});
  return false;
}

void SystemdNotifier::attach(ServiceStatus& status) {
  if (!socket_) return;
  status.set_listener([this](const ServiceStatus::View& now, const ServiceStatus::View& before) {
    std::string msg;
    if (now.reloading != before.reloading) {
      // systemd ≥ 253 ignores a RELOADING=1 without the time it was sent; READY=1 ends
      // the reload for it whatever the reload's result (the pool serves either way).
      msg = now.reloading ? "RELOADING=1\nMONOTONIC_USEC=" + monotonic_usec() + "\nSTATUS=reloading; " + now.detail
                          : "READY=1\nSTATUS=" + now.detail;
    } else {
      switch (now.phase) {
        case ServiceStatus::Phase::ready: msg = "READY=1\n"; break;
        case ServiceStatus::Phase::stopping: msg = "STOPPING=1\n"; break;
        default: break;
      }
      msg += "STATUS=" + now.detail;
    }
    send(msg);
  });
}

void SystemdNotifier::detach(ServiceStatus& status) {
  if (socket_) status.set_listener(nullptr);
}

SystemdNotifier::Clock::time_point SystemdNotifier::watchdog_due() const {
  if (watchdog_.count() == 0 || !socket_) return Clock::time_point::max();
  return last_watchdog_ + std::chrono::duration_cast<Clock::duration>(watchdog_) / 2;
}

void SystemdNotifier::watchdog() {
  const auto now = Clock::now();
  if (now < watchdog_due()) return;
  last_watchdog_ = now;
  send("WATCHDOG=1");
}

}  // namespace shoal::cli
