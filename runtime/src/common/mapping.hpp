// An owned memory mapping, and a read-write shared mapping of part of a file.
#ifndef SHOAL_COMMON_MAPPING_HPP
#define SHOAL_COMMON_MAPPING_HPP

#include <shoal/result.hpp>

#include <cstddef>
#include <cstdint>

namespace shoal::detail {

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
  /// Puts a private, read-only copy of the pages where the mapped file was, at the same
  /// address: a thread still holding a pointer into it reads the last contents instead of
  /// faulting, and the file's pages are no longer held by this mapping. False (nothing
  /// changed) if the kernel refused.
  bool detach() noexcept;

 private:
  void* addr_ = nullptr;
  size_t len_ = 0;
};

/// Maps `len` bytes at `offset` of `fd` read-write and shared.
Result<Mapping> map_shared(int fd, uint64_t offset, uint64_t len);

}  // namespace shoal::detail

#endif
