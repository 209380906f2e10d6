// The progress line of `shoal run` (runtime/cli/progress.hpp) rendered at the widths a
// terminal has: it fits, and what a user watches for (the rate, the ETA) is still there.
#include "progress.hpp"

#include <catch2/catch.hpp>

#include <string>

using shoal::cli::compact_count;
using shoal::cli::compact_duration;
using shoal::cli::progress_line;
using shoal::cli::ProgressFigures;

namespace {

// 42% of a large file, with failures and a long queue: the widest figures a run shows.
ProgressFigures busy() {
  ProgressFigures f;
  f.done = 1'234'567;
  f.total = 2'939'445;
  f.failed = 12'345;
  f.pending = 65'536;
  f.secs = 100;
  f.rate = 12'345.6;
  f.fraction = 0.42;
  return f;
}

bool has(const std::string& line, const std::string& part) { return line.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("progress: figures in three significant digits and short durations", "[unit][progress]") {
  CHECK(compact_count(0) == "0");
  CHECK(compact_count(999) == "999");
  CHECK(compact_count(1234) == "1.23k");
  CHECK(compact_count(12'345.6) == "12.3k");
  CHECK(compact_count(123'456) == "123k");
  CHECK(compact_count(999'700) == "1.00M");  // not "1000k"
  CHECK(compact_count(7'400'000) == "7.40M");
  CHECK(compact_duration(0) == "0s");
  CHECK(compact_duration(45) == "45s");
  CHECK(compact_duration(65) == "1m05s");
  CHECK(compact_duration(7380) == "2h03m");
  CHECK(compact_duration(500'000) == "138h");
}

TEST_CASE("progress: the line fits 40 80 and 120 columns with its rate and ETA", "[unit][progress]") {
  const ProgressFigures f = busy();
  const std::string eta = "ETA " + compact_duration(100.0 * 0.58 / 0.42);  // 2m18s
  for (size_t columns : {40u, 80u, 120u}) {
    const std::string line = progress_line(f, columns);
    INFO(columns << " columns: '" << line << "'");
    CHECK(line.size() < columns);  // the last column is never written: it would wrap
    CHECK(has(line, "12.3k/s"));
    CHECK(has(line, eta));
    CHECK(has(line, "1234567/2939445"));
  }
  const std::string at80 = progress_line(f, 80);
  INFO("80: '" << at80 << "'");
  CHECK(at80.starts_with("["));  // a bar, shortened to fit, not left out
  CHECK(has(at80, " 42% "));
  CHECK(has(at80, "12345 failed"));
  const std::string at120 = progress_line(f, 120);
  INFO("120: '" << at120 << "'");
  CHECK(has(at120, "65536 pending"));
  CHECK(has(at120, "[############------------------]"));  // 30 cells at most, 42% filled
}

TEST_CASE("progress: narrower terminals lose whole parts and never overflow", "[unit][progress]") {
  ProgressFigures f = busy();
  size_t previous = 0;
  for (size_t columns = 1; columns <= 200; ++columns) {
    const std::string line = progress_line(f, columns);
    INFO(columns << " columns: '" << line << "'");
    REQUIRE(line.size() < columns);
    CHECK(line.size() >= previous);  // a wider terminal never shows less
    previous = line.size();
  }
  // From a stream of unknown length: no bar, no percentage; the time so far instead.
  f.fraction.reset();
  f.total.reset();
  for (size_t columns : {40u, 80u}) {
    const std::string line = progress_line(f, columns);
    INFO(columns << " columns: '" << line << "'");
    CHECK(line.size() < columns);
    CHECK(has(line, "12.3k/s"));
    CHECK(has(line, "elapsed 1m40s"));
    CHECK_FALSE(has(line, "%"));
  }
  CHECK(progress_line(f, 80) == "1234567 done, 12345 failed, 65536 pending, 12.3k/s, elapsed 1m40s");
}
