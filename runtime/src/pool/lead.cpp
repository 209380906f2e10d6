// Callers on the data path (issue 19). A caller blocked in map waits for outcomes the
// loop thread would hand it one wake-up later; instead it takes data_mu and does the
// loop's data work itself: its tasks into the rings, results out of them, straight into
// its own outcome slots. The loop thread stays the supervisor (deaths, deadlines,
// respawns, reloads) and the fallback drainer whenever no caller leads.
//
// Exactly one outcome per task, with two threads that can end a task. A task is ended
// by taking it out of its worker's `inflight` (a result read: drain_results; a death:
// settle_tasks; a timeout or take-back) or out of `pending` (cancel, refusal), and every
// one of those paths runs under data_mu: the loop holds it for its whole turn and drops
// it only inside epoll_wait; a caller holds it for its whole turn. So a result read by a
// caller and the worker's death seen by the loop are ordered: whichever comes second
// finds the task gone from `inflight` (the death settles only what is still there; a
// result for a task no longer there is a protocol violation and kills the worker). The
// ring's host side (cursors cached in WorkerProcess) is only touched under data_mu too.
//
// What a caller never does, so that the rest of the pool keeps its threads: it never
// runs another caller's code. A callback task's outcome and another map_views' view are
// left in the ring for the loop (drain_results stops in front of them); a cancel on
// terminate, a spawn, a reload step and a stop are the loop's alone (caller_turn does
// nothing unless the pool is running).
//
// Wake-ups. While a caller leads, the loop does not ask the workers to wake it for
// results (it would wake on every one and take a CPU from the worker and the leader): it
// sleeps deaf. `leaders` and `loop_deaf` change only under data_mu, and the loop decides
// to sleep deaf under it too, so the last leader to leave, or a submit's turn after it,
// sees loop_deaf and wakes the loop if tasks are still out (hand_back_if_deaf). The loop
// wakes for every other event as before: deaths, deadlines, control messages, submits.
#include "pool/loop_common.hpp"

#include <chrono>

namespace shoal {

using namespace detail;

namespace {

// How long a leader spins with nothing moving before it hands over to the loop: a
// tiny task's round trip, no more (a longer spin takes a CPU from the workers, as the
// loop's own spin would: kHostSpinNs).
constexpr int64_t kLeadSpinNs = kHostSpinNs;

}  // namespace

thread_local const Pool::Impl* detail::t_data_path_of = nullptr;

bool Pool::Impl::caller_turn() {
  if (phase != Phase::running || stop_requested || failed) return false;
  bool progress = false;
  if (has_incoming.load(std::memory_order_acquire)) {
    const size_t before = pending_count + inflight_total;
    if (take_incoming()) {
      // Terminated: what is queued is the loop's to cancel; dispatching it here would
      // start tasks after terminate() returned.
      left_for_loop = true;
      return false;
    }
    progress = pending_count + inflight_total != before;
  }
  for (auto& p : procs)
    if (p->drained()) progress |= drain_results(*p);
  const size_t before = inflight_total;
  dispatch();
  progress |= inflight_total != before;
  maybe_arm_steal();
  arm_task_timer();
  counters->set_load(pending_count, inflight_total);
  return progress;
}

bool Pool::Impl::turn_as_caller(const BatchSink* own) noexcept {
  detail::t_data_path_of = this;
  led_by_caller = true;
  leading_batch = own;
  left_for_loop = false;
  const bool moved = caller_turn();
  led_by_caller = false;
  leading_batch = nullptr;
  detail::t_data_path_of = nullptr;
  if (left_for_loop) wake_loop();  // a callback's outcome waits in a ring for the loop
  return moved;
}

void Pool::Impl::hand_back_if_deaf() {
  if (leaders == 0 && loop_deaf && (inflight_total != 0 || pending_count != 0)) wake_loop();
}

void Pool::Impl::become_leader() {
  ++leaders;
  if (loop_deaf) return;
  // This thread holds data_mu, so the loop is in or around epoll_wait, having asked the
  // workers to wake it for results. Taken back here, or every result this leader reads
  // would also wake the loop for nothing. A worker that took the flag already writes the
  // eventfd: one spurious wake-up. The loop asks again when it next sleeps without leaders.
  for (auto& p : procs) WakeListener(host_channel(*p->block)).withdraw();
  loop_deaf = true;
}

void Pool::Impl::lead_once() noexcept {
  if (detail::t_data_path_of != nullptr) return;  // a callback of this thread's own turn: that turn takes it in
  if (loop_waiting.load(std::memory_order_relaxed) || !data_mu.try_lock()) return;
  std::lock_guard data(data_mu, std::adopt_lock);
  // With every worker busy, the loop takes this task in with the others of its turn: one
  // publish and one wake-up per worker per turn. A turn per submit made a stream of
  // submits 2.7 times slower (bench b). A lone task goes into a ring at once.
  if (inflight_total >= procs.size()) return;
  turn_as_caller(nullptr);
  hand_back_if_deaf();
}

void Pool::Impl::lead_while_waiting(BatchSink& own) noexcept {
  if (detail::t_data_path_of != nullptr) {
    // A callback of another pool's turn (one of this pool's own was refused at enqueue):
    // this pool's loop takes the tasks in.
    wake_loop();
    return;
  }
  bool leading = false;
  int64_t idle_until = now_ns() + kLeadSpinNs;
  for (int i = 0; !own.caller_may_return(); ++i) {
    bool moved = false;
    if (!loop_waiting.load(std::memory_order_relaxed) && data_mu.try_lock()) {
      std::lock_guard data(data_mu, std::adopt_lock);
      // Long tasks: a hand-over costs nothing beside them, and a spinning caller would
      // take a CPU from the workers it waits for. A pool not running is the loop's.
      if (avg_task_ns >= kHostSpinNs || phase != Phase::running || stop_requested || failed) break;
      if (!leading) {
        leading = true;
        become_leader();
      }
      moved = turn_as_caller(&own);
    }
    if (moved) {
      idle_until = now_ns() + kLeadSpinNs;
    } else if ((i & 15) == 15 && now_ns() > idle_until) {
      break;
    } else {
      __builtin_ia32_pause();
    }
  }
  if (!leading) {
    // The batch's tasks wait in `incoming` for the loop (Pool::Impl::enqueue).
    if (has_incoming.load(std::memory_order_seq_cst)) wake_loop();
    return;
  }
  std::lock_guard data(data_mu);
  --leaders;
  hand_back_if_deaf();
}

void Pool::Impl::lock_for_loop(std::unique_lock<std::mutex>& data) {
  if (data.try_lock()) return;
  loop_waiting.store(true, std::memory_order_relaxed);
  data.lock();
  loop_waiting.store(false, std::memory_order_relaxed);
}

}  // namespace shoal
