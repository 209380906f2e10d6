// `shoal collect`: prints each task id's first result; later ones for the same id are the
// duplicates that at-least-once delivery allows, except after a dead letter's result: its
// task may have been requeued (`shoal dead requeue`), and the new run's result replaces
// it. With --job it reads one job's results through shoal::Client; without, it reads
// STREAM:results (entries queued without a job) with XREAD. Either consumes nothing, so
// any number of collectors may read.
#include "base64.hpp"
#include "options.hpp"
#include "scale_out.hpp"
#include "scale_out_shared.hpp"
#include "terminal.hpp"

#include "config/values.hpp"

#include <shoal/client.hpp>

#include <unistd.h>

#include <chrono>
#include <string>
#include <optional>
#include <unordered_map>
#include <vector>

namespace shoal::cli {

namespace {

constexpr std::string_view kCollectUsage =
    "Usage: shoal collect [CONFIG] [--redis URL] [--stream NAME] [--job JOB] [--expect N]\n"
    "                     [--timeout DURATION] [--output-encoding text|base64] [--delete]\n"
    "                     [--follow]\n"
    "\n"
    "Prints the results of job JOB (what 'shoal submit' printed) as JSON lines, one per\n"
    "task id, as they arrive, and exits once the job is sealed and every task has one:\n"
    "  {\"seq\":0,\"status\":\"ok\",\"output\":\"...\",\"error\":null,\"worker\":1,\"attempts\":1,\"ms\":0.412,\n"
    "   \"reason\":null,\"id\":\"resize-9f86d081884c7d65:0\",\"consumer\":\"hostA-311\",\"generation\":0}\n"
    "Without --job: the results of tasks queued without a job (STREAM:results).\n"
    "Delivery is at-least-once: a task may have several results; the first is printed.\n"
    "A task that crashed or timed out on every delivery (a dead letter) and was requeued\n"
    "('shoal dead requeue') has its new result printed too; the summary counts the last.\n"
    "\n"
    SHOAL_CLIENT_REDIS_OPTIONS
    "  --job JOB       the results of JOB only\n"
    "  --expect N      wait until N distinct task ids have a result, then exit\n"
    "  --timeout DURATION\n"
    "                  stop waiting after this long: what arrived is printed, exit 3\n"
    "  --output-encoding ENCODING\n"
    "                  text: output and error as JSON strings, bytes that are not UTF-8\n"
    "                  as U+FFFD (default); base64: both base64-encoded, every byte kept,\n"
    "                  and the row gets \"encoding\":\"base64\" (--job only)\n"
    "  --delete        once the job is complete and printed, delete its results from\n"
    "                  Redis (--job, without --expect)\n"
    "  --follow        keep waiting for new results until SIGINT or SIGTERM (without --job)\n"
    "  --connect-timeout DURATION\n"
    "                  give up (exit 2) after this long without an answer from Redis,\n"
    "                  across reconnects (default 60s; 0 = never)\n"
    "  -h, --help      show this help\n"
    "Without --job, --expect or --follow it prints the results there are and exits.\n"
    "\n"
    "Exit status: 0 every result printed is ok; 1 some are not; 2 usage, config or\n"
    "connection error; 3 --timeout passed with results missing; 128+N stopped by\n"
    "signal N before the end; 141 the output's reader went away (`| head`).\n";

// A blocked XREAD is cut into slices this long so that a signal is seen in time.
constexpr auto kBlockSlice = std::chrono::milliseconds(200);

// The rows printed, one per task id, and their counts for the summary. A later row for an
// id is a duplicate, except after a dead letter's (redis::replaces): it replaces that
// one's count.
struct Rows {
  std::unordered_map<std::string, std::optional<Status>> seen;
  Counts counts;
  uint64_t duplicates = 0;
  std::string out;
  int output_error = 0;

  bool add(std::string_view id, std::optional<Status> status, std::string_view row) {
    auto [it, fresh] = seen.try_emplace(std::string(id), status);
    if (!fresh) {
      const std::optional<Status> before = it->second;
      if (!before || !redis::replaces(*before)) {
        ++duplicates;
        return false;
      }
      --counts.by_status[static_cast<size_t>(*before)];
      it->second = status;
    }
    if (status) ++counts.by_status[static_cast<size_t>(*status)];
    out.append(row);
    out.push_back('\n');
    return true;
  }
  void flush() {
    if (!out.empty() && output_error == 0) output_error = write_all(STDOUT_FILENO, out.data(), out.size());
    out.clear();
  }
};

// A job's result as collect prints it: the row of result_json, its bytes base64-encoded
// when asked (JSON strings cannot carry bytes that are not UTF-8).
std::string job_row(const TaskResult& r, bool base64) {
  redis::Task t;
  t.task_id = r.id;
  t.seq = r.seq;
  if (!base64) return redis::result_json(t, r.outcome, r.consumer);
  Outcome o = r.outcome;
  o.output = base64_encode(o.output);
  o.error = base64_encode(o.error);
  std::string row = redis::result_json(t, o, r.consumer);
  row.pop_back();
  row += ",\"encoding\":\"base64\"}";
  return row;
}

struct Run {
  bool follow = false;
  uint64_t expect = 0;
  std::optional<std::chrono::milliseconds> timeout;
  std::string timeout_text;
  std::chrono::steady_clock::time_point deadline() const {
    return timeout ? Clock::now() + *timeout : std::chrono::steady_clock::time_point::max();
  }
};

// Why the collect ended, for its exit status.
struct End {
  int stopped_by = 0;
  std::string missing;  // --timeout passed: what was missing
  std::string fatal;
};

End collect_job(const RedisTarget& target, StopSignals& signals, std::chrono::milliseconds give_up,
                const std::string& job, const Run& run, bool base64, bool remove, Rows& rows) {
  auto client = Client::connect(client_options(target, signals, "collect", give_up));
  if (!client) return End{0, {}, client.error().message};
  auto got = client->collect(job, run.deadline(), [&](const TaskResult& r) {
    if (rows.add(r.id, r.outcome.status, job_row(r, base64))) rows.flush();
    return rows.output_error == 0 && !(run.expect > 0 && rows.seen.size() >= run.expect);
  });
  End end;
  if (!got) {
    if (got.error().code == Errc::timeout) end.missing = got.error().message;
    else if (got.error().code == Errc::cancelled) end.stopped_by = signals.poll();
    else end.fatal = got.error().message;
    return end;
  }
  if (remove && rows.output_error == 0) {
    if (auto f = client->forget(job); !f) end.fatal = f.error().message;
  }
  return end;
}

End collect_legacy(const RedisTarget& target, StopSignals& signals, std::chrono::milliseconds give_up,
                   const Run& run, Rows& rows) {
  RedisLink link(target.url, signals, "collect", give_up);
  if (auto o = link.open(); !o) return End{0, {}, o.error().message};
  const redis::Keys keys = redis::Keys::of(target.settings.stream);
  const bool wait = run.follow || run.expect > 0;
  const auto deadline = run.deadline();
  std::string last_id = "0-0";
  End end;
  while (rows.output_error == 0) {
    if (int sig = signals.poll(); sig != 0) {
      end.stopped_by = sig;
      break;
    }
    if (wait && Clock::now() >= deadline) {
      end.missing = std::to_string(rows.seen.size()) + " of " +
                    (run.expect > 0 ? std::to_string(run.expect) : std::string("the")) + " results";
      break;
    }
    if (!link && !link.reconnect()) {
      end.stopped_by = link.stopped_by();
      if (!link.fatal().empty()) end.fatal = "collect: " + link.fatal();
      break;
    }
    redis::Args read = {"XREAD", "COUNT", "1000"};
    if (wait) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
      read.insert(read.end(), {"BLOCK", std::to_string(std::max<long long>(1, std::min(left, kBlockSlice).count()))});
    }
    read.insert(read.end(), {"STREAMS", keys.results, last_id});
    auto reply = link.conn().command(read);
    if (!reply || redis::is_transient(reply->view())) {
      const std::string why = reply ? std::string(reply->str()) : reply.error().message;
      if (!wait) return End{0, {}, why};
      if (reply) link.lost(why);
      else link.lost(reply.error());
      continue;
    }
    if (reply->is_error()) return End{0, {}, "collect: XREAD " + keys.results + ": " + std::string(reply->str())};
    link.ok();
    const auto entries = redis::parse_read(reply->view());
    for (const auto& e : entries) {
      last_id = e.id;
      const auto id = e.field("id");
      const auto result = e.field("result");
      if (!id || !result) continue;
      rows.add(*id, status_from(e.field("status").value_or("")), *result);
      if (run.expect > 0 && rows.seen.size() >= run.expect) break;
    }
    rows.flush();
    if (run.expect > 0 && rows.seen.size() >= run.expect) break;
    if (!wait && entries.empty()) break;
  }
  return end;
}

}  // namespace

std::string_view collect_usage() noexcept { return kCollectUsage; }

int collect_command(int argc, char** argv) {
  RedisFlags flags;
  std::string expect_text, connect_timeout, job, encoding = "text";
  Run run;
  bool remove = false;
  const OptionSpec specs[] = {{"--redis", &flags.url},
                              {"--redis-password-file", &flags.password_file},
                              {"--stream", &flags.stream},
                              {"--job", &job},
                              {"--expect", &expect_text},
                              {"--timeout", &run.timeout_text},
                              {"--output-encoding", &encoding},
                              {"--delete", nullptr, &remove},
                              {"--follow", nullptr, &run.follow},
                              {"--connect-timeout", &connect_timeout}};
  std::vector<std::string> positional;
  if (auto code = parse_options({"collect", kCollectUsage, "CONFIG", 0, 1}, argc, argv, specs, positional))
    return *code;
  auto usage_error = [](const std::string& why) {
    print_error("collect: " + why);
    return 2;
  };
  if (!expect_text.empty() && !detail::parse_int_in<uint64_t>(expect_text, 1, UINT64_MAX, run.expect))
    return usage_error("--expect needs a positive number, not '" + detail::printable(expect_text, 100) + "'");
  if (!run.timeout_text.empty()) {
    Duration d{};
    if (!parse_duration(run.timeout_text, d) || d.count() <= 0)
      return usage_error("--timeout: expected a duration such as 30s, found '" +
                         detail::printable(run.timeout_text, 100) + "'");
    run.timeout = std::chrono::ceil<std::chrono::milliseconds>(d);
  }
  if (encoding != "text" && encoding != "base64")
    return usage_error("--output-encoding: expected text or base64, found '" + detail::printable(encoding, 100) + "'");
  if (job.empty() && (encoding != "text" || remove))
    return usage_error(std::string(remove ? "--delete" : "--output-encoding") + " needs --job");
  if (!job.empty() && run.follow) return usage_error("--follow is for results without a job; --job ends with its job");
  if (remove && run.expect > 0) return usage_error("--delete deletes a whole job: not with --expect");

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
  const auto start = Clock::now();
  Rows rows;
  const End end = job.empty() ? collect_legacy(*target, signals, *give_up, run, rows)
                              : collect_job(*target, signals, *give_up, job, run, encoding == "base64", remove, rows);
  // The reader had enough (`| head`): no summary, and the exit of a program SIGPIPE
  // ended, as `shoal run` does.
  if (rows.output_error == EPIPE) return 128 + SIGPIPE;
  if (!end.fatal.empty() && rows.seen.empty()) {
    print_error(end.fatal);
    return 2;
  }
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  print_summary(rows.counts, secs);
  if (rows.duplicates > 0) print_info("collect: " + std::to_string(rows.duplicates) + " duplicate results skipped");
  if (rows.output_error != 0) {
    print_error("cannot write output (standard output): " + errno_text(rows.output_error));
    return 2;
  }
  if (!end.fatal.empty()) {
    print_error(end.fatal);
    return 2;
  }
  if (!end.missing.empty()) {
    print_error("collect: --timeout " + run.timeout_text + " passed: " + end.missing);
    return 3;
  }
  if (end.stopped_by != 0 && !(run.follow && run.expect == 0)) return 128 + end.stopped_by;
  return rows.counts.ok() == rows.counts.total() ? 0 : 1;
}

}  // namespace shoal::cli
