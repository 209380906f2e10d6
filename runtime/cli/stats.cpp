#include "stats.hpp"

#include "terminal.hpp"
#include "common/json.hpp"
#include "common/printable.hpp"
#include "config/values.hpp"
#include "pool/stats.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
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
    // Pool::reload: the generation serving, the reloads done, the last one's result
    // (null before any) and how long it took.
    out += ",\"generation\":" + std::to_string(p.generation);
    out += ",\"reloads\":" + std::to_string(p.reloads);
    out += ",\"last_reload\":";
    if (p.last_reload.empty()) out += "null";
    else detail::append_json_string(out, p.last_reload);
    out += ",\"last_reload_duration_s\":";
    append_number(out, static_cast<double>(p.last_reload_duration.count()) / 1e9);
    // `shared:` segments: each one the pool's processes map, with who built it and how
    // many processes map it now (a reload's old one until its last process is gone).
    out += ",\"shared\":[";
    for (size_t k = 0; k < p.shared.size(); ++k) {
      const SharedStats& sh = p.shared[k];
      if (k > 0) out += ',';
      out += "{\"name\":";
      detail::append_json_string(out, sh.name);
      out += ",\"generation\":" + std::to_string(sh.generation) + ",\"size\":" + std::to_string(sh.size) +
             ",\"used\":" + std::to_string(sh.used) + ",\"build_time_s\":";
      append_number(out, static_cast<double>(sh.build_time.count()) / 1e9);
      out += ",\"mappings\":" + std::to_string(sh.mappings) + '}';
    }
    out += "]";
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
  out += ']';
  if (stats.redis) {
    const HostFigures& h = *stats.redis;
    const auto maybe = [](const std::optional<uint64_t>& v) { return v ? std::to_string(*v) : std::string("null"); };
    out += ",\"redis\":{\"connected\":" + std::string(h.connected ? "true" : "false");
    out += ",\"reconnects\":" + std::to_string(h.reconnects) + ",\"pending\":" + maybe(h.pending);
    out += ",\"lag\":" + maybe(h.lag) + ",\"dead_lettered\":" + std::to_string(h.dead_lettered);
    out += ",\"outbox\":" + std::to_string(h.outbox) + '}';
  }
  out += '}';
  return out;
}

namespace {

// A FIFO, a terminal or a device (/dev/null, /dev/stderr) is written where it is: renaming
// a file over it would replace the node itself (as root, /dev/null for the whole machine).
// O_NONBLOCK: a FIFO without a reader fails at once with ENXIO, and a reader that stops
// reading costs at most kStallLimit, not a host that blocks in write(2).
std::string write_in_place(const std::string& path, const std::string& body) {
  constexpr int kStallLimitMs = 1000;
  Fd fd(::open(path.c_str(), O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) return errno_text(errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_text(errno);
  // Written through, it would not be replaced atomically (a reader could see half a
  // document); replaced, the link would become a file. Neither is what was asked.
  if (S_ISREG(st.st_mode)) return "a symbolic link to a regular file (give the file's own path)";
  size_t done = 0;
  while (done < body.size()) {
    const ssize_t n = ::write(fd.get(), body.data() + done, body.size() - done);
    if (n >= 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return errno_text(errno);
    pollfd p{fd.get(), POLLOUT, 0};
    if (::poll(&p, 1, kStallLimitMs) == 0)
      return "no room for " + std::to_string(kStallLimitMs) + " ms (its reader is not reading)";
  }
  return {};
}

// A regular file (or a new one) is replaced whole through a temporary file in the same
// folder and rename(2), so a reader sees the old document or the new one. The temporary
// name is random and created with O_EXCL | O_NOFOLLOW: a link planted under any name in
// the folder is never followed, and a name that exists is never reused.
std::string replace_atomically(const std::string& path, const std::string& body) {
  constexpr int kAttempts = 16;
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < kAttempts && fd < 0; ++attempt) {
    uint64_t r = 0;
    if (::getrandom(&r, sizeof r, 0) != static_cast<ssize_t>(sizeof r)) return errno_text(errno);
    char suffix[24];
    std::snprintf(suffix, sizeof suffix, ".tmp.%016llx", static_cast<unsigned long long>(r));
    tmp = path + suffix;
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) return errno_text(errno);
  }
  if (fd < 0) return errno_text(EEXIST);
  int err = write_all(fd, body.data(), body.size());
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) ::unlink(tmp.c_str());
  return err == 0 ? std::string() : errno_text(err);
}

}  // namespace

std::string write_stats_file(const std::string& path, const std::string& text) {
  const std::string body = text + "\n";
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) return write_in_place(path, body);
  return replace_atomically(path, body);
}

std::string parse_stats_interval(std::string_view command, const std::string& text, Duration& out) {
  constexpr Duration kMin = std::chrono::milliseconds(50), kMax = std::chrono::hours(24);
  constexpr std::array kSeconds{detail::Unit{"", 1'000'000'000}};
  uint64_t ns = 0;
  Duration d{-1};
  // Decimal seconds as the config writes numbers (strtod would take 0x10, 1e1 or inf).
  if (detail::parse_scaled(text, kSeconds, static_cast<uint64_t>(kMax.count()), ns))
    d = Duration(static_cast<Duration::rep>(ns));
  else if (!parse_duration(text, d))
    d = Duration{-1};
  if (d < kMin || d > kMax)
    return std::string(command) +
           ": --stats-interval takes a duration from 50ms to 24h such as 500ms, 2s or 1m (a plain number is "
           "seconds), not '" + detail::printable(text, 60) + "'";
  out = d;
  return {};
}

}  // namespace shoal::cli
