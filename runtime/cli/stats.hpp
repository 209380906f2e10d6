// `--stats FILE`: a run's counters as one JSON document, rewritten every few seconds
// during the run and once at its end. A regular file is replaced atomically, so a reader
// (a dashboard, `watch jq`) never sees half a file; a device or FIFO is written in place.
#ifndef SHOAL_CLI_STATS_HPP
#define SHOAL_CLI_STATS_HPP

#include <shoal/runtime.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shoal::cli {

/// The Redis side of a `shoal serve` host, as of its last look.
struct HostFigures {
  bool connected = false;
  uint64_t reconnects = 0;          ///< connections opened again after one was lost
  std::optional<uint64_t> pending;  ///< entries delivered to this consumer, not acknowledged
  std::optional<uint64_t> lag;      ///< the group's lag (XINFO GROUPS, Redis 7; unknown: none)
  uint64_t dead_lettered = 0;       ///< entries this host moved to STREAM:dead
  uint64_t outbox = 0;              ///< outcomes waiting to be written to Redis
};

struct RunStats {
  double elapsed_s = 0;
  bool final = false;      // false while the run goes on
  uint64_t submitted = 0;  // tasks read from the input so far
  uint64_t written = 0;    // outcomes written so far
  std::vector<std::pair<std::string, PoolStats>> pools;
  std::optional<HostFigures> redis;  // `serve` only
};

/// The document (see `shoal run --help`), one line, no newline.
std::string stats_json(const RunStats& stats);

/// Writes `text` and a newline to `path`. A regular file, or a new one, is replaced
/// atomically (a random temporary name, O_EXCL | O_NOFOLLOW, rename(2)); anything else
/// that exists (a device, a FIFO, a symbolic link to one, such as /dev/stderr) is written
/// in place, without truncation, and never waited on for more than a second. A symbolic
/// link to a regular file is refused. Returns "" or why it failed.
std::string write_stats_file(const std::string& path, const std::string& text);

/// `--stats-interval`'s value: a duration as the config writes one (500ms, 2s, 1m) or a
/// plain number of seconds, as the option took before it knew units (0.5, 5), from 50ms
/// to 24h, into `out`. Returns "" or the one-line message naming the option and the
/// forms it takes.
std::string parse_stats_interval(std::string_view command, const std::string& text, Duration& out);

}  // namespace shoal::cli

#endif
