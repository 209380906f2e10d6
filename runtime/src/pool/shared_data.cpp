// A pool's shared read-only data, pool side: which segments a generation gets (built
// before the first worker of Pool::start, or before a reload is queued, in the caller's
// thread: a build may take seconds and the loop must keep serving), and what the stats
// say about the segments the live processes map.
#include "pool/pool_impl.hpp"

#include <algorithm>
#include <map>

namespace shoal {

using namespace detail;

namespace detail {

Result<std::vector<SharedSegmentPtr>> shared_segments(const PoolConfig& config, const SharedBuildSite& site,
                                                      const std::vector<SharedSegmentPtr>& reuse) {
  // The YAML's own bound (config.cpp); a PoolConfig made in code meets it here, before
  // anything is built: each segment takes one of the worker's descriptor numbers.
  if (config.shared.size() > kWorkerMaxShared)
    return Error{Errc::config, std::to_string(config.shared.size()) + " shared entries, more than the " +
                                   std::to_string(kWorkerMaxShared) + " a pool may have"};
  std::vector<SharedSegmentPtr> out;
  for (const SharedConfig& entry : config.shared) {
    // An entry whose config and builder file are as they were keeps its segment: its
    // workers of both generations map one copy, and nothing runs the builder again.
    const std::string stamp = shared_stamp(entry);
    const auto same = std::find_if(reuse.begin(), reuse.end(), [&](const SharedSegmentPtr& s) {
      return s->name == entry.name && s->stamp == stamp;
    });
    if (same != reuse.end()) {
      out.push_back(*same);
      continue;
    }
    auto built = build_shared(entry, site);
    if (!built) return built.error();  // those built so far close with `out`
    out.push_back(std::move(*built));
  }
  return out;
}

}  // namespace detail

Result<std::vector<SharedSegmentPtr>> Pool::Impl::build_for_reload(const PoolConfig& next) {
  GenerationPtr now;
  {
    std::lock_guard lock(mu);
    now = published_generation;
  }
  // The number the reload's generation will most likely get (the loop hands it out as the
  // roll begins): only a label in the stats, so a concurrent reload taking it is harmless.
  const SharedBuildSite build{site.exe, &next, last_generation.load(std::memory_order_relaxed) + 1, -1};
  return shared_segments(next, build, now->shared);
}

void Pool::Impl::publish_generation() {
  {
    std::lock_guard lock(mu);
    published_generation = generation;
  }
  publish_shared();
}

void Pool::Impl::publish_shared() {
  // The current generation's segments first (listed even before a process maps them),
  // then those only older processes still map, each once with the live processes that
  // map it: a process holds its generation, the generation its segments.
  std::vector<SharedStats> out;
  std::map<const SharedSegment*, size_t> at;
  auto add = [&](const SharedSegmentPtr& seg) {
    auto [it, fresh] = at.emplace(seg.get(), out.size());
    if (!fresh) return it->second;
    out.push_back({seg->name, seg->generation, seg->size, seg->used,
                   std::chrono::duration_cast<std::chrono::nanoseconds>(seg->build_time), 0});
    return out.size() - 1;
  };
  for (const auto& seg : generation->shared) add(seg);
  for (const auto& p : procs)
    for (const auto& seg : p->generation().shared) ++out[add(seg)].mappings;
  counters->set_shared(std::move(out));
}

}  // namespace shoal
