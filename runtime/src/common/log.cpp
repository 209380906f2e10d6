#include "common/log.hpp"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace shoal::detail {

LogLevel log_threshold() noexcept {
  static const LogLevel level = [] {
    const char* v = std::getenv("SHOAL_LOG");
    if (v == nullptr) return LogLevel::info;
    if (std::strcmp(v, "debug") == 0) return LogLevel::debug;
    if (std::strcmp(v, "warn") == 0) return LogLevel::warn;
    if (std::strcmp(v, "error") == 0) return LogLevel::error;
    return LogLevel::info;
  }();
  return level;
}

void log_line(LogLevel level, const std::string& msg) noexcept {
  if (level < log_threshold()) return;
  static const char* const names[] = {"debug", "info", "warning", "error"};
  std::string line = "shoal: ";
  line += names[static_cast<int>(level)];
  line += ": ";
  line += msg;
  line += '\n';
  // Best effort: a log line that cannot be written is dropped, never retried in a loop.
  ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
  (void)n;
}

void log_raw(const std::string& text) noexcept {
  ssize_t n = ::write(STDERR_FILENO, text.data(), text.size());
  (void)n;
}

}  // namespace shoal::detail
