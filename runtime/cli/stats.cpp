#include "stats.hpp"

#include "terminal.hpp"
#include "common/json.hpp"
#include "pool/stats.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace shoal::cli {

namespace {

void append_number(std::string& out, double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  out += buf;
}

void append_outcomes(std::string& out, const std::array<uint64_t, 6>& by_status) {
  out += '{';
  for (size_t s = 0; s < by_status.size(); ++s) {
    if (s > 0) out += ',';
    out += '"';
    out += to_string(static_cast<Status>(s));
    out += "\":" + std::to_string(by_status[s]);
  }
  out += '}';
}

double ms(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

void append_worker(std::string& out, const WorkerStats& w, std::chrono::nanoseconds uptime) {
  out += "{\"index\":" + std::to_string(w.index);
  out += ",\"pid\":" + (w.pid > 0 ? std::to_string(w.pid) : std::string("null"));
  out += ",\"tasks\":" + std::to_string(w.tasks);
  out += ",\"outcomes\":";
  append_outcomes(out, w.outcomes);
  out += ",\"starts\":" + std::to_string(w.starts);
  out += ",\"restarts\":" + std::to_string(w.starts > 0 ? w.starts - 1 : 0);
  out += ",\"exits\":{";
  for (size_t i = 0; i < w.exits.size(); ++i) {
    if (i > 0) out += ',';
    detail::append_json_string(out, w.exits[i].first);
    out += ':' + std::to_string(w.exits[i].second);
  }
  out += "},\"busy_fraction\":";
  append_number(out, uptime.count() > 0 ? static_cast<double>(w.busy.count()) / static_cast<double>(uptime.count()) : 0.0);
  out += ",\"rss_bytes\":" + std::to_string(w.rss_bytes);
  out += '}';
}

}  // namespace

std::string stats_json(const RunStats& stats) {
  std::string out = "{\"elapsed_s\":";
  append_number(out, stats.elapsed_s);
  out += ",\"final\":";
  out += stats.final ? "true" : "false";
  out += ",\"submitted\":" + std::to_string(stats.submitted);
  out += ",\"written\":" + std::to_string(stats.written);
  out += ",\"host_rss_bytes\":" + std::to_string(detail::resident_bytes(static_cast<int>(::getpid())));
  out += ",\"pools\":[";
  for (size_t i = 0; i < stats.pools.size(); ++i) {
    const auto& [name, p] = stats.pools[i];
    uint64_t tasks = 0;
    for (uint64_t c : p.outcomes) tasks += c;
    if (i > 0) out += ',';
    out += "{\"name\":";
    detail::append_json_string(out, name);
    out += ",\"uptime_s\":";
    append_number(out, static_cast<double>(p.uptime.count()) / 1e9);
    out += ",\"tasks\":" + std::to_string(tasks);
    out += ",\"outcomes\":";
    append_outcomes(out, p.outcomes);
    out += ",\"restarts\":" + std::to_string(p.restarts);
    out += ",\"task_ms\":{\"p50\":";
    append_number(out, ms(p.p50));
    out += ",\"p99\":";
    append_number(out, ms(p.p99));
    out += "},\"workers\":[";
    for (size_t k = 0; k < p.workers.size(); ++k) {
      if (k > 0) out += ',';
      append_worker(out, p.workers[k], p.uptime);
    }
    out += "]}";
  }
  out += "]}";
  return out;
}

int write_stats_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  const std::string body = text + "\n";
  int err = write_all(fd, body.data(), body.size());
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) ::unlink(tmp.c_str());
  return err;
}

}  // namespace shoal::cli
