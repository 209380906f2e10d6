// The pool's workers from spawn to reaping: starting them, reading what they report,
// stopping them, and the outcome of every task a dead worker held. Runs on the pool's
// loop thread; the deadlines (back-off, timeouts, kills) are in deadlines.cpp.
#include "common/check.hpp"
#include "common/log.hpp"
#include "ipc/init_message.hpp"
#include "pool/loop_common.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace shoal {

using namespace detail;


void Pool::Impl::update_pids() {
  std::lock_guard lock(mu);
  pids.clear();
  for (auto& w : workers)
    if (w.state != WorkerSlot::State::down && w.state != WorkerSlot::State::waiting) pids.push_back(w.child.pid);
}

void Pool::Impl::reset_rings(WorkerSlot& w) {
  // Only called while no process maps this worker's rings as consumer/producer: a new
  // worker starts from empty rings and a clean control block.
  WorkerBlock* b = w.block;
  b->tasks.write_pos.store(0);
  b->tasks.read_pos.store(0);
  b->results.write_pos.store(0);
  b->results.read_pos.store(0);
  b->worker_wake.store(0);
  b->worker_sleeping.store(0);
  b->stop.store(0);
  b->running_task.store(0);
  b->claimed.store(0);
  b->cancel_task.store(0);
  b->wake_after_task.store(0);
  b->host_sleeping.store(0);
  w.tasks = RingProducer(&b->tasks, w.task_map.data(), layout.capacity);
  w.results = RingConsumer(&b->results, w.result_map.data(), layout.capacity);
}

void Pool::Impl::spawn_worker(WorkerSlot& w, bool recover_only) {
  reset_rings(w);
  w.fatal_message.clear();
  w.killed = false;
  w.violation = false;
  w.kill_reason.clear();
  w.notes.clear();
  w.chain_done = false;
  w.was_ready = false;
  w.stalled = false;
  w.dispatched = 0;
  w.last_dispatched = 0;
  w.served = 0;
  w.timed_out_id = 0;
  w.timeout_kill = false;
  w.kill_at = WorkerSlot::TimePoint::max();
  w.reader = MessageReader(kMaxWorkerMessage);
  w.control_bytes = 0;
  w.control_eof = false;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    fail_pool(std::string("socketpair: ") + std::strerror(errno));
    return;
  }
  Fd host_end(sv[0]);
  auto worker_end = move_fd_above(Fd(sv[1]), 16);
  if (!worker_end) {
    fail_pool(worker_end.error().message);
    return;
  }
  // The worker's stdout and stderr: one pipe the loop reads, so that every line reaches
  // the host's log prefixed with the pool and worker index, and nothing a plugin prints
  // can end up on the host's stdout (it carries results). Its own log records come on a
  // second pipe (common/log.hpp says why).
  auto out_pipe = worker_pipe(0);
  if (!out_pipe) {
    fail_pool(out_pipe.error().message);
    return;
  }
  auto log_pipe = worker_pipe(O_DIRECT);
  if (!log_pipe) {
    fail_pool(log_pipe.error().message);
    return;
  }
  SpawnRequest req;
  req.executable = worker_exe;
  req.argv = {"shoal-worker", "--pool", config.name, "--index", std::to_string(w.index)};
  req.env = worker_env;
  req.fds = {{w.segment.get(), kWorkerSegmentFd}, {worker_end->get(), kWorkerControlFd},
             {result_event.get(), kWorkerEventFd}, {out_pipe->write.get(), STDERR_FILENO},
             {log_pipe->write.get(), kWorkerLogFd}};
  req.stdout_to = out_pipe->write.get();
  req.stdin_null = true;  // a plugin that reads stdin must not eat the host's input
  // A stop asked right after the spawn waits (queued) until the worker's handler is in
  // place: a worker killed by it before then would skip its recover hooks.
  req.blocked = {SIGTERM, SIGINT, SIGHUP};
  auto child = spawn_process(req);
  if (!child) {
    fail_pool(child.error().message);
    return;
  }
  w.child = std::move(*child);
  w.control = std::move(host_end);
  w.output = std::move(out_pipe->read);
  w.partial.clear();
  w.log = std::move(log_pipe->read);
  InitMessage init;
  init.pool = config.name;
  init.plugin = config.plugin.string();
  init.index = w.index;
  init.workers = config.workers;
  init.capacity = layout.capacity;
  init.segment_size = layout.total();
  init.grace_ns = config.grace.count();
  init.fini_timeout_ns = config.fini_timeout.count();
  init.fini_priority = config.fini_priority;
  init.max_memory = config.max_memory;
  init.host_pid = ::getpid();
  init.limit_address_space = config.limits.address_space;
  init.limit_cpu_seconds = config.limits.cpu_seconds;
  init.limit_open_files = config.limits.open_files;
  init.core_dumps = config.limits.core_dumps;
  init.no_new_privs = config.limits.no_new_privs;
  init.recover = w.recover_cause;
  init.recover_only = recover_only;
  w.recover_sent = std::move(w.recover_cause);
  w.recover_cause.clear();
  init.sandbox = config.sandbox.enabled;
  for (const auto& p : config.sandbox.filesystem) init.sandbox_paths.emplace_back(p.path.string(), p.write);
  init.params = config.params;
  for (const auto& r : config.resources) init.resources.push_back({r.name, r.module.string(), r.priority, r.params});
  (void)write_all(w.control.get(), encode_message(MsgType::init, encode_init(init)));  // EOF shows up as an exit
  SHOAL_CHECK(::fcntl(w.control.get(), F_SETFL, ::fcntl(w.control.get(), F_GETFL) | O_NONBLOCK) == 0);
  // Unwatched, the worker's exit would never be seen: its tasks would hang. It is killed
  // and reaped here, and the pool fails with the cause.
  if (!watch(w.child.pidfd.get(), event_key(kPidfd, w.index)) || !watch(w.control.get(), event_key(kControl, w.index)) ||
      !watch(w.output.get(), event_key(kOutput, w.index)) || !watch(w.log.get(), event_key(kLog, w.index))) {
    const std::string why = std::string("epoll_ctl: ") + std::strerror(errno);
    for (int fd : {w.child.pidfd.get(), w.control.get(), w.output.get(), w.log.get()})
      (void)::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, fd, nullptr);
    signal_child(w.child.pidfd.get(), SIGKILL);
    siginfo_t info{};
    (void)::waitid(P_PIDFD, static_cast<id_t>(w.child.pidfd.get()), &info, WEXITED);
    w.child.pidfd.reset();
    w.control.reset();
    w.output.reset();
    w.log.reset();
    fail_pool(why);
    return;
  }
  if (recover_only) {
    // It runs the recover hooks and exits; nothing waits on it but the pool's end.
    w.state = WorkerSlot::State::recovering;
    set_kill_deadline(w, stop_deadline(StopMode::drain));
    update_pids();
    return;
  }
  w.state = WorkerSlot::State::starting;
  w.start_deadline = std::chrono::steady_clock::now() + config.start_timeout;
  counters->on_start(w.index, w.child.pid);
  update_pids();
  if (config.start_timeout.count() != 0) arm_start_timer();
}

void Pool::Impl::finish_start(bool ok, const std::string& error) {
  std::lock_guard lock(mu);
  if (start_state != StartState::waiting) return;
  start_state = ok ? StartState::ok : StartState::failed;
  start_error = error;
  start_cv.notify_all();
}

void Pool::Impl::on_control(WorkerSlot& w) {
  if (!w.control) return;
  char buf[4096];
  // Bounded per wake-up and over the worker's life: a worker says little, and one that
  // floods its socket must cost the host neither memory nor its loop.
  for (int rounds = 0; rounds < 16; ++rounds) {
    ssize_t n = ::read(w.control.get(), buf, sizeof buf);
    if (n > 0) {
      w.control_bytes += static_cast<uint64_t>(n);
      if (w.control_bytes > kMaxWorkerControlBytes) {
        kill_worker(w, "worker " + std::to_string(w.index) + " flooded its control channel (more than " +
                           std::to_string(kMaxWorkerControlBytes) + " bytes of messages)",
                    true);
        break;
      }
      w.reader.feed(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 && !w.control_eof) {
      // EOF: the process is exiting, or a plugin closed descriptor 4 in a live one. The
      // socket leaves the epoll set so that its EOF does not spin the loop; a live worker
      // notices the loss itself and stops (exit code kExitChannelLost), and if it does
      // not, it is killed once a stop would have had to end.
      w.control_eof = true;
      unwatch(w.control.get());
      if (w.state != WorkerSlot::State::down) set_kill_deadline(w, stop_deadline(StopMode::now));
    }
    break;  // EAGAIN, or EOF: the pidfd reports the exit
  }
  while (auto m = w.reader.next()) {
    if (m->type == MsgType::ready && w.state == WorkerSlot::State::starting) {
      w.state = WorkerSlot::State::ready;
      w.was_ready = true;
      start_failures = 0;
      if (stop_requested) stop_worker(w, stop_mode);
    } else if (m->type == MsgType::fatal && !w.was_ready) {
      w.fatal_message = m->body;
    } else if (m->type == MsgType::note && w.notes.size() < 4096) {
      // A note names a finalizer or a limit: a few hundred bytes. More is cut, so that a
      // worker's words stay one readable log line.
      constexpr size_t kNoteMax = 512;
      w.notes += (w.notes.empty() ? "" : "; ") + m->body.substr(0, kNoteMax);
      if (m->body.size() > kNoteMax) w.notes += "… [note cut]";
    } else if (m->type == MsgType::chain_done) {
      w.chain_done = true;
    }
  }
  if (w.reader.bad())
    kill_worker(w, "worker " + std::to_string(w.index) + " flooded its control channel (a message over " +
                       std::to_string(kMaxWorkerMessage) + " bytes)",
                true);
  if (phase == Phase::starting &&
      std::all_of(workers.begin(), workers.end(), [](const WorkerSlot& s) { return s.state == WorkerSlot::State::ready; })) {
    phase = Phase::running;
    finish_start(true, {});
  }
}

void Pool::Impl::kill_worker(WorkerSlot& w, std::string reason, bool violation) {
  // Recovering processes can be killed too (at their deadline); only a live one, once.
  if (w.state == WorkerSlot::State::down || w.state == WorkerSlot::State::waiting || w.killed) return;
  w.killed = true;  // its death is reported with this reason, not as a crash
  w.violation = violation;
  w.kill_reason = std::move(reason);
  signal_child(w.child.pidfd.get(), SIGKILL);
}

void Pool::Impl::stop_worker(WorkerSlot& w, StopMode mode) {
  const bool starting = w.state == WorkerSlot::State::starting;
  w.state = WorkerSlot::State::stopping;
  w.block->stop.store(static_cast<uint32_t>(mode), std::memory_order_release);
  wake_worker(w);
  // The signal reaches the worker's control thread, which enforces shutdown.grace on a
  // task that ignores should_stop; the shared flag alone would wait for the task. A
  // worker still starting gets it too: it runs its recover hooks, opens nothing more,
  // and closes what it opened through its chain (grace bounds an init that hangs).
  if (mode == StopMode::now || starting) signal_child(w.child.pidfd.get(), SIGTERM);
  set_kill_deadline(w, stop_deadline(starting ? StopMode::now : mode));
}

Duration Pool::Impl::stop_deadline(StopMode mode) const {
  // The worker bounds itself (grace for the task, fini_timeout per finalizer); this is
  // the host's last line for a worker that cannot (stopped, or stuck in the kernel).
  auto entries = static_cast<int64_t>(config.resources.size()) + 2;
  Duration d = config.fini_timeout * entries + std::chrono::seconds(1);
  return mode == StopMode::now ? d + config.grace : d;
}

void Pool::Impl::request_stop(StopMode mode) {
  // Escalation only: drain may become now (terminate during join), never the reverse.
  if (stop_requested && static_cast<uint32_t>(mode) <= static_cast<uint32_t>(stop_mode)) return;
  stop_requested = true;
  stop_mode = mode;
  for (auto& w : workers) {
    if (w.state == WorkerSlot::State::ready || w.state == WorkerSlot::State::stopping ||
        w.state == WorkerSlot::State::starting) {
      stop_worker(w, mode);
    } else if (w.state == WorkerSlot::State::waiting) {
      w.state = WorkerSlot::State::down;  // its back-off ends with the pool
    }
  }
}

std::string Pool::Impl::failure_reason() {
  std::lock_guard lock(mu);
  return closed_reason;
}

void Pool::Impl::fail_pool(const std::string& reason) {
  if (failed) return;
  failed = true;
  // A pool that fails while starting returns the reason from Pool::start; only a failure
  // later, with nobody waiting on a result, is logged here.
  if (phase == Phase::starting) finish_start(false, reason);
  else logf(LogLevel::error, "pool %s failed: %s", config.name.c_str(), reason.c_str());
  {
    std::lock_guard lock(mu);
    closed = true;
    closed_reason = "pool failed: " + reason;
  }
  take_incoming();
  cancel_pending(rejection("pool failed: " + reason));
  request_stop(StopMode::now);
}

void Pool::Impl::on_exit(WorkerSlot& w) {
  ExitStatus st;
  if (!reap(w.child.pidfd.get(), st)) return;
  // Whatever the plugin forked is in the worker's process group (the worker leads it):
  // it must not outlive the worker. The group id cannot name another process while a
  // member still uses it. A child that left the group (setsid) escapes this.
  ::kill(-w.child.pid, SIGKILL);
  const auto prev = w.state;
  if (prev != WorkerSlot::State::recovering) drain_results(w);  // outcomes published before it died still count
  unwatch(w.child.pidfd.get());
  if (!w.control_eof) {
    unwatch(w.control.get());
    w.control_eof = true;  // so that the read below does not remove it a second time
  }
  on_control(w);  // a Fatal, Note or ChainDone message may still be unread
  on_output(w, true);
  if (w.output) unwatch(w.output.get());
  w.output.reset();
  on_log(w, true);
  if (w.log) unwatch(w.log.get());
  w.log.reset();
  w.child.pidfd.reset();
  w.control.reset();
  w.state = WorkerSlot::State::down;
  update_pids();
  arm_kill_timer();

  const std::string who = "worker " + std::to_string(w.index);
  if (prev == WorkerSlot::State::recovering) {
    if (!st.exited || st.code != 0)
      logf(LogLevel::warn, "pool %s: %s: the recover hooks did not finish: %s", config.name.c_str(), who.c_str(),
           (w.killed ? w.kill_reason : describe(st)).c_str());
    return;
  }
  std::string death = w.killed                        ? w.kill_reason
                      : st.exited && st.code == kExitChannelLost ? who + " lost its control channel (a plugin closed or replaced descriptor 4 or 5)"
                                                      : who + " died: " + describe(st);
  // The kill reason names the task and its limits (it is logged below); the stats keep
  // the kind of end only, so that equal ends count together.
  counters->on_exit(w.index, w.timeout_kill ? "killed by the host: task_timeout"
                             : w.killed     ? "killed by the host: " + describe(st)
                                            : describe(st));
  if (!w.notes.empty()) death += " (" + w.notes + ")";
  // Only a chain that ran to its end says so; after any other end (a signal, `_exit`, a
  // finalizer cut short, a chain that could not report) the next process recovers first.
  // A process that was to recover and ended before it was ready may not have run the
  // hooks: the first cause stands.
  if (!w.chain_done)
    w.recover_cause = !w.was_ready && !w.recover_sent.empty() ? w.recover_sent
                      : w.killed                              ? w.kill_reason + ": " + describe(st)
                                                              : describe(st);
  // While the pool starts, its one-line start error says it all.
  if (phase == Phase::starting)
    ;
  else if (w.killed || !st.exited || (st.exited && st.code != 0 && prev != WorkerSlot::State::starting))
    logf(LogLevel::warn, "pool %s: %s", config.name.c_str(), death.c_str());
  else if (!w.notes.empty())
    logf(LogLevel::info, "pool %s: %s stopped: %s", config.name.c_str(), who.c_str(), w.notes.c_str());

  settle_tasks(w, death, st.exited && st.code == kExitAbandoned);

  if (prev == WorkerSlot::State::starting) {
    std::string why = !w.fatal_message.empty() ? w.fatal_message + " (" + who + ")"
                      : w.killed                ? w.kill_reason
                                                : who + " exited before it was ready: " + describe(st);
    // While the pool starts, one unusable worker means the plugin is unusable: fail at
    // once with its cause. Later (a respawn), an init or open that refused may pass (a
    // database that was down): retry with back-off, and give up after a few failed
    // starts in a row. A worker that could not even load what it runs (kExitFatal) would
    // fail the same way every time: the pool fails at once.
    // The code alone could be a plugin's own exit(2): only the worker's Fatal message
    // with it says that loading failed.
    const bool cannot_pass = st.exited && st.code == kExitFatal && !w.fatal_message.empty();
    if (phase == Phase::starting)
      fail_pool(why);
    else if (cannot_pass)
      fail_pool(why + "; not respawned: a new worker would fail the same way");
    else if (++start_failures >= kMaxStartFailures)
      fail_pool(std::to_string(kMaxStartFailures) + " workers in a row failed to start; last: " + why);
    else
      logf(LogLevel::warn, "pool %s: %s", config.name.c_str(), why.c_str());
  }
  if (!stop_requested) schedule_respawn(w);
  // No replacement will start, and the process left something behind: a process of its
  // own runs the recover hooks before the pool's last exit (vendor code never runs in
  // the host).
  else if (!w.recover_cause.empty()) spawn_worker(w, true);
}

void Pool::Impl::settle_tasks(WorkerSlot& w, const std::string& death, bool abandoned) {
  const uint64_t running = w.block->running_task.load(std::memory_order_acquire);
  std::deque<TaskPtr> back;
  bool first = true;
  while (!w.inflight.empty()) {
    TaskPtr t = std::move(w.inflight.front());
    w.inflight.pop_front();
    --inflight_total;
    // What the worker says it runs is its word only. A worker killed for breaking the
    // protocol (a scribbled ring or block) may lie about it: its front task counts as
    // run, or a task that scribbles would be handed out again for ever.
    bool ran = first && ((running != 0 && t->id == running) || w.violation);
    first = false;
    if (ran) ++t->attempts;
    Outcome o = rejection(death);
    o.attempts = t->attempts;
    if (ran) {
      o.worker = static_cast<int32_t>(w.index);
      // The host's view of its run: the worker never reported a duration.
      if (config.task_timeout.count() != 0)
        o.duration = std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - w.front_started);
    }
    const std::string cut_off = "terminated while running, grace " + seconds_text(config.grace) + " passed";
    if (terminate_seen) {
      o.status = Status::cancelled;
      if (!ran) o.error = "pool terminated before the task started";
      else if (abandoned) o.error = cut_off;
      complete(std::move(t), std::move(o));
    } else if (ran && abandoned && failed) {
      // Stopped because the pool failed, not by a fault of its own: cancelled, with the
      // pool's cause (decision 1, as for a terminate).
      o.status = Status::cancelled;
      o.error = failure_reason() + "; " + cut_off;
      complete(std::move(t), std::move(o));
    } else if (ran && (t->attempts > config.retries || failed)) {
      o.status = w.timeout_kill ? Status::timeout : Status::crashed;
      complete(std::move(t), std::move(o));
    } else {
      // A task that scribbles need not be the one in front: each task that was queued in
      // a worker that broke the protocol runs alone next time, where it is in front.
      if (!ran && w.violation) t->suspect = true;
      back.push_back(std::move(t));  // never started, or a retry is allowed
    }
  }
  while (!back.empty()) {
    push_pending_front(std::move(back.back()));
    back.pop_back();
  }
  // A failed pool starts no worker again: what went back to the queue ends here.
  if (failed) cancel_pending(rejection(failure_reason()));
}

}  // namespace shoal
