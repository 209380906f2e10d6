// `shoal serve`: one host of a fleet that shares a Redis task stream through a consumer
// group. All Redis traffic runs on the main thread over one connection; the pool's loop
// thread only hands outcomes over through an Inbox (mutex + eventfd).
//
// Delivery is at-least-once. An outcome is written to STREAM:results before its entry is
// acknowledged, in two round trips, so a crash between them duplicates a result and never
// loses one. Entries left pending by a dead host are claimed with XAUTOCLAIM once idle past
// the visibility timeout; a live host keeps its entries' idle time low (XCLAIM … JUSTID)
// so a long task is not taken from it.
#include "options.hpp"
#include "scale_out.hpp"
#include "serve_state.hpp"
#include "terminal.hpp"

#include <shoal/runtime.hpp>

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

namespace shoal::cli {

namespace {

constexpr std::string_view kServeUsage =
    "Usage: shoal serve CONFIG [--redis URL] [--stream NAME] [--group NAME] [--consumer NAME] [--pool NAME]\n"
    "\n"
    "Takes tasks from a Redis stream and runs them in a pool of CONFIG; several hosts may\n"
    "serve one stream. Each outcome is written to STREAM:results as JSON (the fields of\n"
    "'shoal run' plus \"id\" and \"consumer\"), then the task's entry is acknowledged and deleted.\n"
    "\n"
    "Options (each overrides the key of CONFIG's redis: section):\n"
    "  --redis URL       redis://HOST[:PORT][/DB] or unix:///PATH              (redis.url)\n"
    "  --stream NAME     the task stream (default shoal:tasks)                 (redis.stream)\n"
    "  --group NAME      the consumer group of the fleet (default shoal)       (redis.group)\n"
    "  --consumer NAME   this host's name in the group (default HOSTNAME-PID)  (redis.consumer)\n"
    "  --pool NAME       the pool that runs the tasks (required when CONFIG has several)\n"
    "  -h, --help        show this help\n"
    "\n"
    "An entry idle past redis.visibility_timeout (a host died) is claimed by another host;\n"
    "a task that crashes or times out is delivered again, and after redis.max_deliveries\n"
    "deliveries it goes to STREAM:dead with its last outcome. A lost connection is retried\n"
    "with back-off. SIGTERM or SIGINT: stop taking tasks, finish and write those held\n"
    "(within shutdown.grace; the rest are handed back), run every finalizer, exit 0; a\n"
    "second signal ends the host at once.\n"
    "\n"
    "Exit status: 0 stopped by a signal; 1 the pool failed or outcomes could not be written;\n"
    "2 usage, config, pool start error, or a key of the wrong type in Redis.\n";

// How long one command may take before the connection counts as lost.
constexpr auto kIoTimeout = std::chrono::milliseconds(5000);
// After a stop, how long unwritten outcomes wait for Redis to come back.
constexpr auto kWriteGiveUp = std::chrono::seconds(15);

std::string default_consumer() {
  char host[256] = "host";
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "host");
  host[sizeof host - 1] = '\0';
  return std::string(host) + "-" + std::to_string(::getpid());
}

int ms_until(Clock::time_point t) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 60000));
}

class Server {
 public:
  Server(ServeSettings s, Pool& pool, Inbox& inbox, StopSignals& signals)
      : state_(std::move(s)), pool_(pool), inbox_(inbox), signals_(signals) {}

  int run();

 private:
  void take_signal();
  void begin_stop(const std::string& why);
  bool ensure_connected();
  void wait_events(Clock::time_point until);
  bool read();
  bool blocking_read(const redis::Args& args, Result<redis::Reply>& reply);
  void unblock();
  void start(redis::Task task, uint32_t deliveries);
  Clock::time_point next_wakeup() const;

  ServeState state_;
  Pool& pool_;
  Inbox& inbox_;
  StopSignals& signals_;
  redis::Connection waker_;  // sends CLIENT UNBLOCK while the main connection blocks
  bool stopping_ = false;
  bool terminated_ = false;
  bool pool_failed_ = false;
  Clock::time_point stop_deadline_{};
  Clock::time_point give_up_{};
};

void Server::start(redis::Task task, uint32_t deliveries) {
  if (!state_.hold(task, deliveries)) return;  // already held: claimed back from ourselves
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
  stop_deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(pool_.config().grace);
  give_up_ = stop_deadline_ + kWriteGiveUp;
  // A second signal ends the host at once; the pool's threads keep the signals blocked.
  signals_.release();
  print_error(why);
  pool_.close();
}

void Server::take_signal() {
  if (stopping_) return;
  if (int sig = signals_.poll(); sig != 0)
    begin_stop("stopping on " + signal_name(sig) + ": finishing " + std::to_string(state_.held()) +
               " tasks, taking no more (again to stop at once)");
}

bool Server::ensure_connected() {
  if (state_.connected()) return true;
  if (Clock::now() < state_.next_attempt()) return false;
  if (!state_.connect(kIoTimeout)) return false;
  waker_.close();
  return true;
}

Clock::time_point Server::next_wakeup() const {
  Clock::time_point t = Clock::now() + std::chrono::seconds(1);
  if (!state_.connected()) t = std::min(t, state_.next_attempt());
  // Claims wait for a free slot: a full host sleeps until an outcome frees one.
  if (!stopping_ && state_.free_slots() > 0) t = std::min(t, state_.next_claim());
  t = std::min(t, state_.next_refresh());
  if (stopping_ && !terminated_) t = std::min(t, stop_deadline_);
  return t;
}

void Server::wait_events(Clock::time_point until) {
  pollfd fds[2] = {{inbox_.fd(), POLLIN, 0}, {stopping_ ? -1 : signals_.fd(), POLLIN, 0}};
  ::poll(fds, 2, ms_until(until));
}

// CLIENT UNBLOCK from a second connection ends a blocked XREADGROUP at once (as if it
// had timed out), so an outcome that arrives meanwhile is written without waiting for
// the block to expire. Without that connection the block still ends on its own.
void Server::unblock() {
  if (!waker_) {
    auto w = redis::Connection::open(state_.url(), kIoTimeout);
    if (!w) return;
    waker_ = std::move(*w);
  }
  if (!waker_.command({"CLIENT", "UNBLOCK", state_.client_id()})) waker_.close();
}

bool Server::blocking_read(const redis::Args& args, Result<redis::Reply>& reply) {
  if (auto s = state_.conn().send(args); !s) {
    reply = s.error();
    return false;
  }
  const auto deadline = Clock::now() + state_.block_time() + kIoTimeout;
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
    args.push_back(std::to_string(state_.block_time().count()));
  }
  args.insert(args.end(), {"STREAMS", state_.keys().tasks, ">"});
  Result<redis::Reply> reply = Error{Errc::io, ""};
  if (block) blocking_read(args, reply);
  else reply = state_.conn().command(args);
  if (!reply) return state_.lost(reply.error());
  if (reply->is_error()) return state_.refused("XREADGROUP", reply->view());
  for (auto& entry : redis::parse_read(reply->view())) start(redis::task_of(entry), 1);
  return true;
}

int Server::run() {
  const auto started = Clock::now();
  print_error("serving pool " + pool_.config().name + " from " + state_.keys().tasks + " as " + state_.consumer() +
              " (group " + state_.settings().group + ", " + state_.url().display + ", " +
              std::to_string(state_.in_flight()) + " in flight)");
  for (;;) {
    take_signal();
    for (auto& [entry, outcome] : inbox_.take()) {
      if (state_.is_pool_failure(outcome) && !pool_failed_) {
        pool_failed_ = true;
        begin_stop("pool " + pool_.config().name + " failed: " + outcome.error + "; stopping");
      }
      state_.finish(entry, std::move(outcome), stopping_);
    }
    const auto now = Clock::now();
    if (stopping_ && !terminated_ && now >= stop_deadline_ && state_.held() > 0) {
      terminated_ = true;
      print_error("grace passed: handing back " + std::to_string(state_.held()) + " unfinished tasks");
      pool_.terminate();
    }
    if (stopping_ && state_.idle()) break;
    if (stopping_ && now >= give_up_ && state_.held() == 0) break;
    if (state_.fatal()) break;
    if (!ensure_connected()) {
      wait_events(next_wakeup());
      continue;
    }
    if (!state_.flush() || !state_.refresh()) continue;
    if (!stopping_ && state_.free_slots() > 0) {
      if (Clock::now() >= state_.next_claim()) {
        std::vector<std::pair<redis::Task, uint32_t>> claimed;
        if (!state_.claim(claimed)) continue;
        for (auto& [task, deliveries] : claimed) start(std::move(task), deliveries);
        if (!inbox_.empty() || state_.has_outbox()) continue;
      }
      read();
      continue;
    }
    if (inbox_.empty() && !state_.has_outbox()) wait_events(next_wakeup());
  }

  // Every worker runs its finalizer chain before the host exits.
  signals_.release();
  pool_.close();
  pool_.join();
  state_.leave_group();
  const double secs = std::chrono::duration<double>(Clock::now() - started).count();
  print_summary(state_.counts(), secs);
  if (state_.fatal()) {
    print_error(state_.fatal_message());
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

std::string_view serve_usage() noexcept { return kServeUsage; }

int serve_command(int argc, char** argv) {
  RedisFlags flags;
  const OptionSpec specs[] = {{"--redis", &flags.url},       {"--stream", &flags.stream},
                              {"--group", &flags.group},     {"--consumer", &flags.consumer},
                              {"--pool", &flags.pool}};
  std::vector<std::string> positional;
  if (auto code = parse_options({"serve", kServeUsage, "CONFIG", 1, 1}, argc, argv, specs, positional)) return *code;
  const std::string& config_path = positional[0];

  // Before any thread exists, so every thread the runtime starts inherits the mask.
  StopSignals signals;
  // hiredis writes with write(2): a server that closed the connection must surface as
  // EPIPE, not kill the host.
  ::signal(SIGPIPE, SIG_IGN);
  // Declared before the runtime: the pool's callbacks push into it until the pool joins.
  Inbox inbox;
  if (!inbox.ok()) {
    print_error("eventfd: " + errno_text(errno));
    return 2;
  }

  auto runtime = Runtime::from_file(config_path);
  if (!runtime) {
    print_error(runtime.error().message);
    return 2;
  }
  auto settings = redis_settings(runtime->config().redis, flags, "serve");
  if (!settings) {
    print_error(settings.error().message);
    return 2;
  }
  auto url = redis::parse_url(settings->url);
  if (!url) {
    print_error(url.error().message);
    return 2;
  }
  auto pool_name = choose_pool(runtime->config(), settings->pool, config_path);
  if (!pool_name) {
    print_error(pool_name.error().message);
    return 2;
  }
  auto pool = runtime->pool(*pool_name);
  if (!pool) {
    print_error(pool.error().message);
    return 2;
  }
  ServeSettings s;
  s.redis = std::move(*settings);
  s.url = std::move(*url);
  if (s.redis.consumer.empty()) s.redis.consumer = default_consumer();
  s.in_flight = s.redis.in_flight != 0 ? s.redis.in_flight : 2 * (*pool)->config().workers;
  Server server(std::move(s), **pool, inbox, signals);
  return server.run();
}

}  // namespace shoal::cli
