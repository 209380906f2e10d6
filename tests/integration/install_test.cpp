// The installed shoal as its users meet it: `cmake --install` into a temporary prefix,
// then, against that prefix only, a C++ plugin project (find_package + shoal_add_plugin),
// a plain C plugin compiled with `cc` and the flags of shoal.pc, and a C++ application
// linking shoal::runtime. Each is run through the installed programs and checked task by
// task. The prefix and every build live in one temporary folder, removed at the end.
#include "fixture_paths.hpp"
#include "install_paths.hpp"
#include "support/build_steps.hpp"
#include "support/json_rows.hpp"
#include "support/subprocess.hpp"
#include "support/test_env.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace shoal::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// ctest gives the whole test 300 s (tests/CMakeLists.txt). Every step of both runs of the
// test case (one per leaf section) shares this budget, so a slow step fails the test with
// its output, and the prefix is removed, before ctest would kill the process.
constexpr auto kBudget = 250s;

std::chrono::steady_clock::time_point deadline() {
  static const auto at = std::chrono::steady_clock::now() + kBudget;
  return at;
}

ProcessResult step(const std::vector<std::string>& argv, const Env& env = {}) {
  return build_step(deadline(), argv, env);
}

// Configures and builds a CMake project of tests/ against the prefix.
fs::path build_project(const std::string& name, const fs::path& root, const fs::path& prefix) {
  const fs::path build = root / (name + "-build");
  std::vector<std::string> extra;
  // A sanitized libshoal needs its sanitizer runtime in the application that links it.
  // Plugins need none: the worker that loads them brings it.
  if (name == "external_host" && std::string(SHOAL_TEST_SANITIZER) != "")
    extra.push_back("-DCMAKE_CXX_FLAGS=-fsanitize=" SHOAL_TEST_SANITIZER);
  build_cmake_project(deadline(), std::string(SHOAL_SOURCE_DIR) + "/tests/" + name, build, prefix, extra);
  return build;
}

}  // namespace

TEST_CASE("install: plugins in C++ and C and an embedding host, built against the installed shoal only",
          "[install]") {
  TempDir dir;
  const fs::path prefix = dir.path() / "prefix";
  const fs::path libdir = prefix / SHOAL_INSTALL_LIBDIR;
  require_ok(step({SHOAL_CMAKE, "--install", SHOAL_BUILD_DIR, "--prefix", prefix.string()}));
  for (const char* file : {"include/shoal/plugin.h", "include/shoal/plugin.hpp", "include/shoal/resource.h",
                           "include/shoal/runtime.hpp", "include/shoal/config.hpp", "include/shoal/result.hpp",
                           "include/shoal/export.hpp", "include/shoal/shared.h", "include/shoal/shared.hpp",
                           "bin/shoal", "bin/shoal-worker"})
    CHECK(fs::exists(prefix / file));
  for (const char* file : {"libshoal.so", "pkgconfig/shoal.pc", "cmake/shoal/shoalConfig.cmake",
                           "cmake/shoal/shoalConfigVersion.cmake", "cmake/shoal/shoalTargets.cmake",
                           "cmake/shoal/ShoalPlugin.cmake"})
    CHECK(fs::exists(libdir / file));
  const std::string shoal = (prefix / "bin/shoal").string();

  SECTION("find_package(shoal) accepts major 1 only (SameMajorVersion)") {
    const fs::path project = dir.path() / "version-probe";
    fs::create_directories(project);
    std::ofstream(project / "CMakeLists.txt") << "cmake_minimum_required(VERSION 3.16)\n"
                                                 "project(probe NONE)\n"
                                                 "find_package(shoal 2 QUIET)\n"
                                                 "message(STATUS \"major 2 found: ${shoal_FOUND}\")\n"
                                                 "find_package(shoal 1.0 REQUIRED)\n"
                                                 "message(STATUS \"shoal ${shoal_VERSION}\")\n";
    auto r = step({SHOAL_CMAKE, "-S", project.string(), "-B", (project / "build").string(),
                   "-DCMAKE_PREFIX_PATH=" + prefix.string()});
    require_ok(r);
    CHECK(r.out.find("major 2 found: 0") != std::string::npos);
    CHECK(r.out.find("shoal " SHOAL_PROJECT_VERSION "\n") != std::string::npos);
  }

  SECTION("a C++ plugin project and a plain C plugin run through the installed shoal") {
    const fs::path upper = build_project("external_plugin", dir.path(), prefix) / "upper.so";
    REQUIRE(fs::exists(upper));
    // Its shared-data builder, built beside it with shoal/shared.hpp and Boost's headers.
    auto builder = step({shoal, "inspect", (upper.parent_path() / "words.so").string()});
    require_ok(builder);
    CHECK(builder.out.find("\nkind: shared-data builder\n") != std::string::npos);

    // The C plugin: cc, the flags shoal.pc gives, and no C++ anywhere.
    const Env pkg_env = {{"PKG_CONFIG_PATH", (libdir / "pkgconfig").string()}};
    auto version = step({"pkg-config", "--modversion", "shoal"}, pkg_env);
    require_ok(version);
    CHECK(version.out == SHOAL_PROJECT_VERSION "\n");
    auto cflags = step({"pkg-config", "--cflags", "shoal"}, pkg_env);
    require_ok(cflags);
    const auto flags = words(cflags.out);
    REQUIRE(flags.size() == 1);
    REQUIRE(flags[0].rfind("-I", 0) == 0);
    CHECK(fs::equivalent(flags[0].substr(2), prefix / "include"));
    const fs::path reverse = dir.path() / "reverse.so";
    build_c_plugin(deadline(), flags, std::string(SHOAL_SOURCE_DIR) + "/tests/external_c_plugin/reverse.c", reverse);

    const auto config = dir.write("pools.yaml", "pools:\n"
                                                "  upper:\n"
                                                "    plugin: \"" + upper.string() + "\"\n"
                                                "    workers: 2\n"
                                                "    params: {prefix: \">\"}\n"
                                                "  reverse:\n"
                                                "    plugin: reverse.so\n"  // relative to the config
                                                "    workers: 1\n");
    auto check = step({shoal, "check", config.string()});
    INFO(describe(check));
    CHECK(check.exit_code == 0);
    CHECK(check.out.empty());
    CHECK(lines_of(check.err) == std::vector<std::string>{"shoal: check: " + config.string() +
                                                           ": ok (2 pools, 2 module files)"});
    auto inspect = step({shoal, "inspect", reverse.string()});
    require_ok(inspect);
    CHECK(inspect.out.find("\nkind: task plugin\nabi: 1.1\n") != std::string::npos);
    const auto needs = inspect.out.find("\nneeds: ");
    REQUIRE(needs != std::string::npos);
    CHECK(inspect.out.find("libstdc++", needs) == std::string::npos);  // no C++ runtime

    const auto input = dir.write("input.txt", "hello\n\nMixed Case 42\nfail\n");
    auto up = step({shoal, "run", config.string(), "--pool", "upper", "--input", input.string()});
    INFO(describe(up));
    CHECK(up.exit_code == 0);
    CHECK(outcomes(up) == Outcomes{{"ok", ">HELLO"}, {"ok", ">"}, {"ok", ">MIXED CASE 42"}, {"ok", ">FAIL"}});
    auto rev = step({shoal, "run", config.string(), "--pool", "reverse", "--input", input.string()});
    INFO(describe(rev));
    CHECK(rev.exit_code == 1);
    CHECK(outcomes(rev) == Outcomes{{"ok", "olleh"}, {"ok", ""}, {"ok", "24 esaC dexiM"}, {"error", "refused: fail"}});

    SECTION("an application linking shoal::runtime runs the same plugin") {
      const fs::path host = build_project("external_host", dir.path(), prefix) / "embed_host";
      auto r = step({host.string(), config.string(), "upper", "one", "two words"});
      INFO(describe(r));
      CHECK(r.exit_code == 0);
      CHECK(r.out == "ok >ONE\nok >TWO WORDS\n");
      // Every libshoal symbol the application needs is bound to the version node, so a
      // libshoal without it is refused by the loader instead of misbehaving later.
      auto imports = step({"nm", "-D", "--undefined-only", host.string()});
      REQUIRE(imports.exit_code == 0);
      size_t shoal_symbols = 0;
      for (const auto& line : lines_of(imports.out))
        if (line.find("_ZN5shoal") != std::string::npos || line.find("_ZNK5shoal") != std::string::npos) {
          INFO(line);
          CHECK(line.ends_with("@SHOAL_1.0"));
          ++shoal_symbols;
        }
      CHECK(shoal_symbols >= 3);
      // No worker_path and no $SHOAL_WORKER: libshoal finds the prefix's worker from its
      // own location. This prefix is not the one the build was configured with, so only
      // that lookup can succeed.
      auto found = step({host.string(), "--default-worker", config.string(), "upper", "three"});
      INFO(describe(found));
      CHECK(found.exit_code == 0);
      CHECK(found.out == "ok >THREE\n");
      std::vector<std::string> workers;
      for (const auto& line : lines_of(found.err))
        if (line.rfind("worker: ", 0) == 0) workers.push_back(line.substr(8));
      REQUIRE_FALSE(workers.empty());
      for (const auto& worker : workers) CHECK(fs::equivalent(worker, prefix / "bin/shoal-worker"));
      auto missing = step({host.string(), config.string(), "nope"});
      CHECK(missing.exit_code == 2);
      CHECK(missing.err.find("nope") != std::string::npos);
    }
  }
}
