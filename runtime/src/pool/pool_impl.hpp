// Internals of a Pool. Two kinds of thread touch it: callers (submit, close, terminate,
// join, map) and the pool's loop thread. Callers touch the fields under `mu`; everything
// else (the pending queue, the workers, the rings' host sides) is the data path, under
// `data_mu`: the loop thread holds it except while it sleeps, and a caller that waits
// for its own outcomes may take it to move tasks and results itself (lead.cpp).
#ifndef SHOAL_POOL_POOL_IMPL_HPP
#define SHOAL_POOL_POOL_IMPL_HPP

#include "pool/stats.hpp"
#include "pool/task.hpp"
#include "pool/worker_process.hpp"

#include <shoal/runtime.hpp>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace shoal {

namespace detail {

/// A worker index and the policy that keeps a process in it: which generation it runs,
/// the back-off of a crash loop, and what the next process must recover from.
struct WorkerSlot {
  using TimePoint = std::chrono::steady_clock::time_point;
  uint32_t index = 0;
  GenerationPtr generation;
  WorkerProcess* process = nullptr;  // its live process; null while it waits or has none
  bool waiting = false;              // back-off before a respawn
  TimePoint respawn_at;
  uint32_t crash_streak = 0;         // deaths in a row of processes that never became ready
  std::string recover_cause;         // set when one died without its chain: the next one recovers
};

struct Operation;  // a reload or a resize a caller asked for (reload.cpp)

/// The segments of `config.shared`, in order: those of `reuse` whose entry did not change
/// (same name and stamp), the others built now in this thread (shared_data.cpp).
Result<std::vector<SharedSegmentPtr>> shared_segments(const PoolConfig& config, const SharedBuildSite& site,
                                                      const std::vector<SharedSegmentPtr>& reuse);

enum class Phase { starting, running, stopping, done };

}  // namespace detail

struct Pool::Impl {
  // The current generation's config. The loop thread reads it freely and replaces it
  // (a reload) under `mu`; callers read it under `mu`. A process reads its own
  // generation's config (WorkerProcess::config): a task_timeout or retries changed by a
  // reload applies to every process at once, the rest only to the new generation's.
  PoolConfig config;
  detail::SpawnSite site;  // the worker executable, the ring layout, the result eventfd
  // start_timer: fires at the earliest of the back-off respawns due and the start_timeout
  // deadlines of the workers starting. timer: the earliest kill deadline of a stopping
  // worker. steal_timer: the take-back check of dynamic dispatch.
  detail::Fd epoll, result_event, submit_event, timer, start_timer, task_timer, steal_timer;
  int start_cancel_fd = -1;  // RuntimeOptions::start_cancel_fd, watched while starting
  // Before the workers and the queues: it outlives every TaskPtr that returns to it.
  detail::TaskCache task_cache;
  std::vector<detail::WorkerSlot> slots;
  // Every live process: the slots' own, a reload's incoming one, those retiring and
  // those only recovering. Its key in epoll events is WorkerProcess::key.
  std::vector<std::unique_ptr<detail::WorkerProcess>> procs;
  uint32_t next_key = 0;
  detail::GenerationPtr generation;  // what new processes of unchanged slots run
  // The highest number handed out: each roll takes the next. Written by the loop only; a
  // reload's caller reads it to label the segments it builds.
  std::atomic<uint32_t> last_generation{0};

  // ---- shared with callers, under mu ----
  std::mutex mu;
  std::vector<detail::Queued> incoming;
  bool closed = false;       // no more submissions
  bool terminating = false;  // terminate() was called
  std::string closed_reason = "pool closed";
  Reason closed_code = Reason::pool_closed;  // closed_reason as the code a submit after it gets
  // The loop announces its sleep here; callers after queueing look (ipc/wake.hpp).
  std::atomic<uint32_t> loop_sleeping{0};
  detail::WakeChannel loop_channel() noexcept { return {&loop_sleeping, nullptr}; }
  std::atomic<bool> has_incoming{false};
  std::deque<std::unique_ptr<detail::Operation>> operations;  // reloads and resizes asked, in order
  std::atomic<bool> has_operation{false};  // operations is not empty: the loop looks without the lock
  // start handshake and status for monitoring
  std::condition_variable start_cv;
  enum class StartState { waiting, ok, failed } start_state = StartState::waiting;
  Error start_error;
  std::vector<int> pids;  // live worker pids
  // `generation` for callers: a reload builds its shared segments against it, in its own
  // thread. Set by the loop when the generation changes.
  detail::GenerationPtr published_generation;
  std::unique_ptr<detail::PoolCounters> counters;  // its own locking (stats.hpp)

  // ---- the data path (lead.cpp): everything below is under data_mu ----
  std::mutex data_mu;
  // Callers leading now: while there are any, the loop neither spins nor asks the
  // workers to wake it for results (the leaders read them): it sleeps `loop_deaf`. The
  // last to leave wakes it if tasks are still out (hand_back_if_deaf).
  uint32_t leaders = 0;
  bool loop_deaf = false;
  // The loop thread is about to block on data_mu: leaders let it in before their next turn.
  std::atomic<bool> loop_waiting{false};
  // During a caller's turn: the batch it waits for (its views may be delivered on its
  // thread), and whether it left a result for the loop (a callback's, another's view).
  // Leaders asleep on a worker's result (sleep_on_result).
  struct Sleeper {
    detail::BatchSink* batch;
    const detail::WorkerProcess* worker;  // compared only: it may be gone when the sleeper is woken
  };
  std::vector<Sleeper> sleepers;
  // Leaders read their workers' result cursors between turns without data_mu: the block
  // of a process that ends while any caller leads stays mapped (a private copy, detached
  // from its segment) until none does.
  std::vector<detail::Mapping> parked_blocks;
  bool led_by_caller = false;
  const detail::BatchSink* leading_batch = nullptr;
  bool left_for_loop = false;
  bool woke_worker = false;  // a dispatch of this turn woke a worker from its sleep

  std::thread loop;
  detail::Phase phase = detail::Phase::starting;
  std::deque<detail::Queued> pending;
  size_t pending_count = 0;  // tasks in `pending`, counting each batch's undispatched rest
  std::vector<detail::Queued> incoming_spare;  // swapped with `incoming`: keeps its capacity
  uint64_t next_task_id = 1;
  size_t inflight_total = 0;
  double avg_task_ns = 0;  // moving average of shoal_run time, drives dispatch depth
  uint32_t start_failures = 0;
  Error spawn_error{Errc::spawn, {}};  // why the last start_process of a reload could not spawn
  bool steal_armed = false;
  bool stop_requested = false;  // workers were told to stop
  detail::StopMode stop_mode = detail::StopMode::run;
  bool terminate_seen = false;
  bool failed = false;
  std::unique_ptr<detail::Operation> operation;  // the reload or resize under way

  Impl();
  ~Impl();

  // loop.cpp
  void run_loop();
  /// Adds fd to the loop's epoll for EPOLLIN under key; false (errno set) if the kernel
  /// refuses (ENOMEM, ENOSPC of max_user_watches): a descriptor nobody watches would hang.
  bool watch(int fd, uint64_t key);
  /// Removes fd from the loop's epoll before it is closed.
  void unwatch(int fd);
  bool drain_results(detail::WorkerProcess& w);
  bool caller_delivers(const detail::Task& task) const noexcept;
  void dispatch();
  /// Moves `incoming` to `pending`; true when a terminate asks for them to be cancelled
  /// (the loop cancels them; a caller's turn leaves that to the loop).
  bool take_incoming();
  bool pending_ready() const;
  size_t pending_input_size() const;
  /// Writes t's input at dst (its exact size); false if its writer threw: t is finished.
  bool write_input(detail::TaskPtr& t, std::span<std::byte> dst);
  detail::TaskPtr pop_pending();
  void push_pending_front(detail::TaskPtr task);
  void cancel_pending(const Outcome& outcome);
  bool any_result_waiting();
  size_t dispatch_depth() const;
  void sleep_for_events(std::unique_lock<std::mutex>& data, bool spin);
  /// Takes data_mu for the loop, letting a leading caller finish its turn first.
  void lock_for_loop(std::unique_lock<std::mutex>& data);

  // lead.cpp: callers on the data path. noexcept like the loop's own turn: a throw
  // (bad_alloc) out of a turn would leave `leaders` and the turn's flags behind, and
  // unwind a Batch whose tasks are still in the rings.
  /// One turn of a caller holding data_mu: incoming tasks into the rings, results out of
  /// them. False when the pool is not running (the loop's alone then) or nothing moved.
  bool caller_turn();
  /// The caller of `own` leads until own.caller_may_return() or nothing moved for a
  /// short bounded spin; then the loop delivers the rest. Never blocks.
  void lead_while_waiting(detail::BatchSink& own) noexcept;
  /// submit(): one turn if data_mu is free, so the task goes into a ring at once.
  void lead_once() noexcept;
  bool turn_as_caller(const detail::BatchSink* own) noexcept;
  void become_leader();
  /// A leader with nothing to do: sleeps until its worker's result or its own outcome
  /// (or a bound) while the data path has exactly one worker at work; false otherwise.
  bool sleep_on_result(detail::BatchSink& own);
  /// Under data_mu: the one worker with tasks out while nothing else waits for one, or
  /// null (a leader sleeps only then: one futex word cannot listen to two workers).
  detail::WorkerProcess* sole_busy_worker() const;
  /// Under data_mu, after anything that can start a second worker or end one: wakes the
  /// sleepers whose worker is no longer the only one at work (each decides again), and
  /// those of `ending`, whose block is about to be unmapped.
  void wake_moved_sleepers(const detail::WorkerProcess* ending = nullptr) noexcept;
  /// Under data_mu, after a caller's turn or lead: the loop sleeps without the workers'
  /// wake-ups and no leader is left to read their results: it is woken.
  void hand_back_if_deaf();
  void on_process_event(uint32_t kind, uint32_t key);
  void complete(detail::TaskPtr task, Outcome&& outcome);
  void complete_view(detail::TaskPtr task, const OutcomeView& view);
  bool retry_or_complete(detail::TaskPtr& task, Outcome&& outcome);
  void on_start_cancel();

  // supervise.cpp: the policy over the processes
  /// Starts a process in slot `index` running `gen`; null (the pool failed) if it cannot.
  detail::WorkerProcess* start_process(uint32_t index, detail::GenerationPtr gen, detail::WorkerProcess::Role role,
                                       std::string recover = {}, bool recover_only = false);
  /// Starts its slot's next process (respawn, grown slot).
  void spawn_slot(detail::WorkerSlot& slot);
  void on_control(detail::WorkerProcess& w);
  void on_exit(detail::WorkerProcess& w);
  /// What a process's end means: each task's outcome, the stats, a respawn, a reload's
  /// rollback, the pool's failure.
  void on_worker_ended(detail::WorkerProcess& w, detail::WorkerProcess::Ended ended);
  void settle_tasks(detail::WorkerProcess& w, detail::WorkerProcess::Ended& ended);
  void request_stop(detail::StopMode mode);
  void stop_worker(detail::WorkerProcess& w, detail::StopMode mode);
  /// Stops it as recycling does, once its queued tasks were taken back to the pool.
  void retire(detail::WorkerProcess& w);
  /// SIGKILLs it once; `violation`: it broke the protocol (its front task counts as run).
  void kill_worker(detail::WorkerProcess& w, std::string reason, bool violation = false);
  /// The pool fails with `reason`; while it starts, Pool::start returns it.
  void fail_pool(const Error& reason);
  std::string failure_reason();  // "pool failed: …" once failed
  void finish_start(bool ok, const Error& error = {});
  /// The outcome (cancelled) of a task a stop left queued: `terminated` by a terminate,
  /// or else the pool failed or was closed.
  Outcome stopped_outcome(bool terminated, const std::string& why) const;
  void update_pids();

  // shared_data.cpp
  /// Caller's thread: the segments a reload to `next` gives its generation.
  Result<std::vector<detail::SharedSegmentPtr>> build_for_reload(const PoolConfig& next);
  /// Loop thread: `generation` changed (published_generation, the stats).
  void publish_generation();
  /// Loop thread: a process started or ended (PoolStats::shared).
  void publish_shared();
  bool all_slots_ready() const;

  // deadlines.cpp
  void on_timer();
  void arm_kill_timer();
  void arm(int timerfd, Duration after);
  /// Arms `timerfd` for `when`, or disarms it when `when` is time_point::max().
  void arm_at(int timerfd, std::chrono::steady_clock::time_point when);
  void schedule_respawn(detail::WorkerSlot& slot, bool was_ready);
  void arm_start_timer();
  void on_start_timer();
  void arm_task_timer();
  void on_task_timer();
  void maybe_arm_steal();
  void on_steal_timer();
  bool take_back(detail::WorkerProcess& w);

  // reload.cpp
  /// Queues a reload or resize for the loop and waits for its result.
  Result<void> run_operation(std::unique_ptr<detail::Operation> op);
  /// Loop thread: starts the next queued operation, or moves the current one on.
  void step_operation();
  /// Loop thread: a process of an operation reported ready, or ended before it was.
  void on_operation_ready(detail::WorkerProcess& w);
  void on_operation_start_failed(detail::WorkerProcess& w, const Error& why);
  void begin_reload(detail::Operation& op);
  void step_reload(detail::Operation& op);
  void begin_resize(detail::Operation& op);
  void step_resize(detail::Operation& op);
  void end_operation(Result<void> result);
  bool any_leaving() const;  // a process retiring or recovering: an operation waits for it
  /// Loop thread, at the pool's stop: every operation not done fails with `why`.
  void abandon_operations(const std::string& why);

  // pool.cpp
  void enqueue(detail::Queued entry);
  void request_terminate();  // Pool::terminate(), also from the loop thread
  void wake_loop();
  std::string too_large(size_t bytes) const;
  Outcome rejection(Reason reason, const std::string& why) const;
  Outcome cancellation(Reason reason, const std::string& why) const;
};

}  // namespace shoal

#endif
