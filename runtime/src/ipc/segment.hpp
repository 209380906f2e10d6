// Shared-memory segment of a pool (memfd: no name in /dev/shm to leak or squat, gone
// when the last process holding it exits), double-mapped rings and futex wake-ups.
#ifndef SHOAL_IPC_SEGMENT_HPP
#define SHOAL_IPC_SEGMENT_HPP

// Fd, Mapping, map_shared and the eventfd helpers live in common/; included here for the
// code that maps a segment and uses them with it.
#include "common/event.hpp"
#include "common/fd.hpp"
#include "common/mapping.hpp"
#include "ipc/layout.hpp"

#include <shoal/result.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace shoal::detail {

/// Creates one worker's memfd (mode 0600, sealed against resizing) sized for `layout`,
/// with the header filled in.
Result<Fd> create_segment(const SegmentLayout& layout, uint32_t worker_index);

/// Maps the ring at `offset` twice back to back, so a record that crosses the end of the
/// ring is contiguous in memory: 2 * capacity bytes of address space, capacity of memory.
Result<Mapping> map_ring(int fd, uint64_t offset, uint64_t capacity);

/// Futex on a word in shared memory (not FUTEX_PRIVATE: the peer is another process).
/// Returns when woken, when *word != expected, on a signal, or after timeout_ns (<0: none).
void futex_wait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns) noexcept;
void futex_wake_all(std::atomic<uint32_t>* word) noexcept;

}  // namespace shoal::detail

#endif
