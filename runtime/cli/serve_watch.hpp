// What `shoal serve` shows its watchers besides its ServiceStatus, refreshed once per turn
// of its main loop: the Redis figures for /metrics, and the `--stats FILE` document. The Redis figures take one round trip on the host's own
// connection, at most every kFiguresEvery and never while a read blocks; the responder's
// thread only reads what was published here.
#ifndef SHOAL_CLI_SERVE_WATCH_HPP
#define SHOAL_CLI_SERVE_WATCH_HPP

#include "metrics.hpp"
#include "serve_state.hpp"
#include "stats.hpp"

#include <shoal/runtime.hpp>

#include <string>

namespace shoal::cli {

struct ServeWatchOptions {
  std::string stats;  ///< --stats FILE; empty: none
  Duration stats_every = std::chrono::seconds(5);
};

class ServeWatch {
 public:
  static constexpr auto kFiguresEvery = std::chrono::seconds(2);

  ServeWatch(HostMetrics& metrics, const Pool& pool, ServeWatchOptions options)
      : metrics_(metrics), pool_(pool), pool_name_(pool.config().name), options_(std::move(options)) {}

  /// Writes the first --stats document; "" or why it cannot be written.
  std::string begin(const ServeState& state);
  /// Main thread, once per loop turn.
  void turn(ServeState& state);
  /// At exit: the final --stats document; "" or why it could not be written.
  std::string end(const ServeState& state);

 private:
  void gather(ServeState& state);
  void write_stats(const ServeState& state, bool final);

  HostMetrics& metrics_;
  const Pool& pool_;
  const std::string pool_name_;  // Pool::config() copies the whole config under its lock
  ServeWatchOptions options_;
  const Clock::time_point started_ = Clock::now();
  Clock::time_point next_figures_{}, next_stats_{};
  HostFigures figures_;
  std::string stats_error_;
};

}  // namespace shoal::cli

#endif
