// Shared read-only data (issue 18) read from C++ (tests/fixtures/fx_shared_words.cpp over
// what fx_shared_builder_cpp.cpp built: Boost.Interprocess containers found with
// init.shared<T>), and `shoal run --stats` reporting the segments.
#include "support/test_env.hpp"

#include <shoal/runtime.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

using namespace shoal;
using namespace shoal::test;
using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

TEST_CASE("shared data: a C++ plugin finds the C++ builder's containers with init.shared",
          "[integration][shared]") {
  TempDir dir;
  SharedConfig words;
  words.name = "words";
  words.builder = fixture("fx_shared_builder_cpp");
  words.size = 16 << 20;
  words.params = {{"count", "5000"}};
  SharedConfig c;  // a C builder's blocks beside it: shared_bytes
  c.name = "c";
  c.builder = fixture("fx_shared_builder");
  c.size = 1 << 20;
  c.params = {{"mode", "ok"}, {"count", "10"}, {"events", (dir.path() / "events").string()}};
  PoolConfig config = pool_config(fixture("fx_shared_words"), 6);
  config.shared = {words, c};
  std::vector<int> pids;
  {
    auto pool = start_pool(config);
    pids = pool->worker_pids();
    const std::vector<std::pair<std::string, std::string>> expected = {
        {"word w0", "0"},         {"word w4999", "4999"},        {"word w5000", "absent"},
        {"word ", "absent"},      {"square 4999", "24990001"},   {"count", "words=5000 squares=5000"},
        {"bytes greeting", "23"}, {"bytes numbers", "80"}};
    std::vector<std::string> inputs;
    for (int i = 0; i < 30; ++i)
      for (const auto& [in, out] : expected) inputs.push_back(in);
    const auto outcomes = pool->map(inputs);
    REQUIRE(outcomes.size() == inputs.size());
    std::set<int32_t> workers;
    for (size_t i = 0; i < outcomes.size(); ++i) {
      INFO(inputs[i] << ": " << outcomes[i].error);
      CHECK(outcomes[i].status == Status::ok);
      CHECK(outcomes[i].output == expected[i % expected.size()].second);
      workers.insert(outcomes[i].worker);
    }
    CHECK(workers.size() > 1);
    // The typed find checks the size; a name no segment has is an error, not a crash.
    const Outcome wrong = get(pool->submit("as words"));
    CHECK(wrong.status == Status::error);
    CHECK(wrong.error.find("shared object 'words' is ") == 0);
    CHECK(wrong.error.find("not the 4 of the type asked for") != std::string::npos);
    const Outcome missing = get(pool->submit("bytes nothing"));
    CHECK(missing.status == Status::error);
    CHECK(missing.error == "shared object 'nothing': no shared segment of the pool has it");
    pool->close();
    pool->join();
  }
  CHECK(all_gone(pids));
}

TEST_CASE("shared data: shoal run --stats lists each segment with its figures", "[integration][shared]") {
  TempDir dir;
  const fs::path events = dir.path() / "events";
  const auto config = dir.write("shared.yaml", "pools:\n  words:\n    plugin: \"" + fixture("fx_shared_reader") +
                                                   "\"\n    workers: 3\n    shared:\n      - name: data\n"
                                                   "        builder: \"" + fixture("fx_shared_builder") +
                                                   "\"\n        size: 4MiB\n        params: {count: 1000, events: \"" +
                                                   events.string() + "\"}\n");
  std::string input;
  for (int i = 0; i < 30; ++i) input += "sum numbers\n";
  const auto input_file = dir.write("input.txt", input);
  const auto stats_file = dir.path() / "stats.json";
  auto r = shoal_cli({"run", config.string(), "--input", input_file.string(), "--stats", stats_file.string()});
  INFO(describe(r));
  CHECK(r.exit_code == 0);
  const json s = json::parse(read_file(stats_file));
  INFO("stats: " << s.dump());
  REQUIRE(s.at("pools").size() == 1);
  const json& shared = s.at("pools")[0].at("shared");
  REQUIRE(shared.size() == 1);
  CHECK(shared[0].at("name") == "data");
  CHECK(shared[0].at("generation") == 0);
  CHECK(shared[0].at("size") == 4 << 20);
  CHECK(shared[0].at("used").get<uint64_t>() > 8000);  // 1000 numbers and 1000 indexes at least
  CHECK(shared[0].at("used").get<uint64_t>() < 4u << 20);
  CHECK(shared[0].at("build_time_s").get<double>() > 0.0);  // a process started and ran the builder
  CHECK(shared[0].at("mappings").get<uint32_t>() <= 3);  // the final stats: processes ending
  const std::string built = read_file(events);
  CHECK(std::count(built.begin(), built.end(), '\n') == 1);
}
