// One worker process as the host sees it: the mechanism (spawn, what it reports, stop,
// kill, wake, reap and the classification of its end), apart from the pool's policy
// (which task goes where, what a death means for its tasks, whether and when a
// replacement starts: supervise.cpp and reload.cpp). nginx splits ngx_process.c from
// ngx_process_cycle.c the same way.
//
// One object is one process life: a replacement is a new object with a segment of its
// own, so an old process stopping and its replacement starting never share a ring.
// Loop thread only.
#ifndef SHOAL_POOL_WORKER_PROCESS_HPP
#define SHOAL_POOL_WORKER_PROCESS_HPP

#include "common/log.hpp"
#include "ipc/control.hpp"
#include "ipc/init_message.hpp"
#include "ipc/ring.hpp"
#include "ipc/segment.hpp"
#include "pool/task.hpp"
#include "process/spawn.hpp"
#include "shared/segment.hpp"

#include <shoal/config.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace shoal::detail {

/// What the processes of one generation run, fixed once made. Generation 0 is the
/// config the pool started with; each reload that rolls workers makes the next one.
struct Generation {
  uint32_t number = 0;
  PoolConfig config;
  std::vector<std::string> env;  // the workers' environment, made from config.env*
  // The plugin's and modules' files as they were (device, inode, size, mtime): a reload
  // of an unchanged config after a new file was moved over the old one still rolls.
  std::string files_stamp;
  // The plugin's and modules' files, opened when the generation was made: its workers
  // load these (kWorkerFirstFileFd), so a respawn, or a rollback to it, runs the code it
  // was validated with even after a new file was renamed over the path. Empty: not
  // pinned (a file could not be opened, or more than kWorkerMaxPinnedFiles).
  std::vector<Fd> files;
  // The sealed segments of config.shared, in its order (kWorkerFirstSharedFd + i). A
  // reload shares the unchanged ones with the generation before; each lives as long as
  // the last generation holding it, so as long as the last process that maps it.
  std::vector<SharedSegmentPtr> shared;
};
using GenerationPtr = std::shared_ptr<const Generation>;
GenerationPtr make_generation(const PoolConfig& config, uint32_t number, std::vector<SharedSegmentPtr> shared);
/// Generation::files_stamp of `config`'s files as they are now.
std::string files_stamp(const PoolConfig& config);
/// What every process of `config` is told, worker or builder: the pool's name, the
/// host's pid, its limits and its sandbox.
InitMessage pool_init_message(const PoolConfig& config);
/// The environment of `config`'s processes (workers, builders): env and env_inherit.
std::vector<std::string> worker_environment(const PoolConfig& config);
/// One file's part of it (device, inode, size, mtime); empty when it cannot be read.
std::string file_stamp(const std::filesystem::path& path);

/// The pool-wide things every spawn needs.
struct SpawnSite {
  std::string exe;
  SegmentLayout layout;
  int result_event = -1;  // the eventfd a worker writes after publishing a result
  int epoll = -1;         // the loop's epoll; a process watches its own descriptors
  uint32_t workers = 0;   // the pool's slots now (a resize changes it): what a worker is told
};

/// The kinds of descriptors a process registers in the loop's epoll, with its key
/// (loop_common.hpp's EventKind takes these numbers and numbers its own around them).
enum class ProcessEvent : uint32_t { pidfd = 4, control = 5, output = 8, log = 11 };

/// A pipe that carries what a worker writes to the host: the read end non-blocking (the
/// loop reads it), the write end above the descriptor numbers the spawn maps. `flags`:
/// O_DIRECT makes a packet pipe (one write, one read).
struct WorkerPipe {
  Fd read, write;
};
Result<WorkerPipe> worker_pipe(int flags);

/// Reads a child's output pipe (its stdout and stderr) into the host's log, one line per
/// line, attributed to `origin` whatever the bytes say; `partial` keeps a line not yet
/// ended. `final`: the child is gone, read what is left (bounded). False at EOF.
bool drain_output(int fd, std::string& partial, const LogOrigin& origin, bool final);
/// Reads a child's log-record pipe into the host's log as `origin`'s. False at EOF.
bool drain_log(int fd, const LogOrigin& origin, bool final);

class WorkerProcess {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  // recovering: a process that only runs the recover hooks and exits.
  enum class Phase : uint8_t { starting, ready, stopping, recovering };
  // What the pool uses it for. serving: its slot's process. incoming: a reload's new
  // generation, not yet ready. retiring: replaced or resized away, stopping.
  enum class Role : uint8_t { serving, incoming, retiring, recovering };

  /// How it ended, classified; the tasks it held go back to the pool through `tasks`.
  struct Ended {
    ExitStatus status;
    Phase phase = Phase::starting;  // before it ended
    bool was_ready = false;         // its death is no failed start
    bool killed = false, violation = false, timeout_kill = false;
    bool abandoned = false;    // a task passed grace during a stop; the chain ran
    bool cannot_pass = false;  // it could not load what it runs: a new one would fail the same way
    std::string death;         // one line for the log: the kill reason, or how it died, and its notes
    std::string exit_kind;     // the kind of end, for the stats (equal ends count together)
    Error start_failure;       // before ready: why it never became ready
    std::string recover_cause; // its chain did not run to the end: the next process recovers
    std::string notes;
    uint64_t running = 0;      // the task it said it runs (0: none)
    TimePoint front_started;
    std::deque<TaskPtr> tasks; // in ring order
  };

  /// Starts a process in slot `index` of `gen`. `recover`: the cause its recover hooks
  /// run for (empty: none); `recover_only`: it runs them and exits.
  static Result<std::unique_ptr<WorkerProcess>> spawn(const SpawnSite& site, GenerationPtr gen, uint32_t index,
                                                      uint32_t key, std::string recover, bool recover_only);
  ~WorkerProcess();
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  uint32_t index() const noexcept { return index_; }
  uint32_t key() const noexcept { return key_; }
  int pid() const noexcept { return child_.pid; }
  Phase phase() const noexcept { return phase_; }
  const Generation& generation() const noexcept { return *gen_; }
  const GenerationPtr& generation_ptr() const noexcept { return gen_; }
  const PoolConfig& config() const noexcept { return gen_->config; }
  bool killed() const noexcept { return killed_; }
  bool control_lost() const noexcept { return control_eof_; }

  /// Tasks may go to it: ready, not stopping, not killed, not stalled.
  bool usable() const noexcept { return phase_ == Phase::ready && !killed_ && !stalled; }
  /// The loop drains its result ring: its ring is trusted and a process publishes there.
  bool drained() const noexcept { return (phase_ == Phase::ready || phase_ == Phase::stopping) && !killed_; }

  /// Wakes it if it sleeps on its task ring or its result space.
  /// True if it was asleep (announced): this call woke it.
  bool wake() noexcept;
  /// Asks it to stop (StopMode::drain: after what it has claimed; now: within grace). A
  /// process still starting is signalled too: it runs its recover hooks, opens nothing
  /// more and closes what it opened. It is killed if it has not exited by the deadline.
  void stop(StopMode mode);
  /// SIGKILLs it once; its end is reported with `reason`. `violation`: it broke the
  /// protocol, so its word on what ran counts for nothing.
  void kill(std::string reason, bool violation = false);
  /// The host's last line for a process that cannot stop itself.
  Duration stop_deadline(StopMode mode) const;
  void set_kill_deadline(Duration after);

  /// Reads its control socket. Returns true when it reported Ready just now.
  bool on_control();
  /// Reads what its plugin printed and its log records into the host's log.
  void on_output(bool final);
  void on_log(bool final);

  /// The exit, if it happened: its process group is killed (whatever the plugin forked
  /// must not outlive it). Its result ring may then still be drained, before ended().
  std::optional<ExitStatus> collect_exit();
  /// After collect_exit: reads what is left on its channels, closes them, classifies
  /// the end and hands over its tasks. The object is done after this.
  Ended ended(const ExitStatus& status);
  /// Its block's page for a thread that may still read it without the data lock (a
  /// leader's result watch, lead.cpp): detached from its segment, so keeping it holds no
  /// ring pages. `block` is null afterwards.
  Mapping park_block() noexcept;

  // ---- dispatch state, the pool's loop reads and writes it ----
  Role role = Role::serving;
  WorkerBlock* block = nullptr;
  RingProducer tasks;
  RingConsumer results;
  std::deque<TaskPtr> inflight;  // in ring order; the front is running or next
  bool published = false;        // tasks advanced but not yet published this round
  uint64_t dispatched = 0;       // tasks given to this process (max_tasks_per_worker)
  uint64_t last_dispatched = 0;  // id of the last task given to it (what it may claim)
  uint64_t served = 0;           // results this process delivered
  // Dynamic dispatch: `served` when the take-back timer was armed, and whether its queued
  // tasks were taken back (it gets no more until its running task delivers).
  uint64_t served_mark = 0;
  bool stalled = false;
  // task_timeout: when the front task started (as the host saw it: its dispatch to an
  // idle worker, or the result before it), and the id of a task already told to stop.
  TimePoint front_started;
  uint64_t timed_out_id = 0;
  bool timeout_kill = false;  // killed because a task ignored its timeout
  bool start_timed_out = false;  // killed because its init passed start_timeout
  TimePoint start_deadline = TimePoint::max();  // start_timeout, while starting
  TimePoint kill_at = TimePoint::max();         // a stop asked of it ends in SIGKILL by then
  TimePoint escalate_at = TimePoint::max();     // a retiring one's drain becomes a stop now then

 private:
  WorkerProcess(GenerationPtr gen, uint32_t index, uint32_t key, int epoll);
  bool watch(int fd, ProcessEvent kind);
  void unwatch(Fd& fd);

  GenerationPtr gen_;
  uint32_t index_;
  uint32_t key_;
  int epoll_;
  Phase phase_ = Phase::starting;
  Child child_;
  Fd control_;
  MessageReader reader_{kMaxWorkerMessage};
  uint64_t control_bytes_ = 0;  // read from its control socket (flood bound)
  bool control_eof_ = false;    // its end of the control socket closed while it lived
  Fd output_;                   // read end of its stdout and stderr
  std::string partial_;         // an output line not yet ended by '\n'
  Fd log_;                      // read end of its log records (a packet pipe)
  Fd segment_;                  // its memfd: block and rings
  Mapping block_map_, task_map_, result_map_;
  Error fatal_{Errc::plugin, {}};   // from a Fatal message, before Ready
  std::string notes_;           // Note messages: why it stopped or what hung
  std::string recover_sent_;    // the cause this process was started to recover from
  bool chain_done_ = false;     // it said its finalizer chain ran to the end
  bool was_ready_ = false;
  bool killed_ = false;
  bool violation_ = false;
  std::string kill_reason_;
};

}  // namespace shoal::detail

#endif
