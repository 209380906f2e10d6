// `shoal collect`: reads STREAM:results with XREAD (it consumes nothing, so any number
// of collectors may read) and prints each task id's first result; later ones for the same
// id are the duplicates that at-least-once delivery allows, except after a dead letter's
// result: its task may have been requeued (`shoal dead requeue`), and the new run's result
// replaces it.
#include "options.hpp"
#include "scale_out.hpp"
#include "scale_out_shared.hpp"
#include "terminal.hpp"

#include "config/values.hpp"

#include <unistd.h>

#include <chrono>
#include <string>
#include <optional>
#include <unordered_map>
#include <vector>

namespace shoal::cli {

namespace {

constexpr std::string_view kCollectUsage =
    "Usage: shoal collect [CONFIG] [--redis URL] [--stream NAME] [--follow] [--expect N]\n"
    "\n"
    "Prints the results of STREAM (from STREAM:results) as JSON lines, one per task id:\n"
    "  {\"seq\":0,\"status\":\"ok\",\"output\":\"...\",\"error\":null,\"worker\":1,\"attempts\":1,\"ms\":0.412,\n"
    "   \"reason\":null,\"id\":\"1716900000123-9f86d081884c7d65:0\",\"consumer\":\"hostA-311\"}\n"
    "Delivery is at-least-once: a task may have several results; the first is printed.\n"
    "A task that crashed or timed out on every delivery (a dead letter) and was requeued\n"
    "('shoal dead requeue') has its new result printed too; the summary counts the last.\n"
    "\n"
    SHOAL_CLIENT_REDIS_OPTIONS
    "  --expect N      wait until N distinct task ids have a result, then exit\n"
    "  --follow        keep waiting for new results until SIGINT or SIGTERM\n"
    "  --connect-timeout DURATION\n"
    "                  give up (exit 2) after this long without an answer from Redis,\n"
    "                  across reconnects (default 60s; 0 = never)\n"
    "  -h, --help      show this help\n"
    "Without --expect or --follow it prints the results there are and exits.\n"
    "\n"
    "Exit status: 0 every result printed is ok; 1 some are not; 2 usage, config or\n"
    "connection error; 128+N stopped by signal N before --expect was met; 141 the\n"
    "output's reader went away (`| head`), with nothing printed.\n";

// A blocked XREAD is cut into slices this long so that a signal is seen in time.
constexpr auto kBlockSlice = std::chrono::milliseconds(200);

}  // namespace

std::string_view collect_usage() noexcept { return kCollectUsage; }

int collect_command(int argc, char** argv) {
  RedisFlags flags;
  std::string expect_text, connect_timeout;
  bool follow = false;
  const OptionSpec specs[] = {{"--redis", &flags.url},
                              {"--redis-password-file", &flags.password_file},
                              {"--stream", &flags.stream},
                              {"--expect", &expect_text},
                              {"--follow", nullptr, &follow},
                              {"--connect-timeout", &connect_timeout}};
  std::vector<std::string> positional;
  if (auto code = parse_options({"collect", kCollectUsage, "CONFIG", 0, 1}, argc, argv, specs, positional))
    return *code;
  uint64_t expect = 0;
  if (!expect_text.empty() && !detail::parse_int_in<uint64_t>(expect_text, 1, UINT64_MAX, expect)) {
    print_error("collect: --expect needs a positive number, not '" + expect_text + "'");
    return 2;
  }

  StopSignals signals;
  ignore_sigpipe();
  auto target = redis_target(positional, flags, "collect");
  if (!target) {
    print_error(target.error().message);
    return 2;
  }
  auto give_up = connect_timeout_from(connect_timeout, "collect");
  if (!give_up) {
    print_error(give_up.error().message);
    return 2;
  }
  RedisLink link(target->url, signals, "collect", *give_up);
  if (auto o = link.open(); !o) {
    print_error(o.error().message);
    return 2;
  }
  const redis::Keys keys = redis::Keys::of(target->settings.stream);
  const bool wait = follow || expect > 0;

  const auto start = Clock::now();
  // Each task id printed, with the status of its last result printed.
  std::unordered_map<std::string, std::optional<Status>> seen;
  Counts counts;
  uint64_t duplicates = 0;
  std::string last_id = "0-0", out;
  int stopped_by = 0, output_error = 0;
  while (output_error == 0) {
    if (int sig = signals.poll(); sig != 0) {
      stopped_by = sig;
      break;
    }
    if (!link && !link.reconnect()) {
      stopped_by = link.stopped_by();
      if (!link.fatal().empty()) {
        print_error("collect: " + link.fatal());
        return 2;
      }
      break;
    }
    redis::Args read = {"XREAD", "COUNT", "1000"};
    if (wait) read.insert(read.end(), {"BLOCK", std::to_string(kBlockSlice.count())});
    read.insert(read.end(), {"STREAMS", keys.results, last_id});
    auto reply = link.conn().command(read);
    if (!reply || redis::is_transient(reply->view())) {
      const std::string why = reply ? std::string(reply->str()) : reply.error().message;
      if (!wait) {
        print_error(why);
        return 2;
      }
      if (reply) link.lost(why);
      else link.lost(reply.error());
      continue;
    }
    if (reply->is_error()) {
      print_error("collect: XREAD " + keys.results + ": " + std::string(reply->str()));
      return 2;
    }
    link.ok();
    const auto entries = redis::parse_read(reply->view());
    for (const auto& e : entries) {
      last_id = e.id;
      const auto id = e.field("id");
      const auto result = e.field("result");
      if (!id || !result) continue;
      const auto status = status_from(e.field("status").value_or(""));
      auto [it, fresh] = seen.try_emplace(std::string(*id), status);
      if (!fresh) {
        // A crashed or timed-out result in the stream is a dead letter's (serve retries
        // any other): a later one is its requeued run.
        const std::optional<Status> before = it->second;
        if (before != Status::crashed && before != Status::timeout) {
          ++duplicates;
          continue;
        }
        --counts.by_status[static_cast<size_t>(*before)];
        it->second = status;
      }
      if (status) ++counts.by_status[static_cast<size_t>(*status)];
      out.append(*result);
      out.push_back('\n');
      if (expect > 0 && seen.size() >= expect) break;
    }
    if (!out.empty()) output_error = write_all(STDOUT_FILENO, out.data(), out.size());
    out.clear();
    if (expect > 0 && seen.size() >= expect) break;
    if (!wait && entries.empty()) break;
  }
  // The reader had enough (`| head`): no summary, and the exit of a program SIGPIPE
  // ended, as `shoal run` does.
  if (output_error == EPIPE) return 128 + SIGPIPE;
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  print_summary(counts, secs);
  if (duplicates > 0) print_info("collect: " + std::to_string(duplicates) + " duplicate results skipped");
  if (output_error != 0 && output_error != EPIPE) {
    print_error("cannot write output (standard output): " + errno_text(output_error));
    return 2;
  }
  if (stopped_by != 0 && !(follow && expect == 0)) return 128 + stopped_by;
  return counts.ok() == counts.total() ? 0 : 1;
}

}  // namespace shoal::cli
