#include <shoal/runtime.hpp>

#include "compat/v1_2.hpp"
#include "config/values.hpp"

#include <map>
#include <mutex>
#include <string_view>
#include <vector>

namespace shoal {

struct Runtime::State {
  Config config;
  RuntimeOptions options;
  std::mutex mu;
  std::map<std::string, std::unique_ptr<Pool>, std::less<>> pools;
  // A pool that failed to start stays failed: asking again must not spawn its workers
  // (and run their inits) once more.
  std::map<std::string, Error, std::less<>> failed;
  // Runtime::config()@SHOAL_1.0 hands a 1.2 host a reference into this, which must live
  // as long as the Runtime; built on the first such call only (a 1.3 host never pays).
  std::once_flag config_1_2_once;
  std::unique_ptr<const shoal_v1_2::Config> config_1_2;
};

Runtime::Runtime(Config config, RuntimeOptions options) : state_(std::make_unique<State>()) {
  state_->config = std::move(config);
  state_->options = std::move(options);
}
Runtime::Runtime(Runtime&&) noexcept = default;
Runtime& Runtime::operator=(Runtime&&) noexcept = default;
// Pools are destroyed in reverse start order; each one that was not joined terminates.
Runtime::~Runtime() = default;

Result<Runtime> Runtime::from_file(const std::filesystem::path& file, RuntimeOptions options) {
  auto config = load_config_file(file);
  if (!config) return config.error();
  return Runtime(std::move(*config), std::move(options));
}

Result<Runtime> Runtime::from_string(std::string_view yaml, const std::filesystem::path& base_dir,
                                     RuntimeOptions options) {
  auto config = load_config_string(yaml, "<string>", base_dir);
  if (!config) return config.error();
  return Runtime(std::move(*config), std::move(options));
}

const Config& Runtime::config() const noexcept { return state_->config; }

const shoal_v1_2::Config& RuntimeCompat::config_1_2(const Runtime& runtime) {
  Runtime::State& state = *runtime.state_;
  std::call_once(state.config_1_2_once, [&state] {
    state.config_1_2 = std::make_unique<const shoal_v1_2::Config>(shoal_v1_2::frozen_view(state.config));
  });
  return *state.config_1_2;
}

Result<Pool*> Runtime::pool(std::string_view name) {
  std::lock_guard lock(state_->mu);
  if (auto it = state_->pools.find(name); it != state_->pools.end()) return it->second.get();
  if (auto it = state_->failed.find(name); it != state_->failed.end()) return it->second;
  for (const auto& pc : state_->config.pools) {
    if (pc.name != name) continue;
    auto pool = Pool::start(pc, state_->options);
    if (!pool) {
      state_->failed.emplace(pc.name, pool.error());
      return pool.error();
    }
    Pool* raw = pool->get();
    state_->pools.emplace(pc.name, std::move(*pool));
    return raw;
  }
  std::string names;
  std::vector<std::string_view> candidates;
  for (const auto& pc : state_->config.pools) {
    names += (names.empty() ? "" : ", ") + pc.name;
    candidates.push_back(pc.name);
  }
  return Error{Errc::not_found,
               "no pool named '" + std::string(name) + "'" + detail::did_you_mean(name, candidates) + " (pools: " + names + ")"};
}

}  // namespace shoal
