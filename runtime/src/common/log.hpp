// Internal logging: one line per call to stderr, which is where the host's log goes.
// Workers never write to the host's stdout (it carries results).
//
// The level and the format come from $SHOAL_LOG and $SHOAL_LOG_FORMAT, read once. The
// CLI's --log-level and --log-format set them before anything logs, and workers inherit
// them through their environment, so host and workers write one format.
#ifndef SHOAL_COMMON_LOG_HPP
#define SHOAL_COMMON_LOG_HPP

#include <cstddef>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace shoal::detail {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };
enum class LogFormat { text, json };

/// "debug", "info", "warn" or "error" (also "warning"); nullopt for anything else.
std::optional<LogLevel> parse_log_level(std::string_view text) noexcept;
/// "text" or "json"; nullopt for anything else.
std::optional<LogFormat> parse_log_format(std::string_view text) noexcept;

/// Minimum level printed; from $SHOAL_LOG, default info.
LogLevel log_threshold() noexcept;
/// From $SHOAL_LOG_FORMAT, default text.
LogFormat log_format() noexcept;

/// Who a message is about: the text form prefixes "POOL[WORKER] COMPONENT: ", the JSON
/// form has them as fields. Empty pool / worker -1 / empty component: left out.
struct LogOrigin {
  std::string_view pool;
  int worker = -1;
  std::string_view component;
};

/// One line, "shoal: <level>: <origin><msg>" or a JSON object
/// {"time":"…Z","level":"…","pool":…,"worker":…,"component":…,"message":"…"}, written with
/// one write(2) so lines from several processes sharing stderr do not interleave.
void log_line(LogLevel level, std::string_view msg, const LogOrigin& origin = {}) noexcept;

/// The JSON form of one line, without the newline (also used for forwarded output).
std::string log_json(LogLevel level, std::string_view msg, const LogOrigin& origin, std::string_view stream = {});

/// Writes `text` (one or more whole lines) to stderr as it is, with one write(2). While a
/// progress line is on the terminal (set_progress_visible), it is erased first, so the
/// text does not land on its row; the bar is redrawn below on its next tick.
void log_raw(std::string_view text) noexcept;

/// The CLI's progress bar says whether it is on stderr now.
void set_progress_visible(bool visible) noexcept;

// A worker's own log lines (the runtime's and a plugin's host->log) do not share its
// stderr with what the plugin prints: a plugin line that looks like a log line would pass
// for one (any pool, any level). They go as records on a pipe of their own, in packet
// mode (one write, one record), and the host renders them with the pool and worker it
// knows the pipe belongs to. A plugin can write records too, but only as what host->log
// already lets it say: its own pool and worker, a level, escaped text.

/// The largest record: PIPE_BUF, so that a write is one packet, never split or interleaved.
inline constexpr std::size_t kLogRecordMax = 4096;

struct LogRecord {
  LogLevel level = LogLevel::info;
  std::string component;
  std::string message;
};

/// u8 level, u8 component length, the component, the message (cut to fit kLogRecordMax).
std::string encode_log_record(LogLevel level, std::string_view component, std::string_view msg);
/// nullopt when `packet` is not a record (a level out of range, a length past the end).
std::optional<LogRecord> decode_log_record(std::string_view packet);

/// In a worker: log_line writes records to `fd` from now on, not text to stderr (the
/// origin's pool and worker are left to the host). Set once, before other threads start.
void set_log_channel(int fd) noexcept;

/// printf-style logging; the attribute lets -Wformat check every call's arguments.
void logf(LogLevel level, const char* fmt, ...) noexcept __attribute__((format(printf, 2, 3)));

}  // namespace shoal::detail

#endif
