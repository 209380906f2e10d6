// `shoal submit`: one task per input record, queued as one job through shoal::Client
// (shoal/client.hpp), which the hosts read and whose results `collect --job` prints. A
// batch goes out when it is full or when the input has nothing more to give at once, so a
// slow producer's lines are queued as they come.
#include "base64.hpp"
#include "line_reader.hpp"
#include "options.hpp"
#include "scale_out.hpp"
#include "scale_out_shared.hpp"
#include "terminal.hpp"

#include <shoal/client.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

namespace shoal::cli {

namespace {

constexpr std::string_view kSubmitUsage =
    "Usage: shoal submit [CONFIG] [--redis URL] [--stream NAME] [--input FILE|-]\n"
    "                    [--input-format lines|nul|base64] [--prefix TEXT | --job JOB]\n"
    "                    [--no-seal] [--result-ttl DURATION]\n"
    "\n"
    "Queues one task per input record on a Redis stream for 'shoal serve' hosts, as one\n"
    "job named PREFIX-RUN, where RUN is random per submit, so that two submits never\n"
    "share one. Task ids are JOB:SEQ, SEQ counting from 0 in input order. Prints the job\n"
    "and the ids queued; 'shoal collect --job JOB' prints its results and ends when all\n"
    "are in. The stream never holds more than redis.max_stream_length entries (tasks not\n"
    "yet finished): submit waits for room, nothing is dropped.\n"
    "\n"
    SHOAL_CLIENT_REDIS_OPTIONS
    "  --input FILE    read tasks from FILE (default -, standard input)\n"
    "  --input-format FORMAT\n"
    "                  lines: one task per line, a trailing \\r dropped (default);\n"
    "                  nul: records ended by a NUL byte, taken as they are (binary);\n"
    "                  base64: one task per line, base64-encoded\n"
    "  --prefix TEXT   the job is TEXT-RUN (default: the time in ms); A-Z a-z 0-9 . _ -\n"
    "  --job JOB       add the tasks to JOB, left open by an earlier submit --no-seal\n"
    "  --no-seal       leave the job open for more submits; collect ends at --expect then\n"
    "  --result-ttl DURATION\n"
    "                  a new job's results expire this long after its last one was\n"
    "                  written (default 24h; 0 = kept until 'shoal collect --delete')\n"
    "  --connect-timeout DURATION\n"
    "                  give up (exit 2) after this long without an answer from Redis,\n"
    "                  across reconnects (default 60s; 0 = never)\n"
    "  -h, --help      show this help\n"
    "\n"
    "Exit status: 0 every record queued; 1 a record longer than redis.max_input (64MiB),\n"
    "or not base64, was not queued (the others were); 2 usage, config, input or first\n"
    "connection error; 128+N stopped by signal N (the count printed is what was queued).\n";

constexpr size_t kBatch = 512;
// A batch also goes out once its inputs reach this: 512 lines near redis.max_input would
// otherwise be held (and copied for hiredis) all at once.
constexpr size_t kBatchBytes = size_t{16} << 20;

}  // namespace

std::string_view submit_usage() noexcept { return kSubmitUsage; }

int submit_command(int argc, char** argv) {
  RedisFlags flags;
  std::string input = "-", prefix, job, connect_timeout, format = "lines", ttl_text;
  bool no_seal = false;
  const OptionSpec specs[] = {{"--connect-timeout", &connect_timeout},
                              {"--redis", &flags.url},
                              {"--redis-password-file", &flags.password_file},
                              {"--stream", &flags.stream},
                              {"--input", &input},
                              {"--input-format", &format},
                              {"--prefix", &prefix},
                              {"--job", &job},
                              {"--no-seal", nullptr, &no_seal},
                              {"--result-ttl", &ttl_text}};
  std::vector<std::string> positional;
  if (auto code = parse_options({"submit", kSubmitUsage, "CONFIG", 0, 1}, argc, argv, specs, positional)) return *code;
  if (format != "lines" && format != "nul" && format != "base64") {
    print_error("submit: --input-format: expected lines, nul or base64, found '" + detail::printable(format, 100) + "'");
    return 2;
  }
  if (!job.empty() && !prefix.empty()) {
    print_error("submit: --job and --prefix: give one (--job adds to a job that exists)");
    return 2;
  }
  Duration ttl = std::chrono::hours(24);
  if (!ttl_text.empty() && !parse_duration(ttl_text, ttl)) {
    print_error("submit: --result-ttl: expected a duration such as 24h or 0, found '" +
                detail::printable(ttl_text, 100) + "'");
    return 2;
  }

  StopSignals signals;
  ignore_sigpipe();
  // The config and the input may be FIFOs that never deliver: Ctrl-C must still work.
  auto target = signals.interruptible([&] { return redis_target(positional, flags, "submit"); });
  if (!target) {
    print_error(target.error().message);
    return 2;
  }
  const RedisConfig& settings = target->settings;
  Fd input_owner;
  int input_fd = STDIN_FILENO;
  if (input != "-") {
    input_owner = Fd(signals.interruptible([&] { return ::open(input.c_str(), O_RDONLY | O_CLOEXEC); }));
    if (!input_owner) {
      print_error("cannot open input " + input + ": " + errno_text(errno));
      return 2;
    }
    input_fd = input_owner.get();
  }
  auto give_up = connect_timeout_from(connect_timeout, "submit");
  if (!give_up) {
    print_error(give_up.error().message);
    return 2;
  }
  auto client = Client::connect(client_options(*target, signals, "submit", *give_up, ttl));
  if (!client) {
    print_error(client.error().message);
    return 2;
  }
  if (job.empty()) {
    auto made = client->create_job(prefix);
    if (!made) {
      print_error(made.error().message);
      return 2;
    }
    job = std::move(*made);
  }
  const std::string stream = settings.stream;
  // The signalfd doubles as the reader's wake-up: a signal ends a read that waits on a
  // terminal or a pipe. A base64 line may be 4/3 of the input it carries.
  const bool base64 = format == "base64";
  LineReader reader(input_fd, signals.fd(), base64 ? settings.max_input / 3 * 4 + 4 : settings.max_input,
                    format == "nul" ? '\0' : '\n');
  std::vector<std::string> batch;
  uint64_t queued = 0, line_no = 0, refused = 0;
  std::string first_id, last_id, fatal;
  size_t batch_bytes = 0;
  std::string line;
  LineReader::Read r = LineReader::Read::line;
  const std::string_view record = format == "nul" ? "record" : "line";
  for (;;) {
    r = reader.next(line);
    ++line_no;
    if (r == LineReader::Read::too_long) {
      // Held whole, /dev/zero (one endless line) would grow until bad_alloc.
      print_error("submit: input " + std::string(record) + " " + std::to_string(line_no) + " is " +
                  std::to_string(reader.too_long_size()) + " bytes, more than redis.max_input (" +
                  std::to_string(settings.max_input) + " bytes): not queued");
      ++refused;
      continue;
    }
    if (r == LineReader::Read::line) {
      if (base64) {
        auto bytes = base64_decode(line);
        if (!bytes || bytes->size() > settings.max_input) {
          print_error("submit: input line " + std::to_string(line_no) +
                      (bytes ? " decodes to more than redis.max_input (" + std::to_string(settings.max_input) +
                                   " bytes)"
                             : std::string(" is not base64")) +
                      ": not queued");
          ++refused;
          continue;
        }
        line = std::move(*bytes);
      }
      batch_bytes += line.size();
      batch.push_back(std::move(line));
      line.clear();
      // A full batch goes out; so does a short one when the next line is not there yet.
      if (batch.size() < kBatch && batch_bytes < kBatchBytes && !reader.would_block()) continue;
    }
    if (!batch.empty()) {
      const std::vector<std::string_view> views(batch.begin(), batch.end());
      uint64_t sent = 0;
      auto ids = client->submit_many(job, views, &sent);
      queued += sent;
      if (!ids) {
        if (ids.error().code != Errc::cancelled) fatal = ids.error().message;
        break;
      }
      if (first_id.empty() && !ids->empty()) first_id = ids->front();
      if (!ids->empty()) last_id = ids->back();
      batch.clear();
      batch_bytes = 0;
    }
    if (r != LineReader::Read::line) break;
  }
  int sig = signals.poll();
  bool sealed = false;
  if (fatal.empty() && sig == 0 && !no_seal && r == LineReader::Read::eof) {
    auto s = client->seal(job);
    if (!s && s.error().code != Errc::cancelled) fatal = s.error().message;
    sealed = bool(s);
    if (!s) sig = signals.poll();
  }
  std::string done = "queued " + std::to_string(queued) + (queued == 1 ? " task" : " tasks") + " to " + stream +
                     " as job " + job;
  if (!first_id.empty()) done += " (ids " + first_id + " to " + last_id + ")";
  if (!sealed) done += ", not sealed";
  done += "\n";
  write_all(STDOUT_FILENO, done.data(), done.size());
  if (!fatal.empty()) {
    print_error(fatal);
    return 2;
  }
  if (r == LineReader::Read::error) {
    print_error("cannot read input " + (input == "-" ? std::string("(standard input)") : input) + ": " +
                errno_text(reader.error()));
    return 2;
  }
  if (sig != 0) return 128 + sig;
  return refused > 0 ? 1 : 0;
}

}  // namespace shoal::cli
