// The version matrix (tests/version_matrix/README.md): plugins built against the frozen
// ABI 1.0 or 1.1 header, claiming 1.0, 1.1, 1.2 or 2.0, each loaded by today's worker in a
// real pool, or refused with its one line, as sdk/docs/plugin-abi.md ("Versions") says.
#include "support/json_rows.hpp"
#include "support/test_env.hpp"

#include <shoal/plugin.h>
#include <shoal/runtime.hpp>

#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

using namespace shoal;
using namespace shoal::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string matrix(const std::string& name) { return std::string(SHOAL_FX_DIR) + "/matrix/" + name + ".so"; }

// Two workers of `plugin` with the 1.0 resource module open, each leaving its trail.
PoolConfig matrix_pool(const std::string& plugin, const fs::path& trail) {
  PoolConfig config = pool_config(plugin, 2);
  config.params["trail"] = trail.string();
  config.params["resource"] = "store";
  ResourceConfig store;
  store.name = "store";
  store.module = matrix("vm_resource_1_0");
  store.params["tag"] = "v1.0";
  config.resources.push_back(store);
  return config;
}

std::string version_text(uint32_t v) { return std::to_string(v >> 16) + "." + std::to_string(v & 0xffff); }

// A plugin of major 1 that this worker accepts: every 1.0 host member works, a member
// of a later minor is present exactly when this worker has it (1.1's host->shared: yes;
// 1.2: no), and each worker runs init, then the finalizer it registered (priority 200),
// then fini.
void runs_with_the_1_0_table(const std::string& plugin, const std::string& built) {
  TempDir dir;
  const fs::path trail = dir.path() / "trail";
  std::vector<int> pids;
  {
    auto pool = start_pool(matrix_pool(plugin, trail));
    pids = pool->worker_pids();
    const std::vector<std::string> inputs = {"a", "bb", "fail", "ccc"};
    auto outcomes = pool->map(inputs);
    REQUIRE(outcomes.size() == inputs.size());
    // The worker's table as this build defines it: 1.0's 80 bytes, 1.1's host->shared
    // (88), nothing of 1.2 yet.
    static_assert(sizeof(shoal_host) == 88, "a new minor: add its row to the matrix");
    const std::string tail = "\\|built " + built + "\\|host " + version_text(SHOAL_ABI_VERSION) + " size " +
                             std::to_string(sizeof(shoal_host)) +
                             "\\|1\\.1 member: present\\|1\\.2 member: absent\\|store=v1\\.0\\|worker [01]$";
    for (size_t i : {0u, 1u, 3u}) {
      INFO(inputs[i] << ": " << outcomes[i].output << outcomes[i].error);
      CHECK(outcomes[i].status == Status::ok);
      CHECK(std::regex_search(outcomes[i].output, std::regex("^" + inputs[i] + tail)));
    }
    CHECK(outcomes[2].status == Status::error);
    CHECK(outcomes[2].error == "matrix plugin: asked to fail");
    pool->close();
    pool->join();
  }
  CHECK(all_gone(pids));
  auto lines = lines_of(read_file(trail));
  INFO(read_file(trail));
  CHECK(lines.size() == 6);
  for (const char* index : {"0", "1"}) {
    auto at = [&](const std::string& word) {
      return std::find(lines.begin(), lines.end(), word + " " + index) - lines.begin();
    };
    CHECK(at("init") < at("finalizer"));
    CHECK(at("finalizer") < at("fini"));
    CHECK(at("fini") < static_cast<long>(lines.size()));
  }
}

// The one line Pool::start fails with (without the worker it names), and that no
// worker got as far as init.
std::string refused_at_start(const std::string& plugin) {
  TempDir dir;
  const fs::path trail = dir.path() / "trail";
  auto pool = Pool::start(matrix_pool(plugin, trail));
  REQUIRE_FALSE(pool.ok());
  CHECK(pool.error().code == Errc::plugin);
  CHECK((::waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD));
  CHECK_FALSE(fs::exists(trail));
  const std::string& msg = pool.error().message;
  std::smatch m;
  INFO(msg);
  REQUIRE(std::regex_search(msg, m, std::regex(" \\(worker [01]\\)$")));
  return msg.substr(0, static_cast<size_t>(m.position(0)));
}

ProcessResult check(const fs::path& config) {
  ProcessOptions options;
  options.timeout = 60s;
  auto r = run_process({SHOAL_BIN, "check", config.string()}, options);
  INFO(describe(r));
  REQUIRE(r.spawn_error.empty());
  REQUIRE_FALSE(r.timed_out);
  return r;
}

std::string pool_yaml(const std::string& name, const std::string& plugin) {
  return "  " + name + ":\n    plugin: \"" + plugin + "\"\n    workers: 1\n";
}

}  // namespace

TEST_CASE("version matrix: a plugin built against the 1.0 header loads and runs", "[integration][matrix]") {
  runs_with_the_1_0_table(matrix("vm_plugin_1_0"), "1.0");
}

TEST_CASE("version matrix: a plugin built against the 1.1 header finds host->shared and runs",
          "[integration][matrix]") {
  runs_with_the_1_0_table(matrix("vm_plugin_1_1"), "1.1");
}

TEST_CASE("version matrix: a plugin claiming 1.2 (a newer minor) loads and runs without the 1.2 member",
          "[integration][matrix]") {
  runs_with_the_1_0_table(matrix("vm_plugin_1_2"), "1.2");
}

TEST_CASE("version matrix: a plugin for major 2 is refused at worker start with its one line",
          "[integration][matrix]") {
  // Declared as data: the worker reads it from the file and refuses before loading.
  // Not declared: the worker loads it, asks shoal_plugin_abi and refuses before init.
  for (const char* name : {"vm_plugin_2_0", "vm_plugin_2_0_fn"}) {
    const std::string path = matrix(name);
    CHECK(refused_at_start(path) == "pool test: plugin " + path + ": built for ABI 2.0 while this runtime speaks 1.1");
  }
}

TEST_CASE("version matrix: shoal check passes 1.0 1.1 and 1.2 and refuses a declared major 2",
          "[integration][matrix]") {
  TempDir dir;
  const auto config = dir.write("matrix.yaml", "pools:\n" + pool_yaml("v10", matrix("vm_plugin_1_0")) +
                                                   pool_yaml("v11", matrix("vm_plugin_1_1")) +
                                                   pool_yaml("v20", matrix("vm_plugin_2_0")) +
                                                   pool_yaml("v20fn", matrix("vm_plugin_2_0_fn")) +
                                                   pool_yaml("v12", matrix("vm_plugin_1_2")));
  auto r = check(config);
  INFO(describe(r));
  CHECK(r.exit_code == 2);
  const std::string at = config.string() + ":";
  CHECK(lines_of(r.out) == std::vector<std::string>{at + "9:13: pool 'v20': plugin " + matrix("vm_plugin_2_0") +
                                                    ": built for ABI 2.0 while this runtime speaks 1.1"});
  const auto err = lines_of(r.err);
  REQUIRE(err.size() == 5);
  // The matrix plugin declares no params (the frozen 1.0 header predates them): a note,
  // not a problem.
  const std::string no_params = " declares no shoal_plugin_params: its params are not checked";
  CHECK(err[0] == "shoal: check: note: " + at + "3:13: pool 'v10': " + matrix("vm_plugin_1_0") + no_params);
  CHECK(err[1] == "shoal: check: note: " + at + "6:13: pool 'v11': " + matrix("vm_plugin_1_1") + no_params);
  // Without the data symbol only the worker can tell (the test above).
  CHECK(err[2] == "shoal: check: note: " + at + "12:13: pool 'v20fn': " + matrix("vm_plugin_2_0_fn") +
                      " declares no shoal_plugin_abi_version or shoal_plugin_params: its ABI version is known only"
                      " once a worker loads it, and its params are not checked");
  CHECK(err[3] == "shoal: check: note: " + at + "15:13: pool 'v12': " + matrix("vm_plugin_1_2") + no_params);
  CHECK(err[4] == "shoal: check: " + config.string() + ": 1 problem");
}
