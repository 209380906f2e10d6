// Internal logging: one line per call to stderr, which is where the host's log goes.
// Workers never write to the host's stdout (it carries results).
#ifndef SHOAL_COMMON_LOG_HPP
#define SHOAL_COMMON_LOG_HPP

#include <cstdio>
#include <string>
#include <utility>

namespace shoal::detail {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

/// Minimum level printed; from $SHOAL_LOG (debug|info|warn|error), default info.
LogLevel log_threshold() noexcept;
/// Writes "shoal: <level>: <msg>\n" to stderr with one write(2), so lines from several
/// processes sharing stderr do not interleave within a line.
void log_line(LogLevel level, const std::string& msg) noexcept;

/// Writes `text` (one or more whole lines) to stderr as it is, with one write(2).
void log_raw(const std::string& text) noexcept;

template <class... Args>
void logf(LogLevel level, const char* fmt, Args&&... args) noexcept {
  if (level < log_threshold()) return;
  char buf[1024];
  std::snprintf(buf, sizeof buf, fmt, std::forward<Args>(args)...);
  log_line(level, buf);
}

}  // namespace shoal::detail

#endif
