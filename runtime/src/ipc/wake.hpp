// One wake primitive for both directions between the host and a worker, over the words
// of the worker's WorkerBlock (ipc/layout.hpp), in the shape of iceoryx's
// ConditionNotifier / ConditionListener: the listener announces that it may sleep,
// re-checks what it waits for, then blocks; the notifier publishes, fences, and wakes
// the listener only if it finds the announcement (no system call while the peer is
// awake). No lock: a process that dies halfway leaves at most a raised flag, which costs
// its replacement one spurious wake-up.
//
//   host -> worker (worker_channel): the worker sleeps on the futex word worker_wake and
//     announces it in worker_sleeping (WakeListener::wait); the host, after publishing
//     tasks, freeing result space or asking for a stop, calls
//     WakeNotifier(worker_channel(*block)).notify(). The worker wakes itself with wake().
//   worker -> leading caller (leader_channel): a caller leading the data path sleeps on
//     leader_wake after the same L1..L4, announced in a count (several callers may wait
//     on one worker); the worker notify()s it wherever it would wake the host.
//   worker -> host (host_channel): the host sleeps in epoll_wait on its result eventfd
//     and announces it in host_sleeping of each worker it drains (announce() on each,
//     one fence(), re-check, epoll_wait, withdraw() on each); a worker that publishes a
//     result and gets true from notify_once() writes the eventfd: once per sleep, not
//     once per result.
//
// Why no wake-up is lost. The two sides run, in program order:
//
//     listener                               notifier
//     L1 seq = word          (acquire)       N1 publish the change (an atomic store)
//     L2 sleeping = 1        (seq_cst)       N2 fence                 (seq_cst)
//     L3 fence               (seq_cst)       N3 s = sleeping          (relaxed)
//     L4 if ready(): done                    N4 if s: ++word (release), FUTEX_WAKE
//     L5 FUTEX_WAIT(word, seq)
//
// The fences L3 and N2 are ordered one way or the other in the single total order of
// seq_cst operations. If N2 comes first, L4 reads N1's change or a later one (N1 is
// sequenced before N2, L4 after L3): the listener sees the change and does not sleep.
// If L3 comes first, N3 reads L2's 1 or a later value of the flag; a later 0 comes only
// from a listener that is awake (it withdraws once it no longer sleeps, and announces
// and re-checks again before its next sleep), or on the host channel from another
// notifier's notify_once, which writes the eventfd itself. So a listener that goes on to
// L5 is woken:
// - futex channel: the notifier bumps the word. Either L1 read the word before that
//   bump: the kernel compares the word with seq atomically with queueing the waiter, so
//   FUTEX_WAIT returns at once, or the waiter is queued before N4's FUTEX_WAKE, which
//   wakes it. Or L1 read the bumped value: its acquire synchronizes with the release
//   bump, N1 happens before L4, and ready() held there.
// - host channel: L5 is an epoll_wait on an eventfd, whose counter keeps a write made
//   before the wait: a notifier that writes it just before the host blocks still wakes it.
#ifndef SHOAL_IPC_WAKE_HPP
#define SHOAL_IPC_WAKE_HPP

#include "ipc/layout.hpp"

#include <atomic>
#include <cstdint>

namespace shoal::detail {

/// Futex on a word in shared memory (not FUTEX_PRIVATE: the peer is another process).
/// Returns when woken, when *word != expected, on a signal, or after timeout_ns (<0: none).
void futex_wait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns) noexcept;
void futex_wake_all(std::atomic<uint32_t>* word) noexcept;

/// The shared words of one direction.
struct WakeChannel {
  std::atomic<uint32_t>* sleeping = nullptr;  ///< raised by the listener while it may sleep
  std::atomic<uint32_t>* word = nullptr;      ///< the futex word it sleeps on; null: it blocks elsewhere
};

/// Host -> worker: the worker sleeps on worker_wake.
inline WakeChannel worker_channel(WorkerBlock& b) noexcept { return {&b.worker_sleeping, &b.worker_wake}; }
/// Worker -> host: the host sleeps on its result eventfd (no futex word).
inline WakeChannel host_channel(WorkerBlock& b) noexcept { return {&b.host_sleeping, nullptr}; }

/// Worker -> a leading caller: it sleeps on leader_wake; leader_sleepers is a count
/// (WakeListener::announce_counted), since several callers may wait on one worker.
inline WakeChannel leader_channel(WorkerBlock& b) noexcept { return {&b.leader_sleepers, &b.leader_wake}; }

/// The side that sleeps.
class WakeListener {
 public:
  explicit WakeListener(WakeChannel c) noexcept : c_(c) {}

  /// Futex channel: returns once ready() holds. ready() is called again after each
  /// announcement and each wake-up. Each sleep lasts at most recheck_ns (<0: no bound),
  /// a safety net only: every change the listener waits for is notified.
  template <class Ready>
  void wait(Ready&& ready, int64_t recheck_ns) const {
    for (;;) {
      const uint32_t seq = c_.word->load(std::memory_order_acquire);  // L1
      announce();                                                      // L2
      fence();                                                         // L3
      if (ready()) break;                                              // L4
      futex_wait(c_.word, seq, recheck_ns);                            // L5
      if (ready()) break;
    }
    withdraw();
  }

  // A listener that blocks in something else than the futex (the host in epoll_wait,
  // listening on the host channel of every worker at once): announce() on each channel,
  // then fence() once, then re-check what it waits for, then block (unless the re-check
  // found something), then withdraw() on each channel.
  void announce() const noexcept { c_.sleeping->store(1, std::memory_order_seq_cst); }
  static void fence() noexcept { std::atomic_thread_fence(std::memory_order_seq_cst); }
  /// Relaxed: a notifier that still sees the flag only wakes a listener already awake.
  void withdraw() const noexcept { c_.sleeping->store(0, std::memory_order_relaxed); }
  /// L2 and the withdrawal for a channel several listeners share (leader_channel): a
  /// count, so the notifier still sees the others' announcements after one withdraws.
  void announce_counted() const noexcept { c_.sleeping->fetch_add(1, std::memory_order_seq_cst); }
  void withdraw_counted() const noexcept { c_.sleeping->fetch_sub(1, std::memory_order_relaxed); }

 private:
  WakeChannel c_;
};

/// The side that publishes a change and wakes the listener if it may be asleep.
class WakeNotifier {
 public:
  explicit WakeNotifier(WakeChannel c) noexcept : c_(c) {}

  /// After the change is published: true if the listener announced a sleep. On a futex
  /// channel it is then woken here; on the host channel the caller wakes it.
  bool notify() const noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);                // N2
    if (c_.sleeping->load(std::memory_order_relaxed) == 0) return false;  // N3
    if (c_.word != nullptr) wake();                                     // N4
    return true;
  }

  /// notify() for the host channel, true for only one notifier per announced sleep (it
  /// takes the flag down): the caller then writes the listener's eventfd, once for a
  /// burst of results.
  bool notify_once() const noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return c_.sleeping->load(std::memory_order_relaxed) != 0 && c_.sleeping->exchange(0) != 0;
  }

  /// Futex channel: bumps the word and wakes the listener, announced or not. Two atomic
  /// steps and one system call: async-signal-safe.
  void wake() const noexcept {
    c_.word->fetch_add(1, std::memory_order_release);
    futex_wake_all(c_.word);
  }

 private:
  WakeChannel c_;
};

}  // namespace shoal::detail

#endif
