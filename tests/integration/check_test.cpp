// `shoal check` and `shoal inspect` as a user runs them: the built binary, real fixture
// plugins (good, broken, and one whose static constructor crashes the process that loads
// it), configs written with known line numbers, and readelf as an independent witness.
#include "fixture_paths.hpp"
#include "support/crafted_elf.hpp"
#include "support/json_rows.hpp"
#include "support/subprocess.hpp"
#include "support/test_env.hpp"

#include <shoal/plugin.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <vector>

using namespace shoal::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

ProcessResult shoal_cli(std::vector<std::string> args, std::vector<std::pair<std::string, std::string>> env) {
  ProcessOptions options;
  options.env = std::move(env);
  return shoal::test::shoal_cli(std::move(args), std::move(options));
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// "  NAME:\n    plugin: "PATH"\n": the plugin's value starts at column 13 of the second line.
std::string pool_yaml(const std::string& name, const std::string& plugin) {
  return "  " + name + ":\n    plugin: " + quoted(plugin) + "\n    workers: 1\n";
}
constexpr int kPluginColumn = 13;

// The line a pool written by pool_yaml puts its plugin on, for pools written in order
// after the "pools:" line.
int plugin_line(int pool_index) { return 2 + 3 * pool_index + 1; }

std::string at(const fs::path& config, int line, int column) {
  return config.string() + ":" + std::to_string(line) + ":" + std::to_string(column) + ": ";
}

// One `key: value` map per file that inspect described.
std::vector<std::map<std::string, std::string>> inspect_blocks(const std::string& out) {
  std::vector<std::map<std::string, std::string>> blocks(1);
  for (const auto& line : lines_of(out)) {
    if (line.empty()) {
      blocks.emplace_back();
      continue;
    }
    // The params table: indented lines under "params:", kept as that key's value.
    if (line.starts_with("  ") && !blocks.back().empty()) {
      blocks.back()["params"] += "\n" + line;
      continue;
    }
    const auto colon = line.find(": ");
    INFO("line: " << line);
    REQUIRE((colon != std::string::npos || line == "params:"));
    const std::string key = line == "params:" ? "params" : line.substr(0, colon);
    CHECK(blocks.back().count(key) == 0);
    blocks.back()[key] = line == "params:" ? "" : line.substr(colon + 2);
  }
  return blocks;
}

const std::vector<std::string> kInspectKeys = {"file", "kind", "abi", "exports", "other exports", "needs", "soname",
                                               "params"};

// DT_NEEDED of `path` as readelf reports it: the reader's output is checked against a
// tool that shares no code with it.
std::vector<std::string> readelf_needed(const std::string& path) {
  auto r = run_process({"readelf", "-d", "-W", path}, ProcessOptions{});
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  std::vector<std::string> needed;
  const std::regex entry(R"(\(NEEDED\)\s+Shared library: \[([^\]]+)\])");
  for (const auto& line : lines_of(r.out)) {
    std::smatch m;
    if (std::regex_search(line, m, entry)) needed.push_back(m[1]);
  }
  return needed;
}

}  // namespace

TEST_CASE("check: a good config passes and notes a module that declares no ABI version", "[integration][cli][check]") {
  TempDir dir;
  const auto config = dir.write("good.yaml", "pools:\n" + pool_yaml("echo", SHOAL_PLUGIN_ECHO) +
                                                 "    resources:\n      - name: db\n        module: " +
                                                 quoted(fixture("fx_resource")) + "\n" +
                                                 pool_yaml("digest", SHOAL_PLUGIN_SHA256));
  auto r = shoal_cli({"check", config.string()});
  INFO(describe(r));
  CHECK(r.exit_code == 0);
  CHECK(r.out.empty());
  const auto err = lines_of(r.err);
  REQUIRE(err.size() == 2);
  // fx_resource is plain C without shoal_resource_abi_version; echo and sha256 use
  // SHOAL_PLUGIN, which declares it.
  CHECK(err[0] == "shoal: check: note: " + at(config, 7, 17) + "pool 'echo' resource 'db': " + fixture("fx_resource") +
                      " declares no shoal_resource_abi_version or shoal_resource_params: its ABI version is known "
                      "only once a worker loads it, and its params are not checked");
  CHECK(err[1] == "shoal: check: " + config.string() + ": ok (2 pools, 3 module files)");
}

TEST_CASE("check: each broken plugin is one line at the position the config names it", "[integration][cli][check]") {
  TempDir dir;
  const auto not_elf = dir.write("readme.so", "this is text, not an ELF file\n");
  std::string echo = read_file(SHOAL_PLUGIN_ECHO);
  REQUIRE(echo.size() > 4096);
  const auto truncated = dir.write("truncated.so", echo.substr(0, 2048));
  const auto missing = dir.path() / "missing.so";

  const std::vector<std::pair<std::string, std::string>> pools = {
      {"no_run", fixture("fx_no_run")},        {"abi_2", fixture("fx_abi_major_2")}, {"good", SHOAL_PLUGIN_ECHO},
      {"not_elf", not_elf.string()},           {"missing", missing.string()},        {"truncated", truncated.string()},
      {"swapped", fixture("fx_resource")},     {"directory", dir.path().string()}};
  std::string yaml = "pools:\n";
  for (const auto& [name, plugin] : pools) yaml += pool_yaml(name, plugin);
  // A task plugin configured as a resource module of the last pool, on the line where a
  // ninth pool's plugin would be.
  yaml += "    resources:\n      - {name: cache, module: " + quoted(SHOAL_PLUGIN_ECHO) + "}\n";
  const auto config = dir.write("broken.yaml", yaml);

  auto r = shoal_cli({"check", config.string()});
  INFO(describe(r));
  CHECK(r.exit_code == 2);
  const std::vector<std::string> expected = {
      at(config, plugin_line(0), kPluginColumn) + "pool 'no_run': plugin " + fixture("fx_no_run") +
          ": missing symbol shoal_run (not a shoal plugin?)",
      at(config, plugin_line(1), kPluginColumn) + "pool 'abi_2': plugin " + fixture("fx_abi_major_2") +
          ": built for ABI 2.3 while this runtime speaks 1.1",
      at(config, plugin_line(3), kPluginColumn) + "pool 'not_elf': plugin " + not_elf.string() +
          ": not a shared object (no ELF header)",
      at(config, plugin_line(4), kPluginColumn) + "pool 'missing': plugin " + missing.string() + ": file not found",
      at(config, plugin_line(5), kPluginColumn) + "pool 'truncated': plugin " + truncated.string() +
          ": malformed ELF file: section headers outside the file",
      at(config, plugin_line(6), kPluginColumn) + "pool 'swapped': plugin " + fixture("fx_resource") +
          ": is a resource module, not a task plugin",
      at(config, plugin_line(7), kPluginColumn) + "pool 'directory': plugin " + dir.path().string() +
          ": not a regular file",
      at(config, plugin_line(8), 31) + "pool 'directory' resource 'cache': resource module " + SHOAL_PLUGIN_ECHO +
          ": is a task plugin, not a resource module",
  };
  CHECK(lines_of(r.out) == expected);
  CHECK(lines_of(r.err).back() == "shoal: check: " + config.string() + ": 8 problems");
}

TEST_CASE("check: a plugin whose static constructor crashes is checked without loading it", "[integration][cli][check]") {
  TempDir dir;
  const auto marker = dir.path() / "constructor-ran";
  const std::vector<std::pair<std::string, std::string>> env = {{"SHOAL_FX_CTOR_MARKER", marker.string()}};
  const auto config = dir.write("crash.yaml", "pools:\n" + pool_yaml("crash", fixture("fx_ctor_crash")) +
                                                 "    env_inherit: [SHOAL_FX_CTOR_MARKER]\n");

  auto check = shoal_cli({"check", config.string()}, env);
  INFO(describe(check));
  CHECK(check.exit_code == 0);
  CHECK(check.out.empty());
  CHECK(lines_of(check.err).back() == "shoal: check: " + config.string() + ": ok (1 pool, 1 module file)");
  auto inspect = shoal_cli({"inspect", fixture("fx_ctor_crash")}, env);
  CHECK(inspect.exit_code == 0);
  const auto blocks = inspect_blocks(inspect.out);
  REQUIRE(blocks.size() == 1);
  CHECK(blocks[0].at("kind") == "task plugin");
  CHECK(blocks[0].at("abi") == "1.1");
  CHECK_FALSE(fs::exists(marker));

  // The control: loading it for real runs the constructor, which crashes every worker,
  // so the pool cannot start.
  const auto empty = dir.write("empty.txt", "");
  auto run = shoal_cli({"run", config.string(), "--input", empty.string()}, env);
  INFO(describe(run));
  CHECK(run.exit_code == 2);
  CHECK(fs::exists(marker));
}

TEST_CASE("check: a broken config is one line with its position", "[integration][cli][check]") {
  TempDir dir;
  struct Case {
    std::string yaml, expected;
  };
  const std::vector<Case> cases = {
      {"pools:\n  a:\n    plugin: x.so\n    wrkers: 2\n", "4:5: unknown key 'wrkers' in pool 'a' (did you mean 'workers'?)"},
      {"pools:\n  a:\n    workers: 2\n", "3:5: pool 'a': missing required key 'plugin'"},
      {"pools:\n  a:\n    plugin: x.so\n    workers: [1\n", ""},
  };
  for (const auto& c : cases) {
    const auto config = dir.write("bad.yaml", c.yaml);
    auto r = shoal_cli({"check", config.string()});
    INFO(c.yaml << describe(r));
    CHECK(r.exit_code == 2);
    const auto out = lines_of(r.out);
    REQUIRE(out.size() == 1);
    const std::string prefix = config.string() + ":";
    REQUIRE(out[0].rfind(prefix, 0) == 0);
    CHECK(std::regex_search(out[0].substr(prefix.size()), std::regex("^[0-9]+:[0-9]+: .")));
    if (!c.expected.empty()) CHECK(out[0] == config.string() + ":" + c.expected);
    CHECK(lines_of(r.err).back() == "shoal: check: " + config.string() + ": 1 problem");
  }
  const auto nowhere = dir.path() / "nowhere.yaml";
  auto r = shoal_cli({"check", nowhere.string()});
  CHECK(r.exit_code == 2);
  CHECK(lines_of(r.out) == std::vector<std::string>{nowhere.string() + ":1:1: cannot read: No such file or directory"});
}

TEST_CASE("check: every problem line is FILE:LINE:COLUMN, with control characters in paths escaped",
          "[integration][cli][check]") {
  TempDir dir;
  // A folder is a file that cannot be read: no position, so 1:1.
  auto folder = shoal_cli({"check", dir.path().string()});
  CHECK(folder.exit_code == 2);
  CHECK(lines_of(folder.out) == std::vector<std::string>{dir.path().string() + ":1:1: cannot read: Is a directory"});

  const auto odd = dir.path() / "odd\nname.yaml";
  auto missing = shoal_cli({"check", odd.string()});
  CHECK(missing.exit_code == 2);
  CHECK(lines_of(missing.out) ==
        std::vector<std::string>{dir.path().string() + "/odd\\nname.yaml:1:1: cannot read: No such file or directory"});

  // A plugin path holding a newline (YAML "\n") stays on its problem line.
  const auto config = dir.write("escapes.yaml", "pools:\n  a:\n    plugin: \"gone\\nplugin.so\"\n");
  auto r = shoal_cli({"check", config.string()});
  CHECK(r.exit_code == 2);
  CHECK(lines_of(r.out) == std::vector<std::string>{at(config, 3, 13) + "pool 'a': plugin " + dir.path().string() +
                                                    "/gone\\nplugin.so: file not found"});
}

TEST_CASE("check: a file whose symbols all name one huge string is one problem line", "[integration][cli][check]") {
  // Copied once per entry, its names would take 80 GiB; the check reads a bounded amount
  // and reports the file as malformed, next to the other pools' results.
  TempDir dir;
  CraftedElf spec;
  spec.machine = elf_machine(SHOAL_PLUGIN_ECHO);
  spec.dynstr = std::string(1, '\0') + "shoal_" + std::string(size_t{4} << 20, 'x') + '\0';
  spec.symbols.assign(20000, 1);
  const auto bytes = craft_elf(spec);
  const auto huge = dir.write("huge.so", std::string(bytes.begin(), bytes.end()));
  const auto config = dir.write("huge.yaml", "pools:\n" + pool_yaml("huge", huge.string()) +
                                                 pool_yaml("good", SHOAL_PLUGIN_ECHO));
  auto r = shoal_cli({"check", config.string()});
  INFO(describe(r));
  CHECK(r.exit_code == 2);
  const std::string malformed = ": malformed ELF file: a symbol name longer than 1024 bytes";
  CHECK(lines_of(r.out) == std::vector<std::string>{at(config, plugin_line(0), kPluginColumn) + "pool 'huge': plugin " +
                                                    huge.string() + malformed});
  CHECK(lines_of(r.err).back() == "shoal: check: " + config.string() + ": 1 problem");
  auto inspect = shoal_cli({"inspect", huge.string(), SHOAL_PLUGIN_ECHO});
  CHECK(inspect.exit_code == 2);
  CHECK(lines_of(inspect.err) == std::vector<std::string>{"shoal: inspect: file " + huge.string() + malformed});
  CHECK(inspect_blocks(inspect.out).size() == 1);
}

TEST_CASE("check: a shoal_run that is data, not a function, is a problem line", "[integration][cli][check]") {
  // `int shoal_run;` has the right name: loaded, every task would jump into data.
  TempDir dir;
  const auto bytes = craft_plugin_with_data_run(elf_machine(SHOAL_PLUGIN_ECHO));
  const auto data = dir.write("data_run.so", std::string(bytes.begin(), bytes.end()));
  const auto config = dir.write("data.yaml", "pools:\n" + pool_yaml("data", data.string()));
  auto r = shoal_cli({"check", config.string()});
  INFO(describe(r));
  CHECK(r.exit_code == 2);
  CHECK(lines_of(r.out) == std::vector<std::string>{at(config, plugin_line(0), kPluginColumn) + "pool 'data': plugin " +
                                                    data.string() +
                                                    ": shoal_run is a data symbol, not a function (calling it "
                                                    "would crash the worker)"});
}

TEST_CASE("check and inspect: usage", "[integration][cli][check]") {
  for (const auto& args : std::vector<std::vector<std::string>>{{"check"}, {"inspect"}, {"check", "a", "b"}}) {
    auto r = shoal_cli(args);
    INFO(describe(r));
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK(lines_of(r.err).size() == 1);
  }
  for (const auto& [args, usage] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"check", "--help"}, "Usage: shoal check CONFIG\n"},
           {{"help", "check"}, "Usage: shoal check CONFIG\n"},
           {{"inspect", "-h"}, "Usage: shoal inspect FILE.so...\n"},
           {{"help", "inspect"}, "Usage: shoal inspect FILE.so...\n"}}) {
    auto r = shoal_cli(args);
    INFO(describe(r));
    CHECK(r.exit_code == 0);
    CHECK(r.out.rfind(usage, 0) == 0);
    CHECK(r.err.empty());
  }
}

TEST_CASE("inspect: kind, ABI, exports and needed libraries of each kind of file", "[integration][cli][inspect]") {
  TempDir dir;
  const auto not_elf = dir.write("notes.so", "plain text\n");
  auto r = shoal_cli({"inspect", SHOAL_PLUGIN_ECHO, fixture("fx_resource"), not_elf.string(), fixture("fx_abi_major_2"),
                      fixture("fx_no_run")});
  INFO(describe(r));
  CHECK(r.exit_code == 2);  // one file was not readable; the others are still described
  CHECK(lines_of(r.err) ==
        std::vector<std::string>{"shoal: inspect: file " + not_elf.string() + ": not a shared object (no ELF header)"});
  const auto blocks = inspect_blocks(r.out);
  REQUIRE(blocks.size() == 4);
  for (const auto& b : blocks) {
    std::vector<std::string> keys;
    for (const auto& [k, v] : b) keys.push_back(k);
    auto sorted = kInspectKeys;
    std::sort(sorted.begin(), sorted.end());
    CHECK(keys == sorted);
  }

  const auto& echo = blocks[0];
  CHECK(echo.at("file") == SHOAL_PLUGIN_ECHO);
  CHECK(echo.at("kind") == "task plugin");
  CHECK(echo.at("abi") == "1.1");
  CHECK(words(echo.at("exports")) == std::vector<std::string>{"shoal_fini", "shoal_init", "shoal_plugin_abi",
                                                              "shoal_plugin_abi_version", "shoal_plugin_params",
                                                              "shoal_run"});
  CHECK(words(echo.at("needs")) == readelf_needed(SHOAL_PLUGIN_ECHO));
  CHECK(echo.at("soname") == "-");

  const auto& resource = blocks[1];
  CHECK(resource.at("kind") == "resource module");
  CHECK(resource.at("abi") == "unknown until loaded (no shoal_resource_abi_version)");
  CHECK(words(resource.at("exports")) == std::vector<std::string>{"shoal_resource_abi", "shoal_resource_close",
                                                                  "shoal_resource_open", "shoal_resource_recover"});
  CHECK(words(resource.at("needs")) == readelf_needed(fixture("fx_resource")));

  CHECK(blocks[2].at("file") == fixture("fx_abi_major_2"));
  CHECK(blocks[2].at("kind") == "task plugin");
  CHECK(blocks[2].at("abi") == "2.3 (incompatible: this runtime speaks 1.1)");
  CHECK(blocks[3].at("kind") == "incomplete task plugin (missing shoal_run)");
  CHECK(blocks[3].at("abi") == "unknown until loaded (no shoal_plugin_abi_version)");
}

TEST_CASE("inspect: a stripped plugin still shows its exports and ABI", "[integration][cli][inspect]") {
  // strip removes .symtab, the only table Boost 1.74's library_info reads; the dynamic
  // symbols the loader uses stay, and they are what inspect reads.
  TempDir dir;
  const auto copy = dir.path() / "echo-stripped.so";
  fs::copy_file(SHOAL_PLUGIN_ECHO, copy);
  auto strip = run_process({"strip", "--strip-all", copy.string()}, ProcessOptions{});
  INFO(describe(strip));
  REQUIRE(strip.exit_code == 0);
  auto sections = run_process({"readelf", "-S", "-W", copy.string()}, ProcessOptions{});
  REQUIRE(sections.exit_code == 0);
  CHECK(sections.out.find(".symtab") == std::string::npos);

  auto r = shoal_cli({"inspect", copy.string()});
  INFO(describe(r));
  CHECK(r.exit_code == 0);
  const auto blocks = inspect_blocks(r.out);
  REQUIRE(blocks.size() == 1);
  CHECK(blocks[0].at("kind") == "task plugin");
  CHECK(blocks[0].at("abi") == "1.1");
  CHECK(words(blocks[0].at("exports")).size() == 6);
}
