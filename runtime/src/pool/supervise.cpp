// The pool's policy over its worker processes (the mechanism is WorkerProcess): which
// process a slot has, what a process's end means for its tasks, respawns, stopping. Runs
// on the pool's loop thread; the deadlines (back-off, timeouts, kills) are in
// deadlines.cpp, reloads and resizes in reload.cpp.
#include "common/log.hpp"
#include "pool/loop_common.hpp"

#include <algorithm>

namespace shoal {

using namespace detail;


void Pool::Impl::update_pids() {
  {
    std::lock_guard lock(mu);
    pids.clear();
    for (const auto& p : procs) pids.push_back(p->pid());
  }
  publish_shared();
}

WorkerProcess* Pool::Impl::start_process(uint32_t index, GenerationPtr gen, WorkerProcess::Role role,
                                         std::string recover, bool recover_only) {
  auto p = WorkerProcess::spawn(site, std::move(gen), index, next_key++, std::move(recover), recover_only);
  if (!p && role == WorkerProcess::Role::incoming) {
    // A reload's new process that cannot even be spawned (descriptors or memory run
    // out) is the reload's failure: it rolls back, the serving processes are not at fault.
    logf(LogLevel::warn, "pool %s: worker %u: %s", config.name.c_str(), index, p.error().message.c_str());
    spawn_error = p.error();
    return nullptr;
  }
  if (!p) {
    fail_pool(p.error());
    return nullptr;
  }
  WorkerProcess* w = p->get();
  if (!recover_only) {
    w->role = role;
    counters->on_start(index, w->pid());
  }
  procs.push_back(std::move(*p));
  update_pids();
  if (recover_only) arm_kill_timer();
  else if (w->start_deadline != WorkerProcess::TimePoint::max()) arm_start_timer();
  return w;
}

void Pool::Impl::spawn_slot(WorkerSlot& slot) {
  slot.waiting = false;
  slot.process = start_process(slot.index, slot.generation, WorkerProcess::Role::serving,
                               std::exchange(slot.recover_cause, {}));
}

bool Pool::Impl::all_slots_ready() const {
  return std::all_of(slots.begin(), slots.end(), [](const WorkerSlot& s) {
    return s.process != nullptr && s.process->phase() == WorkerProcess::Phase::ready;
  });
}

void Pool::Impl::finish_start(bool ok, const Error& error) {
  std::lock_guard lock(mu);
  if (start_state != StartState::waiting) return;
  start_state = ok ? StartState::ok : StartState::failed;
  start_error = error;
  start_cv.notify_all();
}

void Pool::Impl::on_control(WorkerProcess& w) {
  if (!w.on_control()) {
    if (w.killed()) arm_kill_timer();
    return;
  }
  start_failures = 0;
  if (stop_requested) {
    stop_worker(w, stop_mode);
    return;
  }
  if (w.role == WorkerProcess::Role::incoming || operation) on_operation_ready(w);
  if (phase == Phase::starting && all_slots_ready()) {
    phase = Phase::running;
    finish_start(true);
  }
}

void Pool::Impl::kill_worker(WorkerProcess& w, std::string reason, bool violation) {
  w.kill(std::move(reason), violation);
}

void Pool::Impl::stop_worker(WorkerProcess& w, StopMode mode) {
  w.stop(mode);
  arm_kill_timer();
}

void Pool::Impl::retire(WorkerProcess& w) {
  w.role = WorkerProcess::Role::retiring;
  // Its queued tasks run elsewhere, first in line; only the one it runs finishes here.
  if (w.inflight.size() > 1) take_back(w);
  const bool ready = w.phase() == WorkerProcess::Phase::ready;
  stop_worker(w, StopMode::drain);
  if (!ready) return;
  // The running task finishes undisturbed within shutdown.grace. Then it is asked to stop
  // (should_stop, SIGTERM) and gets grace once more before the worker abandons it: a
  // reload must not kill a long task as a drain deadline alone would (it has no grace).
  const auto now = std::chrono::steady_clock::now();
  w.escalate_at = now + w.config().grace;
  w.kill_at = w.escalate_at + w.stop_deadline(StopMode::now);
  arm_kill_timer();
}

void Pool::Impl::request_stop(StopMode mode) {
  // Escalation only: drain may become now (terminate during join), never the reverse.
  if (stop_requested && static_cast<uint32_t>(mode) <= static_cast<uint32_t>(stop_mode)) return;
  stop_requested = true;
  stop_mode = mode;
  for (auto& p : procs)
    if (p->phase() != WorkerProcess::Phase::recovering) stop_worker(*p, mode);
  for (auto& slot : slots) slot.waiting = false;  // a back-off ends with the pool
  abandon_operations(mode == StopMode::now ? "pool stopping" : "pool closing");
}

std::string Pool::Impl::failure_reason() {
  std::lock_guard lock(mu);
  return closed_reason;
}

void Pool::Impl::fail_pool(const Error& reason) {
  if (failed) return;
  failed = true;
  // A pool that fails while starting returns the reason from Pool::start; only a failure
  // later, with nobody waiting on a result, is logged here.
  if (phase == Phase::starting) finish_start(false, reason);
  else logf(LogLevel::error, "pool %s failed: %s", config.name.c_str(), reason.message.c_str());
  {
    std::lock_guard lock(mu);
    closed = true;
    closed_reason = "pool failed: " + reason.message;
    closed_code = Reason::pool_failed;
  }
  take_incoming();
  cancel_pending(rejection(Reason::pool_failed, "pool failed: " + reason.message));
  request_stop(StopMode::now);
}

void Pool::Impl::on_exit(WorkerProcess& w) {
  auto status = w.collect_exit();
  if (!status) return;
  if (w.phase() != WorkerProcess::Phase::recovering) drain_results(w);  // outcomes published before it died still count
  on_worker_ended(w, w.ended(*status));
  wake_moved_sleepers(&w);  // a leader asleep on its block's word: before the unmap
  if (leaders != 0) parked_blocks.push_back(w.park_block());
  // Done with it: its mappings and descriptors go with the object.
  for (auto it = procs.begin(); it != procs.end(); ++it)
    if (it->get() == &w) {
      procs.erase(it);
      break;
    }
  update_pids();
  arm_kill_timer();
}

void Pool::Impl::on_worker_ended(WorkerProcess& w, WorkerProcess::Ended e) {
  const std::string who = "worker " + std::to_string(w.index());
  WorkerSlot* slot = w.index() < slots.size() && slots[w.index()].process == &w ? &slots[w.index()] : nullptr;
  if (slot) slot->process = nullptr;
  if (e.phase == WorkerProcess::Phase::recovering) {
    if (!e.status.exited || e.status.code != 0)
      logf(LogLevel::warn, "pool %s: %s: the recover hooks did not finish: %s", config.name.c_str(), who.c_str(),
           (e.killed ? e.death : describe(e.status)).c_str());
    return;
  }
  const ExitCause cause = e.timeout_kill         ? ExitCause::timeout_kill
                          : e.killed             ? ExitCause::killed
                          : !e.status.exited     ? ExitCause::signal
                          : e.status.code != 0   ? ExitCause::error
                                                 : ExitCause::exit;
  counters->on_exit(w.index(), w.pid(), e.exit_kind, cause);
  // While the pool starts, its one-line start error says it all.
  const bool failed_start = e.phase == WorkerProcess::Phase::starting;
  if (phase == Phase::starting)
    ;
  else if (w.role == WorkerProcess::Role::retiring && e.abandoned && !terminate_seen && !failed)
    logf(LogLevel::info, "pool %s: %s retired; its task still ran after twice shutdown.grace and runs again (%s)",
         config.name.c_str(), who.c_str(), e.notes.c_str());
  else if (e.killed || !e.status.exited || (e.status.code != 0 && !failed_start))
    logf(LogLevel::warn, "pool %s: %s", config.name.c_str(), e.death.c_str());
  else if (!e.notes.empty())
    logf(LogLevel::info, "pool %s: %s stopped: %s", config.name.c_str(), who.c_str(), e.notes.c_str());

  settle_tasks(w, e);

  if (failed_start && w.role == WorkerProcess::Role::incoming) {
    // A reload's new generation that cannot start: the reload rolls back, the slot keeps
    // its process. Nothing else about the pool changed.
    on_operation_start_failed(w, e.start_failure);
  } else if (failed_start) {
    // While the pool starts, one unusable worker means the plugin is unusable: fail at
    // once with its cause. Later (a respawn), an init or open that refused may pass (a
    // database that was down): retry with back-off, and give up after a few failed
    // starts in a row. A worker that could not even load what it runs (kExitFatal) would
    // fail the same way every time: the pool fails at once.
    const Errc code = e.start_failure.code;
    const std::string& why = e.start_failure.message;
    if (phase == Phase::starting)
      fail_pool(e.start_failure);
    else if (e.cannot_pass)
      fail_pool(Error{code, why + "; not respawned: a new worker would fail the same way"});
    else if (++start_failures >= kMaxStartFailures)
      fail_pool(Error{code, std::to_string(kMaxStartFailures) + " workers in a row failed to start; last: " + why});
    else
      logf(LogLevel::warn, "pool %s: %s", config.name.c_str(), why.c_str());
    if (operation) on_operation_start_failed(w, e.start_failure);
  }
  if (slot && !stop_requested) {
    slot->recover_cause = std::move(e.recover_cause);
    schedule_respawn(*slot, e.was_ready);
  } else if (!e.recover_cause.empty() && !failed) {
    // No replacement will start in its place (the pool stops, or it was retired or
    // rolled back), and it left something behind: a process of its own runs the recover
    // hooks (vendor code never runs in the host).
    start_process(w.index(), w.generation_ptr(), WorkerProcess::Role::recovering, std::move(e.recover_cause), true);
  }
}

void Pool::Impl::settle_tasks(WorkerProcess& w, WorkerProcess::Ended& e) {
  const bool abandoned = e.abandoned;
  std::deque<TaskPtr> back;
  bool first = true;
  while (!e.tasks.empty()) {
    TaskPtr t = std::move(e.tasks.front());
    e.tasks.pop_front();
    --inflight_total;
    // What the worker says it runs is its word only. A worker killed for breaking the
    // protocol (a scribbled ring or block) may lie about it: its front task counts as
    // run, or a task that scribbles would be handed out again for ever.
    bool ran = first && ((e.running != 0 && t->id == e.running) || e.violation);
    first = false;
    if (ran) ++t->attempts;
    Outcome o = rejection(Reason::crashed, e.death);
    o.attempts = t->attempts;
    if (ran) {
      o.worker = static_cast<int32_t>(w.index());
      o.generation = w.generation().number;
      // The host's view of its run: the worker never reported a duration.
      if (config.task_timeout.count() != 0)
        o.duration = std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - e.front_started);
    }
    const std::string cut_off = "terminated while running, grace " + seconds_text(w.config().grace) + " passed";
    if (terminate_seen) {
      o.status = Status::cancelled;
      o.reason = Reason::terminated;
      if (!ran) o.error = "pool terminated before the task started";
      else if (abandoned) o.error = cut_off;
      complete(std::move(t), std::move(o));
    } else if (ran && abandoned && failed) {
      // Stopped because the pool failed, not by a fault of its own: cancelled, with the
      // pool's cause (decision 1, as for a terminate).
      o.status = Status::cancelled;
      o.reason = Reason::pool_failed;
      o.error = failure_reason() + "; " + cut_off;
      complete(std::move(t), std::move(o));
    } else if (ran && abandoned && w.role == WorkerProcess::Role::retiring) {
      // Cut off by a reload or a resize, not by a fault of its own: it runs again, in
      // the generation that serves now (its first attempt counts).
      back.push_back(std::move(t));
    } else if (ran && (t->attempts > config.retries || failed)) {
      o.status = e.timeout_kill ? Status::timeout : Status::crashed;
      o.reason = e.timeout_kill ? Reason::timed_out : Reason::crashed;
      complete(std::move(t), std::move(o));
    } else {
      // A task that scribbles need not be the one in front: each task that was queued in
      // a worker that broke the protocol runs alone next time, where it is in front.
      if (!ran && e.violation) t->suspect = true;
      back.push_back(std::move(t));  // never started, or a retry is allowed
    }
  }
  while (!back.empty()) {
    push_pending_front(std::move(back.back()));
    back.pop_back();
  }
  // A failed pool starts no worker again: what went back to the queue ends here.
  if (failed) cancel_pending(rejection(Reason::pool_failed, failure_reason()));
}

}  // namespace shoal
