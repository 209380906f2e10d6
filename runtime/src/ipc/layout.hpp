// The shared-memory layout of one worker: a memfd of its own holding a header page, the
// worker's control page, its task ring (host -> worker) and its result ring (worker ->
// host). One memfd per worker, not one per pool: a process that holds a memfd (or gets it
// back through /proc/self/map_files) can map any offset of it, so a worker must hold
// nothing but its own part. Only offsets are stored in shared memory, never pointers.
//
// No lock lives here: a process that dies holding a lock in shared memory blocks every
// other process forever (Boost.Interprocess 1.74 has no robust mutexes). Every field is
// an atomic written by one side only; the other side reads it once, checks it, then uses
// the checked copy, because a worker runs foreign code and may scribble anywhere.
#ifndef SHOAL_IPC_LAYOUT_HPP
#define SHOAL_IPC_LAYOUT_HPP

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace shoal::detail {

inline constexpr uint32_t kSegmentMagic = 0x53484f4cu;  // "SHOL"
inline constexpr uint32_t kSegmentVersion = 5;  // 4: one memfd per worker; 5: leader_wake
inline constexpr size_t kPageSize = 4096;
inline constexpr size_t kMinRingCapacity = 4096;

// Positions are byte counts since the ring was created; they never wrap in practice
// (2^64 bytes). A record starts at `pos % capacity` and, because each ring's pages are
// mapped twice back to back, is contiguous even when it crosses the end.
struct RingHeader {
  alignas(64) std::atomic<uint64_t> write_pos{0};  // written by the producer only
  alignas(64) std::atomic<uint64_t> read_pos{0};   // written by the consumer only
};

enum class StopMode : uint32_t {
  run = 0,
  drain = 1,  // finish every queued task, then run the chain and exit
  now = 2,    // finish the running task (it sees should_stop), leave the rest, exit
};

struct WorkerBlock {
  RingHeader tasks;    // host produces, worker consumes
  RingHeader results;  // worker produces, host consumes
  // Futex word the worker sleeps on; the host bumps it and wakes after publishing tasks,
  // freeing result space or requesting a stop.
  alignas(64) std::atomic<uint32_t> worker_wake{0};
  std::atomic<uint32_t> worker_sleeping{0};  // worker sets before sleeping; host reads
  std::atomic<uint32_t> stop{0};             // StopMode, written by the host
  // Id of the task inside shoal_run, 0 when none; written by the worker. The host uses it
  // after the worker died to tell the task that ran from the ones that never started.
  alignas(64) std::atomic<uint64_t> running_task{0};
  // The highest task id this worker started, or the host took back: both sides move it
  // forward with compare-and-swap only. The worker claims each task before it starts it
  // and skips one already claimed; the host claims the tasks queued behind a task that
  // keeps the worker busy and runs them elsewhere. Whoever's swap succeeds owns the task,
  // so none runs twice and none is lost. A worker that scribbles here only misleads the
  // host about its own tasks.
  std::atomic<uint64_t> claimed{0};
  // Id of a task the host wants stopped (its task_timeout passed); the worker's
  // should_stop turns true while that task runs. Written by the host.
  std::atomic<uint64_t> cancel_task{0};
  // The host wants a wake-up once the result of this task (or a later one) is out, so it
  // refills the ring while half of it is still queued; 0 = only when about to run dry.
  // Written by the host before it publishes the tasks, once per dispatch: a line of its
  // own, not the one the worker writes twice per task (running_task).
  alignas(64) std::atomic<uint64_t> wake_after_task{0};
  // Set by the host before it sleeps on its eventfd; a worker that publishes a result
  // and finds it set clears it and writes the eventfd (one wake-up, not one per result).
  // In each worker's own block, never in a page every worker writes: a worker may damage
  // only what its own tasks depend on.
  alignas(64) std::atomic<uint32_t> host_sleeping{0};
  // A caller leading the data path (pool/lead.cpp) that found nothing to do sleeps on
  // leader_wake, counted in leader_sleepers: the worker wakes it where it would wake the
  // host, so an idle round trip is two wake-ups, not four. Only the host writes the
  // count (add to announce, subtract to withdraw), so one leader leaving never hides
  // another's announcement. On host_sleeping's line: the worker reads both at once.
  std::atomic<uint32_t> leader_wake{0};
  std::atomic<uint32_t> leader_sleepers{0};
};

// Written by the host, for a reader of the memfd (a debugger); never mapped by a worker
// and never read back: the layout reaches workers in their Init message.
struct SegmentHeader {
  uint32_t magic;
  uint32_t version;
  uint32_t worker_index;
  uint32_t reserved;
  uint64_t ring_capacity;
};

static_assert(sizeof(SegmentHeader) <= kPageSize);
static_assert(sizeof(WorkerBlock) <= kPageSize);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

// Every ring record starts with this header, 8-byte aligned; the payload follows.
// Task records: payload = input. Result records: payload = output then error text.
struct RecordHeader {
  uint64_t task_id;
  uint32_t size;        // payload bytes
  uint32_t status;      // results: WireStatus
  uint32_t error_size;  // results: trailing bytes of the payload that are the error text
  uint32_t reserved;
  uint64_t duration_ns;  // results: time spent in shoal_run
};
static_assert(sizeof(RecordHeader) == 32);

enum class WireStatus : uint32_t { ok = 0, error = 1 };

inline constexpr uint64_t align8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }
inline constexpr uint64_t record_bytes(uint64_t payload) { return align8(sizeof(RecordHeader) + payload); }
// Largest payload one ring of `capacity` bytes can carry in one record.
inline constexpr uint64_t max_payload(uint64_t capacity) { return capacity - sizeof(RecordHeader); }

// Byte offsets of every part of one worker's segment.
struct SegmentLayout {
  uint64_t capacity = 0;  // power of two, multiple of the page size

  static uint64_t round_capacity(uint64_t requested);
  static constexpr uint64_t block_offset() { return kPageSize; }
  uint64_t task_ring_offset() const { return 2 * kPageSize; }
  uint64_t result_ring_offset() const { return task_ring_offset() + capacity; }
  uint64_t total() const { return result_ring_offset() + capacity; }
};

}  // namespace shoal::detail

#endif
