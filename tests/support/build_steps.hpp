// Steps of the tests that install shoal somewhere (a prefix, an unpacked .deb) and build
// and run plugins against that copy only: each step runs within what is left of one
// deadline, and a step that fails stops the test with its output.
#ifndef SHOAL_TESTS_BUILD_STEPS_HPP
#define SHOAL_TESTS_BUILD_STEPS_HPP

#include "install_paths.hpp"
#include "support/json_rows.hpp"
#include "support/subprocess.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace shoal::test {

using Env = std::vector<std::pair<std::string, std::string>>;
using Outcomes = std::vector<std::pair<std::string, std::string>>;

// Runs one step before `deadline`. SHOAL_WORKER is removed from its environment: the
// installed programs must find their worker by themselves.
inline ProcessResult build_step(std::chrono::steady_clock::time_point deadline, const std::vector<std::string>& argv,
                                const Env& env = {}, const std::string& stdin_file = {}) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  INFO(argv[0] << ": the test's time is spent");
  REQUIRE(left.count() > 0);
  ProcessOptions options;
  options.timeout = left;
  options.env = env;
  options.unset = {"SHOAL_WORKER"};
  options.stdin_file = stdin_file;
  auto r = run_process(argv, options);
  INFO(argv[0] << (argv.size() > 1 ? " " + argv[1] : std::string()) << ": " << describe(r) << "\nstdout: " << r.out);
  REQUIRE(r.spawn_error.empty());
  REQUIRE_FALSE(r.timed_out);
  REQUIRE(r.signal == 0);
  return r;
}

inline void require_ok(const ProcessResult& r) {
  INFO(describe(r) << "\nstdout: " << r.out);
  REQUIRE(r.exit_code == 0);
}

// Configures and builds the CMake project in `source` against the shoal under `prefix`.
inline void build_cmake_project(std::chrono::steady_clock::time_point deadline, const std::filesystem::path& source,
                                const std::filesystem::path& build, const std::filesystem::path& prefix,
                                const std::vector<std::string>& extra = {}) {
  std::vector<std::string> configure = {SHOAL_CMAKE,
                                        "-S",
                                        source.string(),
                                        "-B",
                                        build.string(),
                                        "-DCMAKE_PREFIX_PATH=" + prefix.string(),
                                        "-DCMAKE_C_COMPILER=" SHOAL_C_COMPILER,
                                        "-DCMAKE_CXX_COMPILER=" SHOAL_CXX_COMPILER,
                                        "-DCMAKE_BUILD_TYPE=Release"};
  configure.insert(configure.end(), extra.begin(), extra.end());
  require_ok(build_step(deadline, configure));
  require_ok(build_step(deadline, {SHOAL_CMAKE, "--build", build.string(), "-j2"}));
}

// Compiles a plain C plugin with `cc` and the flags shoal.pc gives (and no C++ anywhere).
inline void build_c_plugin(std::chrono::steady_clock::time_point deadline, const std::vector<std::string>& pc_flags,
                           const std::filesystem::path& source, const std::filesystem::path& out) {
  std::vector<std::string> cc = {SHOAL_C_COMPILER, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-O2",
                                 "-fPIC", "-shared", "-fvisibility=hidden", "-Wl,-z,defs"};
  cc.insert(cc.end(), pc_flags.begin(), pc_flags.end());
  cc.insert(cc.end(), {"-o", out.string(), source.string()});
  require_ok(build_step(deadline, cc));
}

// `shoal run`'s rows as (status, output or error) pairs, in input order.
inline Outcomes outcomes(const ProcessResult& r) {
  Outcomes out;
  for (const auto& line : lines_of(r.out)) {
    auto row = Parser(line).row();
    INFO("row: " << line);
    REQUIRE(row.has_value());
    const std::string status = row->at("status").text;
    out.emplace_back(status, status == "ok" ? row->at("output").text : row->at("error").text);
  }
  return out;
}

}  // namespace shoal::test

#endif
