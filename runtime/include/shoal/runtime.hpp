// File: shoal/runtime.hpp
//
// The host API: a Runtime built from a YAML config owns named Pools; a Pool owns worker
// processes (`shoal-worker`, started with posix_spawn, never fork) that run a task
// plugin. Every task handed to a pool gets exactly one Outcome.
//
// Threads: Pool methods may be called from any thread. Each pool runs one event-loop
// thread of its own that spawns and supervises its workers; the callback form of submit
// runs your code on it, and so does map_views while its caller is not reading results
// itself (a caller blocked in map, map_unordered or map_views moves its own tasks and
// results while it waits, with no hand-over to the loop thread).
#ifndef SHOAL_RUNTIME_HPP
#define SHOAL_RUNTIME_HPP

#include <shoal/config.hpp>
#include <shoal/export.hpp>
#include <shoal/result.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shoal {

/// The outcome vocabulary (DESIGN.md): the same words in the API, the CLI and Redis.
enum class Status : uint8_t { ok, error, crashed, timeout, cancelled, rejected };

/// "ok", "error", "crashed", "timeout", "cancelled", "rejected".
SHOAL_API std::string_view to_string(Status s) noexcept;

/// Why a task's Outcome is what it is: finer than Status, and stable, for a caller to
/// switch on (Outcome::error is English for people and may be reworded).
///   none             ok: shoal_run succeeded
///   plugin_error     error: shoal_run reported an error (Outcome::error is its text)
///   crashed          crashed: its worker died or was killed while it ran (a signal, an
///                    exit, a broken protocol), on its last allowed attempt
///   timed_out        timeout: it passed task_timeout on its last allowed attempt
///   pool_closed      rejected: submitted after close, join or terminate; cancelled: the
///                    pool stopped after a close with it still queued (it never started)
///   pool_failed      rejected: the pool had failed (a crash loop, workers that cannot
///                    start) before it ran; cancelled: cut off past shutdown.grace by it
///   input_too_large  rejected: the input is larger than a task ring (queue.capacity);
///                    final, whatever pool it goes to
///   terminated       cancelled: Pool::terminate (or the pool's destruction) came before
///                    it started, or while it ran past shutdown.grace
///   reentrant        rejected: map, map_unordered, map_views or apply was called from an
///                    outcome callback of the same pool, whose outcomes that very thread
///                    would have to deliver (since 1.4); submit from a callback is fine
/// pool_closed, pool_failed and terminated say nothing against the task: another pool
/// may run it. New reasons are added at the end.
enum class Reason : uint8_t {
  none,
  plugin_error,
  crashed,
  timed_out,
  pool_closed,
  pool_failed,
  input_too_large,
  terminated,
  reentrant,
};

/// "none", "plugin_error", "crashed", "timed_out", "pool_closed", "pool_failed",
/// "input_too_large", "terminated", "reentrant" (the enumerator's name).
SHOAL_API std::string_view to_string(Reason r) noexcept;

/// What became of one task.
struct Outcome {
  Status status = Status::rejected;
  /// Why, as a code (`error` says it in words). It sits in what was padding after
  /// `status`: no other member moved.
  Reason reason = Reason::none;
  /// The generation of the worker that produced it (Pool::reload): 0 until the first
  /// reload; each reload attempt gets the next number, so one number names one config.
  uint32_t generation = 0;
  std::string output;               ///< bytes the plugin emitted (status ok; partial otherwise)
  std::string error;                ///< why, when status is not ok
  int32_t worker = -1;              ///< worker index that ran it last; -1 if none
  uint32_t attempts = 0;            ///< times it was started in a worker (0: never ran)
  std::chrono::nanoseconds duration{0};  ///< time in shoal_run, last attempt
};

/// An Outcome seen in place: `output` and `error` point into the pool's shared memory (or
/// into an Outcome the runtime holds) and are valid only until the callback receiving
/// the view returns. Copy what must outlive it.
struct OutcomeView {
  Status status = Status::rejected;
  Reason reason = Reason::none;
  uint32_t generation = 0;
  std::string_view output;
  std::string_view error;
  int32_t worker = -1;
  uint32_t attempts = 0;
  std::chrono::nanoseconds duration{0};
};

/// Why a worker process ended, as a small fixed set (for metrics labels): `exit` it exited
/// with status 0 (stopped, recycled, retired); `error` with another status; `signal` a
/// signal the host did not send ended it (a crash); `timeout_kill` the host killed it for
/// task_timeout; `killed` the host killed it for another cause (start_timeout, a task
/// past shutdown.grace, a broken protocol).
enum class ExitCause : uint8_t { exit, error, signal, timeout_kill, killed };
inline constexpr size_t kExitCauses = 5;

/// "exit", "error", "signal", "timeout_kill", "killed".
SHOAL_API std::string_view to_string(ExitCause c) noexcept;

/// Task durations in fixed buckets (OpenMetrics histogram): `cumulative[i]` counts the
/// tasks that took at most kBounds[i], the last one every task (+Inf); `sum` their total.
struct DurationBuckets {
  static constexpr std::array<std::chrono::nanoseconds, 13> kBounds{
      std::chrono::microseconds(100), std::chrono::microseconds(500), std::chrono::milliseconds(1),
      std::chrono::milliseconds(5),   std::chrono::milliseconds(10),  std::chrono::milliseconds(50),
      std::chrono::milliseconds(100), std::chrono::milliseconds(500), std::chrono::seconds(1),
      std::chrono::seconds(5),        std::chrono::seconds(10),       std::chrono::seconds(30),
      std::chrono::seconds(60)};
  std::array<uint64_t, kBounds.size() + 1> cumulative{};
  std::chrono::nanoseconds sum{0};
};

/// Counters of one worker slot over the processes it has had, for monitoring.
struct WorkerStats {
  uint32_t index = 0;
  int pid = -1;                        ///< the live process; -1 while the slot has none
  uint64_t tasks = 0;                  ///< outcomes of tasks that ran in this slot
  std::array<uint64_t, 6> outcomes{};  ///< `tasks` by Status (index: the Status value)
  uint32_t starts = 0;                 ///< processes started in this slot
  /// Why its processes ended ("exited with status 0", "killed by SIGSEGV", ...), counted.
  std::vector<std::pair<std::string, uint32_t>> exits;
  std::array<uint64_t, kExitCauses> exit_causes{};  ///< the same ends by ExitCause
  std::chrono::nanoseconds busy{0};    ///< time spent in shoal_run
  /// Resident set of the live process, as of this call; after it ended, the last one a
  /// stats() call saw (0 if none did).
  uint64_t rss_bytes = 0;
};

/// One segment of a pool's `shared:` list (PoolStats::shared).
struct SharedStats {
  std::string name;
  uint32_t generation = 0;             ///< the pool generation that built it
  uint64_t size = 0;                   ///< the segment's bytes (`size:`)
  uint64_t used = 0;                   ///< bytes the builder used of it
  std::chrono::nanoseconds build_time{0};  ///< builder spawn to sealed segment
  uint32_t mappings = 0;               ///< live worker processes that map it now
};

/// A pool's counters since Pool::start (Pool::stats).
struct PoolStats {
  std::chrono::nanoseconds uptime{0};
  std::array<uint64_t, 6> outcomes{};  ///< every task's outcome by Status, rejected ones too
  uint32_t restarts = 0;               ///< processes started after each slot's first
  /// Time in shoal_run of tasks that returned (ok or error), to within 12.5%.
  std::chrono::nanoseconds p50{0}, p99{0};
  /// The same times (tasks that returned) in fixed buckets.
  DurationBuckets durations;
  /// Tasks waiting in the pool for a worker, and tasks handed to workers (running, or in
  /// a worker's ring behind its running one), as of the loop's last turn.
  uint64_t queued = 0, in_flight = 0;
  std::array<uint64_t, kExitCauses> exit_causes{};  ///< the workers' exit_causes summed
  std::vector<WorkerStats> workers;
  /// Pool::reload: the generation serving now, the reloads that completed, and the last
  /// reload's result ("" before any; "ok"; or why it failed and was rolled back) and time.
  uint32_t generation = 0;
  uint32_t reloads = 0;
  std::string last_reload;
  std::chrono::nanoseconds last_reload_duration{0};
  /// 1.3: each shared segment the pool's processes map, in `shared:` order (a reload's
  /// old segment stays listed until its last process ends).
  std::vector<SharedStats> shared;
};

/// Inputs that Pool::map_views writes in place (1.5). Input `index` is `size(index)`
/// bytes; `write(index, dst)` fills `dst`, exactly that many bytes in a worker's task
/// ring, before the worker may read them. Both run on the thread that moves tasks into
/// the rings: the calling thread while it waits, else the pool's loop thread (never
/// another caller's thread), one call at a time and with no other task of the pool
/// dispatched meanwhile, so they must be quick and must not call into the pool. `size`
/// must give the same value for an index each time it is asked (it may be asked more
/// than once); `write` runs again for an index whose task is retried after its worker
/// died. An input larger than the ring allows is rejected (input_too_large) without a
/// call to `write`; a `write` that throws makes that task's outcome an `error` naming
/// the exception, and nothing of it reaches a worker.
struct InputWriter {
  std::function<size_t(size_t index)> size;
  std::function<void(size_t index, std::span<std::byte> dst)> write;
};

/// Options that do not belong in the YAML file.
struct RuntimeOptions {
  /// Path of the shoal-worker executable. Empty: $SHOAL_WORKER, then `shoal-worker` beside
  /// the running executable, then the build tree's (only when running from that build
  /// tree), then the one installed with this libshoal (its prefix's bin/, found from where
  /// the library is, so a moved prefix still works).
  std::string worker_path;
  /// A descriptor that, once readable, cancels a Pool::start still in progress: its
  /// workers stop through their finalizer chains (bounded by shutdown.grace and
  /// fini_timeout) and the start fails with "start cancelled". The pool never reads it.
  /// `shoal run` passes its signalfd, so Ctrl-C works while a slow init runs. -1: none.
  int start_cancel_fd = -1;
  /// false (the default): starting a pool makes the whole host process non-dumpable
  /// (PR_SET_DUMPABLE 0), so that no worker (plugin code, same uid) can open the host's
  /// descriptors through /proc/HOST/fd (the memfds of every pool, the input), read its
  /// memory or ptrace it. It lasts for the process's life and also means: no core dump of
  /// the host, /proc/HOST/* owned by root, and no debugger attach without CAP_SYS_PTRACE.
  /// true: leave the process as it is (an application that needs its core dumps, and
  /// trusts its plugins).
  bool keep_host_dumpable = false;
};

/// A pool of worker processes running one plugin. Create with Pool::start.
class Pool {
 public:
  /// Spawns the workers and waits until each has loaded the plugin and run its init.
  /// Fails with one line naming the cause, and its code: Errc::plugin the plugin or a
  /// resource module is missing, not a shared object, lacks a symbol, has another ABI
  /// major, or its init (open) failed or crashed; Errc::spawn the worker executable cannot
  /// be run; Errc::ipc shared memory, a socketpair or another descriptor failed;
  /// Errc::confine the system refused a limit or the sandbox; Errc::timeout a worker was
  /// not ready within start_timeout; Errc::cancelled start_cancel_fd or terminate.
  SHOAL_API static Result<std::unique_ptr<Pool>> start(const PoolConfig& config,
                                                   const RuntimeOptions& options = {});

  /// Destroying a pool that was not joined terminates it and waits (like std::jthread).
  SHOAL_API ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  /// Queues one task. The future always becomes ready; after close/terminate at once with
  /// `rejected` (Reason::pool_closed, or pool_failed once the pool failed); an input
  /// larger than a ring is `rejected` (Reason::input_too_large) naming the key.
  SHOAL_API std::future<Outcome> submit(std::string_view input);

  /// Queues one task; `on_done` is called exactly once with its outcome, on the pool's
  /// loop thread (or on the calling thread when the task is rejected at once). It must
  /// return quickly. It may submit to this pool; map, map_unordered, map_views and apply
  /// on this pool, which would wait for outcomes only its own thread can deliver, are
  /// `rejected` (Reason::reentrant), reload and resize fail, and join throws
  /// std::system_error (resource_deadlock_would_occur). The same holds in map_views'
  /// callback.
  SHOAL_API void submit(std::string_view input, std::function<void(Outcome&&)> on_done);

  /// Runs one task and returns its outcome (Python's Pool.apply): the same outcomes as
  /// submit's future, but the calling thread moves the task and reads its result itself
  /// while it waits, so a round trip needs no wake-up of the pool's loop thread. Since 1.4.
  SHOAL_API Outcome apply(std::string_view input);

  /// Runs every input; returns their outcomes in input order. Blocks until all are done.
  SHOAL_API std::vector<Outcome> map(std::span<const std::string> inputs);

  /// Runs every input; calls `on_done(index, outcome)` on the calling thread as each
  /// completes (completion order). Blocks until all are done. If `on_done` throws, the
  /// other tasks still run, their outcomes are dropped, and the first exception is
  /// rethrown once every task is done.
  SHOAL_API void map_unordered(std::span<const std::string> inputs,
                               const std::function<void(size_t index, Outcome&& outcome)>& on_done);

  /// Runs every input; calls `on_done(index, view)` as each completes, with the output
  /// still in the result ring: no copy and no allocation per outcome, for large outputs.
  /// The callback runs on the calling thread while it reads results itself, else on the
  /// pool's loop thread (and on the calling thread when the pool was already closed and
  /// every input is rejected at once), never on another caller's thread, one call at a
  /// time; while it runs, no other result of this pool is taken in, so it must be quick.
  /// Blocks until all are done.
  SHOAL_API void map_views(std::span<const std::string> inputs,
                           const std::function<void(size_t index, const OutcomeView& outcome)>& on_done);
  /// 1.5: map_views over `count` inputs that `inputs` writes straight into the workers'
  /// task rings (InputWriter): a large input is written once, where its worker reads it,
  /// instead of being built in a string and copied in. Throws std::invalid_argument if
  /// `inputs.size` or `inputs.write` is empty.
  SHOAL_API void map_views(size_t count, const InputWriter& inputs,
                           const std::function<void(size_t index, const OutcomeView& outcome)>& on_done);

  /// No more submissions; tasks already queued still run.
  SHOAL_API void close();
  /// After close: waits until every task has its outcome and every worker ran its fini
  /// and exited. Without close first it closes, then joins.
  SHOAL_API void join();
  /// Stops now: queued tasks become `cancelled` (attempts 0), running tasks get
  /// shutdown.grace to finish, then their worker is killed. Returns at once; join waits.
  SHOAL_API void terminate();

  /// Rolling reload: validates `config` (keys, and the plugin and resource files as
  /// `shoal check` does, without loading them), then replaces the workers one at a time:
  /// a new-generation worker starts and finishes init, then one old worker stops as in
  /// recycling (its running task finishes within shutdown.grace, its queued tasks go
  /// back to the pool, its finalizer chain runs). Every task runs wholly in one
  /// generation. If a new worker cannot start (init fails, start_timeout, a crash before
  /// ready), the reload rolls back: the new workers stop, the old generation serves on,
  /// and the error names the cause. A changed task_timeout or retries alone applies at
  /// once, without new processes; a changed `workers` count resizes after the roll.
  /// `name` and `queue.capacity` cannot change. Callable from any thread while tasks
  /// flow; concurrent reloads and resizes run one after the other. Blocks until the roll
  /// is over: every old worker stopped (or, rolled back, every new one).
  SHOAL_API Result<void> reload(const PoolConfig& config);
  /// Changes the number of workers while tasks flow (0: one per CPU). More: the new
  /// workers start on the current generation; the call returns once they are ready, or
  /// with the error of the first that cannot start (the others stay). Fewer: the
  /// highest-numbered workers stop as in recycling; returns once they have exited.
  SHOAL_API Result<void> resize(size_t workers);

  /// The current generation's config (a copy: a reload may replace it).
  SHOAL_API PoolConfig config() const;
  /// Number of live worker processes (for tests and monitoring).
  SHOAL_API size_t live_workers() const;
  /// Process ids of the live workers (for tests and monitoring).
  SHOAL_API std::vector<int> worker_pids() const;

  /// Counters for monitoring; cheap enough to call every second (reads /proc per worker).
  SHOAL_API PoolStats stats() const;

  /// The pool's state, defined inside libshoal only: none of its members is exported
  /// (SHOAL_API marks the API), so its layout may change within SOVERSION 1.
  struct Impl;

 private:
  explicit Pool(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// The pools of one config file. Pools start on first use.
class Runtime {
 public:
  SHOAL_API static Result<Runtime> from_file(const std::filesystem::path& file, RuntimeOptions options = {});
  SHOAL_API static Result<Runtime> from_string(std::string_view yaml, const std::filesystem::path& base_dir,
                                               RuntimeOptions options = {});

  SHOAL_API Runtime(Runtime&&) noexcept;
  SHOAL_API Runtime& operator=(Runtime&&) noexcept;
  SHOAL_API ~Runtime();

  SHOAL_API const Config& config() const noexcept;
  /// The pool named `name`, started (and waited for) on first use. Errc::not_found when
  /// the config has no such pool; the start error when it cannot start.
  SHOAL_API Result<Pool*> pool(std::string_view name);

 private:
  Runtime(Config config, RuntimeOptions options);
  friend struct RuntimeCompat;  // config() for hosts built against 1.2 (SHOAL_1.0), inside libshoal
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace shoal

#endif  // SHOAL_RUNTIME_HPP
