// What `--metrics` serves: /metrics (OpenMetrics text built from Pool::stats() snapshots
// and the host's own figures), /healthz (the host's main loop turns) and /readyz
// (ServiceStatus says ready). Everything here runs on the responder's thread, and reads
// only what other threads publish: the pools' counters (their own short lock, never the
// loop's), ServiceStatus, and the Redis figures `serve`'s main thread gathered last.
#ifndef SHOAL_CLI_METRICS_HPP
#define SHOAL_CLI_METRICS_HPP

#include "metrics_http.hpp"
#include "service_status.hpp"
#include "stats.hpp"

#include <shoal/config.hpp>
#include <shoal/runtime.hpp>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace shoal::cli {

using NamedStats = std::vector<std::pair<std::string, PoolStats>>;

/// The OpenMetrics text of `pools` and, for `serve`, `host`; ends with "# EOF\n".
std::string openmetrics_text(const NamedStats& pools, const HostFigures* host);

class HostMetrics {
 public:
  static constexpr auto kBeatBound = std::chrono::seconds(15);  ///< /healthz: the loop beat within it
  static constexpr std::string_view kContentType = "application/openmetrics-text; version=1.0.0; charset=utf-8";

  explicit HostMetrics(const ServiceStatus& status) : status_(status) {}

  /// Once it started: its counters are shown from then on. It must outlive the responder.
  void add_pool(std::string name, const Pool* pool) {
    std::lock_guard lock(m_);
    pools_.emplace_back(std::move(name), pool);
  }

  /// Main thread of `serve`: the Redis figures it gathered.
  void publish(const HostFigures& f) {
    std::lock_guard lock(m_);
    host_ = f;
  }

  HttpResponse answer(std::string_view path) const;

 private:
  const ServiceStatus& status_;
  mutable std::mutex m_;
  std::vector<std::pair<std::string, const Pool*>> pools_;
  std::optional<HostFigures> host_;
};

/// Starts the responder for `--metrics` (`flag`, when given) or else the config's
/// `metrics:` key; null when neither asks for it. Logs "metrics on URL/metrics".
Result<std::unique_ptr<HttpResponder>> start_metrics(const std::string& flag, const Config& config,
                                                     HostMetrics& metrics);

}  // namespace shoal::cli

#endif
