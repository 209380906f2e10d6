// Declared params (issue 17) as users meet them: `shoal check` on a config with each kind
// of bad param, at the exact FILE:LINE:COLUMN; the same refusal when a pool is built in
// C++ without the CLI; the typed accessors and defaults inside a real worker; host->param
// of an undeclared name; `shoal inspect`'s table.
#include "fixture_paths.hpp"
#include "support/json_rows.hpp"
#include "support/subprocess.hpp"
#include "support/test_env.hpp"

#include <shoal/runtime.hpp>

#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <regex>
#include <string>
#include <vector>

using namespace shoal;
using namespace shoal::test;
using namespace std::chrono_literals;

namespace {

// `shoal ARGS...`, which must have run and exited by itself within a minute.
// "CONFIG:LINE:COLUMN: " of the first `needle` on line `line` (1-based) of `text`,
// found in the config text itself so that the expected position is independent of
// the reader that reports it.
std::string at(const std::filesystem::path& config, const std::string& text, int line, const std::string& needle) {
  auto lines = lines_of(text);
  REQUIRE(line >= 1);
  REQUIRE(static_cast<size_t>(line) <= lines.size());
  const size_t column = lines[static_cast<size_t>(line) - 1].find(needle);
  INFO("line " << line << ": " << lines[static_cast<size_t>(line) - 1] << " needle " << needle);
  REQUIRE(column != std::string::npos);
  return config.string() + ":" + std::to_string(line) + ":" + std::to_string(column + 1) + ": ";
}

std::string q(const std::string& s) { return "\"" + s + "\""; }

// The start error of a pool built in code, without the worker suffix " (worker N)".
std::string start_error(const PoolConfig& config) {
  auto pool = Pool::start(config);
  REQUIRE_FALSE(pool.ok());
  CHECK((::waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD));  // every worker reaped
  const std::string& msg = pool.error().message;
  INFO(msg);
  CHECK(msg.find('\n') == std::string::npos);
  std::smatch m;
  REQUIRE(std::regex_search(msg, m, std::regex(" \\(worker [0-9]+\\)$")));
  return msg.substr(0, static_cast<size_t>(m.position(0)));
}

}  // namespace

TEST_CASE("params: check puts each bad param at its FILE:LINE:COLUMN and exits 2", "[integration][params][check]") {
  TempDir dir;
  const std::string fx = fixture("fx_params");
  const std::string text = "pools:\n"
                           "  digest:\n"
                           "    plugin: " + q(SHOAL_PLUGIN_SHA256) + "\n"
                           "    params:\n"
                           "      algoritm: sha512\n"                                                   // 5
                           "  typed:\n"
                           "    plugin: " + q(fx) + "\n"
                           "    params: {n: many, verbose: yes, mode: slow, wait: soon, buffer: 4MiB}\n"  // 8
                           "  range:\n"
                           "    plugin: " + q(fx) + "\n"                                                // 10
                           "    params: {n: 65}\n"                                                      // 11
                           "  echo:\n"
                           "    plugin: " + q(SHOAL_PLUGIN_ECHO) + "\n"
                           "    params: {x: 1}\n"                                                       // 14
                           "    resources:\n"
                           "      - name: db\n"
                           "        module: " + q(SHOAL_RESOURCE_SQLITE) + "\n"                         // 17
                           "        params: {mode: rwx}\n"                                              // 18
                           "  bad:\n"
                           "    plugin: " + q(fixture("fx_params_bad")) + "\n";                         // 20
  const auto config = dir.write("params.yaml", text);
  auto r = shoal_cli({"check", config.string()});
  INFO(describe(r));
  CHECK(r.exit_code == 2);
  const std::string sha = std::string("plugin ") + SHOAL_PLUGIN_SHA256 + ": ";
  const std::string plugin = "plugin " + fx + ": ";
  const std::vector<std::string> expected = {
      at(config, text, 5, "algoritm") + "pool 'digest': " + sha + "unknown param 'algoritm' (did you mean 'algorithm'?)",
      at(config, text, 8, "slow") + "pool 'typed': " + plugin + "param 'mode': expected one of fast, exact, found 'slow'",
      at(config, text, 8, "many") + "pool 'typed': " + plugin + "param 'n': expected an integer from 1 to 64, found 'many'",
      at(config, text, 8, "yes") + "pool 'typed': " + plugin + "param 'verbose': expected true or false, found 'yes'",
      at(config, text, 8, "soon") + "pool 'typed': " + plugin +
          "param 'wait': expected a duration such as 250ms or 30s, found 'soon'",
      at(config, text, 11, "65") + "pool 'range': " + plugin + "param 'n': expected an integer from 1 to 64, found '65'",
      at(config, text, 10, "\"") + "pool 'range': " + plugin + "missing required param 'mode' (how to compute)",
      at(config, text, 14, "x:") + "pool 'echo': plugin " + SHOAL_PLUGIN_ECHO +
          ": unknown param 'x' (it declares no params)",
      at(config, text, 18, "rwx") + "pool 'echo' resource 'db': resource module " + SHOAL_RESOURCE_SQLITE +
          ": param 'mode': expected one of ro, rw, found 'rwx' (did you mean 'rw'?)",
      at(config, text, 17, "\"") + "pool 'echo' resource 'db': resource module " + SHOAL_RESOURCE_SQLITE +
          ": missing required param 'path' (the database file)",
      at(config, text, 20, "\"") + "pool 'bad': plugin " + fixture("fx_params_bad") +
          ": shoal_plugin_params: line 2: default of param 'n': expected an integer from 1 to 64, found '99'",
  };
  CHECK(lines_of(r.out) == expected);
  CHECK(lines_of(r.err) == std::vector<std::string>{"shoal: check: " + config.string() + ": 11 problems"});
}

TEST_CASE("params: check passes declared params and notes a plugin that declares none", "[integration][params][check]") {
  TempDir dir;
  const std::string text = "pools:\n"
                           "  digest:\n"
                           "    plugin: " + q(SHOAL_PLUGIN_SHA256) + "\n"
                           "    params: {algorithm: sha512}\n"
                           "  free:\n"
                           "    plugin: " + q(fixture("fx_fault")) + "\n"
                           "    params: {anything: goes}\n";
  const auto config = dir.write("ok.yaml", text);
  auto r = shoal_cli({"check", config.string()});
  INFO(describe(r));
  CHECK(r.exit_code == 0);
  CHECK(r.out.empty());
  CHECK(lines_of(r.err) ==
        std::vector<std::string>{"shoal: check: note: " + at(config, text, 6, "\"") + "pool 'free': " +
                                     fixture("fx_fault") + " declares no shoal_plugin_abi_version or shoal_plugin_params: its ABI version is known only "
                                     "once a worker loads it, and its params are not checked",
                                 "shoal: check: " + config.string() + ": ok (2 pools, 2 module files)"});
}

TEST_CASE("params: a pool built in C++ is refused at worker start with the same line", "[integration][params][pool]") {
  auto digest = pool_config(SHOAL_PLUGIN_SHA256, 2);
  digest.params["algoritm"] = "sha512";
  CHECK(start_error(digest) == std::string("pool test: plugin ") + SHOAL_PLUGIN_SHA256 +
                                   ": unknown param 'algoritm' (did you mean 'algorithm'?)");

  const std::string fx = fixture("fx_params");
  auto typed = pool_config(fx, 1);
  typed.params = {{"mode", "fast"}, {"n", "many"}};
  CHECK(start_error(typed) == "pool test: plugin " + fx + ": param 'n': expected an integer from 1 to 64, found 'many'");
  typed.params = {{"mode", "fast"}, {"n", "0"}};
  CHECK(start_error(typed) == "pool test: plugin " + fx + ": param 'n': expected an integer from 1 to 64, found '0'");
  typed.params = {{"mode", "quick"}};
  CHECK(start_error(typed) == "pool test: plugin " + fx + ": param 'mode': expected one of fast, exact, found 'quick'");
  typed.params = {{"mode", "fast"}, {"wait", "later"}};
  CHECK(start_error(typed) ==
        "pool test: plugin " + fx + ": param 'wait': expected a duration such as 250ms or 30s, found 'later'");
  typed.params = {};
  CHECK(start_error(typed) == "pool test: plugin " + fx + ": missing required param 'mode' (how to compute)");

  // A resource module's params are checked before it opens.
  auto with_db = pool_config(SHOAL_PLUGIN_ECHO, 1);
  ResourceConfig db;
  db.name = "db";
  db.module = SHOAL_RESOURCE_SQLITE;
  db.params = {{"path", "/nonexistent/words.db"}, {"mode", "rwx"}};
  with_db.resources.push_back(db);
  CHECK(start_error(with_db) == std::string("pool test: resource db: resource module ") + SHOAL_RESOURCE_SQLITE +
                                    ": param 'mode': expected one of ro, rw, found 'rwx' (did you mean 'rw'?)");
}

TEST_CASE("params: typed accessors get canonical values and the declared defaults", "[integration][params][pool]") {
  const std::string fx = fixture("fx_params");
  auto cfg = pool_config(fx, 1);
  cfg.params = {{"mode", "exact"}, {"buffer", "1KiB"}, {"wait", "2s"}, {"verbose", "true"}, {"label", "L"}};
  auto pool = start_pool(cfg);
  CHECK(get(pool->submit("typed")).output == "n=8 buffer=1024 wait_ms=2000 verbose=true mode=exact label=L");
  // host->param itself: canonical text, the default when not configured, NULL for an
  // optional param nobody set.
  CHECK(get(pool->submit("raw buffer")).output == "1024");
  CHECK(get(pool->submit("raw wait")).output == "2000000000");
  CHECK(get(pool->submit("raw n")).output == "8");
  CHECK(get(pool->submit("raw init_reads")).output == "<null>");
  // A type the declaration does not give: the task fails, naming the param.
  Outcome wrong = get(pool->submit("typed-int mode"));
  CHECK(wrong.status == Status::error);
  CHECK(wrong.error.find("param 'mode': 'exact' is not an integer") == 0);
  pool->join();

  cfg.params = {{"mode", "fast"}};
  auto defaults = start_pool(cfg);
  CHECK(get(defaults->submit("typed")).output == "n=8 buffer=4194304 wait_ms=1500 verbose=false mode=fast label=-");
  defaults->join();
}

TEST_CASE("params: host->param of an undeclared name fails the call that made it, naming it", "[integration][params][pool]") {
  const std::string fx = fixture("fx_params");
  auto cfg = pool_config(fx, 1);
  cfg.params = {{"mode", "fast"}};
  auto pool = start_pool(cfg);
  Outcome o = get(pool->submit("raw mdoe"));
  CHECK(o.status == Status::error);
  CHECK(o.error == "plugin " + fx + ": host->param('mdoe'): not a declared param (did you mean 'mode'?); declare it in SHOAL_PARAMS");
  // The next task is unaffected.
  CHECK(get(pool->submit("raw mode")).output == "fast");
  pool->join();

  // In init: the worker does not start, and the message says why.
  cfg.params = {{"mode", "fast"}, {"init_reads", "bufer"}};
  CHECK(start_error(cfg) == "pool test: plugin " + fx + ": init failed: plugin " + fx +
                                ": host->param('bufer'): not a declared param (did you mean 'buffer'?); declare it in "
                                "SHOAL_PARAMS");
}

TEST_CASE("params: inspect prints the declared params as a table", "[integration][params][inspect]") {
  auto r = shoal_cli({"inspect", SHOAL_RESOURCE_SQLITE, SHOAL_PLUGIN_ECHO, fixture("fx_fault")});
  INFO(describe(r));
  CHECK(r.exit_code == 0);
  const std::string out = r.out;
  const std::string table =
      "params:\n"
      "  NAME             TYPE               DEFAULT       DOC\n"
      "  path             string             required      the database file\n"
      "  mode             one of ro|rw       default ro    ro: read only; rw: read and write, created if missing\n"
      "  busy_timeout_ms  int 0..2147483647  default 5000  how long a locked database is retried\n";
  CHECK(out.find(table) != std::string::npos);
  CHECK(out.find("\nparams: none\n") != std::string::npos);  // echo takes none
  CHECK(out.find("\nparams: not declared (no shoal_plugin_params)\n") != std::string::npos);

  auto bad = shoal_cli({"inspect", fixture("fx_params_bad")});
  CHECK(bad.exit_code == 2);
  CHECK(bad.out.find("params: malformed shoal_plugin_params: line 2: default of param 'n': expected an integer from 1 "
                     "to 64, found '99'\n") != std::string::npos);
}
