// Queues task entries on a stream, pipelined, never letting it grow past
// max_stream_length (the back-pressure every producer obeys: `shoal submit` and
// shoal::Client). A command Redis refused for a while (OOM, LOADING) is sent again,
// alone; when the connection is lost the replies of the commands in flight are unknown
// and they are all sent again: a task may then be queued twice under the same id, which
// the readers' de-duplication absorbs.
#ifndef SHOAL_REDIS_SUBMITTER_HPP
#define SHOAL_REDIS_SUBMITTER_HPP

#include "redis/link.hpp"
#include "redis/streams.hpp"

#include <string>
#include <vector>

namespace shoal::detail::redis {

class Submitter {
 public:
  Submitter(Link& link, std::string tasks_key, uint64_t max_stream_length)
      : link_(link), tasks_(std::move(tasks_key)), max_stream_length_(max_stream_length) {}

  /// Queues the batch in order; how many of its entries were queued: fewer than
  /// the batch when an interruption or an error stopped it (link.stopped_by(), fatal()).
  size_t send(const std::vector<Args>& batch);

  const std::string& fatal() const { return fatal_.empty() ? link_.fatal() : fatal_; }

 private:
  Link& link_;
  std::string tasks_;
  uint64_t max_stream_length_;
  std::string fatal_;
};

}  // namespace shoal::detail::redis

#endif  // SHOAL_REDIS_SUBMITTER_HPP
