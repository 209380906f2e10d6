// What `shoal` subcommands share on the terminal side: one-line errors, writes that
// survive a non-blocking stdout, the summary (the progress bar is progress.hpp's), and
// stop signals taken through a signalfd. Header-only: each subcommand is one
// translation unit.
#ifndef SHOAL_CLI_TERMINAL_HPP
#define SHOAL_CLI_TERMINAL_HPP

#include "common/check.hpp"
#include "common/fd.hpp"
#include "common/log.hpp"
#include "common/printable.hpp"
#include "progress.hpp"

#include <shoal/runtime.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace shoal::cli {

using detail::Fd;

// One write(2) per message, so the line is not split by workers that share our stderr.
// With --log-format json it is a log object of that level, like the runtime's own lines.
// Not filtered by --log-level: these are the command's errors and its summary, which a
// script reads whatever the runtime's verbosity.
inline void print_message(detail::LogLevel level, std::string_view message) {
  if (detail::log_format() == detail::LogFormat::json) {
    std::string line = detail::log_json(level, message, {});
    line.push_back('\n');
    detail::log_raw(line);
    return;
  }
  std::string line = "shoal: ";
  line.reserve(line.size() + message.size() + 1);
  // Messages from lower layers may carry a newline (a yaml-cpp excerpt, say); the CLI
  // promises one line per error, so scripts can read stderr line by line.
  // Other control characters are escaped: a value echoed from the command line or a file
  // (an ESC sequence in --pool) must not reach the terminal raw.
  for (char c : message) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n' || c == '\r') line.push_back(' ');
    else if (u < 0x20 || u == 0x7f) line += detail::printable(std::string_view(&c, 1));
    else line.push_back(c);
  }
  line.push_back('\n');
  detail::log_raw(line);
}

inline void print_error(std::string_view message) { print_message(detail::LogLevel::error, message); }
inline void print_warning(std::string_view message) { print_message(detail::LogLevel::warn, message); }
inline void print_info(std::string_view message) { print_message(detail::LogLevel::info, message); }

inline std::string errno_text(int err) { return std::strerror(err); }

// Writes everything or returns the errno that stopped it. Standard output may have been
// left non-blocking by whoever handed it to us; poll instead of spinning on EAGAIN.
inline int write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n >= 0) {
      data += n;
      size -= static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, -1);
      continue;
    }
    return errno;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------
// The summary (the progress line is progress.hpp's)

inline void print_summary(const Counts& counts, double secs) {
  const uint64_t total = counts.total();
  const uint64_t ok = counts.ok();
  std::string line = std::to_string(total) + (total == 1 ? " task, " : " tasks, ") + std::to_string(ok) + " ok, " +
                     std::to_string(total - ok) + " failed";
  std::string detail;
  for (size_t s = 1; s < counts.by_status.size(); ++s) {
    if (counts.by_status[s] == 0) continue;
    if (!detail.empty()) detail += ", ";
    detail += std::to_string(counts.by_status[s]) + " " + std::string(to_string(static_cast<Status>(s)));
  }
  if (!detail.empty()) line += " (" + detail + ")";
  const uint64_t rate = secs > 0 ? static_cast<uint64_t>(static_cast<double>(total) / secs + 0.5) : 0;
  char tail[64];
  std::snprintf(tail, sizeof tail, ", %.2f s, %llu tasks/s", secs, static_cast<unsigned long long>(rate));
  line += tail;
  print_message(detail::LogLevel::info, line);
}

// ---------------------------------------------------------------------------------------
// Signals

// SIGINT, SIGTERM and SIGHUP are blocked in every thread (the pool's threads inherit the
// mask from this one) and read from a signalfd by the writer, so a stop request arrives
// as data at a point where the run can act on it: terminate the pool, drain, summarize.
// Spawned workers get an empty mask and their own process group (process/spawn.cpp).
//
// By default SIGHUP is a stop signal like the other two (`shoal run`, `submit`,
// `collect`: a batch has nothing to reload, and a hang-up of its terminal should end it).
// With Hangup::reload (`shoal serve`) it is not: it is read from a signalfd of its own
// (reload_fd) and stays blocked on this thread for good (release(), interruptible() and
// the destructor leave it blocked, so a SIGHUP while the host starts, stops or exits
// never ends it; one that comes then is left pending, unread), and it is
// taken even when it was ignored at start (nohup): a host that only reloads on it has no
// reason to ignore it.
class StopSignals {
 public:
  enum class Hangup { stop, reload };

  explicit StopSignals(Hangup hangup = Hangup::stop) {
    sigemptyset(&set_);
    sigemptyset(&reload_set_);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
      if (sig == SIGHUP && hangup == Hangup::reload) {
        sigaddset(&reload_set_, sig);
        continue;
      }
      // An ignored signal stays ignored (nohup, a shell's background job): a blocked
      // signal is queued even when ignored, and the signalfd would report it.
      struct sigaction current {};
      if (::sigaction(sig, nullptr, &current) == 0 && current.sa_handler == SIG_IGN) continue;
      sigaddset(&set_, sig);
    }
    sigset_t all = set_;
    if (hangup == Hangup::reload) sigaddset(&all, SIGHUP);
    SHOAL_CHECK(::pthread_sigmask(SIG_BLOCK, &all, &old_) == 0);  // EINVAL only
    // What release() restores: the mask as it was, with the reload signal still blocked.
    after_release_ = old_;
    if (hangup == Hangup::reload) {
      sigaddset(&after_release_, SIGHUP);
      // Without its signalfd (EMFILE) a SIGHUP stays pending and unread: no reload, and
      // no host ended by it either.
      reload_fd_ = Fd(::signalfd(-1, &reload_set_, SFD_NONBLOCK | SFD_CLOEXEC));
    }
    fd_ = Fd(::signalfd(-1, &set_, SFD_NONBLOCK | SFD_CLOEXEC));
    // Without a signalfd (EMFILE) nobody would read the blocked signals and Ctrl-C would
    // be lost: the default action (the host ends, its workers follow) is better.
    if (!fd_) release();
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  ~StopSignals() { release(); }

  // Readable when a stop signal is waiting, for a poll(2) set; -1 if the signalfd failed.
  int fd() const { return fd_.get(); }

  // The stop signal number received since the last call, or 0.
  int poll() { return read_one(fd_.get()); }

  // Hangup::reload: readable when a SIGHUP is waiting; -1 otherwise. Any thread may read
  // it (the signal is blocked in every thread, so it waits for the process).
  int reload_fd() const { return reload_fd_.get(); }

  // True when a SIGHUP came since the last call (several in a row are one: a standard
  // signal is pending once).
  bool poll_reload() { return read_one(reload_fd_.get()) != 0; }

  // Runs `f` with the stop signals deliverable on this thread, for a step that blocks in
  // the kernel out of any poll(2)'s reach: open(2) of a FIFO that has no writer (or no
  // reader), a read of a config FIFO nobody writes to. Blocked, the signal would wait in
  // the signalfd while the run waited forever; deliverable, it takes its default action
  // and ends the host (128+N to the shell), which is all a run can do before its work
  // started. One already pending is delivered at once. Other threads keep the mask, so a
  // pool already running is ended with the host, its workers through their death watch.
  // A reload signal stays blocked: it waits for the host to be ready.
  template <class F>
  decltype(auto) interruptible(F&& f) {
    struct Reblock {
      const StopSignals& s;
      ~Reblock() {
        if (!s.released_) SHOAL_CHECK(::pthread_sigmask(SIG_BLOCK, &s.set_, nullptr) == 0);
      }
    };
    if (!released_) SHOAL_CHECK(::pthread_sigmask(SIG_UNBLOCK, &set_, nullptr) == 0);
    const Reblock reblock{*this};
    return f();
  }

  // Unblocks the stop signals on this thread only: the pool's threads keep them blocked,
  // so a further Ctrl-C takes its default action here and ends the host at once.
  void release() {
    if (released_) return;
    released_ = true;
    SHOAL_CHECK(::pthread_sigmask(SIG_SETMASK, &after_release_, nullptr) == 0);
  }

 private:
  static int read_one(int fd) {
    if (fd < 0) return 0;
    signalfd_siginfo info{};
    ssize_t n = ::read(fd, &info, sizeof info);
    return n == static_cast<ssize_t>(sizeof info) ? static_cast<int>(info.ssi_signo) : 0;
  }

  sigset_t set_{};
  sigset_t reload_set_{};
  sigset_t old_{};
  sigset_t after_release_{};
  Fd fd_;
  Fd reload_fd_;
  bool released_ = false;
};

inline std::string signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

// ---------------------------------------------------------------------------------------

}  // namespace shoal::cli

#endif
