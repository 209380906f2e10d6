// Internals of a Pool. Two kinds of thread touch it: callers (submit, close, terminate,
// join; they only touch the fields under `mu`) and the pool's loop thread, which owns
// everything else: the pending queue, the workers, the rings' host sides.
#ifndef SHOAL_POOL_POOL_IMPL_HPP
#define SHOAL_POOL_POOL_IMPL_HPP

#include "ipc/control.hpp"
#include "ipc/ring.hpp"
#include "ipc/segment.hpp"
#include "pool/stats.hpp"
#include "process/spawn.hpp"

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

/// One map, map_unordered or map_views call: its inputs, handed to the loop as one queue
/// entry, and where its outcomes go. Its tasks are made one at a time as they are
/// dispatched (Impl::pop_pending), so a map of millions costs no per-task array or queue
/// entry. It lives until its last outcome is delivered.
class BatchSink {
 public:
  explicit BatchSink(std::span<const std::string> in) noexcept : inputs(in), ready(in.size()) {}
  virtual void put(size_t index, Outcome&& outcome) = 0;
  /// Makes every outcome slot now: the batch is refused on the caller's thread.
  virtual void make_all_slots() {}
  /// map_views: the loop hands results over in place (put_view) instead of as Outcomes.
  virtual bool takes_views() const noexcept { return false; }
  virtual void put_view(size_t /*index*/, const OutcomeView& /*view*/) {}

  const std::span<const std::string> inputs;
  size_t next = 0;  // the first input not yet dispatched; the loop thread's once queued
  // Inputs below it may be dispatched: map() makes its outcome slots while its first
  // tasks run and raises this as it goes (release; the loop reads it with acquire).
  std::atomic<size_t> ready;

 protected:
  ~BatchSink() = default;
};

// One submitted task. A submit() task is a heap object owning a copy of its input; a
// batch task views the caller's input, which the blocking map call keeps alive, and its
// storage is reused from the loop's TaskCache: no allocation and no copy per task.
class TaskCache;
struct Task {
  enum class Kind : uint8_t { batch, callback, future };
  std::string_view input;
  BatchSink* batch = nullptr;           // batch tasks: where the outcome goes, at `index`
  TaskCache* cache = nullptr;           // batch tasks: where the storage returns
  size_t index = 0;
  uint64_t id = 0;                      // id of its current dispatch (changes on retry)
  uint32_t attempts = 0;                // attempts that started in a worker
  Kind kind = Kind::batch;
  // It was queued in a worker killed for breaking the protocol, whose word on what ran
  // counts for nothing: it is dispatched alone, so that if it is the task that scribbles
  // it is the one in front (and counted as run) when that worker dies too. Otherwise a
  // scribbling task would come back as "never started" again and again.
  bool suspect = false;
};
// A submit() task with a callback, or with the promise behind the future it returned,
// and the copy of its input, in one allocation. Keep each at most 120 bytes: glibc frees
// that size through its fast bins, a larger one through the arena's locked bins, which
// cost submit() half its rate when the loop thread frees what the caller allocated.
struct CallbackTask : Task {
  std::string copy;
  std::function<void(Outcome&&)> done;
};
struct FutureTask : Task {
  std::string copy;
  std::promise<Outcome> promise;
};
static_assert(sizeof(CallbackTask) <= 120 && sizeof(FutureTask) <= 120);

/// Storage for batch tasks, loop thread only: it grows to the most tasks queued and in
/// flight at once, then every dispatch reuses a returned one.
class TaskCache {
 public:
  Task* get() {
    if (free_.empty()) {
      all_.push_back(std::make_unique<Task>());
      free_.reserve(all_.size());  // so that put() never allocates
      return all_.back().get();
    }
    Task* t = free_.back();
    free_.pop_back();
    return t;
  }
  void put(Task* t) noexcept { free_.push_back(t); }

 private:
  std::vector<std::unique_ptr<Task>> all_;
  std::vector<Task*> free_;
};

struct TaskDeleter {
  void operator()(Task* t) const noexcept {
    switch (t->kind) {
      case Task::Kind::batch: t->cache->put(t); break;
      case Task::Kind::callback: delete static_cast<CallbackTask*>(t); break;
      case Task::Kind::future: delete static_cast<FutureTask*>(t); break;
    }
  }
};
using TaskPtr = std::unique_ptr<Task, TaskDeleter>;

/// A queue entry: one task, or the undispatched rest of a batch.
struct Queued {
  TaskPtr task;
  BatchSink* batch = nullptr;
  size_t count() const noexcept { return task ? 1 : batch->inputs.size() - batch->next; }
};

/// A batch task's storage goes back to its cache before its outcome is delivered, since
/// the batch may end (and its caller free it) as soon as its last outcome is in. Returns
/// where that outcome goes.
inline std::pair<BatchSink*, size_t> release_batch_task(TaskPtr task) noexcept {
  const std::pair<BatchSink*, size_t> to{task->batch, task->index};
  task.reset();
  return to;
}

/// Delivers the outcome and ends the task, exactly once.
void finish(TaskPtr task, Outcome&& outcome);

/// A pipe that carries what a worker writes to the host: the read end non-blocking (the
/// loop reads it), the write end above the descriptor numbers the spawn maps. `flags`:
/// O_DIRECT makes a packet pipe (one write, one read).
struct WorkerPipe {
  Fd read, write;
};
Result<WorkerPipe> worker_pipe(int flags);

struct WorkerSlot {
  // waiting: back-off before a respawn. recovering: a process that only runs the recover
  // hooks, started when a worker died without its chain and no replacement will start.
  enum class State { down, waiting, starting, ready, stopping, recovering };
  using TimePoint = std::chrono::steady_clock::time_point;
  uint32_t index = 0;
  State state = State::down;
  Child child;
  Fd control;
  MessageReader reader{kMaxWorkerMessage};
  uint64_t control_bytes = 0;  // read from this process's control socket (flood bound)
  bool control_eof = false;    // its end of the control socket closed while it lived
  Fd output;            // read end of the worker's stdout and stderr
  std::string partial;  // an output line not yet ended by '\n'
  Fd log;               // read end of the worker's log records (a packet pipe)
  std::string fatal_message;  // from a Fatal message, before Ready
  Fd segment;  // this slot's memfd: its block and rings, handed to each of its processes
  Mapping block_map, task_map, result_map;
  WorkerBlock* block = nullptr;
  RingProducer tasks;
  RingConsumer results;
  std::deque<TaskPtr> inflight;  // in ring order; the front is running or next
  bool published = false;        // tasks advanced but not yet published this round
  bool killed = false;           // the host killed it (deadline passed, protocol violation)
  bool violation = false;        // killed for breaking the protocol: its word counts for nothing
  std::string kill_reason;
  std::string notes;             // Note messages: why it stopped or what hung
  std::string recover_cause;     // set when it died without its chain: the next one recovers
  std::string recover_sent;      // the cause this process was started to recover from
  bool chain_done = false;       // it said its finalizer chain ran to the end
  bool was_ready = false;        // this process reported ready: its death is no failed start
  uint64_t dispatched = 0;       // tasks given to this process (max_tasks_per_worker)
  uint64_t last_dispatched = 0;  // id of the last task given to it (what it may claim)
  uint64_t served = 0;           // results this process delivered
  uint32_t crash_streak = 0;     // deaths in a row of processes that never became ready
  // Dynamic dispatch: `served` when the take-back timer was armed, and whether its queued
  // tasks were taken back (it gets no more until its running task delivers).
  uint64_t served_mark = 0;
  bool stalled = false;
  // task_timeout: when the front task started (as the host saw it: its dispatch to an
  // idle worker, or the result before it), and the id of a task already told to stop.
  TimePoint front_started;
  uint64_t timed_out_id = 0;
  bool timeout_kill = false;     // killed because a task ignored its timeout
  TimePoint respawn_at;
  TimePoint start_deadline;  // start_timeout, while starting
  TimePoint kill_at = TimePoint::max();  // a stop asked of it ends in SIGKILL by then
};

enum class Phase { starting, running, stopping, done };

}  // namespace detail

struct Pool::Impl {
  PoolConfig config;
  std::string worker_exe;
  detail::SegmentLayout layout;
  // start_timer: fires at the earliest of the back-off respawns due and the start_timeout
  // deadlines of the workers starting. timer: the earliest kill deadline of a stopping
  // worker. steal_timer: the take-back check of dynamic dispatch.
  detail::Fd epoll, result_event, submit_event, timer, start_timer, task_timer, steal_timer;
  int start_cancel_fd = -1;  // RuntimeOptions::start_cancel_fd, watched while starting
  // Before the workers and the queues: it outlives every TaskPtr that returns to it.
  detail::TaskCache task_cache;
  std::vector<detail::WorkerSlot> workers;
  std::vector<std::string> worker_env;

  // ---- shared with callers, under mu ----
  std::mutex mu;
  std::vector<detail::Queued> incoming;
  bool closed = false;       // no more submissions
  bool terminating = false;  // terminate() was called
  std::string closed_reason = "pool closed";
  std::atomic<bool> loop_sleeping{false};
  std::atomic<bool> has_incoming{false};
  // start handshake and status for monitoring
  std::condition_variable start_cv;
  enum class StartState { waiting, ok, failed } start_state = StartState::waiting;
  std::string start_error;
  std::vector<int> pids;  // live worker pids
  std::unique_ptr<detail::PoolCounters> counters;  // its own locking (stats.hpp)

  // ---- loop thread only ----
  std::thread loop;
  detail::Phase phase = detail::Phase::starting;
  std::deque<detail::Queued> pending;
  size_t pending_count = 0;  // tasks in `pending`, counting each batch's undispatched rest
  std::vector<detail::Queued> incoming_spare;  // swapped with `incoming`: keeps its capacity
  uint64_t next_task_id = 1;
  size_t inflight_total = 0;
  double avg_task_ns = 0;  // moving average of shoal_run time, drives dispatch depth
  uint32_t start_failures = 0;
  bool steal_armed = false;
  bool stop_requested = false;  // workers were told to stop
  detail::StopMode stop_mode = detail::StopMode::run;
  bool terminate_seen = false;
  bool failed = false;

  // loop.cpp
  void run_loop();
  /// Adds fd to the loop's epoll for EPOLLIN under key; false (errno set) if the kernel
  /// refuses (ENOMEM, ENOSPC of max_user_watches): a descriptor nobody watches would hang.
  bool watch(int fd, uint64_t key);
  /// Removes fd from the loop's epoll before it is closed.
  void unwatch(int fd);
  void spawn_worker(detail::WorkerSlot& w, bool recover_only = false);
  void on_control(detail::WorkerSlot& w);
  void on_output(detail::WorkerSlot& w, bool final);
  void on_log(detail::WorkerSlot& w, bool final);
  void on_exit(detail::WorkerSlot& w);
  bool drain_results(detail::WorkerSlot& w);
  void dispatch();
  void take_incoming();
  bool pending_ready() const;
  std::string_view pending_input() const;
  detail::TaskPtr pop_pending();
  void push_pending_front(detail::TaskPtr task);
  void cancel_pending(const Outcome& outcome);
  void request_stop(detail::StopMode mode);
  void stop_worker(detail::WorkerSlot& w, detail::StopMode mode);
  Duration stop_deadline(detail::StopMode mode) const;
  void on_timer();
  void set_kill_deadline(detail::WorkerSlot& w, Duration after);
  void arm_kill_timer();
  /// SIGKILLs it once; `violation`: it broke the protocol (its front task counts as run).
  void kill_worker(detail::WorkerSlot& w, std::string reason, bool violation = false);
  void settle_tasks(detail::WorkerSlot& w, const std::string& death, bool abandoned);
  void maybe_arm_steal();
  void on_steal_timer();
  void take_back(detail::WorkerSlot& w);
  void on_start_cancel();
  void fail_pool(const std::string& reason);
  std::string failure_reason();  // "pool failed: …" once failed
  void finish_start(bool ok, const std::string& error);
  void wake_worker(detail::WorkerSlot& w);
  void reset_rings(detail::WorkerSlot& w);
  void update_pids();
  bool any_result_waiting();
  void set_host_sleeping(uint32_t value);
  size_t dispatch_depth() const;
  void sleep_for_events(bool spin);
  void complete(detail::TaskPtr task, Outcome&& outcome);
  void complete_view(detail::TaskPtr task, const OutcomeView& view);
  void arm(int timerfd, Duration after);
  /// Arms `timerfd` for `when`, or disarms it when `when` is time_point::max().
  void arm_at(int timerfd, std::chrono::steady_clock::time_point when);
  void schedule_respawn(detail::WorkerSlot& w);
  void arm_start_timer();
  void on_start_timer();
  void arm_task_timer();
  void on_task_timer();
  bool retry_or_complete(detail::TaskPtr& task, Outcome&& outcome);

  // pool.cpp
  void enqueue(detail::Queued entry);
  void request_terminate();  // Pool::terminate(), also from the loop thread
  void wake_loop();
  std::string too_large(size_t bytes) const;
  Outcome rejection(const std::string& why) const;
};

}  // namespace shoal

#endif
