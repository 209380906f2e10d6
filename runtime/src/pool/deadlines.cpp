// The pool's deadlines, on its loop thread: back-off before a respawn, start_timeout,
// task_timeout, the kill deadline of a worker asked to stop, and the take-back check
// that keeps dispatch dynamic. Each is one timerfd armed at the earliest deadline of its
// kind; a stale expiry is harmless, because every handler looks at the clock.
#include "common/check.hpp"
#include "common/log.hpp"
#include "pool/loop_common.hpp"

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>

namespace shoal {

using namespace detail;

namespace {

using Clock = std::chrono::steady_clock;

// A timerfd stays readable until its expiration count is read.
void consume_expirations(int timerfd) {
  uint64_t expirations;
  (void)!::read(timerfd, &expirations, sizeof expirations);
}

}  // namespace

void Pool::Impl::arm_at(int fd, Clock::time_point when) {
  if (when == Clock::time_point::max()) {
    itimerspec off{};
    SHOAL_CHECK(::timerfd_settime(fd, 0, &off, nullptr) == 0);  // our timerfd, valid values
    return;
  }
  arm(fd, std::max<Duration>(when - Clock::now(), Duration(1)));
}

void Pool::Impl::arm(int fd, Duration after) {
  itimerspec spec{};
  auto ns = std::max<int64_t>(after.count(), 1);
  spec.it_value.tv_sec = static_cast<time_t>(ns / 1000000000);
  spec.it_value.tv_nsec = static_cast<long>(ns % 1000000000);
  SHOAL_CHECK(::timerfd_settime(fd, 0, &spec, nullptr) == 0);
}

void Pool::Impl::schedule_respawn(WorkerSlot& slot, bool was_ready) {
  // Only deaths before ready are failed starts: a plugin that crashes on a task (a bad
  // input, a timeout kill) is replaced at once, however early in its life.
  if (was_ready) slot.crash_streak = 0;
  Duration delay{0};
  if (slot.crash_streak > 0) {
    auto d = kBackoffFirst * (int64_t{1} << std::min<uint32_t>(slot.crash_streak - 1, 16));
    delay = std::min<Duration>(d, kBackoffMax);
  }
  ++slot.crash_streak;
  if (delay.count() == 0) {
    spawn_slot(slot);
    return;
  }
  logf(LogLevel::warn, "pool %s: worker %u keeps failing; next start in %s", config.name.c_str(), slot.index,
       seconds_text(delay).c_str());
  slot.respawn_at = Clock::now() + delay;
  slot.waiting = true;
  arm_start_timer();
}

void Pool::Impl::arm_start_timer() {
  auto earliest = Clock::time_point::max();
  for (auto& slot : slots)
    if (slot.waiting) earliest = std::min(earliest, slot.respawn_at);
  // A worker killed at its deadline is left out: until its exit is reaped, its passed
  // deadline would fire the timer again and again.
  for (auto& p : procs)
    if (p->phase() == WorkerProcess::Phase::starting && !p->killed()) earliest = std::min(earliest, p->start_deadline);
  arm_at(start_timer.get(), earliest);
}

void Pool::Impl::on_start_timer() {
  consume_expirations(start_timer.get());
  auto now = Clock::now();
  for (auto& p : procs) {
    if (p->phase() == WorkerProcess::Phase::starting && p->start_deadline <= now) {
      // An init that hangs (a database that never answers) must not hold the pool's start
      // forever: its exit is a failed start, reported with this reason.
      p->start_timed_out = true;
      kill_worker(*p, "worker " + std::to_string(p->index()) + " did not finish init within start_timeout " +
                          seconds_text(p->config().start_timeout) + " (raise pools." + config.name + ".start_timeout)");
    }
  }
  // spawn_slot adds to procs: the slots are walked apart.
  for (auto& slot : slots) {
    if (!slot.waiting) continue;
    if (stop_requested) slot.waiting = false;
    else if (slot.respawn_at <= now) spawn_slot(slot);
  }
  arm_start_timer();
}

void Pool::Impl::arm_kill_timer() {
  auto earliest = Clock::time_point::max();
  for (auto& p : procs)
    if (!p->killed()) earliest = std::min({earliest, p->kill_at, p->escalate_at});
  arm_at(timer.get(), earliest);
}

void Pool::Impl::on_timer() {
  consume_expirations(timer.get());
  auto now = Clock::now();
  for (auto& p : procs) {
    if (p->escalate_at <= now) {
      p->escalate_at = Clock::time_point::max();
      p->stop(StopMode::now);
    }
  }
  for (auto& p : procs)
    if (p->kill_at <= now)
      kill_worker(*p, "worker " + std::to_string(p->index()) +
                          (p->control_lost() ? " closed its control channel and did not stop"
                                             : " did not stop within its grace and fini timeouts"));
  arm_kill_timer();
}

void Pool::Impl::arm_task_timer() {
  if (config.task_timeout.count() == 0) return;
  auto earliest = Clock::time_point::max();
  for (auto& p : procs) {
    const WorkerProcess& w = *p;
    if (w.inflight.empty() || !w.drained()) continue;
    auto due = w.front_started + config.task_timeout;
    if (w.timed_out_id == w.inflight.front()->id) due += w.config().grace;
    earliest = std::min(earliest, due);
  }
  if (earliest == Clock::time_point::max()) return;  // a stale expiry is harmless
  arm(task_timer.get(), std::max<Duration>(earliest - Clock::now(), Duration(1)));
}

void Pool::Impl::on_task_timer() {
  consume_expirations(task_timer.get());
  for (auto& p : procs) {
    WorkerProcess& w = *p;
    if (w.inflight.empty() || !w.drained()) continue;
    // A result already in the ring is not a timeout, whether or not its wake-up came.
    drain_results(w);
    if (w.inflight.empty() || w.killed()) continue;
    auto now = Clock::now();
    uint64_t id = w.inflight.front()->id;
    const Duration grace = w.config().grace;
    if (w.timed_out_id != id && now >= w.front_started + config.task_timeout) {
      // First should_stop for this task only; the worker and its other tasks go on.
      w.timed_out_id = id;
      w.block->cancel_task.store(id, std::memory_order_release);
      w.wake();
    } else if (w.timed_out_id == id && now >= w.front_started + config.task_timeout + grace) {
      // A SIGSTOPped worker ends here too: it cannot answer, SIGKILL still works.
      w.timeout_kill = true;
      kill_worker(w, "task_timeout " + seconds_text(config.task_timeout) + " passed and the task did not stop within " +
                         "shutdown.grace " + seconds_text(grace) + "; worker " + std::to_string(w.index()) + " killed");
    }
  }
  arm_task_timer();
}

// Dynamic dispatch (DESIGN.md, decision 12). Tasks are queued in a worker's ring ahead of
// time, sized by the average task, so that a worker never waits for the host; a task far
// longer than the average then holds the ones queued behind it. While another worker is
// idle, a worker that delivers nothing for kTakeBackAfter gives its queued tasks back.
void Pool::Impl::maybe_arm_steal() {
  if (steal_armed || stop_requested || !pending.empty()) return;
  bool idle = false, queued = false, busy = false;
  for (const auto& p : procs) {
    const WorkerProcess& w = *p;
    if (w.phase() != WorkerProcess::Phase::ready || w.killed()) continue;
    idle |= w.inflight.empty();
    queued |= w.inflight.size() > 1 && !w.stalled;
    busy |= !w.inflight.empty();
  }
  if (!idle || !busy) return;
  for (auto& p : procs) p->served_mark = p->served;
  steal_armed = true;
  // With nothing queued behind a running task there is nothing to take back; the check
  // then only looks, less often, for a worker whose scribbled block makes it pass over
  // its tasks in silence.
  arm(steal_timer.get(), queued ? Duration(kTakeBackAfter) : Duration(kBlockCheckEvery));
}

void Pool::Impl::on_steal_timer() {
  consume_expirations(steal_timer.get());
  steal_armed = false;
  if (stop_requested) return;
  for (auto& p : procs) {
    WorkerProcess& w = *p;
    if (w.phase() != WorkerProcess::Phase::ready || w.killed() || w.inflight.empty()) continue;
    drain_results(w);
    // A worker claims only what it was given: a claim beyond its last task is a scribbled
    // block, and such a worker would pass over every task it gets without a word.
    if (w.block->claimed.load(std::memory_order_relaxed) > w.last_dispatched) {
      kill_worker(w, "worker " + std::to_string(w.index()) + " corrupted its control block", true);
      continue;
    }
    if (!w.stalled && w.served == w.served_mark && w.inflight.size() > 1) take_back(w);
  }
}

bool Pool::Impl::take_back(WorkerProcess& w) {
  // Claim every task queued in its ring at once; the worker claims each task before it
  // starts it, so whichever swap succeeds first owns the task. A worker that keeps
  // changing the word (it runs foreign code) is left alone after a few tries: the host
  // never spins on what a worker writes.
  const uint64_t last = w.inflight.back()->id;
  uint64_t seen = w.block->claimed.load(std::memory_order_acquire);
  bool took = false;
  for (int tries = 0; tries < 4 && seen < last && !took; ++tries)
    took = w.block->claimed.compare_exchange_strong(seen, last, std::memory_order_acq_rel);
  if (!took) return false;
  // Tasks above `seen` never started: they run elsewhere, first in line.
  size_t n = 0;
  while (!w.inflight.empty() && w.inflight.back()->id > seen) {
    push_pending_front(std::move(w.inflight.back()));
    w.inflight.pop_back();
    ++n;
  }
  inflight_total -= n;
  w.dispatched -= n;
  // Stalled until its running task's result clears the mark; one caught between two
  // tasks has none coming, dispatch() lifts its mark when no other worker has room.
  w.stalled = true;
  // Its running task's result is the next it publishes: it must wake the host then, the
  // tasks it was told to wake after are gone.
  if (!w.inflight.empty()) w.block->wake_after_task.store(w.inflight.back()->id, std::memory_order_relaxed);
  return true;
}

}  // namespace shoal
