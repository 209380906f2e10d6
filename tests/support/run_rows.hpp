// The rows a `shoal run` wrote to stdout, for tests: every line must be a row, and the
// output must end with a newline; either failure fails the test.
#ifndef SHOAL_TESTS_RUN_ROWS_HPP
#define SHOAL_TESTS_RUN_ROWS_HPP

#include "support/json_rows.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace shoal::test {

inline std::vector<Row> run_rows(const std::string& out) {
  if (!out.empty()) CHECK(out.back() == '\n');
  std::vector<Row> rows;
  for (const auto& line : lines_of(out)) {
    auto row = Parser(line).row();
    INFO("row: " << line);
    REQUIRE(row.has_value());
    rows.push_back(*row);
  }
  return rows;
}

}  // namespace shoal::test

#endif
