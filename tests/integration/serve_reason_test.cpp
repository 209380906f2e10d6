// shoal serve decides what becomes of a refused task by its Outcome::reason, not by the
// words: refused because the pool failed (or closed) says nothing against the task, so
// it goes back for another host and this one gives up; refused for itself (an input past
// the ring) is its final result. A real redis-server and real hosts (support/redis_fleet.hpp).
#include "support/redis_fleet.hpp"

#include <signal.h>

#include <filesystem>
#include <fstream>

using namespace shoal::test;
using namespace std::chrono_literals;

namespace {

// A host over a copy of the fault plugin (so the test can break it), with rings of 8 KiB.
std::string breakable_config(const Fleet& fleet, const std::filesystem::path& plugin) {
  const std::string text = "pools:\n  work:\n    plugin: \"" + plugin.string() +
                           "\"\n    workers: 1\n    queue: {capacity: 8KiB}\n"
                           "    shutdown: {grace: 1s, fini_timeout: 2s}\nredis:\n  url: " +
                           fleet.redis.url() + "\n  stream: " + kStream + "\n  visibility_timeout: " +
                           std::to_string(kSlow) + "s\n  max_deliveries: 2\n";
  return fleet.dir.write("breakable.yaml", text).string();
}

int64_t dead_letters(const Fleet& fleet) { return fleet.integer({"XLEN", kStream + ":dead"}); }

}  // namespace

TEST_CASE("serve: a refused task is told apart by its code: too large is a result and a failed pool is handed back",
          "[integration][redis][serve]") {
  Fleet fleet;
  const auto plugin = fleet.dir.path() / "fault.so";
  std::filesystem::copy_file(fixture("fx_fault"), plugin);
  Host a(fleet, breakable_config(fleet, plugin), "a");
  wait_ready(fleet, {&a});

  // Refused for itself: written as its result at once (no hand-back, no dead letter).
  submit(fleet, fleet.config("submit"), {std::string(9000, 'z')});
  const auto big = collect(fleet.config("collect"), 1, 1);  // exit 1: a task failed
  const std::string first = job();
  const Row& row = big.at(id(0));
  CHECK(row.at("status").text == "rejected");
  CHECK(row.at("reason").text == "input_too_large");
  CHECK(row.at("consumer").text == "a");
  CHECK(fleet.integer({"HLEN", kStream + ":last"}) == 0);

  // The plugin's file broken in place and the worker killed: its replacement cannot load
  // it and the pool fails with no task of its own in flight.
  {
    std::ofstream out(plugin, std::ios::trunc);
    out << "this is not an ELF file\n";
  }
  const auto workers = a.workers();
  REQUIRE(workers.size() == 1);
  REQUIRE(::kill(workers[0], SIGKILL) == 0);
  REQUIRE(logged(a, "not respawned", 10s));

  // What a claims now the failed pool refuses: a hands it back and gives up.
  const std::vector<std::string> inputs{"echo x0", "echo x1", "echo x2"};
  submit(fleet, fleet.config("submit"), inputs);
  CHECK(a.wait_exit(20s) == 1);
  const std::string err = a.err();
  INFO("a stderr: " << err);
  CHECK(err.find("pool work failed: ") != std::string::npos);
  CHECK(err.find(" handed back") != std::string::npos);
  CHECK(dead_letters(fleet) == 0);
  CHECK(fleet.integer({"XLEN", kStream + ":job:" + first + ":results"}) == 1);
  CHECK(fleet.results() == 0);

  // Another host runs every one of them.
  Host b(fleet, fleet.config("b"), "b");
  const auto rows = collect(fleet.config("collect"), inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    INFO("task " << id(i));
    REQUIRE(rows.count(id(i)) == 1);
    CHECK(rows.at(id(i)).at("status").text == "ok");
    CHECK(rows.at(id(i)).at("reason").kind == Value::Kind::null);
    CHECK(rows.at(id(i)).at("output").text == "x" + std::to_string(i));
    CHECK(rows.at(id(i)).at("consumer").text == "b");
  }
  CHECK(dead_letters(fleet) == 0);
  b.signal(SIGTERM);
  CHECK(b.wait_exit(20s) == 0);
  check_fini(fleet, "b");
  check_drained(fleet);
}
