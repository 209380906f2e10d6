// Shared-memory segment of a pool (memfd: no name in /dev/shm to leak or squat, gone
// when the last process holding it exits), double-mapped rings and futex wake-ups.
#ifndef SHOAL_IPC_SEGMENT_HPP
#define SHOAL_IPC_SEGMENT_HPP

#include "ipc/layout.hpp"

#include <shoal/result.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace shoal::detail {

/// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  ~Fd();
  int get() const noexcept { return fd_; }
  int release() noexcept { int f = fd_; fd_ = -1; return f; }
  void reset() noexcept;
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

/// An owned mmap'ed range.
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* addr, size_t len) noexcept : addr_(addr), len_(len) {}
  Mapping(Mapping&& o) noexcept : addr_(o.addr_), len_(o.len_) { o.addr_ = nullptr; o.len_ = 0; }
  Mapping& operator=(Mapping&& o) noexcept;
  ~Mapping();
  std::byte* data() const noexcept { return static_cast<std::byte*>(addr_); }
  size_t size() const noexcept { return len_; }

 private:
  void* addr_ = nullptr;
  size_t len_ = 0;
};

/// Creates one worker's memfd (mode 0600, sealed against resizing) sized for `layout`,
/// with the header filled in.
Result<Fd> create_segment(const SegmentLayout& layout, uint32_t worker_index);

/// Maps `len` bytes at `offset` of `fd` read-write and shared.
Result<Mapping> map_shared(int fd, uint64_t offset, uint64_t len);

/// Maps the ring at `offset` twice back to back, so a record that crosses the end of the
/// ring is contiguous in memory: 2 * capacity bytes of address space, capacity of memory.
Result<Mapping> map_ring(int fd, uint64_t offset, uint64_t capacity);

/// Futex on a word in shared memory (not FUTEX_PRIVATE: the peer is another process).
/// Returns when woken, when *word != expected, on a signal, or after timeout_ns (<0: none).
void futex_wait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns) noexcept;
void futex_wake_all(std::atomic<uint32_t>* word) noexcept;

/// Writes 1 to an eventfd; EAGAIN (counter saturated) still leaves it readable.
void eventfd_signal(int fd) noexcept;
/// Reads and discards an eventfd's counter (non-blocking fd).
void eventfd_drain(int fd) noexcept;

/// Moves `fd` to a number >= min_fd, close-on-exec, and closes the old one.
Result<Fd> move_fd_above(Fd fd, int min_fd);

}  // namespace shoal::detail

#endif
