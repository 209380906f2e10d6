// The largest task input a pool takes, and the one message that refuses a larger one.
// The pool's submit checks every input against it; `shoal run` uses it to stop buffering
// an input line that could never become a task (an endless line would otherwise grow
// the host until bad_alloc).
#ifndef SHOAL_POOL_INPUT_LIMIT_HPP
#define SHOAL_POOL_INPUT_LIMIT_HPP

#include "ipc/layout.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace shoal::detail {

/// The largest input of a pool whose `queue.capacity` is `queue_capacity`.
inline uint64_t max_input(uint64_t queue_capacity) {
  return max_payload(SegmentLayout::round_capacity(queue_capacity));
}

/// Why an input of `bytes` is `rejected` by pool `pool` whose limit is `limit`: the size,
/// the limit and the key that raises it.
inline std::string too_large_message(uint64_t bytes, uint64_t limit, std::string_view pool) {
  return "input of " + std::to_string(bytes) + " bytes exceeds the task ring limit of " + std::to_string(limit) +
         " bytes (raise pools." + std::string(pool) + ".queue.capacity)";
}

}  // namespace shoal::detail

#endif
