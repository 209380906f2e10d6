// `shoal check` resolves each plugin's DT_NEEDED libraries as a worker's dynamic loader
// would (issue 17), with plugins and libraries built by CMake and put where each test
// needs them (tests/CMakeLists.txt). Every verdict of check is held against the real
// loader: the same config run by `shoal run`, whose worker loads the plugin, fails where
// check reported a library missing and prints the library's number where check found it.
#include "fixture_paths.hpp"
#include "support/run_rows.hpp"
#include "support/subprocess.hpp"
#include "support/test_env.hpp"

#include <catch2/catch.hpp>

#include <elf.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

using namespace shoal::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using Env = std::vector<std::pair<std::string, std::string>>;

const std::string kNeeded = SHOAL_FX_NEEDED_DIR;
const std::string kNotFound = ", which the dynamic loader does not find";

// The CLI with LD_LIBRARY_PATH only as the test sets it: a developer's own must not make
// a library appear found.
ProcessResult shoal_cli(std::vector<std::string> args, Env env = {}) {
  ProcessOptions options;
  options.env = std::move(env);
  options.unset = {"LD_LIBRARY_PATH"};
  return shoal::test::shoal_cli(std::move(args), std::move(options));
}

// A config of one pool, `plugin:` at line 3 column 13; `extra` goes on below it.
fs::path config_for(TempDir& dir, const std::string& plugin, const std::string& extra = "") {
  return dir.write("needed.yaml", "pools:\n  p:\n    plugin: \"" + plugin + "\"\n    workers: 1\n" +
                                      "    env_inherit: [SHOAL_FX_CTOR_MARKER]\n" + extra);
}

std::string problem(const fs::path& config, const std::string& plugin, const std::string& cause) {
  return config.string() + ":3:13: pool 'p': plugin " + plugin + ": " + cause;
}

// Checks `config`: exit 2 and exactly `expected` on stdout, or exit 0 and nothing.
void check_config(const fs::path& config, const std::vector<std::string>& expected, const Env& env = {}) {
  auto r = shoal_cli({"check", config.string()}, env);
  INFO(describe(r));
  CHECK(r.exit_code == (expected.empty() ? 0 : 2));
  CHECK(lines_of(r.out) == expected);
  if (expected.empty()) CHECK(lines_of(r.err).back() == "shoal: check: " + config.string() + ": ok (1 pool, 1 module file)");
}

// Runs one task through `config`: the worker's own loader decides. Returns the task's
// output, or nullopt when the pool could not start.
std::optional<std::string> run_one(TempDir& dir, const fs::path& config, const Env& env = {}) {
  const auto input = dir.write("input.txt", "x\n");
  auto r = shoal_cli({"run", config.string(), "--input", input.string()}, env);
  INFO(describe(r));
  if (r.exit_code != 0) {
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    return std::nullopt;
  }
  const auto rows = run_rows(r.out);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].at("status").text == "ok");
  return rows[0].at("output").text;
}

}  // namespace

TEST_CASE("check needed: a library on no path is one line naming it and the plugin, and nothing is loaded",
          "[integration][cli][check][needed]") {
  TempDir dir;
  const std::string plugin = kNeeded + "/bare/fx_needs_lib.so";
  const auto marker = dir.path() / "constructor-ran";
  const Env env = {{"SHOAL_FX_CTOR_MARKER", marker.string()}};
  const auto config = config_for(dir, plugin);

  check_config(config, {problem(config, plugin, "needs libfx_needed.so" + kNotFound)}, env);
  CHECK_FALSE(fs::exists(marker));
  // The worker's loader agrees: the pool cannot start, and the plugin's constructor
  // never ran there either.
  CHECK(run_one(dir, config, env) == std::nullopt);
  CHECK_FALSE(fs::exists(marker));

  SECTION("found through LD_LIBRARY_PATH") {
    const Env with_path = {{"SHOAL_FX_CTOR_MARKER", marker.string()}, {"LD_LIBRARY_PATH", "/nonexistent::" + kNeeded + "/lib"}};
    check_config(config, {}, with_path);
    CHECK_FALSE(fs::exists(marker));
    CHECK(run_one(dir, config, with_path) == "42");
    CHECK(fs::exists(marker));  // the control: loading it runs the constructor
  }
  SECTION("found through the pool's env, which workers get over the inherited LD_LIBRARY_PATH") {
    const auto with_env = dir.write("env.yaml", "pools:\n  p:\n    plugin: \"" + plugin + "\"\n    workers: 1\n" +
                                                    "    env: {LD_LIBRARY_PATH: \"" + kNeeded + "/lib\"}\n");
    check_config(with_env, {}, {{"LD_LIBRARY_PATH", "/nonexistent"}});
    CHECK(run_one(dir, with_env, {{"LD_LIBRARY_PATH", "/nonexistent"}}) == "42");
  }
}

TEST_CASE("check needed: a library next to the plugin is found through RUNPATH $ORIGIN",
          "[integration][cli][check][needed]") {
  TempDir dir;
  const std::string plugin = kNeeded + "/origin/fx_needs_origin.so";
  const auto config = config_for(dir, plugin);
  check_config(config, {});
  CHECK(run_one(dir, config) == "7");

  // $ORIGIN is where the plugin is, not where it was built: a copy alone in another
  // directory needs its library there.
  const auto alone = dir.path() / "alone";
  fs::create_directory(alone);
  fs::copy_file(plugin, alone / "fx_needs_origin.so");
  const auto moved = dir.write("moved.yaml", "pools:\n  p:\n    plugin: \"" + (alone / "fx_needs_origin.so").string() +
                                                 "\"\n    workers: 1\n");
  check_config(moved, {problem(moved, (alone / "fx_needs_origin.so").string(), "needs libfx_origin.so" + kNotFound)});
  CHECK(run_one(dir, moved) == std::nullopt);
  fs::copy_file(kNeeded + "/origin/libfx_origin.so", alone / "libfx_origin.so");
  check_config(moved, {});
  CHECK(run_one(dir, moved) == "7");
}

TEST_CASE("check needed: a missing library of a library is named with the chain that needs it",
          "[integration][cli][check][needed]") {
  TempDir dir;
  const std::string plugin = kNeeded + "/chain/fx_needs_chain.so";
  const auto config = config_for(dir, plugin);
  // libfx_mid.so is found next to the plugin ($ORIGIN); it has no RUNPATH of its own, so
  // the plugin's does not apply to its libfx_leaf.so.
  check_config(config, {problem(config, plugin, "needs libfx_leaf.so (through libfx_mid.so)" + kNotFound)});
  CHECK(run_one(dir, config) == std::nullopt);
  const Env leaf = {{"LD_LIBRARY_PATH", kNeeded + "/leaf"}};
  check_config(config, {}, leaf);
  CHECK(run_one(dir, config, leaf) == "1005");
}

TEST_CASE("check needed: a library of the wrong word size on the path is skipped, as the loader skips it",
          "[integration][cli][check][needed]") {
  TempDir dir;
  const std::string plugin = kNeeded + "/bare/fx_needs_lib.so";
  const auto config = config_for(dir, plugin);
  // The real library with its ELF class byte made 32-bit.
  std::string bytes = read_file(kNeeded + "/lib/libfx_needed.so");
  REQUIRE(bytes.size() > EI_CLASS);
  REQUIRE(bytes[EI_CLASS] == ELFCLASS64);
  bytes[EI_CLASS] = ELFCLASS32;
  fs::create_directory(dir.path() / "wrong");
  const auto wrong = dir.write("wrong/libfx_needed.so", bytes);

  const Env both = {{"LD_LIBRARY_PATH", (dir.path() / "wrong").string() + ":" + kNeeded + "/lib"}};
  check_config(config, {}, both);
  CHECK(run_one(dir, config, both) == "42");

  const Env only_wrong = {{"LD_LIBRARY_PATH", (dir.path() / "wrong").string()}};
  check_config(config,
               {problem(config, plugin,
                        "needs libfx_needed.so" + kNotFound + "; skipped " + wrong.string() +
                            ": built for another machine or word size")},
               only_wrong);
  CHECK(run_one(dir, config, only_wrong) == std::nullopt);
}
