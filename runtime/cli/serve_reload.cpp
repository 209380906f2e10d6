#include "serve_reload.hpp"

#include "check.hpp"
#include "common/event.hpp"
#include "common/log.hpp"
#include "common/printable.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <utility>

namespace shoal::cli {

using detail::LogLevel;

std::vector<std::string> serve_redis_changes(const RedisConfig& a, const RedisConfig& b) {
  std::vector<std::string> out;
  const auto note = [&](bool differs, const char* key) {
    if (differs) out.emplace_back(key);
  };
  note(a.url != b.url, "url");
  note(a.password_file != b.password_file, "password_file");
  note(a.stream != b.stream, "stream");
  note(a.group != b.group, "group");
  note(a.consumer != b.consumer, "consumer");
  note(a.pool != b.pool, "pool");
  note(a.visibility_timeout != b.visibility_timeout, "visibility_timeout");
  note(a.max_deliveries != b.max_deliveries, "max_deliveries");
  note(a.in_flight != b.in_flight, "in_flight");
  return out;
}

struct Reloader::Shared {
  Pool* pool = nullptr;  // used only while `applying`, which finish() waits out
  int reload_fd = -1;    // read only before `loading`: a thread left behind never reads it
  Setup setup;
  std::string pool_name;
  Fd stop_event{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};

  std::mutex m;
  std::condition_variable cv;
  bool stopping = false;
  bool loading = false;   // reading CONFIG (and the files it names); the pool is not touched
  bool applying = false;  // the pool is used: logging its generation, Pool::reload
  std::atomic<uint32_t> workers{0};
};

namespace {

// What a SIGHUP found in CONFIG: the pool's new config, or the one line saying why there
// is none; and, apart, a note that the redis: section changed.
struct Prepared {
  std::optional<PoolConfig> pool;
  std::string problem;
  std::string redis_note;
};

std::string seconds_text(std::chrono::nanoseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f s", static_cast<double>(d.count()) / 1e9);
  return buf;
}

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : ", ") + w;
  return out;
}

// Reads CONFIG as at start and checks the served pool's files as `shoal check` does,
// without touching the pool: this is the part that may block (a FIFO, a hung mount).
Prepared prepare(const Reloader::Setup& setup, const std::string& pool_name) {
  Prepared p;
  const std::string path = setup.config.string();
  auto config = load_config_file(setup.config);
  if (!config) {
    p.problem = config_problem(path, config.error().message);
    return p;
  }
  if (const auto changed = serve_redis_changes(setup.redis, config->redis); !changed.empty())
    p.redis_note = detail::printable(path) + ": the redis: section changed (" + joined(changed) +
                   "): it applies when this host restarts; reloading the pool only";
  const auto it = std::find_if(config->pools.begin(), config->pools.end(),
                               [&](const PoolConfig& pc) { return pc.name == pool_name; });
  if (it == config->pools.end()) {
    p.problem = detail::printable(path) + ":1:1: no pool '" + pool_name +
                "' any more: this host serves it until it restarts";
    return p;
  }
  CheckReport report;
  check_pool_files(*config, *it, report);
  if (!report.problems.empty()) {
    p.problem = report.problems.front();
    if (report.problems.size() > 1)
      p.problem += " (and " + std::to_string(report.problems.size() - 1) + " more: shoal check " +
                   detail::printable(path) + ")";
    return p;
  }
  p.pool = *it;
  return p;
}

// The pool part: logs what `p` says, or applies it. Runs while `applying`.
void apply(Reloader::Shared& s, const Prepared& p) {
  Pool& pool = *s.pool;
  const detail::LogOrigin origin{s.pool_name, -1, "reload"};
  if (!p.redis_note.empty()) detail::log_line(LogLevel::warn, p.redis_note, origin);
  if (!p.pool) {
    detail::log_line(LogLevel::error,
                     p.problem + "; generation " + std::to_string(pool.stats().generation) + " keeps serving", origin);
    return;
  }
  const uint32_t workers_before = pool.config().workers;
  const uint32_t generation_before = pool.stats().generation;
  const auto started = std::chrono::steady_clock::now();
  const Result<void> done = pool.reload(*p.pool);
  const auto took = std::chrono::steady_clock::now() - started;
  const PoolStats stats = pool.stats();
  if (!done) {
    // The pool's errors start with "pool NAME: ", which the line's origin says already.
    std::string why = done.error().message;
    if (const std::string prefix = "pool " + s.pool_name + ": "; why.starts_with(prefix)) why.erase(0, prefix.size());
    bool stopping = false;
    {
      std::lock_guard lock(s.m);
      stopping = s.stopping;
    }
    if (stopping)
      detail::log_line(LogLevel::info, "cut short by the stop: " + why, origin);
    else
      detail::log_line(LogLevel::error,
                       "not applied: " + why + "; generation " + std::to_string(stats.generation) + " keeps serving",
                       origin);
    return;
  }
  const uint32_t workers = pool.config().workers;
  const std::string count = std::to_string(workers) + (workers == 1 ? " worker" : " workers");
  if (stats.generation == generation_before) {
    // Nothing a worker starts with changed (settings, file stamps): no process was replaced.
    detail::log_line(LogLevel::info,
                     "no worker setting or file changed: generation " + std::to_string(stats.generation) +
                         " serves on (" + count + ")",
                     origin);
  } else {
    // The pool's own figure (also in --stats); the call's when it has none.
    const auto rolled = stats.last_reload_duration.count() > 0
                            ? stats.last_reload_duration
                            : std::chrono::duration_cast<std::chrono::nanoseconds>(took);
    detail::log_line(LogLevel::info,
                     "generation " + std::to_string(stats.generation) + " serving, rolled in " + seconds_text(rolled) +
                         " (" + count + ")",
                     origin);
  }
  if (s.setup.in_flight_follows_workers && workers != workers_before)
    s.workers.store(workers, std::memory_order_relaxed);
}

bool take_signal(int fd) {
  signalfd_siginfo info{};
  const ssize_t n = ::read(fd, &info, sizeof info);
  return n == static_cast<ssize_t>(sizeof info);
}

// The thread's whole life; it holds `s` so that a thread left reading CONFIG by finish()
// still has what it touches when it wakes up.
void reloader_main(const std::shared_ptr<Reloader::Shared>& s) {
  const detail::LogOrigin origin{s->pool_name, -1, "reload"};
  for (;;) {
    pollfd fds[2] = {{s->reload_fd, POLLIN, 0}, {s->stop_event.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) {
      detail::log_line(LogLevel::error, "poll: " + errno_text(errno) + "; SIGHUP reloads no more", origin);
      return;
    }
    {
      std::lock_guard lock(s->m);
      if (s->stopping) return;
      if (!take_signal(s->reload_fd)) continue;
      s->loading = true;
      // Under the lock and before stop(): the status outlives every use made here (a
      // thread left behind while loading touches it no more).
      if (s->setup.status != nullptr) s->setup.status->set_reloading(true);
    }
    detail::log_line(LogLevel::info, "SIGHUP: reading " + detail::printable(s->setup.config.string()), origin);
    const Prepared p = prepare(s->setup, s->pool_name);
    {
      std::lock_guard lock(s->m);
      s->loading = false;
      if (s->stopping) {
        s->cv.notify_all();
        return;
      }
      s->applying = true;
    }
    apply(*s, p);
    {
      std::lock_guard lock(s->m);
      s->applying = false;
      if (s->setup.status != nullptr) s->setup.status->set_reloading(false);
    }
    s->cv.notify_all();
  }
}

}  // namespace

Reloader::Reloader(Pool& pool, const StopSignals& signals, Setup setup) : shared_(std::make_shared<Shared>()) {
  shared_->pool = &pool;
  shared_->reload_fd = signals.reload_fd();
  shared_->setup = std::move(setup);
  shared_->pool_name = pool.config().name;
}

Reloader::~Reloader() { finish(); }

void Reloader::start() {
  // Without the signalfds there is nothing to wait on: SIGHUP stays pending, unread.
  if (shared_->reload_fd < 0 || !shared_->stop_event || thread_.joinable()) return;
  thread_ = std::thread([s = shared_] { reloader_main(s); });
}

void Reloader::stop() {
  {
    std::lock_guard lock(shared_->m);
    if (shared_->stopping) return;
    shared_->stopping = true;
  }
  detail::eventfd_signal(shared_->stop_event.get());
}

void Reloader::finish() {
  stop();
  bool leave = false;
  {
    std::unique_lock lock(shared_->m);
    shared_->cv.wait(lock, [&] { return !shared_->applying; });
    leave = shared_->loading;
  }
  if (!thread_.joinable()) return;
  if (leave) thread_.detach();
  else thread_.join();
}

uint32_t Reloader::take_workers() { return shared_->workers.exchange(0, std::memory_order_relaxed); }

}  // namespace shoal::cli
