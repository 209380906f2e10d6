// What `shoal` subcommands share on the terminal side: one-line errors, writes that
// survive a non-blocking stdout, the progress bar and summary, and stop signals taken
// through a signalfd. Header-only: each subcommand is one translation unit.
#ifndef SHOAL_CLI_TERMINAL_HPP
#define SHOAL_CLI_TERMINAL_HPP

#include "common/check.hpp"
#include "common/fd.hpp"
#include "common/log.hpp"
#include "common/printable.hpp"

#include <shoal/runtime.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace shoal::cli {

using Clock = std::chrono::steady_clock;
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
// Progress and summary

struct Counts {
  std::array<uint64_t, 6> by_status{};
  uint64_t total() const {
    uint64_t t = 0;
    for (uint64_t c : by_status) t += c;
    return t;
  }
  uint64_t ok() const { return by_status[static_cast<size_t>(Status::ok)]; }
};

class Progress {
 public:
  // No bar when the log is JSON: stderr then carries objects a program reads.
  Progress(bool enabled, uint64_t input_size)
      : enabled_(enabled && detail::log_format() == detail::LogFormat::text), input_size_(input_size) {}

  bool enabled() const { return enabled_; }

  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  ~Progress() {
    count_stop_.store(true, std::memory_order_relaxed);
    if (counter_.joinable()) counter_.join();
  }

  // The bar's total for a regular input file: its lines, counted on a thread of its own
  // with pread (the reader's offset is untouched), given up when the run ends first.
  void count_lines(int fd) {
    if (!enabled_) return;
    counter_ = std::thread([this, fd] {
      std::vector<char> buf(1 << 20);
      uint64_t lines = 0, offset = 0;
      char last = '\n';
      for (;;) {
        if (count_stop_.load(std::memory_order_relaxed)) return;
        const ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return;
        if (n == 0) break;
        lines += static_cast<uint64_t>(std::count(buf.data(), buf.data() + n, '\n'));
        last = buf[static_cast<size_t>(n) - 1];
        offset += static_cast<uint64_t>(n);
      }
      total_.store(lines + (last != '\n' ? 1 : 0), std::memory_order_relaxed);  // a last line without '\n' is a task
      total_known_.store(true, std::memory_order_release);
    });
  }

  // Redraws at most ten times a second.
  void maybe_draw(Clock::time_point now, Clock::time_point start, const Counts& counts, uint64_t submitted,
                  uint64_t completed, uint64_t input_bytes, bool input_done) {
    if (!enabled_ || now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start).count();
    const uint64_t written = counts.total();
    const uint64_t failed = written - counts.ok();
    const uint64_t rate = secs > 0 ? static_cast<uint64_t>(static_cast<double>(written) / secs) : 0;
    char text[200];
    int n = 0;
    const bool counted = total_known_.load(std::memory_order_acquire);
    if (input_size_ > 0 || input_done) {
      // Without the line count, the share of input bytes read scales the share of
      // submitted tasks written; with it, or once the input has ended, it is exact.
      const uint64_t known = input_done ? submitted : counted ? total_.load(std::memory_order_relaxed) : 0;
      double frac = submitted > 0 ? static_cast<double>(written) / static_cast<double>(submitted) : 0.0;
      if (known > 0) frac = static_cast<double>(written) / static_cast<double>(known);
      else if (!input_done) frac *= std::min(1.0, static_cast<double>(input_bytes) / static_cast<double>(input_size_));
      frac = std::min(frac, 1.0);
      constexpr int kWidth = 24;
      const int filled = std::clamp(static_cast<int>(frac * kWidth), 0, kWidth);
      std::string bar(static_cast<size_t>(filled), '#');
      bar.append(static_cast<size_t>(kWidth - filled), '-');
      // The rate so far, applied to what is left; shown once there is a rate to go on.
      char eta[32] = "";
      if (frac > 0.0 && frac < 1.0 && secs >= 1.0) {
        const auto left = static_cast<long long>(secs * (1.0 - frac) / frac + 0.5);
        std::snprintf(eta, sizeof eta, ", ETA %lld:%02lld", left / 60, left % 60);
      }
      // Once the input has ended the total is known: done/total.
      char total[32] = "";
      if (known > 0 || input_done) std::snprintf(total, sizeof total, "/%llu", static_cast<unsigned long long>(known));
      n = std::snprintf(text, sizeof text, "[%s] %3d%%  %llu%s done, %llu failed, %llu pending, %llu tasks/s%s",
                        bar.c_str(), static_cast<int>(frac * 100), static_cast<unsigned long long>(written), total,
                        static_cast<unsigned long long>(failed),
                        static_cast<unsigned long long>(submitted - completed),
                        static_cast<unsigned long long>(rate), eta);
    } else {
      n = std::snprintf(text, sizeof text, "%llu done, %llu failed, %llu pending, %llu tasks/s, %.1f s",
                        static_cast<unsigned long long>(written), static_cast<unsigned long long>(failed),
                        static_cast<unsigned long long>(submitted - completed),
                        static_cast<unsigned long long>(rate), secs);
    }
    size_t len = std::min(static_cast<size_t>(std::max(n, 0)), sizeof text - 1);
    // A line wider than the terminal wraps, and \r then returns only to the last row:
    // every redraw would leave a stale row behind.
    winsize ws{};
    if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1) len = std::min<size_t>(len, ws.ws_col - 1);
    std::string frame = "\r";
    frame.append(text, len);
    frame.append("\x1b[K");
    ssize_t w = ::write(STDERR_FILENO, frame.data(), frame.size());
    (void)w;
    visible_ = true;
    detail::set_progress_visible(true);
  }

  void clear() {
    if (!visible_) return;
    static constexpr char kClear[] = "\r\x1b[K";
    ssize_t w = ::write(STDERR_FILENO, kClear, sizeof kClear - 1);
    (void)w;
    visible_ = false;
    detail::set_progress_visible(false);
    // The next frame may come at once: the caller just erased the bar, not redrawn it.
    last_ = Clock::time_point{};
  }

 private:
  bool enabled_;
  uint64_t input_size_;
  std::atomic<uint64_t> total_{0};
  std::atomic<bool> total_known_{false};
  std::atomic<bool> count_stop_{false};
  std::thread counter_;
  bool visible_ = false;
  Clock::time_point last_{};
};

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
