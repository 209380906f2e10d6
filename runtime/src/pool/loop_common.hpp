// Shared by the two halves of the pool's loop thread: loop.cpp (dispatch, results, the
// loop itself) and supervise.cpp (worker life cycle, timers, stopping).
#ifndef SHOAL_POOL_LOOP_COMMON_HPP
#define SHOAL_POOL_LOOP_COMMON_HPP

#include "pool/pool_impl.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <string>

namespace shoal::detail {

// A process's own descriptors carry ProcessEvent kinds (worker_process.hpp): the same
// numbers, one definition.
enum EventKind : uint32_t {
  kSubmit = 1, kResult = 2, kTimer = 3, kPidfd = static_cast<uint32_t>(ProcessEvent::pidfd),
  kControl = static_cast<uint32_t>(ProcessEvent::control), kStartTimer = 6, kTaskTimer = 7,
  kOutput = static_cast<uint32_t>(ProcessEvent::output), kStealTimer = 9, kStartCancel = 10,
  kLog = static_cast<uint32_t>(ProcessEvent::log)
};

// The pool whose data path this thread is on (its loop thread, or a caller in its turn),
// else null. A submit from a callback it runs must not try to lead any pool (data_mu is
// not recursive, and two held at once could deadlock), and a call into that same pool
// that waits (map, apply, reload, join) would wait for itself: it is refused.
extern thread_local const Pool::Impl* t_data_path_of;

inline uint64_t event_key(EventKind kind, uint32_t index) { return (uint64_t{kind} << 32) | index; }

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Work queued in one worker's ring, in time: enough that the worker never waits for the
// host's round trip, small enough that the last tasks of a batch are never stuck behind
// one worker while another is idle (the chunksize trap).
// With the host woken at half a queue (dispatch), 2 ms keeps its wake-ups to ~1000 per
// second per worker and a map's tail to at most 2 ms of one worker's work.
inline constexpr double kQueueTargetNs = 2'000'000;
inline constexpr size_t kMaxDepth = 8192;
// A host with tasks in flight spins this long for results before sleeping.
inline constexpr int64_t kHostSpinNs = 20'000;
inline constexpr uint32_t kMaxStartFailures = 5;
// Dynamic dispatch: a worker that delivers nothing this long while another is idle gives
// back the tasks queued behind its running one. Far above a tiny task's time, so a
// worker that makes progress is never robbed, and far below what a user would notice.
inline constexpr auto kTakeBackAfter = std::chrono::milliseconds(5);
inline constexpr auto kBlockCheckEvery = std::chrono::milliseconds(200);
// Crash-loop back-off: a process that died having served no task is replaced after
// 250 ms, doubling up to 30 s; the first death after a healthy run is replaced at once.
inline constexpr auto kBackoffFirst = std::chrono::milliseconds(250);
inline constexpr auto kBackoffMax = std::chrono::seconds(30);

inline std::string seconds_text(Duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%gs", std::chrono::duration<double>(d).count());
  return buf;
}

}  // namespace shoal::detail

#endif
