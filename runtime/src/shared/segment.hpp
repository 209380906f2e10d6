// A pool's shared read-only data (`shared:`), host side: one sealed memfd per entry,
// built once by a builder process (shoal-worker in the builder role) and handed to every
// worker process of the generations that use it. Owned by shared_ptr: a reload's new
// generation gets a new segment only for an entry that changed, and an old segment
// lives until the last generation (and so the last process) that maps it is gone.
#ifndef SHOAL_SHARED_SEGMENT_HPP
#define SHOAL_SHARED_SEGMENT_HPP

#include "common/fd.hpp"

#include <shoal/config.hpp>
#include <shoal/result.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace shoal::detail {

struct SharedSegment {
  std::string name;            // SharedConfig::name
  Fd fd;                       // the sealed memfd, reopened O_RDONLY: what workers map
  uint64_t size = 0;           // bytes of the memfd (SharedConfig::size)
  uint64_t used = 0;           // bytes the builder used
  Duration build_time{0};      // builder spawn to sealed segment
  uint32_t generation = 0;     // the pool generation that built it
  // What the build depended on (the entry's config and the builder file's identity): a
  // reload rebuilds an entry only when this differs.
  std::string stamp;
};
using SharedSegmentPtr = std::shared_ptr<const SharedSegment>;

/// What a build needs besides its entry.
struct SharedBuildSite {
  std::string worker_exe;        // shoal-worker, started in the builder role
  const PoolConfig* pool = nullptr;  // its limits, sandbox, env and start_timeout apply to the builder
  uint32_t generation = 0;
  int cancel_fd = -1;            // readable: stop the build (RuntimeOptions::start_cancel_fd)
};

/// Builds `entry` in a builder process and seals it. Runs in the calling thread (never
/// the pool's loop thread: a build may take seconds). Fails with one line naming the
/// entry and the cause (Errc::plugin: the builder refused, crashed, named nothing or
/// overflowed `size`; Errc::timeout: past start_timeout; Errc::cancelled; Errc::ipc).
/// Nothing is left behind on failure: no process, no descriptor.
Result<SharedSegmentPtr> build_shared(const SharedConfig& entry, const SharedBuildSite& site);

/// SharedSegment::stamp of `entry` as it is now.
std::string shared_stamp(const SharedConfig& entry);

}  // namespace shoal::detail

#endif
