// Every way a plugin can be unusable gives one clear line naming the file and the cause,
// quickly: no hang, no crash of the host, no endless respawn, no worker left behind.
#include "support/crafted_elf.hpp"
#include "support/test_env.hpp"

#include <shoal/runtime.hpp>

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>

using namespace shoal;
using namespace shoal::test;

namespace {

std::string start_error(const std::string& plugin, uint32_t workers = 2) {
  auto t0 = std::chrono::steady_clock::now();
  auto pool = Pool::start(pool_config(plugin, workers));
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE_FALSE(pool.ok());
  CHECK(pool.error().code == Errc::plugin);
  CHECK(took < 10.0 * kSlow);
  // Every worker it started has been reaped: this process has no child left.
  CHECK((::waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD));
  const std::string& msg = pool.error().message;
  CHECK(msg.find('\n') == std::string::npos);
  // Every start error ends naming the worker that failed; which one fails first when all
  // of them would is not fixed.
  std::smatch m;
  INFO(msg);
  REQUIRE(std::regex_search(msg, m, std::regex(" \\(worker ([0-9]+)\\)$")));
  CHECK(std::stoul(m[1]) < workers);
  return msg.substr(0, static_cast<size_t>(m.position(0)));
}

}  // namespace

TEST_CASE("a missing plugin file is named with 'file not found'", "[integration][plugin]") {
  TempDir dir;
  std::string path = (dir.path() / "nope.so").string();
  CHECK(start_error(path) == "pool test: plugin " + path + ": file not found");
}

TEST_CASE("a file that is not a shared object is refused before loading", "[integration][plugin]") {
  TempDir dir;
  std::string path = dir.write("text.so", "this is not an ELF file\n").string();
  CHECK(start_error(path) == "pool test: plugin " + path + ": not a shared object (no ELF header)");
  std::string exe = SHOAL_WORKER_BIN;
  CHECK(start_error(exe).find("not a shared object") != std::string::npos);
}

TEST_CASE("a directory is not a plugin", "[integration][plugin]") {
  TempDir dir;
  CHECK(start_error(dir.path().string()) == "pool test: plugin " + dir.path().string() + ": not a regular file");
}

TEST_CASE("a plugin without shoal_run names the missing symbol", "[integration][plugin]") {
  std::string path = fixture("fx_no_run");
  CHECK(start_error(path) == "pool test: plugin " + path + ": missing symbol shoal_run (not a shoal plugin?)");
}

TEST_CASE("a shoal_run exported as data is refused before loading, not crashed on at each task", "[integration][plugin]") {
  // The worker's loader makes the check `shoal check` makes: a pool built from C++ (no
  // CLI) gets a start error instead of a worker that dies at every task.
  TempDir dir;
  const auto bytes = craft_plugin_with_data_run(elf_machine(SHOAL_PLUGIN_ECHO));
  const std::string path = dir.write("data_run.so", std::string(bytes.begin(), bytes.end())).string();
  CHECK(start_error(path) ==
        "pool test: plugin " + path + ": shoal_run is a data symbol, not a function (calling it would crash the worker)");
}

TEST_CASE("a plugin built for another ABI major names both versions", "[integration][plugin]") {
  std::string path = fixture("fx_abi_major_2");
  CHECK(start_error(path) == "pool test: plugin " + path + ": built for ABI 2.3 while this runtime speaks 1.1");
}

TEST_CASE("an unresolved symbol fails at load time (RTLD_NOW), not mid-task", "[integration][plugin]") {
  std::string path = fixture("fx_undefined_symbol");
  std::string msg = start_error(path);
  CHECK(msg.rfind("pool test: plugin " + path + ": cannot load: ", 0) == 0);
  CHECK(msg.find("undefined symbol: shoal_fixture_symbol_that_does_not_exist") != std::string::npos);
}

TEST_CASE("an init that throws reports the exception's message", "[integration][plugin]") {
  std::string path = fixture("fx_init_fails");
  CHECK(start_error(path) == "pool test: plugin " + path + ": init failed: init refused: the fixture always fails");
}

TEST_CASE("an init that returns an error through the C ABI reports its message", "[integration][plugin]") {
  std::string path = fixture("fx_init_status");
  CHECK(start_error(path, 1) == "pool test: plugin " + path + ": init failed: missing parameter 'dsn'");
}

TEST_CASE("a missing worker executable is reported, not retried", "[integration][plugin]") {
  RuntimeOptions opts;
  opts.worker_path = "/nonexistent/shoal-worker";
  auto pool = Pool::start(pool_config(SHOAL_PLUGIN_ECHO, 1), opts);
  REQUIRE_FALSE(pool.ok());
  CHECK(pool.error().code == Errc::spawn);
  CHECK(pool.error().message ==
        "worker executable /nonexistent/shoal-worker: No such file or directory (set SHOAL_WORKER to its path)");
}

TEST_CASE("a respawned worker that cannot load its plugin is not retried: the pool fails at once",
          "[integration][plugin]") {
  // kExitFatal before Ready: a new worker would fail the same way, unlike an init that
  // refused (a database down), which is retried with back-off (lifecycle_test).
  TempDir dir;
  const auto path = dir.path() / "echo.so";
  std::filesystem::copy_file(SHOAL_PLUGIN_ECHO, path);
  auto pool = start_pool(pool_config(path.string(), 1));
  CHECK(get(pool->submit("before")).output == "before");
  // Overwritten in place (what a deploy must never do: a file renamed over the path
  // would not reach the pool's workers, which load the file their generation pinned):
  // the idle worker never touches the plugin's pages again; a new one finds text.
  {
    std::ofstream out(path, std::ios::trunc);
    out << "this is not an ELF file\n";
  }
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(::kill(pool->worker_pids().at(0), SIGKILL) == 0);
  Outcome o = get(pool->submit("after"));
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(o.status == Status::rejected);
  CHECK(o.error == "pool failed: plugin " + path.string() +
                       ": not a shared object (no ELF header) (worker 0); not respawned: a new worker would fail the "
                       "same way");
  // Five starts with back-off would take 3.75 s at least.
  CHECK(took < 3.0 * kSlow);
  pool->join();
  CHECK((::waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD));
}
