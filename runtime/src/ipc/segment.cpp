#include "ipc/segment.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bit>

namespace shoal::detail {

uint64_t SegmentLayout::round_capacity(uint64_t requested) {
  if (requested < kMinRingCapacity) requested = kMinRingCapacity;
  return std::bit_ceil(requested);
}

Result<Fd> create_segment(const SegmentLayout& layout, uint32_t worker_index) {
  Fd fd(static_cast<int>(::syscall(SYS_memfd_create, "shoal-worker", MFD_CLOEXEC | MFD_ALLOW_SEALING)));
  if (!fd) return errno_error("memfd_create");
  // memfd_create takes no mode: the file is 0777. Whoever passes the ptrace check on a
  // process holding it may open it through /proc/PID/fd (or map_files), and the mode is
  // the only check left after that one.
  if (::fchmod(fd.get(), 0600) != 0) return errno_error("fchmod(segment)");
  if (::ftruncate(fd.get(), static_cast<off_t>(layout.total())) != 0) return errno_error("ftruncate(segment)");
  // Sealed so that no process (a worker running foreign code included) can shrink the
  // segment under the others' mappings, which would turn every access into SIGBUS.
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
    return errno_error("fcntl(F_ADD_SEALS)");
  auto header_result = map_shared(fd.get(), 0, kPageSize);
  if (!header_result) return header_result.error();
  auto* h = reinterpret_cast<SegmentHeader*>(header_result->data());
  h->magic = kSegmentMagic;
  h->version = kSegmentVersion;
  h->worker_index = worker_index;
  h->ring_capacity = layout.capacity;
  return fd;
}

Result<Mapping> map_ring(int fd, uint64_t offset, uint64_t capacity) {
  void* base = ::mmap(nullptr, 2 * capacity, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return errno_error("mmap(ring reservation)");
  Mapping whole(base, 2 * capacity);
  for (uint64_t half = 0; half < 2; ++half) {
    void* at = static_cast<std::byte*>(base) + half * capacity;
    void* p = ::mmap(at, capacity, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, static_cast<off_t>(offset));
    if (p == MAP_FAILED) return errno_error("mmap(ring)");
  }
  return whole;
}

}  // namespace shoal::detail
