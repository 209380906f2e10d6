// A pool's shared read-only data (`shared:`), worker side: the sealed segments the host
// handed over, mapped read-only, and the by-name lookup behind host->shared.
#ifndef SHOAL_SHARED_READER_HPP
#define SHOAL_SHARED_READER_HPP

#include "common/mapping.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace shoal::detail {

class SharedReader {
 public:
  SharedReader();
  ~SharedReader();
  SharedReader(SharedReader&&) noexcept;
  SharedReader& operator=(SharedReader&&) noexcept;

  /// Maps `fd` (a sealed memfd of `size` bytes) read-only as segment `name`, after the
  /// last one. One line naming the segment and the cause when it must not be used: its
  /// size is not `size`, it is not sealed against writes, growth, shrinking and new seals
  /// (a segment something could still write is no shared constant), or mmap failed. The
  /// descriptor stays open: the caller closes it.
  std::string add(const std::string& name, int fd, uint64_t size);

  /// The object named `name`, searched in the order the segments were added, and its
  /// size in bytes; nullptr when none has it. Any thread, once every add is done: it
  /// takes no lock and writes nothing (the segments are sealed, nothing changes them).
  const void* find(const char* name, size_t* size) const noexcept;

  size_t size() const noexcept { return segments_.size(); }

 private:
  struct Segment;
  std::vector<std::unique_ptr<Segment>> segments_;
};

}  // namespace shoal::detail

#endif
