#include "run.hpp"

#include "line_reader.hpp"
#include "metrics.hpp"
#include "options.hpp"
#include "stats.hpp"
#include "terminal.hpp"
#include "common/event.hpp"
#include "common/fd.hpp"
#include "common/json.hpp"
#include "common/log.hpp"
#include "common/printable.hpp"
#include "config/values.hpp"
#include "pool/input_limit.hpp"

#include <shoal/runtime.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace shoal::cli {

namespace {

constexpr std::string_view kRunUsage =
    "Usage: shoal run CONFIG [--pool NAME] [--input FILE|-] [--output FILE|-] [--unordered]\n"
    "                        [--stats FILE] [--stats-interval DURATION]\n"
    "                        [--metrics [HOST:]PORT]\n"
    "\n"
    "Runs one task per line of input through a pool of CONFIG and writes one JSON object\n"
    "per task to the output:\n"
    "  {\"seq\":0,\"status\":\"ok\",\"output\":\"...\",\"error\":null,\"worker\":1,\"attempts\":1,\"ms\":0.412,\n"
    "   \"reason\":null}\n"
    "seq is the 0-based input line; status is ok, error, crashed, timeout, cancelled or\n"
    "rejected; reason says why as a code (null when ok): plugin_error, crashed,\n"
    "timed_out, pool_closed, pool_failed, input_too_large or terminated. A trailing \\r is\n"
    "stripped from each line; an empty line is a task with an empty input; a line\n"
    "longer than the pool's largest input (queue.capacity) is rejected without being\n"
    "read into memory. Bytes that are not UTF-8 are written as \\ufffd.\n"
    "\n"
    "Options:\n"
    "  --pool NAME     the pool to use (required when CONFIG has several)\n"
    "  --input FILE    read tasks from FILE (default -, standard input)\n"
    "  --output FILE   write outcomes to FILE (default -, standard output)\n"
    "  --unordered     write each outcome as soon as it is done (default: input order,\n"
    "                  each line written as soon as every earlier one is)\n"
    "  --stats FILE    write the run's counters to FILE as JSON: every --stats-interval\n"
    "                  while it runs, and at its end (\"final\":true): per pool\n"
    "                  and per worker tasks, outcomes by status, process starts, restarts\n"
    "                  and why processes ended, busy fraction, RSS, the p50 and p99\n"
    "                  time in shoal_run (ms), and the pool's generation and reloads\n"
    "                  (0 in a run, which never reloads). A regular FILE is replaced\n"
    "                  atomically; a FIFO, terminal or device (or a link to one:\n"
    "                  /dev/stderr) is written in place; a symbolic link to a regular\n"
    "                  file is refused\n"
    "  --stats-interval DURATION\n"
    "                  how often --stats is rewritten, from 50ms to 24h, in the\n"
    "                  config's units (500ms, 2s, 1m; a plain number is seconds;\n"
    "                  default 5s)\n"
    "  --metrics [HOST:]PORT\n"
    "                  serve /metrics (OpenMetrics), /healthz and /readyz over HTTP\n"
    "                  while the run lasts; no HOST: 127.0.0.1; port 0: a free one\n"
    "                  (logged); overrides CONFIG's metrics: key\n"
    "  -h, --help      show this help\n"
    "\n"
    "Standard error shows a progress bar when it is a terminal (done/total, rate, ETA;\n"
    "not with --log-format json), and always a summary.\n"
    "\n"
    "Signals: SIGINT (Ctrl-C), SIGTERM and SIGHUP each stop the run: no more input is\n"
    "read, queued tasks are reported as cancelled, running ones get shutdown.grace to\n"
    "finish, every finalizer runs, and the exit status is 128+N. A run has nothing to\n"
    "reload, so SIGHUP (its terminal went away) stops it like SIGTERM. A second one ends\n"
    "the run at once. While the pool starts, they stop its workers through their chains.\n"
    "\n"
    "When the reader of the output goes away (`shoal run ... | head`), the run stops as\n"
    "on a signal (queued tasks cancelled, finalizers run) without a message or summary,\n"
    "and exits 141, as a program ended by SIGPIPE would.\n"
    "\n"
    "Exit status: 0 every task ok; 1 some task not ok; 2 usage, config, pool start or\n"
    "I/O error (no rows written when the pool cannot start); 128+N stopped by signal N;\n"
    "141 the output's reader went away.\n";

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitBrokenPipe = 128 + SIGPIPE;  // documented in kRunUsage

using detail::Fd;

// ---------------------------------------------------------------------------------------
// Arguments

struct RunOptions {
  std::string config;
  std::string pool;
  std::string input = "-";
  std::string output = "-";
  bool unordered = false;
  std::string stats;
  std::string stats_interval;
  Duration stats_every = std::chrono::seconds(5);
  std::string metrics;
};

// Returns an exit code when the arguments settle the run (help, or a usage error).
std::optional<int> parse_args(int argc, char** argv, RunOptions& opts) {
  const OptionSpec specs[] = {{"--pool", &opts.pool},
                              {"--input", &opts.input},
                              {"--output", &opts.output},
                              {"--unordered", nullptr, &opts.unordered},
                              {"--stats", &opts.stats},
                              {"--stats-interval", &opts.stats_interval},
                              {"--metrics", &opts.metrics}};
  std::vector<std::string> positional;
  if (auto code = parse_options({"run", kRunUsage, "CONFIG", 1, 1}, argc, argv, specs, positional)) return code;
  if (!opts.stats_interval.empty()) {
    if (const std::string error = parse_stats_interval("run", opts.stats_interval, opts.stats_every);
        !error.empty()) {
      print_error(error);
      return kExitUsage;
    }
  }
  opts.config = positional[0];
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------
// State shared by the reader thread, the pool's loop thread (callbacks) and the writer

struct Shared {
  explicit Shared(uint64_t window_size, bool ordered_output)
      : window(window_size), ordered(ordered_output), slots(ordered_output ? window_size : 0) {}

  const uint64_t window;  // tasks submitted but not yet written, at most
  const bool ordered;

  std::mutex m;
  std::condition_variable ready_cv;  // writer: an outcome it can write, or the input ended
  std::condition_variable space_cv;  // reader: the window has room, or stop
  uint64_t submitted = 0;
  uint64_t completed = 0;
  uint64_t written = 0;
  bool input_done = false;
  bool stop = false;
  int input_error = 0;
  // Ordered: seq % window -> outcome. A seq is only submitted once seq - window has been
  // written, so a slot never holds two outcomes.
  std::vector<std::optional<Outcome>> slots;
  // Unordered: completion order.
  std::deque<std::pair<uint64_t, Outcome>> done;
  std::atomic<uint64_t> input_bytes{0};

  bool writable() const {
    return ordered ? slots[written % window].has_value() : !done.empty();
  }
  bool finished() const { return input_done && written == submitted; }

  // Runs on the pool's loop thread (or the reader's, for an immediate rejection): it only
  // hands the outcome over; formatting and I/O stay on the writer so the loop is never
  // held up by a slow output.
  void deliver(uint64_t seq, Outcome&& outcome) {
    std::lock_guard lock(m);
    ++completed;
    if (ordered) {
      slots[seq % window] = std::move(outcome);
      if (seq == written) ready_cv.notify_one();
    } else {
      const bool was_empty = done.empty();
      done.emplace_back(seq, std::move(outcome));
      if (was_empty) ready_cv.notify_one();
    }
  }
};

void reader_main(Shared& shared, LineReader& reader, Pool& pool, uint64_t max_input) {
  std::string line;
  LineReader::Read r;
  while ((r = reader.next(line)) == LineReader::Read::line || r == LineReader::Read::too_long) {
    uint64_t seq = 0;
    {
      std::unique_lock lock(shared.m);
      shared.space_cv.wait(lock, [&] { return shared.stop || shared.submitted - shared.written < shared.window; });
      if (shared.stop) break;
      seq = shared.submitted++;
    }
    shared.input_bytes.store(reader.consumed(), std::memory_order_relaxed);
    if (r == LineReader::Read::too_long) {  // the pool would refuse it with the same words
      Outcome refused;
      refused.reason = Reason::input_too_large;
      refused.error = detail::too_large_message(reader.too_long_size(), max_input, pool.config().name);
      shared.deliver(seq, std::move(refused));
      continue;
    }
    // Not under the mutex: a task rejected at once runs its callback on this thread.
    pool.submit(line, [&shared, seq](Outcome&& outcome) {
      // The pool's line names the worker that died; which input it was is known here.
      if (outcome.status == Status::crashed || outcome.status == Status::timeout)
        detail::log_line(detail::LogLevel::warn, "input line " + std::to_string(seq + 1) + " (seq " +
                                                     std::to_string(seq) + ") " +
                                                     std::string(to_string(outcome.status)) + ": " + outcome.error);
      shared.deliver(seq, std::move(outcome));
    });
  }
  std::lock_guard lock(shared.m);
  if (r == LineReader::Read::error) shared.input_error = reader.error();
  shared.input_done = true;
  shared.ready_cv.notify_all();
}

int run(const RunOptions& opts) {
  // Before any thread exists, so every thread the runtime starts inherits the mask.
  StopSignals signals;
  // A reader that went away (`shoal run … | head`) must surface as EPIPE from write, so
  // the run can stop its pool cleanly instead of dying in the middle of it.
  ::signal(SIGPIPE, SIG_IGN);

  Fd input_owner;
  int input_fd = STDIN_FILENO;
  if (opts.input != "-") {
    input_owner = Fd(signals.interruptible([&] { return ::open(opts.input.c_str(), O_RDONLY | O_CLOEXEC); }));
    if (input_owner.get() < 0) {
      print_error("cannot open input " + opts.input + ": " + errno_text(errno));
      return kExitUsage;
    }
    input_fd = input_owner.get();
  }
  struct stat input_stat {};
  const bool input_stat_ok = ::fstat(input_fd, &input_stat) == 0;
  const uint64_t input_size =
      input_stat_ok && S_ISREG(input_stat.st_mode) ? static_cast<uint64_t>(input_stat.st_size) : 0;

  if (opts.output != "-" && input_stat_ok && S_ISREG(input_stat.st_mode)) {
    struct stat out_stat {};
    if (::stat(opts.output.c_str(), &out_stat) == 0 && out_stat.st_dev == input_stat.st_dev &&
        out_stat.st_ino == input_stat.st_ino) {
      print_error("run: --output " + opts.output + " is the input file; it would be truncated before it is read");
      return kExitUsage;
    }
  }

  // Ctrl-C while a pool starts (a slow init) stops its workers through their chains.
  RuntimeOptions runtime_options;
  runtime_options.start_cancel_fd = signals.fd();
  // The config may be a FIFO (`<(...)` is not, but a named one is) that never delivers.
  auto runtime_result = signals.interruptible([&] { return Runtime::from_file(opts.config, runtime_options); });
  if (!runtime_result) {
    print_error(runtime_result.error().message);
    return kExitUsage;
  }
  Runtime& runtime = *runtime_result;
  const Config& config = runtime.config();

  auto chosen = choose_pool(config, opts.pool, opts.config);
  if (!chosen) {
    print_error(chosen.error().message);
    return kExitUsage;
  }
  const std::string& pool_name = *chosen;

  // Listening before the pool starts: a taken port fails the run at once, not after a
  // slow init, and /readyz answers "starting" meanwhile.
  ServiceStatus status;
  HostMetrics metrics(status);
  auto responder = start_metrics(opts.metrics, config, metrics);
  if (!responder) {
    print_error(responder.error().message);
    return kExitUsage;
  }

  // Decision 4: a pool that never became ready is a start error, not a run with failed
  // rows; nothing has been written yet, and nothing will be.
  auto pool_result = runtime.pool(pool_name);
  if (!pool_result) {
    if (int sig = signals.poll(); sig != 0) {
      print_info("stopped on " + signal_name(sig) + " while pool " + pool_name + " was starting");
      return 128 + sig;
    }
    print_error(pool_result.error().message);
    return kExitUsage;
  }
  Pool& pool = **pool_result;
  metrics.add_pool(pool_name, &pool);

  const Clock::time_point start = Clock::now();
  std::string stats_error;
  const auto write_stats = [&](bool final, uint64_t submitted, uint64_t written) {
    if (opts.stats.empty() || !stats_error.empty()) return;
    RunStats s{std::chrono::duration<double>(Clock::now() - start).count(), final, submitted, written,
               {{pool_name, pool.stats()}}, std::nullopt};
    stats_error = write_stats_file(opts.stats, stats_json(s));
  };
  // The first write proves the file can be written before any task runs.
  write_stats(false, 0, 0);
  if (!stats_error.empty()) {
    print_error("cannot write --stats " + opts.stats + ": " + stats_error);
    return kExitUsage;
  }

  // Opened after the pool started and the --stats file was written, so a config, plugin
  // or stats path error leaves an existing output file as it was.
  Fd output_owner;
  int output_fd = STDOUT_FILENO;
  if (opts.output != "-") {
    output_owner = Fd(signals.interruptible(
        [&] { return ::open(opts.output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666); }));
    if (output_owner.get() < 0) {
      print_error("cannot open output " + opts.output + ": " + errno_text(errno));
      return kExitUsage;
    }
    output_fd = output_owner.get();
  }

  // Bounds memory whatever the input length: at most `window` tasks are queued, running
  // or waiting for an earlier line to be written. Wide enough that a slow task at the
  // head of the order does not idle the other workers for long.
  uint64_t workers = pool.config().workers;
  if (workers == 0) workers = std::max(1u, std::thread::hardware_concurrency());
  const uint64_t window = std::clamp<uint64_t>(workers * 256, 4096, 65536);

  Fd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (wake.get() < 0) {
    print_error("eventfd: " + errno_text(errno));
    return kExitUsage;
  }
  const auto stop_reader = [&wake] { detail::eventfd_signal(wake.get()); };

  Shared shared(window, !opts.unordered);
  // A line longer than any task input is skipped, not held: its row is `rejected`.
  const uint64_t max_input = detail::max_input(pool.config().queue_capacity);
  LineReader reader(input_fd, wake.get(), max_input);
  Progress progress(::isatty(STDERR_FILENO) == 1, input_size);
  // When stdout and stderr share a terminal, output lines would land in the middle of the
  // bar; erase it before each flush and let the next tick redraw it.
  const bool output_on_terminal = output_fd == STDOUT_FILENO && ::isatty(STDOUT_FILENO) == 1;

  if (input_size > 0) progress.count_lines(input_fd);
  status.set(ServiceStatus::Phase::ready, "running pool " + pool_name);

  Clock::time_point next_stats = start + opts.stats_every;
  std::thread reader_thread(reader_main, std::ref(shared), std::ref(reader), std::ref(pool), max_input);

  Counts counts;
  std::string out;
  out.reserve(1 << 17);
  int output_error = 0;
  int stopped_by = 0;
  bool terminated = false;

  const auto flush = [&] {
    if (out.empty()) return;
    if (output_error == 0) {
      if (output_on_terminal) progress.clear();
      output_error = write_all(output_fd, out.data(), out.size());
    }
    out.clear();
  };
  // Stops taking input and ends the pool's work: queued tasks come back `cancelled`, so
  // every task already submitted still gets its row.
  const auto stop_run = [&](std::unique_lock<std::mutex>& lock) {
    status.set(ServiceStatus::Phase::stopping, stopped_by ? "stopping on " + signal_name(stopped_by) : "output failed");
    shared.stop = true;
    shared.space_cv.notify_all();
    lock.unlock();
    stop_reader();
    if (!terminated) {
      terminated = true;
      pool.terminate();
    }
    lock.lock();
  };

  constexpr auto kTick = std::chrono::milliseconds(100);
  Clock::time_point last_tick = start;
  std::vector<std::pair<uint64_t, Outcome>> batch;
  std::unique_lock lock(shared.m);
  for (;;) {
    if (shared.ordered) {
      while (shared.slots[shared.written % window].has_value()) {
        auto& slot = shared.slots[shared.written % window];
        batch.emplace_back(shared.written, std::move(*slot));
        slot.reset();
        ++shared.written;
      }
    } else {
      shared.written += shared.done.size();
      batch.insert(batch.end(), std::make_move_iterator(shared.done.begin()),
                   std::make_move_iterator(shared.done.end()));
      shared.done.clear();
    }
    if (!batch.empty()) {
      shared.space_cv.notify_one();
      lock.unlock();
      for (auto& [seq, outcome] : batch) {
        ++counts.by_status[static_cast<size_t>(outcome.status)];
        if (output_error != 0) continue;
        detail::append_outcome_json(out, seq, outcome);
        out.push_back('\n');
        if (out.size() >= (1u << 16)) flush();
      }
      batch.clear();
      lock.lock();
      // Stay on the fast path while outcomes keep coming (flushing once the queue is
      // empty), but still look at signals and the progress bar every tick.
      if (output_error == 0 && shared.writable() && Clock::now() - last_tick < kTick) continue;
    }
    last_tick = Clock::now();
    status.beat();
    if (output_error != 0 && !shared.stop) stop_run(lock);
    if (shared.finished()) break;

    const uint64_t submitted = shared.submitted, completed = shared.completed;
    const bool input_done = shared.input_done;
    lock.unlock();
    flush();
    if (!stopped_by) {
      if (int sig = signals.poll(); sig != 0) {
        stopped_by = sig;
        signals.release();
        progress.clear();
        print_info("stopping on " + signal_name(sig) + ": queued tasks are cancelled (again to kill at once)");
      }
    }
    progress.maybe_draw(Clock::now(), start, counts, submitted, completed,
                        shared.input_bytes.load(std::memory_order_relaxed), input_done);
    if (Clock::now() >= next_stats) {
      write_stats(false, submitted, counts.total());
      next_stats = Clock::now() + opts.stats_every;
    }
    lock.lock();
    if (stopped_by && !shared.stop) stop_run(lock);
    // A timed wait: the signalfd and the progress bar are looked at on each tick.
    shared.ready_cv.wait_for(lock, kTick, [&] { return shared.writable() || shared.finished(); });
  }
  const int input_error = shared.input_error;
  const uint64_t submitted = shared.submitted;  // every one of them has its row by now
  lock.unlock();
  flush();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  reader_thread.join();

  // A slow finalizer must not make Ctrl-C ineffective: from here on it ends the host, and
  // the workers stop on their own through their parent-death watch.
  signals.release();
  status.set(ServiceStatus::Phase::stopping, "the input ended");
  (void)pool.stats();  // samples the workers' RSS while they are still alive
  pool.close();
  pool.join();
  progress.clear();
  write_stats(true, submitted, counts.total());
  if (!stats_error.empty()) print_error("cannot write --stats " + opts.stats + ": " + stats_error);

  if (input_error != 0) {
    print_error("cannot read input " + (opts.input == "-" ? std::string("(standard input)") : opts.input) + ": " +
                errno_text(input_error));
  }
  // A closed pipe is the reader's choice (`| head`), not a fault: the run stopped like on
  // a signal, but says nothing, and exits as a program that SIGPIPE ended would (git does
  // the same), so a pipeline reads it as "the reader had enough".
  const bool reader_gone = output_error == EPIPE && input_error == 0 && stats_error.empty();
  if (reader_gone) return kExitBrokenPipe;
  if (output_error != 0 && output_error != EPIPE) {
    print_error("cannot write output " + (opts.output == "-" ? std::string("(standard output)") : opts.output) +
                ": " + errno_text(output_error));
  }
  print_summary(counts, secs);

  if (input_error != 0 || output_error != 0 || !stats_error.empty()) return kExitUsage;
  if (stopped_by != 0) return 128 + stopped_by;
  return counts.ok() == counts.total() ? kExitOk : kExitFailed;
}

}  // namespace

std::string_view run_usage() noexcept { return kRunUsage; }

int run_command(int argc, char** argv) {
  RunOptions opts;
  if (auto code = parse_args(argc, argv, opts)) return *code;
  return run(opts);
}

}  // namespace shoal::cli
