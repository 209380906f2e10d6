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
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
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
// Not inlined: inlined into run_command, GCC 12 takes the destruction of `positional`
// for a delete of `opts` (a false -Wfree-nonheap-object that -Werror makes fatal).
[[gnu::noinline]] std::optional<int> parse_args(int argc, char** argv, RunOptions& opts) {
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
// Lines in, rows out. The reader thread reads lines into a batch and hands it to a thread
// of its own that runs it through the pool (Pool::map_views); the views callback (on the
// pool's loop thread, or on the batch's thread while it reads results itself) formats
// each row straight from the result ring into `rows` as its task completes; the
// main thread writes `rows` out in large writes. Several batches are in flight at once, so
// a slow task holds back only its own batch: the reader fills the next one meanwhile and
// the other workers take its lines. Nothing is allocated per line once the buffers have
// grown: each batch slot keeps its strings, parked rows and thread from one batch to the
// next.

// Rows are written in writes of about this size when they come faster than the output
// takes them, and a row waits at most kGather for others to join it.
constexpr size_t kWriteSize = 1u << 16;
constexpr auto kGather = std::chrono::milliseconds(1);
// The reader starts no batch while this much is formatted and not yet written (waiting for
// the writer, or parked behind a slow line in ordered output), so a slow output or a slow
// line bounds memory: at most the batches in flight format more meanwhile.
constexpr size_t kMaxUnwritten = 16u << 20;
// A batch ends at this many input bytes too: its lines are held until its last task ends.
constexpr size_t kBatchBytes = 1u << 20;
// A line string grown past this (a long line) is freed after its batch, not kept.
constexpr size_t kKeepLine = 64u << 10;
// Lines in flight, over all batches: what ordered output runs ahead of a slow line, and
// what a slot per worker (each may hold a slow task) costs at most.
constexpr size_t kLinesInFlight = 32768;

struct Shared {
  explicit Shared(bool ordered_output) : ordered(ordered_output) {}

  const bool ordered;

  std::mutex m;
  std::condition_variable ready_cv;  // writer: rows to write, or the input ended
  std::condition_variable space_cv;  // reader: the writer caught up, a batch slot is free, or stop
  std::string rows;                  // formatted, in output order, not yet taken by the writer
  size_t parked_bytes = 0;           // ordered: rows formatted ahead of their turn
  Counts counts;                     // rows formatted so far (in `rows` or written), by status
  uint64_t submitted = 0;            // seqs given out: lines sent to the pool or refused
  uint64_t completed = 0;            // of them, with their outcome (a parked row included)
  bool input_done = false;           // the reader is done: every submitted seq has its row
  bool stop = false;
  int input_error = 0;
  std::atomic<uint64_t> input_bytes{0};

  bool finished() const { return input_done && rows.empty(); }

  // Under `m`, after a row was appended at `before`: the writer is woken for the first
  // row it would wait for, when a full write is ready, and when nothing else is coming.
  void wake_writer(size_t before) {
    if (before == 0 || (before < kWriteSize && rows.size() >= kWriteSize) || completed == submitted)
      ready_cv.notify_one();
  }
};

// The reader thread's side: reads lines into batches, runs each through the pool on its
// slot's thread, and formats their rows in the views callback in the order the output
// wants them. The pool runs one views callback at a time, across all its map_views calls
// and whichever thread runs it (under its data-path lock, which orders them): the
// callback-side state below needs no lock of its own.
class Batches {
 public:
  Batches(Shared& shared, Pool& pool, size_t max_slots, size_t max_lines)
      : shared_(shared), pool_(pool), max_slots_(max_slots), max_lines_(max_lines),
        ring_(shared.ordered ? max_slots : 0) {
    slots_.reserve(max_slots);
  }

  ~Batches() {
    {
      std::lock_guard lock(shared_.m);
      quit_ = true;
    }
    for (auto& s : slots_) {
      s->go_cv.notify_one();
      s->thread.join();
    }
  }

  void run(LineReader& reader, uint64_t max_input) {
    LineReader::Read r = LineReader::Read::stopped;
    Slot* slot = nullptr;
    size_t bytes = 0;
    for (;;) {
      if (slot == nullptr && (slot = acquire()) == nullptr) break;
      r = reader.next(slot->lines[slot->count]);
      shared_.input_bytes.store(reader.consumed(), std::memory_order_relaxed);
      if (r == LineReader::Read::line) {
        bytes += slot->lines[slot->count++].size();
        // A full batch goes out; so does a short one when the next line is not there yet.
        if (slot->count < max_lines_ && bytes < kBatchBytes && !reader.would_block()) continue;
      }
      bytes = 0;
      if (slot->count > 0 && !launch(*std::exchange(slot, nullptr))) break;
      if (r == LineReader::Read::too_long) {
        // The pool would refuse it with the same words; it is never read into memory.
        Outcome refused;
        refused.reason = Reason::input_too_large;
        refused.error = detail::too_large_message(reader.too_long_size(), max_input, pool_.config().name);
        if (slot != nullptr) release(*std::exchange(slot, nullptr));
        if (!refuse(refused)) break;
        continue;
      }
      if (r != LineReader::Read::line) break;
    }
    std::unique_lock lock(shared_.m);
    if (slot != nullptr) release_locked(*slot);
    // Every batch's row is in before the input counts as done (and its lines outlive it).
    wait_idle(lock);
    if (r == LineReader::Read::error) shared_.input_error = reader.error();
    shared_.input_done = true;
    shared_.ready_cv.notify_all();
  }

 private:
  struct Parked {
    size_t at = 0, size = 0;
    Status status = Status::ok;
    bool done = false;
  };

  // One batch in flight, and the thread that runs it (map_views blocks until its end).
  struct Slot {
    std::vector<std::string> lines;
    size_t count = 0;         // lines in the batch
    uint64_t first_seq = 0;   // the seq of lines[0]
    uint64_t batch = 0;       // its place among the batches, in input order
    // Under shared.m: the reader holds it (filling it, or it is in flight) until it ran
    // (`returned`) and, in ordered output, every row of it went to `rows` (`handed_over`).
    bool busy = false, go = false, returned = false, handed_over = false;
    std::condition_variable go_cv;
    // Ordered output, the views callback's while the batch runs: the first row not yet handed
    // over, and the rows that completed before it.
    size_t next = 0;
    std::string parked;
    std::vector<Parked> parked_at;
    std::function<void(size_t, const OutcomeView&)> on_done;
    std::thread thread;
  };

  // A free slot, the lowest (few are used while tasks are quick), or a new one while
  // there are fewer than max_slots_; nullptr on stop.
  Slot* acquire() {
    std::unique_lock lock(shared_.m);
    for (;;) {
      if (shared_.stop) return nullptr;
      for (auto& s : slots_) {
        if (!s->busy) {
          s->busy = true;
          return s.get();
        }
      }
      if (slots_.size() < max_slots_) break;
      shared_.space_cv.wait(lock);
    }
    auto& s = slots_.emplace_back(std::make_unique<Slot>());
    s->busy = true;
    s->lines.resize(max_lines_);
    if (shared_.ordered) s->parked_at.resize(max_lines_);
    s->on_done = [this, p = s.get()](size_t index, const OutcomeView& v) { deliver(*p, index, v); };
    s->thread = std::thread([this, p = s.get()] { serve(*p); });
    return s.get();
  }

  void release(Slot& s) {
    std::lock_guard lock(shared_.m);
    release_locked(s);
  }

  void release_locked(Slot& s) {
    s.busy = false;
    s.count = 0;
    shared_.space_cv.notify_one();
  }

  void wait_idle(std::unique_lock<std::mutex>& lock) {
    shared_.space_cv.wait(lock, [&] {
      return std::none_of(slots_.begin(), slots_.end(), [](const auto& s) { return s->busy; });
    });
  }

  // Takes `n` seqs once the writer has caught up; false on stop.
  bool take_seqs(std::unique_lock<std::mutex>& lock, uint64_t n, uint64_t& first) {
    shared_.space_cv.wait(
        lock, [&] { return shared_.stop || shared_.rows.size() + shared_.parked_bytes < kMaxUnwritten; });
    if (shared_.stop) return false;
    first = shared_.submitted;
    shared_.submitted += n;
    return true;
  }

  // Hands a filled slot to its thread; false (the slot released) on stop.
  bool launch(Slot& s) {
    if (shared_.ordered) {
      // Free, so no callback looks at it: the callback only reads launched batches.
      s.next = 0;
      s.parked.clear();
      std::fill_n(s.parked_at.begin(), s.count, Parked{});
    }
    std::unique_lock lock(shared_.m);
    if (!take_seqs(lock, s.count, s.first_seq)) {
      release_locked(s);
      return false;
    }
    s.batch = launched_++;
    if (shared_.ordered) ring_[s.batch % ring_.size()] = &s;
    s.returned = false;
    s.handed_over = !shared_.ordered;
    s.go = true;
    s.go_cv.notify_one();
    return true;
  }

  // A slot's thread: runs each batch it is given.
  void serve(Slot& s) {
    std::unique_lock lock(shared_.m);
    for (;;) {
      s.go_cv.wait(lock, [&] { return s.go || quit_; });
      if (!s.go) return;
      s.go = false;
      lock.unlock();
      // Blocks until the batch's last row is formatted.
      pool_.map_views(std::span<const std::string>(s.lines.data(), s.count), s.on_done);
      for (size_t i = 0; i < s.count; ++i)
        if (s.lines[i].capacity() > kKeepLine) std::string().swap(s.lines[i]);
      lock.lock();
      s.returned = true;
      if (s.handed_over) release_locked(s);
    }
  }

  bool refuse(const Outcome& refused) {
    std::unique_lock lock(shared_.m);
    // Ordered, its row comes after every row of the batches in flight: they end first.
    // Rare (a line longer than any task input), so the stall costs nothing that matters.
    if (shared_.ordered) wait_idle(lock);
    uint64_t seq = 0;
    if (!take_seqs(lock, 1, seq)) return false;
    const size_t before = shared_.rows.size();
    append_row(shared_.rows, seq, refused);
    ++shared_.counts.by_status[static_cast<size_t>(refused.status)];
    ++shared_.completed;
    shared_.wake_writer(before);
    return true;
  }

  template <typename O>
  static void append_row(std::string& out, uint64_t seq, const O& outcome) {
    detail::append_outcome_json(out, seq, outcome);
    out.push_back('\n');
  }

  // The views callback (one call at a time, pool-wide), with the output still in the result
  // ring: it must be quick, as no other result is taken in meanwhile. A row that comes
  // before its turn (ordered output) is parked in its slot, off the mutex, until the rows
  // before it are in.
  void deliver(Slot& s, size_t index, const OutcomeView& v) {
    const uint64_t seq = s.first_seq + index;
    // The pool's line names the worker that died; which input it was is known here.
    if (v.status == Status::crashed || v.status == Status::timeout)
      detail::log_line(detail::LogLevel::warn, "input line " + std::to_string(seq + 1) + " (seq " +
                                                   std::to_string(seq) + ") " + std::string(to_string(v.status)) +
                                                   ": " + std::string(v.error));
    if (shared_.ordered && (s.batch != head_ || index != s.next)) {
      const size_t at = s.parked.size();
      append_row(s.parked, seq, v);
      s.parked_at[index] = Parked{at, s.parked.size() - at, v.status, true};
      std::lock_guard lock(shared_.m);
      shared_.parked_bytes += s.parked.size() - at;
      ++shared_.completed;
      return;
    }
    std::lock_guard lock(shared_.m);
    const size_t before = shared_.rows.size();
    append_row(shared_.rows, seq, v);
    ++shared_.counts.by_status[static_cast<size_t>(v.status)];
    ++shared_.completed;
    if (shared_.ordered) {
      ++s.next;
      hand_over();
    }
    shared_.wake_writer(before);
  }

  // Loop thread, under shared.m: moves the parked rows that are now next into `rows`,
  // through as many batches as have all their rows.
  void hand_over() {
    for (;;) {
      Slot& s = *ring_[head_ % ring_.size()];
      while (s.next < s.count && s.parked_at[s.next].done) {
        const Parked& p = s.parked_at[s.next++];
        shared_.rows.append(s.parked, p.at, p.size);
        shared_.parked_bytes -= p.size;
        ++shared_.counts.by_status[static_cast<size_t>(p.status)];
      }
      if (s.next < s.count) return;
      s.handed_over = true;
      if (s.returned) release_locked(s);
      if (++head_ == launched_) return;
    }
  }

  Shared& shared_;
  Pool& pool_;
  const size_t max_slots_;
  const size_t max_lines_;                // per batch
  std::vector<std::unique_ptr<Slot>> slots_;  // the reader's; their flags under shared.m
  bool quit_ = false;                     // under shared.m: the slot threads end
  uint64_t launched_ = 0;                 // under shared.m: batches handed to the pool
  // Ordered output: batch b's slot at b % max_slots (at most max_slots are in flight),
  // written under shared.m at launch; the first batch whose rows are not all handed over,
  // the views callback's.
  std::vector<Slot*> ring_;
  uint64_t head_ = 0;
};

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

  // A slot per worker, each of which may hold a slow task, and two to keep the others
  // busy meanwhile; at least 8, so that ordered output runs 28,672 lines ahead of one slow
  // line with few workers. The lines in flight stay within kLinesInFlight.
  uint64_t workers = pool.config().workers;
  if (workers == 0) workers = std::max(1u, std::thread::hardware_concurrency());
  const size_t slots = std::clamp<uint64_t>(workers + 2, 8, 256);
  const size_t batch_lines = std::clamp<size_t>(kLinesInFlight / slots, 128, 4096);

  Fd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (wake.get() < 0) {
    print_error("eventfd: " + errno_text(errno));
    return kExitUsage;
  }
  const auto stop_reader = [&wake] { detail::eventfd_signal(wake.get()); };

  Shared shared(!opts.unordered);
  // A line longer than any task input is skipped, not held: its row is `rejected`.
  const uint64_t max_input = detail::max_input(pool.config().queue_capacity);
  LineReader reader(input_fd, wake.get(), max_input);
  Batches batches(shared, pool, slots, batch_lines);
  Progress progress(::isatty(STDERR_FILENO) == 1, input_size);
  // When stdout and stderr share a terminal, output lines would land in the middle of the
  // bar; erase it before each write and let the next tick redraw it.
  const bool output_on_terminal = output_fd == STDOUT_FILENO && ::isatty(STDOUT_FILENO) == 1;

  if (input_size > 0) progress.count_lines(input_fd);
  status.set(ServiceStatus::Phase::ready, "running pool " + pool_name);

  Clock::time_point next_stats = start + opts.stats_every;
  std::thread reader_thread([&] { batches.run(reader, max_input); });

  std::string out;  // swapped with shared.rows: both keep their capacity
  int output_error = 0;
  int stopped_by = 0;
  bool terminated = false;

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
  const auto more_coming = [&] { return !shared.input_done && shared.completed != shared.submitted; };

  constexpr auto kTick = std::chrono::milliseconds(100);
  Clock::time_point last_tick = start;
  std::unique_lock lock(shared.m);
  for (;;) {
    if (!shared.rows.empty()) {
      // A short write waits a moment for more rows, unless no task is out to bring them.
      if (shared.rows.size() < kWriteSize && more_coming())
        shared.ready_cv.wait_for(lock, kGather, [&] { return shared.rows.size() >= kWriteSize || !more_coming(); });
      out.swap(shared.rows);
      shared.space_cv.notify_one();
      lock.unlock();
      if (output_error == 0) {
        if (output_on_terminal) progress.clear();
        output_error = write_all(output_fd, out.data(), out.size());
      }
      out.clear();
      lock.lock();
      // Stay on the fast path while rows keep coming, but still look at signals and the
      // progress bar every tick.
      if (output_error == 0 && !shared.rows.empty() && Clock::now() - last_tick < kTick) continue;
    }
    last_tick = Clock::now();
    status.beat();
    if (output_error != 0 && !shared.stop) stop_run(lock);
    if (shared.finished()) break;

    const uint64_t submitted = shared.submitted, completed = shared.completed;
    const Counts counts = shared.counts;
    const bool input_done = shared.input_done;
    lock.unlock();
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
    shared.ready_cv.wait_for(lock, kTick, [&] { return !shared.rows.empty() || shared.finished(); });
  }
  const int input_error = shared.input_error;
  const uint64_t submitted = shared.submitted;  // every one of them has its row by now
  const Counts counts = shared.counts;
  lock.unlock();
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
