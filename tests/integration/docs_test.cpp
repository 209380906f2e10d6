// The documentation in the repository against the program it documents.
#include "fixture_paths.hpp"
#include "support/subprocess.hpp"
#include "support/test_env.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace shoal::test;

TEST_CASE("docs: docs/cli.md is every command's --help", "[integration][docs]") {
  const std::string doc = read_file(std::string(SHOAL_SOURCE_DIR) + "/docs/cli.md");
  REQUIRE(!doc.empty());
  for (const char* cmd : {"", "run", "check", "inspect", "serve", "submit", "collect", "dead"}) {
    std::vector<std::string> argv = {SHOAL_BIN};
    if (*cmd != '\0') argv.emplace_back(cmd);
    argv.emplace_back("--help");
    auto r = run_process(argv);
    INFO("shoal " << cmd << " --help: " << describe(r));
    REQUIRE(r.exit_code == 0);
    REQUIRE(!r.out.empty());
    const std::string section = std::string("## shoal") + (*cmd ? " " : "") + cmd + "\n\n```text\n" + r.out + "```\n";
    INFO("docs/cli.md is out of date: run scripts/cli-reference.sh");
    CHECK(doc.find(section) != std::string::npos);
  }
  auto worker = run_process({SHOAL_WORKER_BIN, "--help"});
  INFO("shoal-worker --help: " << describe(worker));
  REQUIRE(worker.exit_code == 0);
  INFO("docs/cli.md is out of date: run scripts/cli-reference.sh");
  CHECK(doc.find("## shoal-worker\n\n```text\n" + worker.out + "```\n") != std::string::npos);
}
