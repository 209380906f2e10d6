// The progress line `shoal run` redraws on a terminal: what it says (progress_line, a
// pure function of the figures and the width, so a test can render any width) and when
// and where it is drawn (Progress). Header-only, like terminal.hpp that includes it.
#ifndef SHOAL_CLI_PROGRESS_HPP
#define SHOAL_CLI_PROGRESS_HPP

#include "common/log.hpp"

#include <shoal/runtime.hpp>

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace shoal::cli {

using Clock = std::chrono::steady_clock;

struct Counts {
  std::array<uint64_t, 6> by_status{};
  uint64_t total() const {
    uint64_t t = 0;
    for (uint64_t c : by_status) t += c;
    return t;
  }
  uint64_t ok() const { return by_status[static_cast<size_t>(Status::ok)]; }
};

/// 999, 1.23k, 12.3k, 123k, 1.23M: three significant figures, for a rate that changes
/// ten times a second and must not push the rest of the line about.
inline std::string compact_count(double value) {
  static constexpr const char* kUnits[] = {"", "k", "M", "G", "T"};
  size_t unit = 0;
  // 999.5 would print as "1000": the next unit's "1.00" is the same number, shorter.
  while (value >= 999.5 && unit + 1 < std::size(kUnits)) {
    value /= 1000;
    ++unit;
  }
  char text[32];
  const int decimals = unit == 0 ? 0 : value < 9.995 ? 2 : value < 99.95 ? 1 : 0;
  std::snprintf(text, sizeof text, "%.*f%s", decimals, value, kUnits[unit]);
  return text;
}

/// 45s, 1m05s, 2h03m, 123h: an ETA or an elapsed time, never wider than its figures.
inline std::string compact_duration(double seconds) {
  const auto s = static_cast<long long>(std::max(seconds, 0.0) + 0.5);
  char text[32];
  if (s < 60) std::snprintf(text, sizeof text, "%llds", s);
  else if (s < 3600) std::snprintf(text, sizeof text, "%lldm%02llds", s / 60, s % 60);
  else if (s < 100 * 3600) std::snprintf(text, sizeof text, "%lldh%02lldm", s / 3600, s % 3600 / 60);
  else std::snprintf(text, sizeof text, "%lldh", s / 3600);
  return text;
}

/// What the progress line shows.
struct ProgressFigures {
  uint64_t done = 0, failed = 0, pending = 0;
  double rate = 0;                ///< tasks written per second so far
  double secs = 0;                ///< since the run started
  std::optional<double> fraction;  ///< share done, when it can be told (a bar, a percentage)
  std::optional<uint64_t> total;   ///< the number of tasks, once known
};

/// The line for a terminal `columns` wide, at most columns - 1 characters: one that
/// fills the last column makes some terminals wrap, and "\r" then returns only to the
/// wrapped row, so each redraw would leave a stale row behind. What does not fit is
/// left out whole, least telling first (pending, the bar, the word "done", failed, the
/// percentage); the rate and the ETA go last. Never cut in the middle of a figure, but a
/// terminal too narrow even for the figures gets the first columns - 1 characters.
inline std::string progress_line(const ProgressFigures& f, size_t columns) {
  const size_t room = columns > 0 ? columns - 1 : 0;
  const bool bar = f.fraction.has_value();
  const double frac = std::clamp(f.fraction.value_or(0.0), 0.0, 1.0);
  std::string done = std::to_string(f.done);
  if (f.total) done += "/" + std::to_string(*f.total);
  const std::string rate = compact_count(f.rate) + "/s";
  // The rate so far, applied to what is left; shown once there is a rate to go on.
  std::string when;
  if (!bar) when = "elapsed " + compact_duration(f.secs);
  else if (frac > 0.0 && frac < 1.0 && f.secs >= 1.0) when = "ETA " + compact_duration(f.secs * (1.0 - frac) / frac);
  char pct[8];
  std::snprintf(pct, sizeof pct, "%3d%%", static_cast<int>(frac * 100));

  enum Part : unsigned { kPending = 1, kBar = 2, kDoneWord = 4, kFailed = 8, kPercent = 16 };
  constexpr unsigned kAll = kPending | kBar | kDoneWord | kFailed | kPercent;
  constexpr unsigned kLayouts[] = {kAll, kAll & ~kPending, kDoneWord | kFailed | kPercent, kFailed | kPercent, kPercent,
                                   0};
  constexpr size_t kMinCells = 10, kMaxCells = 30;
  std::string line;
  for (unsigned parts : kLayouts) {
    std::string tail = done;
    if (parts & kDoneWord) tail += " done";
    if (parts & kFailed) tail += ", " + std::to_string(f.failed) + " failed";
    if (parts & kPending) tail += ", " + std::to_string(f.pending) + " pending";
    tail += ", " + rate;
    if (!when.empty()) tail += ", " + when;
    if (bar && (parts & kPercent)) tail = std::string(pct) + " " + tail;
    line = tail;
    if (bar && (parts & kBar)) {
      const size_t frame = tail.size() + 3;  // "[", "] "
      if (frame + kMinCells > room) continue;
      const size_t cells = std::min(kMaxCells, room - frame);
      const auto filled = static_cast<size_t>(frac * static_cast<double>(cells));
      line = "[" + std::string(filled, '#') + std::string(cells - filled, '-') + "] " + tail;
    }
    if (line.size() <= room) return line;
  }
  line.resize(std::min(line.size(), room));
  return line;
}

/// The terminal's width: the window size of `fd`, else $COLUMNS, else 80.
inline size_t terminal_columns(int fd) {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  if (const char* env = std::getenv("COLUMNS")) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n > 0 && n <= 10000) return static_cast<size_t>(n);
  }
  return 80;
}

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

  // Redraws at most ten times a second, to the terminal's width of the moment (a resized
  // window gets the new width at the next frame).
  void maybe_draw(Clock::time_point now, Clock::time_point start, const Counts& counts, uint64_t submitted,
                  uint64_t completed, uint64_t input_bytes, bool input_done) {
    if (!enabled_ || now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    ProgressFigures f;
    f.secs = std::chrono::duration<double>(now - start).count();
    f.done = counts.total();
    f.failed = f.done - counts.ok();
    f.pending = submitted - completed;
    f.rate = f.secs > 0 ? static_cast<double>(f.done) / f.secs : 0.0;
    const bool counted = total_known_.load(std::memory_order_acquire);
    if (input_size_ > 0 || input_done) {
      // Without the line count, the share of input bytes read scales the share of
      // submitted tasks written; with it, or once the input has ended, it is exact.
      const uint64_t known = input_done ? submitted : counted ? total_.load(std::memory_order_relaxed) : 0;
      double frac = submitted > 0 ? static_cast<double>(f.done) / static_cast<double>(submitted) : 0.0;
      if (known > 0) frac = static_cast<double>(f.done) / static_cast<double>(known);
      else if (!input_done) frac *= std::min(1.0, static_cast<double>(input_bytes) / static_cast<double>(input_size_));
      f.fraction = std::min(frac, 1.0);
      if (known > 0 || input_done) f.total = known;
    }
    std::string frame = "\r" + progress_line(f, terminal_columns(STDERR_FILENO)) + "\x1b[K";
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

}  // namespace shoal::cli

#endif
