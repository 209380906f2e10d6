// The .deb as a user gets it: cpack builds it from this build folder, dpkg-deb unpacks it
// into a scratch root, and everything below runs from that root only: its files are
// where Debian and the README say, its programs answer, its unit passes systemd-analyze,
// its bash completion completes, and the plugins of the README's "Writing a plugin"
// (the text of the README itself, not a copy) build against it with find_package and
// with pkg-config and run through its shoal.
#include "fixture_paths.hpp"
#include "install_paths.hpp"
#include "support/build_steps.hpp"
#include "support/json_rows.hpp"
#include "support/test_env.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace shoal::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// The body of the first ```LANG block after `from` in `text`; fails the test if none.
std::string code_block(const std::string& text, size_t from, const std::string& lang) {
  const std::string open = "\n```" + lang + "\n";
  const auto start = text.find(open, from);
  INFO("README: no ```" << lang << " block in 'Writing a plugin'");
  REQUIRE(start != std::string::npos);
  const auto body = start + open.size();
  const auto end = text.find("\n```\n", body);
  REQUIRE(end != std::string::npos);
  return text.substr(body, end + 1 - body);
}

bool has(const std::vector<std::string>& words, const std::string& word) {
  return std::find(words.begin(), words.end(), word) != words.end();
}

}  // namespace

TEST_CASE("package: the .deb unpacked into a scratch root has every file and builds and runs the README's plugins",
          "[package]") {
  // ctest gives this test 120 s; a slow step fails it with its output (and the scratch
  // folder is removed) before that.
  const auto deadline = std::chrono::steady_clock::now() + 100s;
  TempDir dir;
  const fs::path out = dir.path() / "cpack";
  require_ok(build_step(deadline, {SHOAL_CPACK, "-G", "DEB", "--config", std::string(SHOAL_BUILD_DIR) + "/CPackConfig.cmake",
                                   "-B", out.string()}));
  auto arch = build_step(deadline, {"dpkg", "--print-architecture"});
  require_ok(arch);
  REQUIRE(words(arch.out).size() == 1);
  const fs::path deb = out / ("shoal_" SHOAL_PROJECT_VERSION "_" + words(arch.out)[0] + ".deb");
  INFO("package: " << deb);
  REQUIRE(fs::exists(deb));

  // Its control fields: dpkg-shlibdeps computed Depends from what the programs link.
  auto fields = build_step(deadline, {"dpkg-deb", "--field", deb.string(), "Package", "Version", "Depends"});
  require_ok(fields);
  INFO("control: " << fields.out);
  CHECK(fields.out.find("Package: shoal\n") != std::string::npos);
  CHECK(fields.out.find("Version: " SHOAL_PROJECT_VERSION "\n") != std::string::npos);
  for (const char* lib : {"libc6", "libyaml-cpp", "libseccomp2", "libhiredis"})
    CHECK(fields.out.find(lib) != std::string::npos);

  const fs::path root = dir.path() / "root";
  require_ok(build_step(deadline, {"dpkg-deb", "-x", deb.string(), root.string()}));
  const fs::path usr = root / "usr";
  const fs::path libdir = usr / SHOAL_INSTALL_LIBDIR;
  for (const fs::path& file :
       {usr / "bin/shoal", usr / "bin/shoal-worker", usr / "include/shoal/plugin.h", usr / "include/shoal/plugin.hpp",
        usr / "include/shoal/resource.h", usr / "include/shoal/runtime.hpp", libdir / "libshoal.so.1",
        libdir / "cmake/shoal/shoalConfig.cmake", libdir / "cmake/shoal/ShoalPlugin.cmake",
        libdir / "pkgconfig/shoal.pc", usr / "share/man/man1/shoal.1", usr / "share/man/man1/shoal-worker.1",
        usr / "share/bash-completion/completions/shoal", usr / "lib/systemd/system/shoal-serve@.service",
        usr / "share/doc/shoal/README.md", usr / "share/doc/shoal/copyright", usr / "share/doc/shoal/CHANGELOG.md",
        usr / "share/doc/shoal/config/reference.md", usr / "share/doc/shoal/docs/cli.md",
        usr / "share/doc/shoal/config/examples/digest.yaml"}) {
    INFO("missing from the package: " << file);
    CHECK(fs::exists(file));
  }
  CHECK(read_file(usr / "share/doc/shoal/copyright") == read_file(std::string(SHOAL_SOURCE_DIR) + "/LICENSE"));
  const std::string shoal = (usr / "bin/shoal").string();
  const std::string version_line = "shoal " SHOAL_PROJECT_VERSION " (plugin ABI 1.1)\n";
  auto version = build_step(deadline, {shoal, "--version"});
  require_ok(version);
  CHECK(version.out == version_line);
  auto worker_version = build_step(deadline, {(usr / "bin/shoal-worker").string(), "--version"});
  require_ok(worker_version);
  CHECK(worker_version.out == "shoal-worker" + version_line.substr(5));

  // The man pages: help2man's page of each program, with every command's help in shoal's.
  const std::string man = read_file(usr / "share/man/man1/shoal.1");
  CHECK(man.find(".TH SHOAL \"1\"") != std::string::npos);
  CHECK(man.find("\"shoal " SHOAL_PROJECT_VERSION "\"") != std::string::npos);
  for (const char* section : {"COMMAND RUN", "COMMAND CHECK", "COMMAND INSPECT", "COMMAND SERVE", "COMMAND SUBMIT",
                              "COMMAND COLLECT"})
    CHECK(man.find(".SH \"" + std::string(section) + "\"") != std::string::npos);
  CHECK(man.find("\\-\\-stats\\-interval") != std::string::npos);
  CHECK(read_file(usr / "share/man/man1/shoal-worker.1").find(".TH SHOAL-WORKER \"1\"") != std::string::npos);

  // The unit runs the package's own shoal, and systemd reads every line of it (an unknown
  // or misspelled key is a warning on stderr). Verified as a copy whose ExecStart names
  // the unpacked program, since /usr/bin/shoal need not exist here.
  const std::string unit = read_file(usr / "lib/systemd/system/shoal-serve@.service");
  CHECK(unit.find("\nExecStart=/usr/bin/shoal serve /etc/shoal/%i.yaml\n") != std::string::npos);
  CHECK(unit.find("\nType=notify\n") != std::string::npos);
  CHECK(unit.find("\nExecReload=/bin/kill -HUP $MAINPID\n") != std::string::npos);
  std::string checked = unit;
  checked.replace(checked.find("ExecStart=/usr/bin/shoal"), 24, "ExecStart=" + shoal);
  const fs::path verify_dir = dir.path() / "verify";
  fs::create_directories(verify_dir);
  std::ofstream(verify_dir / "shoal-serve@.service") << checked;
  auto verify = build_step(deadline, {"systemd-analyze", "verify", "--man=no",
                                      (verify_dir / "shoal-serve@.service").string()});
  INFO("systemd-analyze verify: " << describe(verify));
  CHECK(verify.exit_code == 0);
  CHECK(verify.err.empty());

  // The README's plugins, built against the root only.
  const std::string readme = read_file(std::string(SHOAL_SOURCE_DIR) + "/README.md");
  const auto section = readme.find("\n### Writing a plugin\n");
  REQUIRE(section != std::string::npos);
  const fs::path project = dir.path() / "upper";
  fs::create_directories(project);
  std::ofstream(project / "upper.cpp") << code_block(readme, section, "cpp");
  std::ofstream(project / "CMakeLists.txt") << code_block(readme, section, "cmake");
  build_cmake_project(deadline, project, project / "build", usr);
  REQUIRE(fs::exists(project / "build/upper.so"));
  // As the README writes it: the plugin path relative to the config.
  const auto upper_yaml = dir.write("upper/upper.yaml", "pools:\n  upper: {plugin: build/upper.so, workers: 2}\n");
  const auto input = dir.write("input.txt", "abc\nxyz\n");
  auto check = build_step(deadline, {shoal, "check", upper_yaml.string()});
  INFO(describe(check));
  CHECK(check.exit_code == 0);
  auto up = build_step(deadline, {shoal, "run", upper_yaml.string()}, {}, input.string());
  INFO(describe(up));
  CHECK(up.exit_code == 0);
  CHECK(outcomes(up) == Outcomes{{"ok", "ABC"}, {"ok", "XYZ"}});

  const Env pkg_env = {{"PKG_CONFIG_PATH", (libdir / "pkgconfig").string()}};
  auto cflags = build_step(deadline, {"pkg-config", "--cflags", "shoal"}, pkg_env);
  require_ok(cflags);
  const auto flags = words(cflags.out);
  REQUIRE(flags.size() == 1);
  REQUIRE(flags[0].rfind("-I", 0) == 0);
  CHECK(fs::equivalent(flags[0].substr(2), usr / "include"));
  const auto reverse_c = dir.write("reverse.c", code_block(readme, section, "c"));
  build_c_plugin(deadline, flags, reverse_c, dir.path() / "reverse.so");
  const auto reverse_yaml = dir.write("reverse.yaml", "pools:\n  reverse: {plugin: reverse.so, workers: 1}\n");
  auto rev = build_step(deadline, {shoal, "run", reverse_yaml.string()}, {}, dir.write("hello.txt", "hello\n").string());
  INFO(describe(rev));
  CHECK(rev.exit_code == 0);
  CHECK(outcomes(rev) == Outcomes{{"ok", "olleh"}});

  // Bash completion, sourced from the package, against the package's shoal on PATH.
  const std::string completion = (usr / "share/bash-completion/completions/shoal").string();
  auto complete = [&](const std::string& line) {
    const std::string script = "source '" + completion + "'\ncd '" + project.string() +
                               "'\nread -ra COMP_WORDS <<< \"$LINE\"\n"
                               "[[ \"$LINE\" == *' ' ]] && COMP_WORDS+=('')\n"
                               "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
                               "_shoal\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n";
    auto r = build_step(deadline, {"bash", "--norc", "--noprofile", "-c", script},
                        {{"LINE", line}, {"PATH", (usr / "bin").string() + ":/usr/bin:/bin"}});
    INFO("completing '" << line << "': " << describe(r));
    CHECK(r.exit_code == 0);
    return lines_of(r.out);
  };
  const auto commands = complete("shoal ");
  for (const char* command : {"run", "check", "inspect", "serve", "submit", "collect", "help"}) {
    INFO("shoal <TAB>: " << command);
    CHECK(has(commands, command));
  }
  CHECK_FALSE(has(commands, "upper.yaml"));
  const auto run_options = complete("shoal run upper.yaml --");
  for (const char* option : {"--pool", "--input", "--output", "--unordered", "--stats", "--stats-interval",
                             "--log-format", "--log-level", "--help"}) {
    INFO("shoal run upper.yaml --<TAB>: " << option);
    CHECK(has(run_options, option));
  }
  CHECK_FALSE(has(run_options, "--redis"));
  const auto serve_options = complete("shoal serve upper.yaml --");
  for (const char* option : {"--redis", "--stream", "--group", "--consumer", "--pool"}) {
    INFO("shoal serve upper.yaml --<TAB>: " << option);
    CHECK(has(serve_options, option));
  }
  CHECK(complete("shoal run up") == std::vector<std::string>{"upper.yaml"});
  CHECK(complete("shoal run upper.yaml --pool ") == std::vector<std::string>{"upper"});
  CHECK(complete("shoal inspect build/upper.") == std::vector<std::string>{"build/upper.so"});
  CHECK(complete("shoal --log-level w") == std::vector<std::string>{"warn"});
}
