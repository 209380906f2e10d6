// Unit tests of the YAML config loader (runtime/src/config): errors with exact
// positions, every field's parsed value, defaults, paths, ${ENV}, params rendering,
// durations, sizes and the text helpers.
#include <shoal/config.hpp>

#include "config/values.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using shoal::Config;
using shoal::Duration;
using shoal::Errc;
using shoal::load_config_string;

namespace {

constexpr const char* kSource = "cfg.yaml";

// "FILE:LINE:COLUMN: message" taken apart.
struct Failure {
  std::string file;
  int line = 0;
  int column = 0;
  std::string message;
};

Failure split(const std::string& text) {
  Failure f;
  const auto c1 = text.find(':');
  const auto c2 = text.find(':', c1 + 1);
  const auto c3 = text.find(':', c2 + 1);
  REQUIRE(c3 != std::string::npos);
  REQUIRE(text.compare(c3, 2, ": ") == 0);
  f.file = text.substr(0, c1);
  f.line = std::stoi(text.substr(c1 + 1, c2 - c1 - 1));
  f.column = std::stoi(text.substr(c2 + 1, c3 - c2 - 1));
  f.message = text.substr(c3 + 2);
  return f;
}

// Loads YAML that must fail with a config error; returns the error taken apart.
Failure fail(const std::string& yaml) {
  auto r = load_config_string(yaml, kSource, "/base");
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::config);
  CHECK(r.error().message.find('\n') == std::string::npos);
  Failure f = split(r.error().message);
  CHECK(f.file == kSource);
  return f;
}

// Loads YAML that must succeed.
Config load(const std::string& yaml, const fs::path& base = "/base") {
  auto r = load_config_string(yaml, kSource, base);
  if (!r) FAIL("unexpected error: " << r.error().message);
  return std::move(r).value();
}

// A pool "digest" with its required plugin; `body` starts on line 4, column 5.
std::string pool(const std::string& body) { return "pools:\n  digest:\n    plugin: x.so\n" + body; }

std::string nested_brackets(int levels) {
  return std::string(static_cast<std::size_t>(levels), '[') +
         std::string(static_cast<std::size_t>(levels), ']');
}

// Nine levels of ten aliases each: ~10^9 nodes when walked, 300-odd bytes of text.
std::string alias_bomb() {
  std::string yaml = pool("    params:\n      l0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
  for (int i = 1; i < 9; ++i) {
    yaml += "      l" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) yaml += (j ? ", *a" : "*a") + std::to_string(i - 1);
    yaml += "]\n";
  }
  return yaml;
}

struct BadCase {
  const char* name;
  std::string yaml;
  int line;
  int column;
  const char* message;  // a substring of the message
};

}  // namespace

TEST_CASE("malformed configs name line, column and what was expected", "[unit][config]") {
  const BadCase cases[] = {
      {"unknown key with suggestion", pool("    wrokers: 2\n"), 4, 5,
       "unknown key 'wrokers' in pool 'digest' (did you mean 'workers'?)"},
      {"unknown top-level key", "pool:\n  a: {plugin: x}\n", 1, 1,
       "unknown key 'pool' (did you mean 'pools'?)"},
      {"unknown key in queue", pool("    queue: {capcity: 4MiB}\n"), 4, 13,
       "unknown key 'capcity' in queue (did you mean 'capacity'?)"},
      {"unknown key in a resource",
       pool("    resources:\n      - {name: db, module: d.so, prority: 1}\n"), 5, 34,
       "unknown key 'prority' in resources[0] (did you mean 'priority'?)"},
      {"duplicate key", pool("    workers: 2\n    workers: 3\n"), 5, 5,
       "duplicate key 'workers' (first at 4:5)"},
      {"duplicate pool", "pools:\n  a: {plugin: x}\n  a: {plugin: y}\n", 3, 3,
       "duplicate key 'a' (first at 2:3)"},
      {"duplicate param", pool("    params: {k: 1, k: 2}\n"), 4, 20,
       "duplicate key 'k' (first at 4:14)"},
      {"duplicate nested param", pool("    params: {k: {a: 1, a: 2}}\n"), 4, 24,
       "duplicate key 'a' (first at 4:18)"},
      {"duplicate resource name",
       pool("    resources:\n      - {name: db, module: a.so}\n      - {name: db, module: b.so}\n"),
       6, 16, "resources[1].name: duplicate resource name 'db' (first at 5:16)"},
      {"word for a duration", pool("    task_timeout: soon\n"), 4, 19,
       "task_timeout: expected a duration such as 250ms or 30s, found 'soon'"},
      {"duration without unit", pool("    task_timeout: 30\n"), 4, 19,
       "task_timeout: expected a duration such as 250ms or 30s, found '30'"},
      {"bad shutdown grace", pool("    shutdown: {grace: 5, fini_timeout: 2s}\n"), 4, 23,
       "shutdown.grace: expected a duration such as 250ms or 30s, found '5'"},
      {"zero workers", pool("    workers: 0\n"), 4, 14,
       "workers: expected an integer from 1 to 1024, found '0'"},
      {"too many workers", pool("    workers: 2000\n"), 4, 14,
       "workers: expected an integer from 1 to 1024, found '2000'"},
      {"negative workers", pool("    workers: -1\n"), 4, 14,
       "workers: expected an integer from 1 to 1024, found '-1'"},
      {"fractional workers", pool("    workers: 2.5\n"), 4, 14,
       "workers: expected an integer from 1 to 1024, found '2.5'"},
      {"mapping for workers", pool("    workers: {n: 2}\n"), 4, 14,
       "workers: expected an integer from 1 to 1024, found a mapping"},
      {"empty workers value", pool("    workers:\n    retries: 1\n"), 4, 5,
       "workers: expected an integer from 1 to 1024, found null"},
      {"too many retries", pool("    retries: 101\n"), 4, 14,
       "retries: expected an integer from 0 to 100, found '101'"},
      {"negative max_tasks_per_worker", pool("    max_tasks_per_worker: -1\n"), 4, 27,
       "max_tasks_per_worker: expected a non-negative integer, found '-1'"},
      {"fini_priority past int32", pool("    fini_priority: 2147483648\n"), 4, 20,
       "fini_priority: expected an integer from -2147483648 to 2147483647, found '2147483648'"},
      {"bad max_memory", pool("    max_memory: lots\n"), 4, 17,
       "max_memory: expected a size such as 512MiB or 4096, found 'lots'"},
      {"queue too small", pool("    queue:\n      capacity: 1KiB\n"), 5, 17,
       "queue.capacity: expected a size from 4KiB to 1GiB such as 4MiB, found '1KiB'"},
      {"queue too large", pool("    queue: {capacity: 2GiB}\n"), 4, 23,
       "queue.capacity: expected a size from 4KiB to 1GiB such as 4MiB, found '2GiB'"},
      {"queue not a mapping", pool("    queue: 4MiB\n"), 4, 12,
       "queue: expected a mapping, found '4MiB'"},
      {"plugin is a sequence", "pools:\n  digest:\n    plugin: [a.so]\n", 3, 13,
       "plugin: expected a file path, found a sequence"},
      {"empty plugin", "pools:\n  digest:\n    plugin: \"\"\n", 3, 13,
       "plugin: expected a file path, found ''"},
      {"missing plugin", "pools:\n  digest:\n    workers: 2\n", 3, 5,
       "pool 'digest': missing required key 'plugin'"},
      {"pool is a scalar", "pools:\n  digest: fast\n", 2, 11,
       "pool 'digest': expected a mapping, found 'fast'"},
      {"missing pools", "{}\n", 1, 1, "missing required key 'pools'"},
      {"empty pools", "pools: {}\n", 1, 8,
       "pools: expected a non-empty mapping of pool names to pools, found an empty mapping"},
      {"null pools", "pools:\n", 1, 1,
       "pools: expected a non-empty mapping of pool names to pools, found null"},
      {"empty file", "", 1, 1, "expected a mapping with 'pools', found an empty document"},
      {"comments only", "# nothing here\n", 1, 1,
       "expected a mapping with 'pools', found an empty document"},
      {"scalar document", "\nhello\n", 2, 1, "expected a mapping with 'pools', found 'hello'"},
      {"two documents", "pools: {a: {plugin: x}}\n---\npools: {b: {plugin: y}}\n", 2, 1,
       "expected one YAML document, found more"},
      // yaml-cpp 0.7 LoadAll loops forever here (issue #1040); found by the config fuzzer.
      {"leading comma", ",: &a\n", 1, 1, "expected one YAML document, found more"},
      {"bad pool name", "pools:\n  \"a b\": {plugin: x}\n", 2, 3,
       "pool name: expected a name of letters, digits, '_', '.' or '-', found 'a b'"},
      {"bad resource name", pool("    resources:\n      - {name: a/b, module: m.so}\n"), 5, 16,
       "resources[0].name: expected a name of letters, digits, '_', '.' or '-', found 'a/b'"},
      {"resources not a sequence", pool("    resources: {name: db}\n"), 4, 16,
       "resources: expected a sequence of resources, found a mapping"},
      {"resource missing module", pool("    resources:\n      - name: db\n"), 5, 9,
       "resources[0]: missing required key 'module'"},
      {"env value is a mapping", pool("    env:\n      A: {b: c}\n"), 5, 10,
       "env.A: expected a string, found a mapping"},
      {"env bad variable name", pool("    env: {A-B: x}\n"), 4, 11,
       "env: expected a variable name such as OMP_NUM_THREADS, found 'A-B'"},
      {"params not a mapping", pool("    params: [a, b]\n"), 4, 13,
       "params: expected a mapping, found a sequence"},
      {"sequence as a key", pool("    params: {[a]: 1}\n"), 4, 14,
       "params: expected a key name, found a sequence"},
      {"unset variable", "pools:\n  d:\n    plugin: ${SHOAL_TEST_SURELY_UNSET}/p.so\n", 3, 13,
       "plugin: environment variable 'SHOAL_TEST_SURELY_UNSET' is not set"},
      {"unset variable in nested param",
       pool("    params: {k: [a, \"${SHOAL_TEST_SURELY_UNSET}\"]}\n"), 4, 21,
       "params.k[1]: environment variable 'SHOAL_TEST_SURELY_UNSET' is not set"},
      {"unterminated variable", pool("    env: {A: \"${HOME\"}\n"), 4, 14,
       "env.A: unterminated '${' in '${HOME'"},
      {"bad variable name", pool("    env: {A: \"${1X}\"}\n"), 4, 14,
       "env.A: bad variable name '1X' in '${1X}'"},
      {"syntax error", "pools: [a\n", 2, 1, "end of sequence flow not found"},
      {"undefined alias", pool("    workers: *nope\n"), 4, 14,
       "the referenced anchor is not defined"},
      {"nesting too deep", pool("    params: {p: " + nested_brackets(600) + "}\n"), 4, 1217,
       "nesting deeper than 499 levels"},
      {"aliases nest past the limit",
       pool("    params:\n      a: &a " + nested_brackets(300) +
            "\n      b: " + std::string(300, '[') + "*a" + std::string(300, ']') + "\n"),
       5, 212, "nesting deeper than 499 levels"},
      {"alias cycle", pool("    params: {c: &c [*c]}\n"), 4, 17, "nesting deeper than 499 levels"},
      {"alias bomb", alias_bomb(), 5, 37,
       "config too large: more than 100000 nodes after expanding aliases"},
  };
  for (const BadCase& c : cases) {
    DYNAMIC_SECTION(c.name) {
      const Failure f = fail(c.yaml);
      INFO("message: " << f.message);
      CHECK(f.line == c.line);
      CHECK(f.column == c.column);
      CHECK_THAT(f.message, Catch::Contains(c.message));
    }
  }
}

TEST_CASE("an unknown key far from every known key gets no suggestion", "[unit][config]") {
  const Failure f = fail(pool("    colour: red\n"));
  CHECK(f.message == "unknown key 'colour' in pool 'digest'");
}

TEST_CASE("a YAML syntax error carries yaml-cpp's message, not its prefix", "[unit][config]") {
  const Failure f = fail("pools:\n  a: {plugin: x\n");
  CHECK(f.message.find("yaml-cpp") == std::string::npos);
  CHECK(f.message == "end of map flow not found");
}

TEST_CASE("nesting at yaml-cpp's limit is not reported as a bad file", "[unit][config]") {
  // Four mappings and 495 sequences are 499 levels and load; one more is refused with
  // a message that says so (yaml-cpp's own says "bad file").
  const auto doc = [](int levels) {
    return "pools: {a: {plugin: x, params: {p: " + nested_brackets(levels) + "}}}\n";
  };
  const Config cfg = load(doc(495));
  const std::string& p = cfg.pools.at(0).params.at("p");
  CHECK(std::count(p.begin(), p.end(), '[') == 495);
  CHECK(std::count(p.begin(), p.end(), ']') == 495);
  CHECK(fail(doc(496)).message == "nesting deeper than 499 levels");
  const Failure f = fail(nested_brackets(500));
  CHECK(f.message == "nesting deeper than 499 levels");
  CHECK(f.message.find("bad file") == std::string::npos);
}

TEST_CASE("messages stay on one line whatever the value holds", "[unit][config]") {
  const Failure f = fail(pool("    task_timeout: |\n      two\n      lines\n"));
  CHECK(f.message ==
        "task_timeout: expected a duration such as 250ms or 30s, found 'two\\nlines\\n'");
  const Failure g = fail(pool("    workers: " + std::string(100, '9') + "\n"));
  CHECK_THAT(g.message, Catch::EndsWith(std::string(60, '9') + "...'"));
}

TEST_CASE("every field is read", "[unit][config]") {
  const Config cfg = load(
      "pools:\n"
      "  digest:\n"
      "    plugin: plugins/sha256.so\n"
      "    workers: 3\n"
      "    params: {algorithm: sha256, rounds: 12}\n"
      "    max_tasks_per_worker: 1000\n"
      "    max_memory: 512MiB\n"
      "    task_timeout: 1.5s\n"
      "    retries: 2\n"
      "    fini_priority: -7\n"
      "    queue: {capacity: 8MiB}\n"
      "    shutdown: {grace: 250ms, fini_timeout: 3s}\n"
      "    env: {OMP_NUM_THREADS: \"1\", LANG: C}\n"
      "    resources:\n"
      "      - name: db\n"
      "        module: plugins/sqlite_resource.so\n"
      "        priority: 10\n"
      "        params: {path: data/words.db}\n"
      "      - name: cache.2\n"
      "        module: /opt/shoal/cache.so\n");
  CHECK(cfg.source == kSource);
  REQUIRE(cfg.pools.size() == 1);
  const shoal::PoolConfig& p = cfg.pools[0];
  CHECK(p.name == "digest");
  CHECK(p.plugin == fs::path("/base/plugins/sha256.so"));
  CHECK(p.workers == 3);
  CHECK(p.params == std::map<std::string, std::string>{{"algorithm", "sha256"}, {"rounds", "12"}});
  CHECK(p.max_tasks_per_worker == 1000);
  CHECK(p.max_memory == 512ull << 20);
  CHECK(p.task_timeout == 1500ms);
  CHECK(p.retries == 2);
  CHECK(p.fini_priority == -7);
  CHECK(p.queue_capacity == 8ull << 20);
  CHECK(p.grace == 250ms);
  CHECK(p.fini_timeout == 3s);
  CHECK(p.env == std::map<std::string, std::string>{{"OMP_NUM_THREADS", "1"}, {"LANG", "C"}});
  REQUIRE(p.resources.size() == 2);
  CHECK(p.resources[0].name == "db");
  CHECK(p.resources[0].module == fs::path("/base/plugins/sqlite_resource.so"));
  CHECK(p.resources[0].priority == 10);
  CHECK(p.resources[0].params == std::map<std::string, std::string>{{"path", "data/words.db"}});
  CHECK(p.resources[1].name == "cache.2");
  CHECK(p.resources[1].module == fs::path("/opt/shoal/cache.so"));
  CHECK(p.resources[1].priority == 0);
  CHECK(p.resources[1].params.empty());
}

TEST_CASE("omitted fields take their defaults", "[unit][config]") {
  const Config cfg = load("pools:\n  p:\n    plugin: p.so\n");
  REQUIRE(cfg.pools.size() == 1);
  const shoal::PoolConfig& p = cfg.pools[0];
  const uint32_t cpus = std::clamp(std::thread::hardware_concurrency(), 1u, 1024u);
  CHECK(p.workers == cpus);
  CHECK(p.workers >= 1);
  CHECK(p.params.empty());
  CHECK(p.max_tasks_per_worker == 0);
  CHECK(p.max_memory == 0);
  CHECK(p.task_timeout == Duration{0});
  CHECK(p.retries == 0);
  CHECK(p.fini_priority == 100);
  CHECK(p.queue_capacity == 4ull << 20);
  CHECK(p.grace == 5s);
  CHECK(p.fini_timeout == 2s);
  CHECK(p.env.empty());
  CHECK(p.resources.empty());
}

TEST_CASE("limits are inclusive", "[unit][config]") {
  const Config cfg = load(
      "pools:\n"
      "  lo: {plugin: p.so, workers: 1, retries: 0, fini_priority: -2147483648,"
      " queue: {capacity: 4KiB}, max_tasks_per_worker: 18446744073709551615}\n"
      "  hi: {plugin: p.so, workers: 1024, retries: 100, fini_priority: 2147483647,"
      " queue: {capacity: 1GiB}, task_timeout: 0, max_memory: 0}\n");
  REQUIRE(cfg.pools.size() == 2);
  CHECK(cfg.pools[0].workers == 1);
  CHECK(cfg.pools[0].fini_priority == std::numeric_limits<int32_t>::min());
  CHECK(cfg.pools[0].queue_capacity == 4096);
  CHECK(cfg.pools[0].max_tasks_per_worker == std::numeric_limits<uint64_t>::max());
  CHECK(cfg.pools[1].workers == 1024);
  CHECK(cfg.pools[1].retries == 100);
  CHECK(cfg.pools[1].fini_priority == std::numeric_limits<int32_t>::max());
  CHECK(cfg.pools[1].queue_capacity == 1ull << 30);
}

TEST_CASE("pools keep file order", "[unit][config]") {
  const Config cfg =
      load("pools:\n  zeta: {plugin: z.so}\n  alpha: {plugin: a.so}\n  m-1_x.y: {plugin: m.so}\n");
  REQUIRE(cfg.pools.size() == 3);
  CHECK(cfg.pools[0].name == "zeta");
  CHECK(cfg.pools[1].name == "alpha");
  CHECK(cfg.pools[2].name == "m-1_x.y");
  CHECK(cfg.pools[1].plugin == fs::path("/base/a.so"));
}

TEST_CASE("paths are made absolute and normalized", "[unit][config]") {
  const Config cfg = load(
      "pools:\n"
      "  a: {plugin: plugins/../lib/./a.so}\n"
      "  b: {plugin: /opt//x/../b.so}\n"
      "  c: {plugin: c.so}\n",
      "/srv/app/conf");
  CHECK(cfg.pools[0].plugin == fs::path("/srv/app/conf/lib/a.so"));
  CHECK(cfg.pools[1].plugin == fs::path("/opt/b.so"));
  CHECK(cfg.pools[2].plugin == fs::path("/srv/app/conf/c.so"));

  const Config rel = load("pools:\n  a: {plugin: a.so}\n", "sub/dir");
  CHECK(rel.pools[0].plugin == (fs::current_path() / "sub/dir/a.so").lexically_normal());
  const Config none = load("pools:\n  a: {plugin: a.so}\n", "");
  CHECK(none.pools[0].plugin == (fs::current_path() / "a.so").lexically_normal());
}

TEST_CASE("${NAME} expands from the environment", "[unit][config]") {
  REQUIRE(::setenv("SHOAL_TEST_DIR", "/env/dir", 1) == 0);
  REQUIRE(::setenv("SHOAL_TEST_N", "4", 1) == 0);
  const Config cfg = load(
      "pools:\n"
      "  p:\n"
      "    plugin: ${SHOAL_TEST_DIR}/p.so\n"
      "    params: {dir: \"${SHOAL_TEST_DIR}\", cost: $$5, regex: ^a$, list: "
      "[\"${SHOAL_TEST_N}\"]}\n"
      "    env: {X: \"${SHOAL_TEST_DIR}:${SHOAL_TEST_N}\", Y: \"a$${SHOAL_TEST_N}\"}\n"
      "    resources: [{name: r, module: \"${SHOAL_TEST_DIR}/../r.so\"}]\n");
  const shoal::PoolConfig& p = cfg.pools.at(0);
  CHECK(p.plugin == fs::path("/env/dir/p.so"));
  CHECK(p.params.at("dir") == "/env/dir");
  CHECK(p.params.at("cost") == "$5");
  CHECK(p.params.at("regex") == "^a$");
  CHECK(p.params.at("list") == "[\"4\"]");
  CHECK(p.env.at("X") == "/env/dir:4");
  CHECK(p.env.at("Y") == "a${SHOAL_TEST_N}");
  CHECK(p.resources.at(0).module == fs::path("/env/r.so"));
  ::unsetenv("SHOAL_TEST_DIR");
  ::unsetenv("SHOAL_TEST_N");
}

TEST_CASE("params: scalars as text, sequences and mappings as flow YAML", "[unit][config]") {
  const Config cfg =
      load(pool("    params:\n"
                "      s: plain text\n"
                "      n: 42\n"
                "      q: \"yes\"\n"
                "      nul: ~\n"
                "      empty:\n"
                "      list: [1, \"2\", {a: b}, ~]\n"
                "      map: {k: [x, y], \"a: b\": c}\n"
                "      block:\n"
                "        - one\n"
                "        - two: 2\n"
                "      shared: &s [1, 2]\n"
                "      again: *s\n"));
  const auto& params = cfg.pools.at(0).params;
  CHECK(params.size() == 10);
  CHECK(params.at("s") == "plain text");
  CHECK(params.at("n") == "42");
  CHECK(params.at("q") == "yes");
  CHECK(params.at("nul").empty());
  CHECK(params.at("empty").empty());
  CHECK(params.at("list") == "[1, \"2\", {a: b}, ~]");
  CHECK(params.at("map") == "{k: [x, y], \"a: b\": c}");
  CHECK(params.at("block") == "[one, {two: 2}]");
  CHECK(params.at("shared") == "[1, 2]");
  CHECK(params.at("again") == "[1, 2]");
}

TEST_CASE("load_config_file reads a file and reports what it cannot read", "[unit][config]") {
  std::random_device rd;
  const fs::path dir =
      fs::temp_directory_path() /
      ("shoal_config_test_" + std::to_string(::getpid()) + "_" + std::to_string(rd()));
  REQUIRE(fs::create_directory(dir));
  const fs::path file = dir / "pool.yaml";
  {
    std::ofstream out(file);
    out << "pools:\n  p:\n    plugin: plugins/p.so\n    workers: 2\n";
  }
  auto ok = shoal::load_config_file(file);
  REQUIRE(ok);
  CHECK(ok->source == file);
  CHECK(ok->pools.at(0).plugin == dir / "plugins/p.so");
  CHECK(ok->pools.at(0).workers == 2);

  {
    std::ofstream out(file);
    out << "pools:\n  p:\n    plugin: p.so\n    workers: many\n";
  }
  auto bad = shoal::load_config_file(file);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == Errc::config);
  CHECK(bad.error().message ==
        file.string() + ":4:14: workers: expected an integer from 1 to 1024, found 'many'");

  auto folder = shoal::load_config_file(dir);
  REQUIRE_FALSE(folder);
  CHECK(folder.error().code == Errc::io);
  CHECK(folder.error().message == dir.string() + ": cannot read: Is a directory");

  fs::remove_all(dir);
  auto gone = shoal::load_config_file(file);
  REQUIRE_FALSE(gone);
  CHECK(gone.error().code == Errc::io);
  CHECK(gone.error().message == file.string() + ": cannot read: No such file or directory");
  CHECK_FALSE(fs::exists(dir));
}

TEST_CASE("durations", "[unit][config]") {
  const std::pair<const char*, Duration> good[] = {
      {"0", 0ns},
      {"0s", 0ns},
      {"250ms", 250ms},
      {"30s", 30s},
      {"1.5s", 1500ms},
      {"2m", 120s},
      {"1h", 3600s},
      {"500us", 500us},
      {"100ns", 100ns},
      {"0.5ms", 500us},
      {"1.25h", 4500s},
      {"1.0000000019s", 1s + 1ns},
      {"9223372036s", 9223372036s},
  };
  for (const auto& [text, want] : good) {
    INFO(text);
    Duration d{-1};
    CHECK(shoal::parse_duration(text, d));
    CHECK(d == want);
  }
  const char* bad[] = {"",     "30",   "1.5",   "s",           "-1s",
                       "1.s",  ".5s",  "1 s",   "1sec",        "1S",
                       "1e3s", "+1s",  "1.5ns", "0x10s",       "1d",
                       "00",   "ms30", "1ms ",  "9223372037s", "99999999999999999999ns"};
  for (const char* text : bad) {
    INFO(text);
    Duration d{-1};
    CHECK_FALSE(shoal::parse_duration(text, d));
    CHECK(d == Duration{-1});
  }
}

TEST_CASE("sizes", "[unit][config]") {
  const std::pair<const char*, uint64_t> good[] = {
      {"0", 0},
      {"4096", 4096},
      {"7B", 7},
      {"4KiB", 4096},
      {"1.5KiB", 1536},
      {"512MiB", 512ull << 20},
      {"1GiB", 1ull << 30},
      {"2TiB", 2ull << 40},
      {"1KB", 1000},
      {"10MB", 10'000'000},
      {"2GB", 2'000'000'000},
      {"3TB", 3'000'000'000'000},
      {"0.1KB", 100},
      {"1.0001KiB", 1024},  // rounds down
      {"18446744073709551615", std::numeric_limits<uint64_t>::max()},
      {"16777215TiB", 16777215ull << 40},
  };
  for (const auto& [text, want] : good) {
    INFO(text);
    uint64_t n = 1;
    CHECK(shoal::parse_size(text, n));
    CHECK(n == want);
  }
  const char* bad[] = {"",
                       "KiB",
                       "1.5",
                       "1.5B",
                       "4 KiB",
                       "4kib",
                       "-1",
                       "4KiBs",
                       "1e3",
                       "4K",
                       "+4KiB",
                       "18446744073709551616",
                       "16777216TiB",
                       "4.KiB",
                       ".5KiB"};
  for (const char* text : bad) {
    INFO(text);
    uint64_t n = 1;
    CHECK_FALSE(shoal::parse_size(text, n));
    CHECK(n == 1);
  }
}

TEST_CASE("integers", "[unit][config]") {
  using shoal::detail::parse_int_in;
  int32_t i = 0;
  CHECK(parse_int_in<int32_t>("-2147483648", INT32_MIN, INT32_MAX, i));
  CHECK(i == INT32_MIN);
  CHECK(parse_int_in<int32_t>("+12", INT32_MIN, INT32_MAX, i));
  CHECK(i == 12);
  CHECK_FALSE(parse_int_in<int32_t>("-2147483649", INT32_MIN, INT32_MAX, i));
  CHECK_FALSE(parse_int_in<int32_t>("0x10", INT32_MIN, INT32_MAX, i));
  CHECK_FALSE(parse_int_in<int32_t>("1_000", INT32_MIN, INT32_MAX, i));
  CHECK_FALSE(parse_int_in<int32_t>("-", INT32_MIN, INT32_MAX, i));
  CHECK(i == 12);
  uint64_t u = 5;
  CHECK(parse_int_in<uint64_t>("-0", 0, UINT64_MAX, u));
  CHECK(u == 0);
  CHECK_FALSE(parse_int_in<uint64_t>("-1", 0, UINT64_MAX, u));
  CHECK_FALSE(parse_int_in<uint64_t>("18446744073709551616", 0, UINT64_MAX, u));
  int64_t s = 0;
  CHECK(parse_int_in<int64_t>("-9223372036854775808", INT64_MIN, INT64_MAX, s));
  CHECK(s == INT64_MIN);
  CHECK_FALSE(parse_int_in<int64_t>("9223372036854775808", INT64_MIN, INT64_MAX, s));
}

TEST_CASE("names and variable names", "[unit][config]") {
  using shoal::detail::is_env_name;
  using shoal::detail::is_name;
  CHECK(is_name("digest"));
  CHECK(is_name("a.b-c_9"));
  CHECK_FALSE(is_name(""));
  CHECK_FALSE(is_name("a b"));
  CHECK_FALSE(is_name("a/b"));
  CHECK(is_env_name("_X1"));
  CHECK_FALSE(is_env_name("1X"));
  CHECK_FALSE(is_env_name("A-B"));
  CHECK_FALSE(is_env_name(""));
}

TEST_CASE("expand_env", "[unit][config]") {
  using shoal::detail::expand_env;
  using Status = shoal::detail::EnvExpansion::Status;
  REQUIRE(::setenv("SHOAL_TEST_V", "val", 1) == 0);
  auto e = expand_env("a${SHOAL_TEST_V}b$$c$d$");
  CHECK(e.status == Status::ok);
  CHECK(e.text == "avalb$c$d$");
  e = expand_env("${SHOAL_TEST_SURELY_UNSET}");
  CHECK(e.status == Status::unset);
  CHECK(e.detail == "SHOAL_TEST_SURELY_UNSET");
  e = expand_env("x${SHOAL_TEST_V");
  CHECK(e.status == Status::malformed);
  CHECK(e.detail == "unterminated '${'");
  e = expand_env("${}");
  CHECK(e.status == Status::malformed);
  CHECK(e.detail == "bad variable name ''");
  ::unsetenv("SHOAL_TEST_V");
  // The config's folder, whatever the environment holds under that name.
  REQUIRE(::setenv("SHOAL_CONFIG_DIR", "/elsewhere", 1) == 0);
  e = expand_env("${SHOAL_CONFIG_DIR}/words.db", "/etc/shoal");
  CHECK(e.status == Status::ok);
  CHECK(e.text == "/etc/shoal/words.db");
  ::unsetenv("SHOAL_CONFIG_DIR");
}

TEST_CASE("edit distance and suggestions", "[unit][config]") {
  using shoal::detail::closest_match;
  using shoal::detail::edit_distance;
  CHECK(edit_distance("", "") == 0);
  CHECK(edit_distance("workers", "workers") == 0);
  CHECK(edit_distance("wrokers", "workers") == 1);  // a swap costs one
  CHECK(edit_distance("worker", "workers") == 1);
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(edit_distance("", "abc") == 3);
  const std::string_view keys[] = {"workers", "retries", "env"};
  CHECK(closest_match("wokrers", keys) == "workers");
  CHECK(closest_match("retires", keys) == "retries");
  CHECK(closest_match("colour", keys).empty());
  CHECK(closest_match("envs", keys) == "env");
}

TEST_CASE("a NUL inside a quoted string is refused at its position, wherever the string is", "[unit][config]") {
  using namespace std::string_literals;
  // yaml-cpp turns "\0" into a real NUL; a C string would then end there and a different
  // plugin, value or param would be used.
  const std::string nul = "a NUL character (\\x00) at byte ";
  struct Case {
    std::string yaml;
    int line, column;
    std::string message;
  };
  const Case cases[] = {
      {"pools:\n  digest:\n    plugin: \"good.so\\0evil\"\n", 3, 13, "plugin: " + nul + "8 of 'good.so\\x00evil'"},
      {pool("    env: {A: \"1\\0\"}\n"), 4, 14, "env.A: " + nul + "2 of '1\\x00'"},
      {pool("    params:\n      k: [x, \"v\\0\"]\n"), 5, 14, "params.k[1]: " + nul + "2 of 'v\\x00'"},
      {pool("    params: {\"k\\0\": v}\n"), 4, 14, "params: " + nul + "2 of 'k\\x00'"},
      {pool("    resources:\n      - {name: db, module: \"\\0m.so\"}\n"), 5, 28,
       "resources[0].module: " + nul + "1 of '\\x00m.so'"},
  };
  for (const Case& c : cases) {
    const Failure f = fail(c.yaml);
    INFO(c.yaml);
    CHECK(f.line == c.line);
    CHECK(f.column == c.column);
    CHECK(f.message == c.message);
  }
  // A NUL written as an escape anywhere else is still text, not a NUL: "\\0" stays two bytes.
  CHECK(load(pool("    params: {k: \"a\\\\0\"}\n")).pools.at(0).params.at("k") == "a\\0");
}

TEST_CASE("a quoted number or boolean is a string, not the integer or flag a key takes", "[unit][config]") {
  const Failure w = fail(pool("    workers: \"2\"\n"));
  CHECK(w.line == 4);
  CHECK(w.column == 14);
  CHECK(w.message == "workers: expected an integer from 1 to 1024, found the string '2' (write it without quotes)");
  const Failure r = fail(pool("    retries: '1'\n"));
  CHECK(r.message == "retries: expected an integer from 0 to 100, found the string '1' (write it without quotes)");
  const Failure b = fail(pool("    limits: {core_dumps: \"true\"}\n"));
  CHECK(b.message ==
        "limits.core_dumps: expected true or false, found the string 'true' (write it without quotes)");
  // Unquoted they are read as before; a quoted value that is no number is reported as usual.
  CHECK(load(pool("    workers: 2\n")).pools.at(0).workers == 2);
  CHECK(fail(pool("    workers: \"many\"\n")).message == "workers: expected an integer from 1 to 1024, found 'many'");
}

TEST_CASE("a config file larger than the limit is refused without reading it whole", "[unit][config]") {
  // /dev/zero never ends: the loader must stop at its limit instead of growing until
  // bad_alloc.
  const auto start = std::chrono::steady_clock::now();
  auto zero = shoal::load_config_file("/dev/zero");
  REQUIRE_FALSE(zero);
  CHECK(zero.error().code == Errc::io);
  CHECK(zero.error().message == "/dev/zero: cannot read: larger than 16 MiB, the most a config file may hold");
  CHECK(std::chrono::steady_clock::now() - start < 10s);

  std::random_device rd;
  const fs::path file = fs::temp_directory_path() / ("shoal_config_big_" + std::to_string(::getpid()) + "_" +
                                                      std::to_string(rd()) + ".yaml");
  {
    std::ofstream out(file);
    out << "pools:\n  p:\n    plugin: p.so\n#" << std::string((16u << 20) - 30, 'x') << "\n";
  }
  CHECK(fs::file_size(file) == (16u << 20) + 1);
  auto big = shoal::load_config_file(file);
  REQUIRE_FALSE(big);
  CHECK(big.error().message == file.string() + ": cannot read: larger than 16 MiB, the most a config file may hold");
  fs::resize_file(file, 16u << 20);  // exactly the limit: read (the comment is cut short)
  CHECK(shoal::load_config_file(file).ok());
  fs::remove(file);
}

TEST_CASE("sandbox: paths relative to the config file (read or write) and its presence turns it on",
          "[unit][config][sandbox]") {
  const Config cfg = load(pool("    sandbox:\n      filesystem:\n        - {path: data, access: read}\n"
                               "        - {path: /tmp/out, access: write}\n"));
  const auto& s = cfg.pools[0].sandbox;
  CHECK(s.enabled);
  REQUIRE(s.filesystem.size() == 2);
  CHECK(s.filesystem[0].path == "/base/data");
  CHECK_FALSE(s.filesystem[0].write);
  CHECK(s.filesystem[1].path == "/tmp/out");
  CHECK(s.filesystem[1].write);
  CHECK(load(pool("    sandbox:\n")).pools[0].sandbox.enabled);
  CHECK(load(pool("    sandbox: {}\n")).pools[0].sandbox.enabled);
  CHECK_FALSE(load(pool("")).pools[0].sandbox.enabled);

  Failure f = fail(pool("    sandbox:\n      filesystem:\n        - {path: data, access: append}\n"));
  CHECK(f.line == 6);
  CHECK(f.message.find("read or write") != std::string::npos);
  f = fail(pool("    sandbox:\n      filesystem:\n        - {access: read}\n"));
  CHECK(f.message.find("missing required key 'path'") != std::string::npos);
  f = fail(pool("    sandbox: {network: false}\n"));
  CHECK(f.message.find("network") != std::string::npos);
}

TEST_CASE("metrics: a listen address in its short and long forms and the ones refused", "[unit][config]") {
  CHECK(load(pool("")).metrics.listen.empty());  // off unless asked
  const Config short_form = load(pool("") + "metrics: \":9464\"\n");
  CHECK(short_form.metrics.listen == ":9464");
  CHECK(short_form.metrics.listen_at.line == 4);
  CHECK(short_form.metrics.listen_at.column == 10);
  CHECK(load(pool("") + "metrics: {listen: \"[::1]:0\"}\n").metrics.listen == "[::1]:0");

  std::string host;
  uint16_t port = 1;
  CHECK(shoal::detail::parse_listen("9464", host, port));
  CHECK((host == "127.0.0.1" && port == 9464));
  CHECK(shoal::detail::parse_listen("0.0.0.0:0", host, port));
  CHECK((host == "0.0.0.0" && port == 0));
  CHECK(shoal::detail::parse_listen("[::1]:65535", host, port));
  CHECK((host == "::1" && port == 65535));
  for (const char* bad : {"", ":", "host:", "h:65536", "h:-1", "h:9x", "::1:80", "[::1]80", "[]:80", "a b:80", "h:123456"}) {
    INFO("address '" << bad << "'");
    CHECK_FALSE(shoal::detail::parse_listen(bad, host, port));
  }

  const Failure f = fail(pool("") + "metrics: {listen: \"h:99999\"}\n");
  CHECK((f.line == 4 && f.column == 19));
  CHECK(f.message == "metrics.listen: expected an address such as 127.0.0.1:9464, [::1]:9464 or :9464 (port 0 to "
                     "65535), found 'h:99999'");
  const Failure typo = fail(pool("") + "metrics: {lisen: 9464}\n");
  CHECK(typo.message == "unknown key 'lisen' in metrics (did you mean 'listen'?)");
  CHECK(fail(pool("") + "metrics: {}\n").message == "metrics: missing required key 'listen'");
}

TEST_CASE("shared: entries with their positions, and each bad entry at its line and column", "[unit][config][shared]") {
  const Config c = load(pool("    shared:\n"
                             "      - name: words\n"
                             "        builder: lib/words.so\n"
                             "        size: 16MiB\n"
                             "        params: {file: w.txt, count: 3}\n"
                             "      - {name: squares, builder: /abs/sq.so, size: 4096}\n"));
  REQUIRE(c.pools.at(0).shared.size() == 2);
  const shoal::SharedConfig& w = c.pools[0].shared[0];
  CHECK(w.name == "words");
  CHECK(w.builder == fs::path("/base/lib/words.so"));
  CHECK(w.size == (uint64_t{16} << 20));
  CHECK(w.params == std::map<std::string, std::string>{{"file", "w.txt"}, {"count", "3"}});
  CHECK((w.builder_at.line == 6 && w.builder_at.column == 18));
  CHECK((w.size_at.line == 7 && w.size_at.column == 15));
  CHECK((w.params_at.at("count").key.line == 8 && w.params_at.at("count").key.column == 31));
  CHECK((w.params_at.at("count").value.line == 8 && w.params_at.at("count").value.column == 38));
  CHECK(c.pools[0].shared[1].name == "squares");
  CHECK(c.pools[0].shared[1].size == 4096);
  CHECK(load(pool("")).pools.at(0).shared.empty());

  struct Bad {
    std::string yaml;
    int line, column;
    std::string message;
  };
  std::string seventeen = "    shared:\n";
  for (int i = 0; i < 17; ++i) seventeen += "      - {name: s" + std::to_string(i) + ", builder: b.so, size: 1KiB}\n";
  const Bad cases[] = {
      {pool("    shared:\n      - {name: w, builder: b.so, size: 1MiB, parms: {}}\n"), 5, 46,
       "unknown key 'parms' in shared[0] (did you mean 'params'?)"},
      {pool("    shared:\n      - {name: w, builder: b.so, size: 0}\n"), 5, 40,
       "shared[0].size: expected a size from 1 byte to 1TiB such as 256MiB, found '0'"},
      {pool("    shared:\n      - {name: w, builder: b.so, size: 2TiB}\n"), 5, 40,
       "shared[0].size: expected a size from 1 byte to 1TiB such as 256MiB, found '2TiB'"},
      {pool("    shared:\n      - {name: w, builder: b.so}\n"), 5, 9, "shared[0]: missing required key 'size'"},
      {pool("    shared:\n      - {name: w, size: 1KiB}\n"), 5, 9, "shared[0]: missing required key 'builder'"},
      {pool("    shared:\n      - {name: w/x, builder: b.so, size: 1KiB}\n"), 5, 16,
       "shared[0].name: expected a name of letters, digits, '_', '.' or '-', found 'w/x'"},
      {pool("    shared:\n      - {name: w, builder: a.so, size: 1KiB}\n      - {name: w, builder: b.so, size: 1KiB}\n"),
       6, 16, "shared[1].name: duplicate shared entry name 'w' (first at 5:16)"},
      {pool("    shared: {name: w}\n"), 4, 13, "shared: expected a sequence of shared entries, found a mapping"},
      {pool(seventeen), 5, 7, "shared: 17 shared entries, more than the 16 a pool may have"},
      {pool("    shraed: []\n"), 4, 5, "unknown key 'shraed' in pool 'digest' (did you mean 'shared'?)"},
  };
  for (const Bad& b : cases) {
    INFO(b.yaml);
    const Failure f = fail(b.yaml);
    CHECK(f.line == b.line);
    CHECK(f.column == b.column);
    CHECK(f.message == b.message);
  }
}
