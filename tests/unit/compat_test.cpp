// The 1.2 layouts behind libshoal's SHOAL_1.0 versions (runtime/src/compat): what a host
// built against 1.2 gets and gives. tests/version_matrix/host_1_2 runs such a host; these
// check the conversions, including the `shared:` refusal, which that host can only reach
// once the config format has `shared:`.
#include "compat/v1_2.hpp"

#include <catch2/catch.hpp>

namespace {

shoal::PoolConfig sample_pool() {
  shoal::PoolConfig p;
  p.name = "p";
  p.plugin = "/plugins/echo.so";
  p.workers = 3;
  p.params = {{"k", "v"}};
  p.max_tasks_per_worker = 9;
  p.max_memory = 1u << 30;
  p.task_timeout = std::chrono::seconds(4);
  p.start_timeout = std::chrono::seconds(6);
  p.retries = 2;
  p.queue_capacity = 1u << 16;
  p.grace = std::chrono::seconds(1);
  p.fini_timeout = std::chrono::milliseconds(300);
  p.fini_priority = 7;
  p.env = {{"A", "1"}};
  p.env_inherit = {"HOME"};
  p.env_inherit_all = true;
  p.resources.push_back({"db", "/r.so", 5, {{"path", "x"}}, {2, 3}, {}});
  p.limits.open_files = 64;
  p.sandbox.enabled = true;
  p.sandbox.filesystem.push_back({"/data", true});
  p.plugin_at = {4, 11};
  p.params_at = {{"k", {{5, 7}, {5, 10}}}};
  return p;
}

void require_same_1_2_members(const shoal::PoolConfig& a, const shoal::PoolConfig& b) {
  CHECK(a.name == b.name);
  CHECK(a.plugin == b.plugin);
  CHECK(a.workers == b.workers);
  CHECK(a.params == b.params);
  CHECK(a.max_tasks_per_worker == b.max_tasks_per_worker);
  CHECK(a.max_memory == b.max_memory);
  CHECK(a.task_timeout == b.task_timeout);
  CHECK(a.start_timeout == b.start_timeout);
  CHECK(a.retries == b.retries);
  CHECK(a.queue_capacity == b.queue_capacity);
  CHECK(a.grace == b.grace);
  CHECK(a.fini_timeout == b.fini_timeout);
  CHECK(a.fini_priority == b.fini_priority);
  CHECK(a.env == b.env);
  CHECK(a.env_inherit == b.env_inherit);
  CHECK(a.env_inherit_all == b.env_inherit_all);
  REQUIRE(a.resources.size() == b.resources.size());
  CHECK(a.resources[0].name == b.resources[0].name);
  CHECK(a.resources[0].module == b.resources[0].module);
  CHECK(a.resources[0].priority == b.resources[0].priority);
  CHECK(a.resources[0].params == b.resources[0].params);
  CHECK(a.resources[0].module_at.line == b.resources[0].module_at.line);
  CHECK(a.limits.open_files == b.limits.open_files);
  CHECK(a.sandbox.enabled == b.sandbox.enabled);
  REQUIRE(a.sandbox.filesystem.size() == b.sandbox.filesystem.size());
  CHECK(a.sandbox.filesystem[0].path == b.sandbox.filesystem[0].path);
  CHECK(a.sandbox.filesystem[0].write == b.sandbox.filesystem[0].write);
  CHECK(a.plugin_at.line == b.plugin_at.line);
  CHECK(a.plugin_at.column == b.plugin_at.column);
  REQUIRE(a.params_at.size() == b.params_at.size());
  CHECK(a.params_at.at("k").value.column == b.params_at.at("k").value.column);
}

}  // namespace

TEST_CASE("compat: a pool config goes to the 1.2 layout and back with every 1.2 member", "[unit][compat]") {
  shoal::PoolConfig now = sample_pool();
  now.shared.push_back({"words", "/b.so", 1u << 20, {}, {6, 13}, {7, 10}, {}});
  const shoal_v1_2::PoolConfig old = shoal_v1_2::frozen(now);
  const shoal::PoolConfig back = shoal_v1_2::current(old);
  require_same_1_2_members(back, now);
  CHECK(back.shared.empty());
}

TEST_CASE("compat: stats in the 1.2 layout keep every 1.2 member", "[unit][compat]") {
  shoal::PoolStats now;
  now.uptime = std::chrono::seconds(3);
  now.outcomes = {1, 2, 3, 4, 5, 6};
  now.restarts = 7;
  now.p50 = std::chrono::microseconds(8);
  now.p99 = std::chrono::microseconds(9);
  now.durations.cumulative[2] = 10;
  now.durations.sum = std::chrono::milliseconds(11);
  now.queued = 12;
  now.in_flight = 13;
  now.exit_causes = {14, 15, 16, 17, 18};
  now.workers.resize(2);
  now.workers[1].tasks = 19;
  now.generation = 20;
  now.reloads = 21;
  now.last_reload = "ok";
  now.last_reload_duration = std::chrono::milliseconds(22);
  now.shared.push_back({"words", 1, 100, 50, std::chrono::milliseconds(5), 2});
  const shoal_v1_2::PoolStats old = shoal_v1_2::frozen(now);
  CHECK(old.uptime == now.uptime);
  CHECK(old.outcomes == now.outcomes);
  CHECK(old.restarts == 7);
  CHECK(old.p50 == now.p50);
  CHECK(old.p99 == now.p99);
  CHECK(old.durations.cumulative == now.durations.cumulative);
  CHECK(old.durations.sum == now.durations.sum);
  CHECK(old.queued == 12);
  CHECK(old.in_flight == 13);
  CHECK(old.exit_causes == now.exit_causes);
  REQUIRE(old.workers.size() == 2);
  CHECK(old.workers[1].tasks == 19);
  CHECK(old.generation == 20);
  CHECK(old.reloads == 21);
  CHECK(old.last_reload == "ok");
  CHECK(old.last_reload_duration == now.last_reload_duration);
}

TEST_CASE("compat: a 1.2 host's load refuses a pool with shared entries and says to rebuild", "[unit][compat]") {
  shoal::Config config;
  config.source = "/etc/app.yaml";
  config.pools.push_back(sample_pool());
  config.pools.push_back(sample_pool());
  config.pools[1].name = "q";
  config.pools[1].shared.push_back({"words", "/b.so", 1u << 20, {}, {14, 18}, {15, 15}, {}});
  const auto old = shoal_v1_2::frozen(shoal::Result<shoal::Config>(config));
  REQUIRE_FALSE(old);
  CHECK(old.error().code == shoal::Errc::config);
  CHECK(old.error().message ==
        "/etc/app.yaml:14:18: pool 'q' uses shared: ('words'), which this program cannot see: it was built "
        "against libshoal 1.2; rebuild it against libshoal 1.3 or later to use shared:");
  // The same config without it loads, every pool and section carried over.
  config.pools[1].shared.clear();
  config.redis.stream = "s";
  config.metrics.listen = ":9464";
  const auto loaded = shoal_v1_2::frozen(shoal::Result<shoal::Config>(config));
  REQUIRE(loaded);
  CHECK(loaded->source == config.source);
  REQUIRE(loaded->pools.size() == 2);
  require_same_1_2_members(shoal_v1_2::current(loaded->pools[1]), config.pools[1]);
  CHECK(loaded->redis.stream == "s");
  CHECK(loaded->metrics.listen == ":9464");
  // An error passes through as it is.
  const auto failed = shoal_v1_2::frozen(shoal::Result<shoal::Config>(shoal::Error{shoal::Errc::io, "cannot read"}));
  REQUIRE_FALSE(failed);
  CHECK(failed.error().code == shoal::Errc::io);
  CHECK(failed.error().message == "cannot read");
}
