// The SHOAL_1.0 versions of the calls whose structs grew in 1.3 (compat/v1_2.hpp). A host
// linked against 1.2 bound these names at version SHOAL_1.0 and passes 1.2 layouts; a
// host linked against 1.3 binds the default versions, SHOAL_1.3 (runtime/libshoal.map).
// Each entry below converts and calls the 1.3 function.
//
// The entries are members of stand-in classes with the real classes' (empty) layout, so
// that `this` and a returned object travel exactly as the host's call passes them; only
// the symver attribute gives them the host's names. They have default visibility, or the
// versioned alias would stay hidden; their own names are outside `shoal::`, so the
// version script keeps those local. GCC 12 ignores [[gnu::symver]] without a word (the
// GNU spelling is the one it applies).
#include "compat/v1_2.hpp"

#include "common/printable.hpp"

#include <memory>
#include <string>
#include <utility>

namespace shoal_v1_2 {
namespace {

// Every member 1.2 had, in one place, for both directions.
template <class To, class From>
To copy_1_2_members(const From& from) {
  To to;
  to.name = from.name;
  to.plugin = from.plugin;
  to.workers = from.workers;
  to.params = from.params;
  to.max_tasks_per_worker = from.max_tasks_per_worker;
  to.max_memory = from.max_memory;
  to.task_timeout = from.task_timeout;
  to.start_timeout = from.start_timeout;
  to.retries = from.retries;
  to.queue_capacity = from.queue_capacity;
  to.grace = from.grace;
  to.fini_timeout = from.fini_timeout;
  to.fini_priority = from.fini_priority;
  to.env = from.env;
  to.env_inherit = from.env_inherit;
  to.env_inherit_all = from.env_inherit_all;
  to.resources = from.resources;
  to.limits = from.limits;
  to.sandbox = from.sandbox;
  to.plugin_at = from.plugin_at;
  to.params_at = from.params_at;
  return to;
}

}  // namespace

shoal::PoolConfig current(const PoolConfig& old) { return copy_1_2_members<shoal::PoolConfig>(old); }

PoolConfig frozen(const shoal::PoolConfig& now) { return copy_1_2_members<PoolConfig>(now); }

PoolStats frozen(const shoal::PoolStats& now) {
  PoolStats old;
  old.uptime = now.uptime;
  old.outcomes = now.outcomes;
  old.restarts = now.restarts;
  old.p50 = now.p50;
  old.p99 = now.p99;
  old.durations = now.durations;
  old.queued = now.queued;
  old.in_flight = now.in_flight;
  old.exit_causes = now.exit_causes;
  old.workers = now.workers;
  old.generation = now.generation;
  old.reloads = now.reloads;
  old.last_reload = now.last_reload;
  old.last_reload_duration = now.last_reload_duration;
  return old;
}

Config frozen_view(const shoal::Config& now) {
  Config old;
  old.source = now.source;
  old.pools.reserve(now.pools.size());
  for (const auto& pool : now.pools) old.pools.push_back(frozen(pool));
  old.redis = now.redis;
  old.metrics = now.metrics;
  return old;
}

shoal::Result<Config> frozen(shoal::Result<shoal::Config>&& now) {
  if (!now) return now.error();
  for (const auto& pool : now->pools) {
    if (pool.shared.empty()) continue;
    const shoal::SharedConfig& entry = pool.shared.front();
    return shoal::Error{shoal::Errc::config,
                        shoal::detail::printable(now->source.string()) + ":" + std::to_string(entry.builder_at.line) +
                            ":" + std::to_string(entry.builder_at.column) + ": pool '" +
                            shoal::detail::printable(pool.name) + "' uses shared: ('" +
                            shoal::detail::printable(entry.name) +
                            "'), which this program cannot see: it was built against libshoal 1.2; "
                            "rebuild it against libshoal 1.3 or later to use shared:"};
  }
  return frozen_view(*now);
}

// Stand-ins for shoal::Pool and shoal::Runtime: no data members, like the real classes
// as far as a caller can tell (each holds one pointer that only libshoal reads).
class __attribute__((visibility("default"))) PoolAbi {
 public:
  __attribute__((symver("_ZN5shoal4Pool5startERKNS_10PoolConfigERKNS_14RuntimeOptionsE@SHOAL_1.0")))
  static shoal::Result<std::unique_ptr<shoal::Pool>> start(const PoolConfig& config,
                                                          const shoal::RuntimeOptions& options);
  // A 1.2 host cannot name shared data, so its reload keeps the pool's: dropping it
  // would take from the next generation what the plugin was built to find.
  __attribute__((symver("_ZN5shoal4Pool6reloadERKNS_10PoolConfigE@SHOAL_1.0")))
  shoal::Result<void> reload(const PoolConfig& config);
  __attribute__((symver("_ZNK5shoal4Pool6configEv@SHOAL_1.0"))) PoolConfig config() const;
  __attribute__((symver("_ZNK5shoal4Pool5statsEv@SHOAL_1.0"))) PoolStats stats() const;

 private:
  shoal::Pool* pool() { return reinterpret_cast<shoal::Pool*>(this); }
  const shoal::Pool* pool() const { return reinterpret_cast<const shoal::Pool*>(this); }
};

shoal::Result<std::unique_ptr<shoal::Pool>> PoolAbi::start(const PoolConfig& config,
                                                           const shoal::RuntimeOptions& options) {
  return shoal::Pool::start(current(config), options);
}

shoal::Result<void> PoolAbi::reload(const PoolConfig& config) {
  shoal::PoolConfig next = current(config);
  next.shared = pool()->config().shared;
  return pool()->reload(next);
}

PoolConfig PoolAbi::config() const { return frozen(pool()->config()); }

PoolStats PoolAbi::stats() const { return frozen(pool()->stats()); }

class __attribute__((visibility("default"))) RuntimeAbi {
 public:
  __attribute__((symver("_ZNK5shoal7Runtime6configEv@SHOAL_1.0"))) const Config& config() const noexcept;
};

const Config& RuntimeAbi::config() const noexcept {
  return shoal::RuntimeCompat::config_1_2(*reinterpret_cast<const shoal::Runtime*>(this));
}

__attribute__((symver("_ZN5shoal16load_config_fileERKNSt10filesystem7__cxx114pathE@SHOAL_1.0")))
__attribute__((visibility("default"))) shoal::Result<Config> load_config_file(const std::filesystem::path& file) {
  return frozen(shoal::load_config_file(file));
}

__attribute__((symver(
    "_ZN5shoal18load_config_stringESt17basic_string_viewIcSt11char_traitsIcEERKNSt7__cxx1112basic_stringIcS2_"
    "SaIcEEERKNSt10filesystem7__cxx114pathE@SHOAL_1.0")))
__attribute__((visibility("default"))) shoal::Result<Config> load_config_string(std::string_view yaml,
                                                                                const std::string& source,
                                                                                const std::filesystem::path& base_dir) {
  return frozen(shoal::load_config_string(yaml, source, base_dir));
}

}  // namespace shoal_v1_2
