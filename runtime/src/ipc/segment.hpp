// Shared-memory segment of one worker (memfd: no name in /dev/shm to leak or squat, gone
// when the last process holding it exits) and its double-mapped rings.
#ifndef SHOAL_IPC_SEGMENT_HPP
#define SHOAL_IPC_SEGMENT_HPP

// Fd, Mapping, map_shared and the eventfd helpers live in common/, the futex helpers in
// ipc/wake.hpp; included here for the code that maps a segment and uses them with it.
#include "common/event.hpp"
#include "common/fd.hpp"
#include "common/mapping.hpp"
#include "ipc/layout.hpp"
#include "ipc/wake.hpp"

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

}  // namespace shoal::detail

#endif
