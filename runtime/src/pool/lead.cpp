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
// How long a leader sleeps on its worker's result before it hands over to the loop
// anyway. A safety net, not a poll: every result it waits for, and every change that
// makes it the wrong thing to wait for, wakes it; a worker that scribbles on its block
// can only stop its own results from doing so, and then costs this much per sleep.
constexpr int64_t kLeadSleepNs = 10'000'000;

// Between turns a leader reads only what would give its next turn something to do: the
// result cursor of each worker it drains, as that turn left it, and `has_incoming`. A
// whole turn each time round took data_mu and read lines of every block the workers
// write (a tenth of a busy round trip's samples). Made under data_mu; the blocks stay
// mapped while the leader leads (parked_blocks). One per thread, reused: apply() is
// called millions of times and each call leads.
struct ResultWatch {
  const std::atomic<uint64_t>* cursor;
  uint64_t seen;
};
thread_local std::vector<ResultWatch> t_watch;

void watch_results(const std::vector<std::unique_ptr<WorkerProcess>>& procs) {
  t_watch.clear();
  for (const auto& p : procs)
    if (p->drained()) t_watch.push_back({&p->results.producer_cursor(), p->results.producer_seen()});
}

bool results_moved() noexcept {
  for (const ResultWatch& w : t_watch)
    if (w.cursor->load(std::memory_order_acquire) != w.seen) return true;
  return false;
}

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
  wake_moved_sleepers();
  return progress;
}

bool Pool::Impl::turn_as_caller(const BatchSink* own) noexcept {
  detail::t_data_path_of = this;
  led_by_caller = true;
  leading_batch = own;
  left_for_loop = false;
  woke_worker = false;
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
  // The spin's clock starts at the first look with nothing moved: a busy trip's result
  // is mostly in before that, and two clock reads per trip were a tenth of its caller's
  // time (kvm-clock's vDSO).
  int64_t idle_until = 0;
  for (int i = 0; !own.caller_may_return(); ++i) {
    bool moved = false, woke = false;
    // A whole turn now and then all the same: a worker turning ready, ring space freed
    // without a result yet, are not among what the watch sees.
    const bool look = !leading || (i & 15) == 15 || has_incoming.load(std::memory_order_acquire) || results_moved();
    if (look && !loop_waiting.load(std::memory_order_relaxed) && data_mu.try_lock()) {
      std::lock_guard data(data_mu, std::adopt_lock);
      // Long tasks: a hand-over costs nothing beside them, and a spinning caller would
      // take a CPU from the workers it waits for. A pool not running is the loop's.
      if (avg_task_ns >= kHostSpinNs || phase != Phase::running || stop_requested || failed) break;
      if (!leading) {
        leading = true;
        become_leader();
      }
      moved = turn_as_caller(&own);
      woke = woke_worker;
      watch_results(procs);
    }
    if (moved) {
      idle_until = 0;
      // The worker this turn woke is likely queued on this very CPU (the kernel puts a
      // woken thread beside its waker): spinning here would keep it from running until
      // the spin ran out. Asleep, this thread gives it the CPU.
      if (woke) (void)sleep_on_result(own);
    } else if ((i & 15) == 15 && idle_until == 0) {
      idle_until = now_ns() + kLeadSpinNs;
    } else if ((i & 15) == 15 && now_ns() > idle_until) {
      if (!leading || !sleep_on_result(own)) break;
      idle_until = 0;
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
  if (--leaders == 0) parked_blocks.clear();
  hand_back_if_deaf();
}

// Sleeping on the result instead of handing over. A leader that hands over costs an
// idle round trip four wake-ups: its worker's, then the loop's (woken by the hand-over
// to listen for results), the loop's again for the result, and the caller's by the
// batch's condition variable. Asleep on the worker's leader_wake, it is woken by the
// worker itself (ipc/wake.hpp's L1..L5 with a counted announcement): two wake-ups, the
// futex floor. It stays counted in `leaders` meanwhile, so the loop keeps sleeping deaf
// and cannot take the result from under it.
//
// What else may end the wait, and who wakes it then (all under data_mu, as is the
// registration, so none is missed): its batch's outcome delivered by anyone (a death's
// settle, a timeout, terminate: BatchSink::wake_sleeper), and any turn after which its
// worker is no longer the only one at work (a submit dispatched to another, a retry
// queued, the worker ended: wake_moved_sleepers, before the worker's block is unmapped).
// Each wake withdraws the announcement and detaches the batch from the channel, so
// nobody touches a dead worker's block afterwards.
WorkerProcess* Pool::Impl::sole_busy_worker() const {
  if (phase != Phase::running || stop_requested || failed || pending_count != 0 ||
      has_incoming.load(std::memory_order_acquire))
    return nullptr;
  WorkerProcess* busy = nullptr;
  for (const auto& p : procs) {
    if (p->inflight.empty()) continue;
    if (busy != nullptr || !p->drained()) return nullptr;
    busy = p.get();
  }
  return busy;
}

bool Pool::Impl::sleep_on_result(BatchSink& own) {
  std::unique_lock data(data_mu);
  WorkerProcess* w = sole_busy_worker();
  if (w == nullptr) return false;
  const WakeChannel channel = leader_channel(*w->block);
  const WakeListener listen(channel);
  const uint32_t seq = channel.word->load(std::memory_order_acquire);  // L1
  listen.announce_counted();                                            // L2
  WakeListener::fence();                                                // L3
  if (own.caller_may_return() || w->results.has_data()) {              // L4
    listen.withdraw_counted();
    return true;
  }
  own.sleep_on = channel;
  sleepers.push_back({&own, w});
  data.unlock();
  // L5. The worker may end before this call: on_exit wakes this sleeper (the word moves)
  // before it parks the block (this thread leads, so the page stays, a private copy of
  // it holding the moved word), so the wait returns at once (EAGAIN); a copy of zeros
  // would hold seq 0 and keep it asleep to the bound. The word is not touched again below
  // unless the sleeper is still attached, i.e. its worker is still in procs.
  futex_wait(channel.word, seq, kLeadSleepNs);
  data.lock();
  std::erase_if(sleepers, [&](const Sleeper& s) { return s.batch == &own; });
  if (own.sleep_on.word == nullptr) return true;  // woken by a delivery or a change
  // Still attached, so its worker lives: the word is mapped.
  const bool notified = channel.word->load(std::memory_order_relaxed) != seq;
  listen.withdraw_counted();
  own.sleep_on = {};
  return notified;  // a bounded sleep that ran out: the loop takes over
}

void Pool::Impl::wake_moved_sleepers(const WorkerProcess* ending) noexcept {
  if (sleepers.empty()) return;
  const WorkerProcess* busy = sole_busy_worker();
  for (const Sleeper& s : sleepers)
    if (s.worker != busy || s.worker == ending) s.batch->wake_sleeper();
}

void BatchSink::wake_sleeper() noexcept {
  if (sleep_on.word == nullptr) return;
  WakeNotifier(sleep_on).wake();
  WakeListener(sleep_on).withdraw_counted();
  sleep_on = {};
}

void Pool::Impl::lock_for_loop(std::unique_lock<std::mutex>& data) {
  if (data.try_lock()) return;
  loop_waiting.store(true, std::memory_order_relaxed);
  data.lock();
  loop_waiting.store(false, std::memory_order_relaxed);
}

}  // namespace shoal
