// systemd's readiness protocol, without libsystemd: datagrams of "KEY=VALUE\n" lines to
// the socket named by $NOTIFY_SOCKET (a path, or "@name" in the abstract namespace), as
// sd_notify(3) describes it. A host started by anything else has no $NOTIFY_SOCKET and
// sends nothing. Sending never blocks the host: a full socket drops the datagram.
//
// What `shoal serve` tells (ServiceStatus changes, in order, from whichever thread made
// them):
//   STATUS=starting pool NAME                  while the workers' init runs
//   STATUS=waiting for Redis at URL: CAUSE     pool up, Redis not answering
//   READY=1 + STATUS=serving …                 once the pool is up and Redis answers
//   RELOADING=1 + MONOTONIC_USEC=… + STATUS=   a SIGHUP reload rolls (systemd ≥ 253
//                                              wants the time with it); READY=1 after
//   STOPPING=1 + STATUS=stopping: WHY          a stop began
//   WATCHDOG=1                                 every half $WATCHDOG_USEC, from the main loop
#ifndef SHOAL_CLI_SD_NOTIFY_HPP
#define SHOAL_CLI_SD_NOTIFY_HPP

#include "service_status.hpp"

#include "common/fd.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>

namespace shoal::cli {

class SystemdNotifier {
 public:
  using Clock = std::chrono::steady_clock;

  /// Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID, then removes them from the
  /// environment: the workers inherit it, and plugin code must not speak for the host.
  /// A malformed value is reported in `problem` (one line) and disables that part.
  explicit SystemdNotifier(std::string& problem);
  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  bool enabled() const { return bool(socket_); }
  /// Sends `state` as one datagram; false when it could not (logged once at warn).
  bool send(std::string_view state);

  /// Tells every change of `status` (see the header). `status` must outlive this object's
  /// use by it; the listener is cleared by the destructor of neither: call detach().
  void attach(ServiceStatus& status);
  void detach(ServiceStatus& status);

  /// The main loop turned: WATCHDOG=1 when half the watchdog interval has passed since
  /// the last one. No watchdog: nothing.
  void watchdog();
  /// When the main loop must turn next to keep the watchdog fed; max() without one.
  Clock::time_point watchdog_due() const;

 private:
  detail::Fd socket_;
  sockaddr_un address_{};
  socklen_t address_size_ = 0;
  std::chrono::microseconds watchdog_{0};
  Clock::time_point last_watchdog_{};
  std::atomic<bool> failure_reported_{false};  // send() runs on the main and the reloader thread
};

}  // namespace shoal::cli

#endif
