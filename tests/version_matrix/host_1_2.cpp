// host_1_2 WORKER ECHO_PLUGIN: an application built against shoal 1.2's headers (frozen in
// host_1_2/shoal/) and linked as against libshoal 1.2 (every call bound at SHOAL_1.0),
// run on this build's libshoal.so.1. It passes and receives the 1.2 layouts of
// PoolConfig, Config and PoolStats, which 1.3 grew: only the SHOAL_1.0 versions in
// runtime/src/compat keep these calls working. Prints "FAIL: ..." for each check that does
// not hold and exits 1; exits 0 when all hold.
#include <shoal/runtime.hpp>

#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  if (ok) return;
  std::cout << "FAIL: " << what << '\n';
  ++failures;
}

uint64_t ok_count(const shoal::PoolStats& stats) { return stats.outcomes[static_cast<size_t>(shoal::Status::ok)]; }

// Runs `count` tasks and checks each came back ok with its input, from `generation`.
void run_tasks(shoal::Pool& pool, int count, uint32_t generation, const std::string& label) {
  std::vector<std::string> inputs;
  for (int i = 0; i < count; ++i) inputs.push_back(label + " " + std::to_string(i));
  const std::vector<shoal::Outcome> outcomes = pool.map(inputs);
  check(outcomes.size() == inputs.size(), label + ": map returned " + std::to_string(outcomes.size()) + " outcomes");
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const shoal::Outcome& o = outcomes[i];
    check(o.status == shoal::Status::ok && o.output == inputs[i] && o.generation == generation,
          label + ": task " + std::to_string(i) + " is " + std::string(shoal::to_string(o.status)) + " '" + o.output +
              "' " + o.error + " (generation " + std::to_string(o.generation) + ")");
  }
}

void check_pool_config(const shoal::PoolConfig& got, const shoal::PoolConfig& want, const std::string& label) {
  check(got.name == want.name, label + ": name '" + got.name + "'");
  check(got.plugin == want.plugin, label + ": plugin '" + got.plugin.string() + "'");
  check(got.workers == want.workers, label + ": workers " + std::to_string(got.workers));
  check(got.max_tasks_per_worker == want.max_tasks_per_worker,
        label + ": max_tasks_per_worker " + std::to_string(got.max_tasks_per_worker));
  check(got.task_timeout == want.task_timeout && got.start_timeout == want.start_timeout && got.grace == want.grace,
        label + ": task_timeout, start_timeout or grace");
  check(got.retries == want.retries && got.queue_capacity == want.queue_capacity &&
            got.fini_priority == want.fini_priority,
        label + ": retries, queue_capacity or fini_priority");
  check(got.env == want.env && got.env_inherit == want.env_inherit, label + ": env or env_inherit");
  check(got.limits.core_dumps == want.limits.core_dumps && got.limits.open_files == want.limits.open_files,
        label + ": limits");
  check(got.plugin_at.line == want.plugin_at.line && got.plugin_at.column == want.plugin_at.column,
        label + ": plugin_at " + std::to_string(got.plugin_at.line) + ":" + std::to_string(got.plugin_at.column));
}

// Pool::start, map, stats, config and reload with a PoolConfig built in code.
void pool_in_code(const shoal::RuntimeOptions& options, const std::string& plugin) {
  shoal::PoolConfig config;
  config.name = "host12";
  config.plugin = plugin;
  config.workers = 2;
  config.max_tasks_per_worker = 1000;
  config.task_timeout = std::chrono::seconds(20);
  config.start_timeout = std::chrono::seconds(20);
  config.retries = 1;
  config.queue_capacity = 1u << 20;
  config.fini_priority = 70;
  config.env = {{"HOST12_A", "one"}, {"HOST12_B", "two"}};
  config.env_inherit = {"HOST12_NONE"};
  config.limits.open_files = 512;
  config.plugin_at = {3, 5};
  auto started = shoal::Pool::start(config, options);
  if (!started) {
    check(false, "Pool::start: " + started.error().message);
    return;
  }
  shoal::Pool& pool = **started;
  run_tasks(pool, 40, 0, "start");
  const shoal::PoolStats stats = pool.stats();
  check(ok_count(stats) == 40, "stats: " + std::to_string(ok_count(stats)) + " ok outcomes, not 40");
  check(stats.workers.size() == 2, "stats: " + std::to_string(stats.workers.size()) + " worker slots, not 2");
  uint64_t tasks = 0;
  for (const auto& w : stats.workers) tasks += w.tasks;
  check(tasks == 40, "stats: the worker slots ran " + std::to_string(tasks) + " tasks, not 40");
  check(stats.generation == 0 && stats.reloads == 0 && stats.last_reload.empty(),
        "stats before a reload: generation " + std::to_string(stats.generation) + ", last_reload '" +
            stats.last_reload + "'");
  check_pool_config(pool.config(), config, "config()");

  shoal::PoolConfig next = pool.config();
  next.max_tasks_per_worker = 500;
  next.env["HOST12_A"] = "uno";
  auto reloaded = pool.reload(next);
  check(reloaded.ok(), "reload: " + (reloaded ? std::string() : reloaded.error().message));
  run_tasks(pool, 10, 1, "reload");
  const shoal::PoolStats after = pool.stats();
  check(after.generation == 1 && after.reloads == 1 && after.last_reload == "ok",
        "stats after a reload: generation " + std::to_string(after.generation) + ", reloads " +
            std::to_string(after.reloads) + ", last_reload '" + after.last_reload + "'");
  check(ok_count(after) == 50, "stats after a reload: " + std::to_string(ok_count(after)) + " ok outcomes, not 50");
  check_pool_config(pool.config(), next, "config() after reload");
  pool.close();
  pool.join();
  check(pool.live_workers() == 0, "join left " + std::to_string(pool.live_workers()) + " workers");
}

std::string yaml_for(const std::string& plugin, const std::string& extra) {
  return "pools:\n  y12:\n    plugin: " + plugin + "\n    workers: 2\n    env: {HOST12_C: three}\n" + extra +
         "redis:\n  stream: host12:tasks\n";
}

// load_config_string and Runtime: a Config of 1.2 layout out of YAML.
void config_from_yaml(const shoal::RuntimeOptions& options, const std::string& plugin) {
  auto loaded = shoal::load_config_string(yaml_for(plugin, ""), "host12.yaml", "/");
  if (!loaded) {
    check(false, "load_config_string: " + loaded.error().message);
  } else {
    check(loaded->pools.size() == 1, "load_config_string: " + std::to_string(loaded->pools.size()) + " pools");
    if (loaded->pools.size() == 1) {
      const shoal::PoolConfig& p = loaded->pools[0];
      check(p.name == "y12" && p.plugin == plugin && p.workers == 2, "load_config_string: pool '" + p.name +
                                                                         "' plugin '" + p.plugin.string() + "'");
      check(p.env.size() == 1 && p.env.count("HOST12_C") == 1 && p.env.at("HOST12_C") == "three",
            "load_config_string: env");
      check(p.plugin_at.line == 3 && p.plugin_at.column == 13, "load_config_string: plugin_at " +
                                                                    std::to_string(p.plugin_at.line) + ":" +
                                                                    std::to_string(p.plugin_at.column));
    }
    check(loaded->source == "host12.yaml", "load_config_string: source '" + loaded->source.string() + "'");
    check(loaded->redis.stream == "host12:tasks" && loaded->redis.group == "shoal",
          "load_config_string: redis stream '" + loaded->redis.stream + "' group '" + loaded->redis.group + "'");
  }
  // shared: is 1.3: this host could not see the entries, so the load must refuse the file.
  auto with_shared = shoal::load_config_string(
      yaml_for(plugin, "    shared:\n      - name: words\n        builder: " + plugin + "\n        size: 1MiB\n"),
      "shared.yaml", "/");
  check(!with_shared, "load_config_string accepted a shared: list this host cannot see");
  if (!with_shared) {
    const std::string& message = with_shared.error().message;
    check(message.find("shared.yaml:") == 0 && message.find("shared") != std::string::npos,
          "load_config_string with shared: says '" + message + "'");
  }

  auto runtime = shoal::Runtime::from_string(yaml_for(plugin, ""), "/", options);
  if (!runtime) {
    check(false, "Runtime::from_string: " + runtime.error().message);
    return;
  }
  const shoal::Config& config = runtime->config();
  check(&config == &runtime->config(), "Runtime::config() moved between two calls");
  check(config.pools.size() == 1 && config.pools[0].name == "y12" && config.pools[0].workers == 2 &&
            config.pools[0].plugin == plugin,
        "Runtime::config(): pools");
  check(config.redis.stream == "host12:tasks", "Runtime::config(): redis stream '" + config.redis.stream + "'");
  auto pool = runtime->pool("y12");
  if (!pool) {
    check(false, "Runtime::pool: " + pool.error().message);
    return;
  }
  run_tasks(**pool, 20, 0, "runtime");
  const shoal::PoolStats stats = (*pool)->stats();
  check(ok_count(stats) == 20 && stats.workers.size() == 2,
        "runtime pool stats: " + std::to_string(ok_count(stats)) + " ok outcomes, " +
            std::to_string(stats.workers.size()) + " slots");
  check((*pool)->config().env.count("HOST12_C") == 1, "runtime pool config(): env");
  (*pool)->close();
  (*pool)->join();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: host_1_2 WORKER ECHO_PLUGIN\n";
    return 2;
  }
  shoal::RuntimeOptions options;
  options.worker_path = argv[1];
  options.keep_host_dumpable = true;
  pool_in_code(options, argv[2]);
  config_from_yaml(options, argv[2]);
  if (failures == 0) std::cout << "a host built against 1.2 ran on this libshoal: every check held\n";
  return failures == 0 ? 0 : 1;
}
