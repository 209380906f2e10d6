#include "common/log.hpp"

#include "common/check.hpp"

#include "common/json.hpp"
#include "common/printable.hpp"

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace shoal::detail {

namespace {

constexpr const char* kLevelNames[] = {"debug", "info", "warning", "error"};
// A worker's log line crosses a pipe whose reader cuts lines past 4096 bytes; a line is
// kept under that, so a JSON line always arrives whole.
constexpr size_t kMaxLine = 4000;
constexpr size_t kMaxMessage = 3000;   // bytes of a message, before escaping
constexpr size_t kShortMessage = 450;  // when escaping made the line too long: 450 * 6 + names
constexpr size_t kMaxName = 200;       // of the pool and the component

}  // namespace

std::optional<LogLevel> parse_log_level(std::string_view t) noexcept {
  if (t == "debug") return LogLevel::debug;
  if (t == "info") return LogLevel::info;
  if (t == "warn" || t == "warning") return LogLevel::warn;
  if (t == "error") return LogLevel::error;
  return std::nullopt;
}

std::optional<LogFormat> parse_log_format(std::string_view t) noexcept {
  if (t == "text") return LogFormat::text;
  if (t == "json") return LogFormat::json;
  return std::nullopt;
}

LogLevel log_threshold() noexcept {
  static const LogLevel level = [] {
    const char* v = std::getenv("SHOAL_LOG");
    return v ? parse_log_level(v).value_or(LogLevel::info) : LogLevel::info;
  }();
  return level;
}

LogFormat log_format() noexcept {
  static const LogFormat format = [] {
    const char* v = std::getenv("SHOAL_LOG_FORMAT");
    return v ? parse_log_format(v).value_or(LogFormat::text) : LogFormat::text;
  }();
  return format;
}

std::string log_json(LogLevel level, std::string_view msg, const LogOrigin& origin, std::string_view stream) {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  tm utc{};
  ::gmtime_r(&ts.tv_sec, &utc);
  char when[96];
  std::snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, ts.tv_nsec / 1000000);
  std::string out = "{\"time\":\"";
  out += when;
  out += "\",\"level\":\"";
  out += kLevelNames[static_cast<int>(level)];
  out += '"';
  if (!origin.pool.empty()) {
    out += ",\"pool\":";
    append_json_string(out, origin.pool);
  }
  if (origin.worker >= 0) out += ",\"worker\":" + std::to_string(origin.worker);
  if (!origin.component.empty()) {
    out += ",\"component\":";
    append_json_string(out, origin.component);
  }
  if (!stream.empty()) {
    out += ",\"stream\":";
    append_json_string(out, stream);
  }
  out += ",\"message\":";
  append_json_string(out, msg);
  out += '}';
  return out;
}

namespace {

// One line without its newline, in the configured format.
std::string render(LogLevel level, std::string_view msg, const LogOrigin& origin) {
  if (log_format() == LogFormat::json) return log_json(level, msg, origin);
  std::string line = "shoal: ";
  line += kLevelNames[static_cast<int>(level)];
  line += ": ";
  if (!origin.pool.empty()) {
    line += origin.pool;
    if (origin.worker >= 0) {
      // Appended piece by piece: `"[" + std::string` trips GCC 12's -Wrestrict (PR105651).
      line += '[';
      line += std::to_string(origin.worker);
      line += ']';
    }
    line += origin.component.empty() ? ": " : " ";
  }
  if (!origin.component.empty()) {
    line += origin.component;
    line += ": ";
  }
  // One message, one line: a newline in it would make a second line that a reader takes
  // for another message (or, from a worker, for the plugin's own output).
  line += printable(msg);
  return line;
}

}  // namespace

namespace {
std::atomic<int> g_log_channel{-1};
}  // namespace

void set_log_channel(int fd) noexcept { g_log_channel.store(fd, std::memory_order_relaxed); }

std::string encode_log_record(LogLevel level, std::string_view component, std::string_view msg) {
  component = component.substr(0, kMaxName);
  std::string out;
  out += static_cast<char>(level);
  out += static_cast<char>(component.size());
  out += component;
  out += msg.substr(0, kLogRecordMax - out.size());
  return out;
}

std::optional<LogRecord> decode_log_record(std::string_view packet) {
  if (packet.size() < 2 || static_cast<unsigned char>(packet[0]) > static_cast<unsigned char>(LogLevel::error))
    return std::nullopt;
  const auto component = static_cast<unsigned char>(packet[1]);
  if (packet.size() < 2 + size_t{component}) return std::nullopt;
  return LogRecord{static_cast<LogLevel>(packet[0]), std::string(packet.substr(2, component)),
                   std::string(packet.substr(2 + size_t{component}))};
}

void log_line(LogLevel level, std::string_view msg, const LogOrigin& origin) noexcept {
  if (level < log_threshold()) return;
  try {
    if (const int fd = g_log_channel.load(std::memory_order_relaxed); fd >= 0) {
      const std::string record = encode_log_record(level, origin.component, msg);
      ssize_t n = ::write(fd, record.data(), record.size());  // best effort, as below
      (void)n;
      return;
    }
    const LogOrigin o{origin.pool.substr(0, kMaxName), origin.worker, origin.component.substr(0, kMaxName)};
    std::string line = render(level, msg.substr(0, kMaxMessage), o);
    // Escaping can make a message six times longer (\u0001 for one byte): a line past
    // what the host's reader keeps whole is rendered again from less of the message.
    if (line.size() > kMaxLine) line = render(level, msg.substr(0, kShortMessage), o);
    line += '\n';
    log_raw(line);
  } catch (...) {
    // Out of memory while logging: the line is dropped, the caller goes on.
  }
}

namespace {
std::atomic<bool> g_progress_visible{false};
}  // namespace

void set_progress_visible(bool visible) noexcept { g_progress_visible.store(visible, std::memory_order_relaxed); }

void log_raw(std::string_view text) noexcept {
  // Best effort: a log line that cannot be written is dropped, never retried in a loop.
  if (g_progress_visible.exchange(false, std::memory_order_relaxed)) {
    try {
      std::string erased = "\r\x1b[K";
      erased += text;
      ssize_t n = ::write(STDERR_FILENO, erased.data(), erased.size());
      (void)n;
      return;
    } catch (...) {
      // out of memory: written without the erase below
    }
  }
  ssize_t n = ::write(STDERR_FILENO, text.data(), text.size());
  (void)n;
}

void logf(LogLevel level, const char* fmt, ...) noexcept {
  if (level < log_threshold()) return;
  char buf[1024];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  log_line(level, buf);
}

void check_failed(const char* expr, const char* file, int line) noexcept {
  const int err = errno;  // most checks guard a system call: its errno is the clue
  logf(LogLevel::error, "internal error: check failed at %s:%d: %s (errno %d: %s)", file, line, expr, err,
       std::strerror(err));
  std::abort();
}

}  // namespace shoal::detail
