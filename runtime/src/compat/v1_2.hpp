// compat/v1_2.hpp: the host structs as libshoal 1.2 laid them out, frozen, for the
// SHOAL_1.0 versions of the calls that take or return them (compat/v1_2.cpp; README,
// "What libshoal.so.1 promises a host"). A host built against 1.2 passes these layouts;
// 1.3 appended PoolConfig::shared and PoolStats::shared, so handing such a host today's
// structs would read and write past the end of its objects.
//
// Never edit these: they stand for hosts already built. Their members are the 1.2
// members in 1.2 order; the nested types did not change in 1.3, and the size checks
// below fail the build if one of them ever does (that change needs a node of its own).
// Outside namespace shoal so that libshoal.map's `shoal::*` does not export them.
#ifndef SHOAL_COMPAT_V1_2_HPP
#define SHOAL_COMPAT_V1_2_HPP

#include <shoal/config.hpp>
#include <shoal/runtime.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace shoal_v1_2 {

using shoal::Duration;

struct PoolConfig {
  std::string name;
  std::filesystem::path plugin;
  uint32_t workers = 0;
  std::map<std::string, std::string> params;
  uint64_t max_tasks_per_worker = 0;
  uint64_t max_memory = 0;
  Duration task_timeout{0};
  Duration start_timeout = std::chrono::seconds(30);
  uint32_t retries = 0;
  uint64_t queue_capacity = 4u << 20;
  Duration grace = std::chrono::seconds(5);
  Duration fini_timeout = std::chrono::seconds(2);
  int32_t fini_priority = 100;
  std::map<std::string, std::string> env;
  std::vector<std::string> env_inherit;
  bool env_inherit_all = false;
  std::vector<shoal::ResourceConfig> resources;
  shoal::Limits limits;
  shoal::Sandbox sandbox;
  shoal::SourcePosition plugin_at{};
  std::map<std::string, shoal::ParamPosition> params_at{};
};

struct Config {
  std::filesystem::path source;
  std::vector<PoolConfig> pools;
  shoal::RedisConfig redis;
  shoal::MetricsConfig metrics;
};

struct PoolStats {
  std::chrono::nanoseconds uptime{0};
  std::array<uint64_t, 6> outcomes{};
  uint32_t restarts = 0;
  std::chrono::nanoseconds p50{0}, p99{0};
  shoal::DurationBuckets durations;
  uint64_t queued = 0, in_flight = 0;
  std::array<uint64_t, shoal::kExitCauses> exit_causes{};
  std::vector<shoal::WorkerStats> workers;
  uint32_t generation = 0;
  uint32_t reloads = 0;
  std::string last_reload;
  std::chrono::nanoseconds last_reload_duration{0};
};

// The 1.2 sizes on x86-64 with libstdc++ (measured with 1.2's headers), for the nested
// types too: 1.3 reuses them, so a later change to one would silently change these.
#if defined(__x86_64__) && defined(__GLIBCXX__)
static_assert(sizeof(PoolConfig) == 424 && sizeof(Config) == 344 && sizeof(PoolStats) == 328);
static_assert(sizeof(shoal::ResourceConfig) == 184 && sizeof(shoal::Limits) == 32 &&
              sizeof(shoal::Sandbox) == 32 && sizeof(shoal::RedisConfig) == 240 &&
              sizeof(shoal::MetricsConfig) == 40 && sizeof(shoal::WorkerStats) == 152 &&
              sizeof(shoal::DurationBuckets) == 120);
#endif

/// A 1.2 host's pool config as today's: no `shared:` entries (it cannot have any).
shoal::PoolConfig current(const PoolConfig& old);
/// Today's pool config as a 1.2 host sees it: `shared` left out.
PoolConfig frozen(const shoal::PoolConfig& now);
/// Today's stats as a 1.2 host sees them: `shared` left out.
PoolStats frozen(const shoal::PoolStats& now);
/// A parsed config for a 1.2 host: refused, naming the first pool's `shared:` entry and
/// the rebuild it needs, if a pool uses `shared:` (dropping it would start workers
/// without the data their plugin expects).
shoal::Result<Config> frozen(shoal::Result<shoal::Config>&& now);
/// The same, for Runtime::config()@SHOAL_1.0, which cannot fail: `shared` left out (the
/// runtime's own pools still build and map it; the host only sees less).
Config frozen_view(const shoal::Config& now);

}  // namespace shoal_v1_2

namespace shoal {
/// Runtime::config()@SHOAL_1.0 returns a reference, so the Runtime keeps the 1.2 copy it
/// refers to (built on the first such call): pool/runtime.cpp, a friend of Runtime.
struct RuntimeCompat {
  static const shoal_v1_2::Config& config_1_2(const Runtime& runtime);
};
}  // namespace shoal

#endif  // SHOAL_COMPAT_V1_2_HPP
