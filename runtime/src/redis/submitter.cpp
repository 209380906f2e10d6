#include "redis/submitter.hpp"

#include <algorithm>
#include <numeric>

namespace shoal::detail::redis {

size_t Submitter::send(const std::vector<Args>& batch) {
  // The commands not yet known to be queued, in input order.
  std::vector<size_t> todo(batch.size());
  std::iota(todo.begin(), todo.end(), size_t{0});
  size_t done = 0;
  bool waiting_reported = false;
  Backoff wait(std::chrono::milliseconds(20), std::chrono::seconds(1));
  while (!todo.empty()) {
    if (!link_ && !link_.reconnect()) break;
    auto len = link_.conn().command({"XLEN", tasks_});
    if (!len) {
      link_.lost(len.error());
      continue;
    }
    if (!len->view().is_integer()) {
      fatal_ = "XLEN " + tasks_ + ": " + len->view().error_text();
      return done;
    }
    link_.ok();
    const auto held = static_cast<uint64_t>(std::max<long long>(0, len->view().integer()));
    if (held >= max_stream_length_) {
      if (!waiting_reported) {
        waiting_reported = true;
        link_.say(false, link_.name() + ": " + tasks_ + " holds " + std::to_string(held) +
                             " entries (redis.max_stream_length " + std::to_string(max_stream_length_) +
                             "): waiting");
      }
      if (!link_.pause(wait.next())) break;
      continue;
    }
    wait.reset();
    const size_t room = static_cast<size_t>(std::min<uint64_t>(max_stream_length_ - held, todo.size()));
    std::vector<Args> chunk;
    chunk.reserve(room);
    for (size_t i = 0; i < room; ++i) chunk.push_back(batch[todo[i]]);
    auto replies = link_.conn().pipeline(chunk);
    if (!replies) {
      link_.lost(replies.error());
      continue;
    }
    // Each command stands alone: the ones Redis took are queued, only those it refused
    // for a while go again (sending the whole chunk again would queue the rest twice).
    std::vector<size_t> again;
    std::string refusal;
    for (size_t i = 0; i < room; ++i) {
      const Reply& r = (*replies)[i];
      if (!r.is_error()) {
        ++done;
        continue;
      }
      if (!is_transient(r.view())) {
        fatal_ = "XADD " + tasks_ + ": " + std::string(r.str());
        return done;
      }
      again.push_back(todo[i]);
      refusal = std::string(r.str());
    }
    again.insert(again.end(), todo.begin() + static_cast<std::ptrdiff_t>(room), todo.end());
    todo = std::move(again);
    if (!refusal.empty()) {
      link_.lost("XADD " + tasks_ + ": " + refusal);
      continue;
    }
    link_.ok();
  }
  return done;
}

}  // namespace shoal::detail::redis
