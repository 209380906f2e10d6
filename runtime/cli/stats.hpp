// `--stats FILE`: a run's counters as one JSON document, rewritten every few seconds
// during the run and once at its end. Written to FILE.tmp and renamed, so a reader (a
// dashboard, `watch jq`) never sees half a file.
#ifndef SHOAL_CLI_STATS_HPP
#define SHOAL_CLI_STATS_HPP

#include <shoal/runtime.hpp>

#include <string>
#include <utility>
#include <vector>

namespace shoal::cli {

struct RunStats {
  double elapsed_s = 0;
  bool final = false;      // false while the run goes on
  uint64_t submitted = 0;  // tasks read from the input so far
  uint64_t written = 0;    // outcomes written so far
  std::vector<std::pair<std::string, PoolStats>> pools;
};

/// The document (see `shoal run --help`), one line, no newline.
std::string stats_json(const RunStats& stats);

/// Writes `text` to `path` through a temporary file and rename(2). Returns 0 or the errno.
int write_stats_file(const std::string& path, const std::string& text);

}  // namespace shoal::cli

#endif
