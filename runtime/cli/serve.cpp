// `shoal serve`: one host of a fleet that shares a Redis task stream through a consumer
// group. All Redis traffic runs on the main thread over one connection; the pool's loop
// thread only hands outcomes over through an Inbox (mutex + eventfd).
//
// Delivery is at-least-once. An outcome is written to STREAM:results in one transaction
// with the acknowledgement of its entry, so a result is never lost, and never written
// twice by a host that lives through a lost connection (serve_state.cpp). Entries left pending by a dead host are claimed
// with XAUTOCLAIM once idle past the visibility timeout; a live host keeps its entries'
// idle time low (XCLAIM … JUSTID) so a long task is not taken from it.
//
// A stop (SIGTERM, SIGINT) terminates the pool at once: tasks not started come back
// cancelled and are handed back to the group at once, running ones get one
// shutdown.grace to finish, as in `shoal run`. SIGHUP stops nothing: it reloads the pool
// from CONFIG on a thread of its own (serve_reload.hpp) while this loop goes on.
#include "options.hpp"
#include "scale_out.hpp"
#include "scale_out_shared.hpp"
#include "serve_reload.hpp"
#include "serve_state.hpp"
#include "serve_watch.hpp"
#include "sd_notify.hpp"
#include "service_status.hpp"
#include "terminal.hpp"

#include <shoal/runtime.hpp>

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

namespace shoal::cli {

namespace {

// After a stop, how long unwritten outcomes wait for Redis to come back.
constexpr auto kWriteGiveUp = std::chrono::seconds(15);

std::string default_consumer() {
  char host[256] = "host";
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "host");
  host[sizeof host - 1] = '\0';
  return std::string(host) + "-" + std::to_string(::getpid());
}

// Rounded up: a deadline less than a millisecond away must not become a zero timeout,
// which would poll in a loop until it passes.
int ms_until(Clock::time_point t) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(t - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 60000));
}

/// What the Server reports to and how long it waits for Redis at start.
struct Watchers {
  ServiceStatus& status;
  SystemdNotifier& notifier;
  Duration connect_timeout{0};  ///< 0: wait for the first connection forever
  std::string connect_timeout_text;  ///< as given, for messages
  ServeWatch& watch;  ///< the Redis figures of /metrics, and --stats
};

class Server {
 public:
  Server(ServeSettings s, Pool& pool, Inbox& inbox, StopSignals& signals, Reloader& reloader, Watchers watchers)
      : state_(std::move(s)),
        pool_(pool),
        inbox_(inbox),
        signals_(signals),
        reloader_(reloader),
        watchers_(watchers) {}

  int run();
  const ServeState& state() const { return state_; }

 private:
  void take_signal();
  void begin_stop(const std::string& why);
  bool ensure_connected();
  /// After each attempt: tells the connection's state (waiting, serving) when it changed.
  void report_connection(bool connected);
  void wait_events(Clock::time_point until);
  bool read();
  bool blocking_read(const redis::Args& args, Result<redis::Reply>& reply);
  /// ServeState's bound, shortened to keep the systemd watchdog fed while a read blocks.
  std::chrono::milliseconds block_time() const;
  void open_waker();
  void unblock();
  void start(ServeState::Delivery d);
  Clock::time_point next_wakeup() const;

  ServeState state_;
  Pool& pool_;
  Inbox& inbox_;
  StopSignals& signals_;
  Reloader& reloader_;
  Watchers watchers_;
  Clock::time_point started_ = Clock::now();
  bool waiting_announced_ = false;
  std::string gave_up_;  ///< no connection within --connect-timeout: why, for the exit line
  redis::Connection waker_;  // sends CLIENT UNBLOCK while the main connection blocks
  bool stopping_ = false;
  bool pool_failed_ = false;
  Clock::time_point give_up_{};
};

void Server::start(ServeState::Delivery d) {
  if (!state_.hold(d)) return;  // already held: claimed back from ourselves
  const redis::Task& task = d.task;
  const std::string entry = task.entry_id;
  if (!task.input) {
    Outcome o;
    o.status = Status::rejected;
    o.error = "entry " + entry + " has no 'input' field";
    inbox_.push(entry, std::move(o));
    return;
  }
  pool_.submit(*task.input, [this, entry](Outcome&& o) { inbox_.push(entry, std::move(o)); });
}

void Server::begin_stop(const std::string& why) {
  if (stopping_) return;
  stopping_ = true;
  watchers_.status.set(ServiceStatus::Phase::stopping, why);
  give_up_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(pool_.config().grace) + kWriteGiveUp;
  // A second signal ends the host at once; the pool's threads keep the signals blocked.
  signals_.release();
  print_info(why);
  // No reload starts from now on; one under way is cut short by the terminate.
  reloader_.stop();
  // Tasks not started come back cancelled now (handed back: another host runs them);
  // running ones get shutdown.grace, enforced by their workers, then come back cancelled.
  pool_.terminate();
}

void Server::take_signal() {
  if (stopping_) return;
  if (int sig = signals_.poll(); sig != 0)
    begin_stop("stopping on " + signal_name(sig) + ": handing back the tasks not started, giving " +
               std::to_string(state_.held()) + " held ones shutdown.grace, taking no more (again to stop at once)");
}

bool Server::ensure_connected() {
  if (state_.connected()) return true;
  if (Clock::now() < state_.next_attempt()) {
    if (!state_.ever_connected()) report_connection(false);  // --connect-timeout may have passed
    return false;
  }
  const bool ok = state_.connect();
  if (ok) open_waker();
  report_connection(ok);
  return ok;
}

void Server::report_connection(bool connected) {
  if (stopping_ || state_.fatal()) return;
  const std::string& url = state_.url().display;
  // Connection errors name the URL already ("redis://h:6379: Connection refused").
  std::string cause = state_.down_cause();
  if (cause.starts_with(url + ": ")) cause.erase(0, url.size() + 2);
  if (connected) {
    const std::string serving = "serving pool " + pool_.config().name + " from " + state_.keys().tasks + " as " +
                                state_.consumer() + " (group " + state_.settings().group + ", " + url + ", " +
                                std::to_string(state_.in_flight()) + " in flight)";
    if (watchers_.status.get().phase == ServiceStatus::Phase::starting || waiting_announced_) print_info(serving);
    waiting_announced_ = false;
    watchers_.status.set(ServiceStatus::Phase::ready, serving);
    return;
  }
  if (!state_.ever_connected()) {
    const auto timeout = watchers_.connect_timeout;
    if (timeout.count() > 0 && Clock::now() - started_ >= timeout) {
      gave_up_ = "serve: no connection to Redis at " + url + " within --connect-timeout " +
                 watchers_.connect_timeout_text + ": " + cause;
      return;
    }
    if (!waiting_announced_)
      print_info("waiting for Redis at " + url + ": " + cause + " (not serving until it answers" +
                 (timeout.count() > 0 ? "; giving up after " + watchers_.connect_timeout_text : std::string()) + ")");
    waiting_announced_ = true;
    watchers_.status.set(ServiceStatus::Phase::waiting, "waiting for Redis at " + url + ": " + cause);
    return;
  }
  // The outage itself is logged once by ServeState::lost.
  watchers_.status.set(ServiceStatus::Phase::waiting, "Redis at " + url + " unreachable: " + cause +
                                                          "; retrying with back-off");
}

Clock::time_point Server::next_wakeup() const {
  // One second at most, and less when the systemd watchdog wants a word more often.
  Clock::time_point t = std::min(Clock::now() + std::chrono::seconds(1), watchers_.notifier.watchdog_due());
  if (!state_.ever_connected() && watchers_.connect_timeout.count() > 0)
    t = std::min(t, started_ + std::chrono::duration_cast<Clock::duration>(watchers_.connect_timeout));
  // Claims and refreshes are round trips: while Redis is down, only the next attempt to
  // reach it is worth waking up for (a refresh overdue forever would make this a spin).
  if (!state_.connected()) return std::min(t, state_.next_attempt());
  // Claims wait for a free slot: a full host sleeps until an outcome frees one.
  if (!stopping_ && state_.free_slots() > 0) t = std::min(t, state_.next_claim());
  return std::min(t, state_.next_refresh());
}

void Server::wait_events(Clock::time_point until) {
  pollfd fds[2] = {{inbox_.fd(), POLLIN, 0}, {stopping_ ? -1 : signals_.fd(), POLLIN, 0}};
  ::poll(fds, 2, ms_until(until));
}

// CLIENT UNBLOCK from a second connection ends a blocked XREADGROUP at once (as if it
// had timed out), so an outcome that arrives meanwhile is written without waiting for
// the block to expire. Without that connection the block still ends on its own. It is
// opened with the main one, not while a read blocks, and its timeout stays under a third
// of the visibility timeout: waiting on it must not make this host's entries look idle.
void Server::open_waker() {
  const auto timeout = std::clamp(state_.visibility() / 3, std::chrono::milliseconds(10), kIoTimeout);
  auto w = redis::Connection::open(state_.url(), timeout);
  if (w) waker_ = std::move(*w);
  else waker_.close();
}

void Server::unblock() {
  if (!waker_) open_waker();
  if (waker_ && !waker_.command({"CLIENT", "UNBLOCK", state_.client_id()})) waker_.close();
}

std::chrono::milliseconds Server::block_time() const {
  const auto due = watchers_.notifier.watchdog_due();
  if (due == Clock::time_point::max()) return state_.block_time();
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(due - Clock::now());
  return std::clamp(left, std::chrono::milliseconds(10), state_.block_time());
}

bool Server::blocking_read(const redis::Args& args, Result<redis::Reply>& reply) {
  if (auto s = state_.conn().send(args); !s) {
    reply = s.error();
    return false;
  }
  const auto deadline = Clock::now() + block_time() + kIoTimeout;
  bool unblocked = false;
  for (;;) {
    pollfd fds[3] = {{state_.conn().fd(), POLLIN, 0},
                     {unblocked ? -1 : inbox_.fd(), POLLIN, 0},
                     {unblocked || stopping_ ? -1 : signals_.fd(), POLLIN, 0}};
    const int n = ::poll(fds, 3, ms_until(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      reply = Error{Errc::io, state_.url().display + ": no answer to XREADGROUP"};
      return false;
    }
    if (fds[0].revents != 0) {
      reply = state_.conn().receive();
      return bool(reply);
    }
    unblock();
    unblocked = true;
  }
}

bool Server::read() {
  const size_t free = state_.free_slots();
  if (free == 0) return true;
  const bool block = inbox_.empty();
  redis::Args args = {"XREADGROUP", "GROUP", state_.settings().group, state_.consumer(), "COUNT",
                      std::to_string(free)};
  if (block) {
    args.push_back("BLOCK");
    args.push_back(std::to_string(block_time().count()));
  }
  args.insert(args.end(), {"STREAMS", state_.keys().tasks, ">"});
  Result<redis::Reply> reply = Error{Errc::io, ""};
  if (block) blocking_read(args, reply);
  else reply = state_.conn().command(args);
  if (!reply) return state_.lost(reply.error());
  if (reply->is_error()) return state_.refused("XREADGROUP", reply->view());
  for (auto& entry : redis::parse_read(reply->view())) start({redis::task_of(entry)});
  return true;
}

int Server::run() {
  const auto started = started_;
  for (;;) {
    // The loop turns at least once a second (next_wakeup, block_time): /healthz and the
    // systemd watchdog see it alive as long as it does.
    watchers_.status.beat();
    watchers_.notifier.watchdog();
    watchers_.watch.turn(state_);
    take_signal();
    // A reload changed the number of workers and in_flight is "2 per worker".
    if (const uint32_t workers = reloader_.take_workers(); workers != 0 && !stopping_) {
      state_.set_in_flight(2 * workers);
      detail::log_line(detail::LogLevel::info, "holding up to " + std::to_string(state_.in_flight()) +
                                                   " entries now (2 per worker)",
                       {pool_.config().name, -1, "reload"});
    }
    for (auto& [entry, outcome] : inbox_.take()) {
      if (state_.is_pool_failure(outcome) && !pool_failed_) {
        pool_failed_ = true;
        begin_stop("pool " + pool_.config().name + " failed: " + outcome.error + "; stopping");
      }
      state_.finish(entry, std::move(outcome), stopping_);
    }
    if (stopping_ && state_.idle()) break;
    if (stopping_ && Clock::now() >= give_up_ && state_.held() == 0) break;
    if (state_.fatal() || !gave_up_.empty()) break;
    if (!ensure_connected()) {
      wait_events(next_wakeup());
      continue;
    }
    if (!state_.flush() || !state_.refresh() || !state_.recover()) continue;
    if (stopping_ && state_.idle()) break;  // the last outcomes are written
    if (!stopping_ && state_.free_slots() > 0) {
      if (Clock::now() >= state_.next_claim()) {
        std::vector<ServeState::Delivery> claimed;
        if (!state_.claim(claimed)) continue;
        for (auto& d : claimed) start(std::move(d));
        if (!inbox_.empty() || state_.has_outbox()) continue;
      }
      read();
      continue;
    }
    if (inbox_.empty() && !state_.has_outbox()) wait_events(next_wakeup());
  }

  // Every worker runs its finalizer chain before the host exits. After a stop the pool is
  // terminated already; on a fatal error it is terminated here, so that join waits one
  // grace at most (the entries held stay pending and go to another host).
  if (!gave_up_.empty()) watchers_.status.set(ServiceStatus::Phase::stopping, gave_up_);
  if (state_.fatal()) watchers_.status.set(ServiceStatus::Phase::stopping, state_.fatal_message());
  signals_.release();
  reloader_.stop();
  pool_.terminate();
  reloader_.finish();  // a reload under way has returned: the pool is ours alone
  pool_.join();
  state_.leave_group();
  const double secs = std::chrono::duration<double>(Clock::now() - started).count();
  print_summary(state_.counts(), secs);
  if (auto e = watchers_.watch.end(state_); !e.empty()) print_error("cannot write --stats: " + e);
  if (state_.fatal() || !gave_up_.empty()) {
    print_error(state_.fatal() ? state_.fatal_message() : gave_up_);
    return 2;
  }
  if (state_.has_outbox()) {
    print_error(std::to_string(state_.outbox_size()) +
                " outcomes could not be written to Redis; their entries stay pending and will be delivered again");
    return 1;
  }
  return pool_failed_ ? 1 : 0;
}

}  // namespace


int serve_command(int argc, char** argv) {
  RedisFlags flags;
  std::string connect_timeout, metrics_flag, stats_interval;
  ServeWatchOptions watch_options;
  const OptionSpec specs[] = {{"--redis", &flags.url},       {"--redis-password-file", &flags.password_file}, {"--stream", &flags.stream},
                              {"--group", &flags.group},     {"--consumer", &flags.consumer},
                              {"--pool", &flags.pool},       {"--connect-timeout", &connect_timeout},
                              {"--metrics", &metrics_flag},  {"--stats", &watch_options.stats},
                              {"--stats-interval", &stats_interval}};
  std::vector<std::string> positional;
  if (auto code = parse_options({"serve", serve_usage(), "CONFIG", 1, 1}, argc, argv, specs, positional)) return *code;
  const std::string& config_path = positional[0];
  if (!stats_interval.empty()) {
    if (const std::string error = parse_stats_interval("serve", stats_interval, watch_options.stats_every);
        !error.empty()) {
      print_error(error);
      return 2;
    }
  }
  const auto connect_limit = connect_timeout_from(connect_timeout, "serve", std::chrono::milliseconds(0));
  if (!connect_limit) {
    print_error(connect_limit.error().message);
    return 2;
  }
  // Before any thread exists: reading it removes $NOTIFY_SOCKET from the environment
  // (setenv and getenv race with threads), so workers never inherit it.
  std::string notify_problem;
  SystemdNotifier notifier(notify_problem);
  if (!notify_problem.empty()) print_warning(notify_problem);
  ServiceStatus status;
  notifier.attach(status);

  // Before any thread exists, so every thread the runtime starts inherits the mask. SIGHUP
  // is no stop: it waits (blocked, pending) until the reloader takes it, the pool started.
  StopSignals signals(StopSignals::Hangup::reload);
  ignore_sigpipe();
  // Declared before the runtime: the pool's callbacks push into it until the pool joins.
  Inbox inbox;
  if (!inbox.ok()) {
    print_error("eventfd: " + errno_text(errno));
    return 2;
  }

  // SIGTERM while the pool starts (a slow init) stops its workers through their chains.
  RuntimeOptions runtime_options;
  runtime_options.start_cancel_fd = signals.fd();
  // The config may be a FIFO that never delivers: Ctrl-C must still end the host.
  auto runtime = signals.interruptible([&] { return Runtime::from_file(config_path, runtime_options); });
  if (!runtime) {
    print_error(runtime.error().message);
    return 2;
  }
  auto target = redis_target(runtime->config().redis, flags, "serve");
  if (!target) {
    print_error(target.error().message);
    return 2;
  }
  auto pool_name = choose_pool(runtime->config(), target->settings.pool, config_path);
  if (!pool_name) {
    print_error(pool_name.error().message);
    return 2;
  }
  // Listening before the pool starts: a taken port fails at once, not after a slow init,
  // and /readyz answers "starting" meanwhile.
  HostMetrics metrics(status);
  auto responder = start_metrics(metrics_flag, runtime->config(), metrics);
  if (!responder) {
    print_error(responder.error().message);
    return 2;
  }
  status.set(ServiceStatus::Phase::starting, "starting pool " + *pool_name);
  auto pool = runtime->pool(*pool_name);
  if (!pool) {
    if (int sig = signals.poll(); sig != 0) {
      print_info("stopped on " + signal_name(sig) + " while pool " + *pool_name + " was starting");
      return 128 + sig;
    }
    print_error(pool.error().message);
    return 2;
  }
  ServeSettings s;
  s.redis = std::move(target->settings);
  s.url = std::move(target->url);
  if (s.redis.consumer.empty()) s.redis.consumer = default_consumer();
  s.in_flight = s.redis.in_flight != 0 ? s.redis.in_flight : 2 * (*pool)->config().workers;
  // The redis: section as the file had it: a reload compares the file's new one with it.
  Reloader reloader(**pool, signals, {config_path, runtime->config().redis, s.redis.in_flight == 0, &status});
  metrics.add_pool(*pool_name, *pool);
  ServeWatch watch(metrics, **pool, watch_options);
  Server server(std::move(s), **pool, inbox, signals, reloader, {status, notifier, *connect_limit, connect_timeout, watch});
  if (auto e = watch.begin(server.state()); !e.empty()) {
    print_error("cannot write --stats " + watch_options.stats + ": " + e);
    return 2;
  }
  reloader.start();
  const int code = server.run();
  notifier.detach(status);
  return code;
}

}  // namespace shoal::cli
