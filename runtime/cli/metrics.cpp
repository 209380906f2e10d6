#include "metrics.hpp"

#include "terminal.hpp"
#include "pool/stats.hpp"

#include <unistd.h>

#include <cstdio>

namespace shoal::cli {

namespace {

using Labels = std::vector<std::pair<std::string_view, std::string>>;

// OpenMetrics text: a family's `# TYPE` and `# HELP` lines, then its samples; label
// values escaped (backslash, double quote, line feed).
class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += "\n# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += '\n';
  }
  void sample(std::string_view name, const Labels& labels, double value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      for (size_t i = 0; i < labels.size(); ++i) {
        if (i > 0) out_ += ',';
        out_ += labels[i].first;
        out_ += "=\"";
        for (char c : labels[i].second) {
          if (c == '\\' || c == '"') out_ += '\\';
          if (c == '\n') out_ += "\\n";
          else out_ += c;
        }
        out_ += '"';
      }
      out_ += '}';
    }
    char buf[40];
    std::snprintf(buf, sizeof buf, " %.17g\n", value);
    out_ += buf;
  }
  void sample(std::string_view name, const Labels& labels, uint64_t value) {
    sample(name, labels, static_cast<double>(value));
  }
  std::string take() {
    out_ += "# EOF\n";
    return std::move(out_);
  }

 private:
  std::string out_;
};

double seconds(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e9; }

// Runs `each(labels, stats)` for every pool, or for every worker slot of every pool.
template <class F>
void for_pools(const NamedStats& pools, F&& each) {
  for (const auto& [name, p] : pools) each(Labels{{"pool", name}}, p);
}
template <class F>
void for_workers(const NamedStats& pools, F&& each) {
  for (const auto& [name, p] : pools)
    for (const WorkerStats& w : p.workers) each(Labels{{"pool", name}, {"worker", std::to_string(w.index)}}, w);
}

// One sample per value of `values`, labelled `key` = its name.
template <size_t N, class Name>
void labelled(Exposition& e, std::string_view sample, const Labels& l, std::string_view key,
              const std::array<uint64_t, N>& values, Name name) {
  for (size_t i = 0; i < N; ++i) {
    Labels ls = l;
    ls.emplace_back(key, std::string(name(i)));
    e.sample(sample, ls, values[i]);
  }
}
void by_status(Exposition& e, std::string_view sample, const Labels& l, const std::array<uint64_t, 6>& v) {
  labelled(e, sample, l, "outcome", v, [](size_t i) { return to_string(static_cast<Status>(i)); });
}
void by_cause(Exposition& e, std::string_view sample, const Labels& l, const std::array<uint64_t, kExitCauses>& v) {
  labelled(e, sample, l, "cause", v, [](size_t i) { return to_string(static_cast<ExitCause>(i)); });
}

void outcome_families(Exposition& e, const NamedStats& pools) {
  e.family("shoal_tasks", "counter", "Tasks by outcome (ok, error, crashed, timeout, cancelled, rejected).");
  for_pools(pools, [&](const Labels& l, const PoolStats& p) { by_status(e, "shoal_tasks_total", l, p.outcomes); });
  e.family("shoal_worker_tasks", "counter", "Tasks that ran in a worker slot, by outcome.");
  for_workers(pools, [&](const Labels& l, const WorkerStats& w) { by_status(e, "shoal_worker_tasks_total", l, w.outcomes); });
  e.family("shoal_tasks_queued", "gauge", "Tasks waiting in the pool for a worker.");
  for_pools(pools, [&](Labels l, const PoolStats& p) { e.sample("shoal_tasks_queued", l, p.queued); });
  e.family("shoal_tasks_in_flight", "gauge", "Tasks handed to workers: running, or queued in a worker's ring.");
  for_pools(pools, [&](Labels l, const PoolStats& p) { e.sample("shoal_tasks_in_flight", l, p.in_flight); });

  e.family("shoal_task_duration_seconds", "histogram", "Time in shoal_run of tasks that returned (ok or error).");
  for_pools(pools, [&](Labels l, const PoolStats& p) {
    const auto& b = p.durations;
    for (size_t i = 0; i < b.cumulative.size(); ++i) {
      char le[32] = "+Inf";
      if (i < DurationBuckets::kBounds.size()) std::snprintf(le, sizeof le, "%g", seconds(DurationBuckets::kBounds[i]));
      Labels ls = l;
      ls.emplace_back("le", le);
      e.sample("shoal_task_duration_seconds_bucket", ls, b.cumulative[i]);
    }
    e.sample("shoal_task_duration_seconds_count", l, b.cumulative.back());
    e.sample("shoal_task_duration_seconds_sum", l, seconds(b.sum));
  });
}

void process_families(Exposition& e, const NamedStats& pools) {
  e.family("shoal_restarts", "counter", "Worker processes started after each slot's first.");
  for_pools(pools, [&](Labels l, const PoolStats& p) { e.sample("shoal_restarts_total", l, uint64_t{p.restarts}); });
  e.family("shoal_worker_starts", "counter", "Processes started in a worker slot.");
  for_workers(pools, [&](Labels l, const WorkerStats& w) { e.sample("shoal_worker_starts_total", l, uint64_t{w.starts}); });
  e.family("shoal_exits", "counter",
           "Worker processes that ended, by cause (exit, error, signal, timeout_kill, killed).");
  for_pools(pools, [&](const Labels& l, const PoolStats& p) { by_cause(e, "shoal_exits_total", l, p.exit_causes); });
  e.family("shoal_worker_exits", "counter", "Processes of a worker slot that ended, by cause.");
  for_workers(pools, [&](const Labels& l, const WorkerStats& w) { by_cause(e, "shoal_worker_exits_total", l, w.exit_causes); });
  e.family("shoal_worker_busy_seconds", "counter",
           "Time a worker slot spent in shoal_run; its rate is the slot's busy fraction.");
  for_workers(pools, [&](Labels l, const WorkerStats& w) { e.sample("shoal_worker_busy_seconds_total", l, seconds(w.busy)); });
  e.family("shoal_worker_up", "gauge", "1 while the worker slot has a live process.");
  for_workers(pools, [&](Labels l, const WorkerStats& w) { e.sample("shoal_worker_up", l, uint64_t{w.pid > 0}); });
  e.family("shoal_worker_resident_bytes", "gauge", "Resident set of the slot's process (its last one after it ended).");
  for_workers(pools, [&](Labels l, const WorkerStats& w) { e.sample("shoal_worker_resident_bytes", l, w.rss_bytes); });
  e.family("shoal_pool_generation", "gauge", "The generation serving (0 until the first reload).");
  for_pools(pools, [&](Labels l, const PoolStats& p) { e.sample("shoal_pool_generation", l, uint64_t{p.generation}); });
  e.family("shoal_reloads", "counter", "Reloads that completed.");
  for_pools(pools, [&](Labels l, const PoolStats& p) { e.sample("shoal_reloads_total", l, uint64_t{p.reloads}); });
  e.family("shoal_pool_uptime_seconds", "gauge", "Time since the pool started.");
  for_pools(pools, [&](Labels l, const PoolStats& p) { e.sample("shoal_pool_uptime_seconds", l, seconds(p.uptime)); });
}

void host_families(Exposition& e, const HostFigures& h) {
  e.family("shoal_redis_connected", "gauge", "1 while the host's connection to Redis is open.");
  e.sample("shoal_redis_connected", {}, uint64_t{h.connected});
  e.family("shoal_redis_reconnects", "counter", "Connections to Redis opened again after one was lost.");
  e.sample("shoal_redis_reconnects_total", {}, h.reconnects);
  e.family("shoal_redis_pending_entries", "gauge", "Entries delivered to this consumer and not acknowledged yet.");
  if (h.pending) e.sample("shoal_redis_pending_entries", {}, *h.pending);
  e.family("shoal_redis_group_lag", "gauge", "Entries of the stream the group has not read yet (Redis 7).");
  if (h.lag) e.sample("shoal_redis_group_lag", {}, *h.lag);
  e.family("shoal_dead_lettered", "counter", "Entries this host moved to STREAM:dead.");
  e.sample("shoal_dead_lettered_total", {}, h.dead_lettered);
  e.family("shoal_outbox_outcomes", "gauge", "Outcomes waiting to be written to Redis.");
  e.sample("shoal_outbox_outcomes", {}, h.outbox);
}

}  // namespace

std::string openmetrics_text(const NamedStats& pools, const HostFigures* host) {
  Exposition e;
  outcome_families(e, pools);
  process_families(e, pools);
  e.family("shoal_host_resident_bytes", "gauge", "Resident set of the host process.");
  e.sample("shoal_host_resident_bytes", {}, detail::resident_bytes(static_cast<int>(::getpid())));
  if (host) host_families(e, *host);
  return e.take();
}

HttpResponse HostMetrics::answer(std::string_view path) const {
  if (path == "/metrics") {
    std::vector<std::pair<std::string, const Pool*>> pools;
    std::optional<HostFigures> host;
    {
      std::lock_guard lock(m_);
      pools = pools_;
      host = host_;
    }
    NamedStats stats;
    for (const auto& [name, pool] : pools) stats.emplace_back(name, pool->stats());
    return {200, std::string(kContentType), openmetrics_text(stats, host ? &*host : nullptr)};
  }
  if (path == "/healthz") {
    const auto since = ServiceStatus::Clock::now() - status_.last_beat();
    if (since <= kBeatBound) return {200, "text/plain; charset=utf-8", "ok\n"};
    const auto s = std::chrono::duration_cast<std::chrono::seconds>(since).count();
    return {503, "text/plain; charset=utf-8",
            "the main loop has not turned for " + std::to_string(s) + " s (bound " +
                std::to_string(kBeatBound.count()) + " s)\n"};
  }
  if (path == "/readyz") {
    const ServiceStatus::View v = status_.get();
    if (v.ready()) return {200, "text/plain; charset=utf-8", "ready\n"};
    return {503, "text/plain; charset=utf-8",
            std::string(phase_name(v.phase)) + (v.detail.empty() ? "" : ": " + v.detail) + "\n"};
  }
  return {404, "text/plain; charset=utf-8", "not found (try /metrics, /healthz or /readyz)\n"};
}

Result<std::unique_ptr<HttpResponder>> start_metrics(const std::string& flag, const Config& config,
                                                     HostMetrics& metrics) {
  std::string listen = flag, named = "--metrics";
  if (listen.empty()) {
    listen = config.metrics.listen;
    const auto& at = config.metrics.listen_at;
    named = "metrics key at " + config.source.string() + ":" + std::to_string(at.line) + ":" + std::to_string(at.column);
  }
  if (listen.empty()) return std::unique_ptr<HttpResponder>();
  auto r = HttpResponder::start(listen, named, [&metrics](std::string_view path) { return metrics.answer(path); });
  if (r) print_info("metrics on " + (*r)->url() + "/metrics");
  return r;
}

}  // namespace shoal::cli
