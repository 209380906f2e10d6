// plugins/dictionary: a word list built once into a pool's shared segment and looked up
// from every worker. The shipped example as a user runs it (`shoal run` on
// config/examples/dictionary.yaml, answers checked against numbers.txt), then the word
// list's rules and the builder's failures through the library.
#include "fixture_paths.hpp"
#include "support/json_rows.hpp"
#include "support/run_rows.hpp"
#include "support/subprocess.hpp"
#include "support/test_env.hpp"

#include <catch2/catch.hpp>

#include <cctype>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

using namespace shoal::test;

namespace {

// The example plugins are built beside echo (build/plugins).
std::string example_module(const char* name) {
  return (std::filesystem::path(SHOAL_PLUGIN_ECHO).parent_path() / name).string();
}

shoal::PoolConfig dictionary_pool(const std::string& file, bool lowercase, uint32_t workers) {
  auto c = pool_config(example_module("dictionary.so"), workers);
  shoal::SharedConfig s;
  s.name = "words";
  s.builder = example_module("dictionary_builder.so");
  s.size = 1u << 20;
  s.params = {{"file", file}, {"lowercase", lowercase ? "true" : "false"}};
  c.shared.push_back(s);
  return c;
}

}  // namespace

TEST_CASE("examples: the shipped dictionary example answers from the shared word list",
          "[integration][cli][examples]") {
  std::map<std::string, std::string> numbers;
  for (const auto& line : lines_of(read_file(std::string(SHOAL_SOURCE_DIR) + "/config/examples/numbers.txt"))) {
    auto tab = line.find('\t');
    if (!line.empty() && line[0] != '#' && tab != std::string::npos) numbers[line.substr(0, tab)] = line.substr(tab + 1);
  }
  REQUIRE(numbers.size() == 10000);
  const std::string input = std::string(SHOAL_SOURCE_DIR) + "/config/examples/dictionary-input.txt";
  const auto asked = lines_of(read_file(input));
  auto r = shoal_cli({"run", std::string(SHOAL_SOURCE_DIR) + "/config/examples/dictionary.yaml", "--input", input});
  INFO(describe(r));
  CHECK(r.exit_code == 1);  // one word of the input is not a number's name
  const auto rows = run_rows(r.out);
  REQUIRE(rows.size() == asked.size());
  size_t misses = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    INFO("word " << asked[i]);
    std::string lowered = asked[i];
    for (char& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto it = numbers.find(lowered);  // the example builds with lowercase: true
    if (it == numbers.end()) {
      ++misses;
      CHECK(rows[i].at("status").text == "error");
      CHECK(rows[i].at("error").text == "not in the dictionary: '" + asked[i] + "'");
    } else {
      CHECK(rows[i].at("status").text == "ok");
      CHECK(rows[i].at("output").text == it->second);
    }
  }
  CHECK(misses == 1);
  CHECK(asked.size() - misses >= 4);
}

TEST_CASE("examples: the dictionary keeps a word list's first line of a word and its case unless lowercase",
          "[integration][examples]") {
  TempDir dir;
  const auto file = dir.write("words.txt",
                              "# a comment line\n"
                              "Pear\tyellow\r\n"
                              "apple\tred\n"
                              "\n"
                              "apple\tgreen\n"  // listed again: the first line is kept
                              "plum\n"           // no value: the answer is the word
                              "fig\t\n"          // an empty value: the same
                              "kiwi\tbrown");    // no newline at the end
  for (bool lowercase : {false, true}) {
    INFO("lowercase: " << lowercase);
    auto pool = start_pool(dictionary_pool(file.string(), lowercase, 3));
    const std::vector<std::pair<std::string, std::string>> found = {
        {lowercase ? "pear" : "Pear", "yellow"}, {"apple", "red"}, {"plum", "plum"}, {"fig", "fig"},
        {"kiwi", "brown"}};
    for (const auto& [word, answer] : found) {
      auto o = get(pool->submit(word));
      INFO("word " << word << ": " << o.error);
      REQUIRE(o.status == shoal::Status::ok);
      CHECK(o.output == answer);
    }
    for (const char* word : {"grape", "appl", "apples", "plum\t", ""}) {
      auto o = get(pool->submit(word));
      INFO("word '" << word << "'");
      CHECK(o.status == shoal::Status::error);
      CHECK(o.error == std::string("not in the dictionary: '") + word + "'");
    }
    auto mixed = get(pool->submit("PEAR"));
    CHECK(mixed.status == (lowercase ? shoal::Status::ok : shoal::Status::error));
    pool->join();
  }
}

TEST_CASE("examples: a dictionary builder with no word list or no words fails the start saying why",
          "[integration][examples]") {
  TempDir dir;
  const auto missing = (dir.path() / "missing.txt").string();
  auto p = shoal::Pool::start(dictionary_pool(missing, false, 1));
  REQUIRE_FALSE(p.ok());
  INFO(p.error().message);
  CHECK(p.error().message.find("cannot read " + missing + ": No such file or directory") != std::string::npos);
  const auto empty = dir.write("empty.txt", "# nothing but a comment\n\n").string();
  p = shoal::Pool::start(dictionary_pool(empty, false, 1));
  REQUIRE_FALSE(p.ok());
  INFO(p.error().message);
  CHECK(p.error().message.find(empty + ": no words") != std::string::npos);
}
