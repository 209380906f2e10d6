// `shoal submit`: one stream entry per input line (id, seq, input), XADDed in pipelined
// batches. A batch goes out when it is full or when the input has nothing more to give
// at once, so a slow producer's lines are queued as they come. A command Redis refused for
// a while (OOM, LOADING) is sent again, alone; when the connection is lost the replies
// of the commands in flight are unknown and they are all sent again: a task may then be
// queued twice under the same id, which the collector's de-duplication absorbs.
#include "line_reader.hpp"
#include "options.hpp"
#include "scale_out.hpp"
#include "scale_out_shared.hpp"
#include "terminal.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

namespace shoal::cli {

namespace {

constexpr std::string_view kSubmitUsage =
    "Usage: shoal submit [CONFIG] [--redis URL] [--stream NAME] [--input FILE|-] [--prefix TEXT]\n"
    "\n"
    "Queues one task per input line on a Redis stream for 'shoal serve' hosts: the entry\n"
    "holds the line (input), its 0-based number (seq) and a task id PREFIX-RUN:SEQ, where\n"
    "RUN is random per submit, so that two submits never share an id. Prints how many\n"
    "were queued and their ids. The stream never holds more than redis.max_stream_length\n"
    "entries (tasks not yet finished): submit waits for room, nothing is dropped.\n"
    "\n"
    SHOAL_CLIENT_REDIS_OPTIONS
    "  --input FILE    read tasks from FILE (default -, standard input)\n"
    "  --prefix TEXT   task ids are TEXT-RUN:SEQ (default: the time in ms)\n"
    "  --connect-timeout DURATION\n"
    "                  give up (exit 2) after this long without an answer from Redis,\n"
    "                  across reconnects (default 60s; 0 = never)\n"
    "  -h, --help      show this help\n"
    "\n"
    "Exit status: 0 every line queued; 1 a line longer than redis.max_input (64MiB) was\n"
    "not queued (the others were); 2 usage, config, input or first connection error;\n"
    "128+N stopped by signal N (the count printed is what was queued).\n";

constexpr size_t kBatch = 512;
// A batch also goes out once its inputs reach this: 512 lines near redis.max_input would
// otherwise be held (and copied for hiredis) all at once.
constexpr size_t kBatchBytes = size_t{16} << 20;

class Submitter {
 public:
  Submitter(redis::Url url, const RedisConfig& cfg, StopSignals& signals, std::chrono::milliseconds give_up)
      : link_(std::move(url), signals, "submit", give_up), cfg_(cfg), keys_(redis::Keys::of(cfg.stream)) {}

  Result<void> open() {
    // XLEN and XADD answers are a few bytes: anything near this is not Redis.
    link_.set_max_reply(64 << 10);
    return link_.open();
  }

  // Queues the batch, never letting the stream grow past max_stream_length; returns how
  // many entries were queued: fewer than the batch when a signal or an error stopped it.
  size_t send(const std::vector<redis::Args>& batch) {
    // The commands not yet known to be queued, in input order.
    std::vector<size_t> todo(batch.size());
    std::iota(todo.begin(), todo.end(), size_t{0});
    size_t done = 0;
    bool waiting_reported = false;
    redis::Backoff wait(std::chrono::milliseconds(20), std::chrono::seconds(1));
    while (!todo.empty()) {
      if (!link_ && !link_.reconnect()) break;
      auto len = link_.conn().command({"XLEN", keys_.tasks});
      if (!len) {
        link_.lost(len.error());
        continue;
      }
      if (!len->view().is_integer()) {
        fatal_ = "XLEN " + keys_.tasks + ": " + len->view().error_text();
        return done;
      }
      link_.ok();
      const auto held = static_cast<uint64_t>(std::max<long long>(0, len->view().integer()));
      if (held >= cfg_.max_stream_length) {
        if (!waiting_reported) {
          waiting_reported = true;
          print_info("submit: " + keys_.tasks + " holds " + std::to_string(held) +
                      " entries (redis.max_stream_length " + std::to_string(cfg_.max_stream_length) + "): waiting");
        }
        if (!link_.pause(wait.next())) break;
        continue;
      }
      wait.reset();
      const size_t room = static_cast<size_t>(std::min<uint64_t>(cfg_.max_stream_length - held, todo.size()));
      std::vector<redis::Args> chunk;
      chunk.reserve(room);
      for (size_t i = 0; i < room; ++i) chunk.push_back(batch[todo[i]]);
      auto replies = link_.conn().pipeline(chunk);
      if (!replies) {
        link_.lost(replies.error());
        continue;
      }
      // Each command stands alone: the ones Redis took are queued, only those it refused
      // for a while go again (sending the whole chunk again would queue the rest twice).
      std::vector<size_t> again;
      std::string refusal;
      for (size_t i = 0; i < room; ++i) {
        const redis::Reply& r = (*replies)[i];
        if (!r.is_error()) {
          ++done;
          continue;
        }
        if (!redis::is_transient(r.view())) {
          fatal_ = "XADD " + keys_.tasks + ": " + std::string(r.str());
          return done;
        }
        again.push_back(todo[i]);
        refusal = std::string(r.str());
      }
      again.insert(again.end(), todo.begin() + static_cast<std::ptrdiff_t>(room), todo.end());
      todo = std::move(again);
      if (!refusal.empty()) {
        link_.lost("XADD " + keys_.tasks + ": " + refusal);
        continue;
      }
      link_.ok();
    }
    return done;
  }

  int stopped_by() const { return link_.stopped_by(); }
  const std::string& fatal() const { return fatal_.empty() ? link_.fatal() : fatal_; }

 private:
  RedisLink link_;
  const RedisConfig& cfg_;
  redis::Keys keys_;
  std::string fatal_;
};

std::string default_prefix() {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
  return std::to_string(ms.count());
}

// Collect keeps one result per task id: two submits must never share one, even with the
// same --prefix (a time and a pid repeat across machines and containers). 64 random bits
// per submit; the same id for every resend of the same line within it, which is what the
// de-duplication is for.
Result<std::string> run_token() {
  uint64_t r = 0;
  if (::getrandom(&r, sizeof r, 0) != static_cast<ssize_t>(sizeof r))
    return Error{Errc::io, "getrandom: " + errno_text(errno)};
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(r));
  return std::string(hex);
}

}  // namespace

std::string_view submit_usage() noexcept { return kSubmitUsage; }

int submit_command(int argc, char** argv) {
  RedisFlags flags;
  std::string input = "-", prefix, connect_timeout;
  const OptionSpec specs[] = {{"--connect-timeout", &connect_timeout}, {"--redis", &flags.url}, {"--redis-password-file", &flags.password_file}, {"--stream", &flags.stream}, {"--input", &input},
                              {"--prefix", &prefix}};
  std::vector<std::string> positional;
  if (auto code = parse_options({"submit", kSubmitUsage, "CONFIG", 0, 1}, argc, argv, specs, positional)) return *code;

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
  auto token = run_token();
  if (!give_up || !token) {
    print_error((give_up ? token.error() : give_up.error()).message);
    return 2;
  }
  prefix = (prefix.empty() ? default_prefix() : prefix) + "-" + *token;

  Submitter submitter(target->url, settings, signals, *give_up);
  if (auto o = submitter.open(); !o) {
    print_error(o.error().message);
    return 2;
  }
  const std::string stream = settings.stream;
  // The signalfd doubles as the reader's wake-up: a signal ends a read that waits on a
  // terminal or a pipe.
  LineReader reader(input_fd, signals.fd(), settings.max_input);
  std::vector<redis::Args> batch;
  uint64_t queued = 0, seq = 0, line_no = 0, refused = 0;
  size_t batch_bytes = 0;
  std::string line;
  LineReader::Read r = LineReader::Read::line;
  for (;;) {
    r = reader.next(line);
    ++line_no;
    if (r == LineReader::Read::too_long) {
      // Held whole, /dev/zero (one endless line) would grow until bad_alloc.
      print_error("submit: input line " + std::to_string(line_no) + " is " + std::to_string(reader.too_long_size()) +
                  " bytes, more than redis.max_input (" + std::to_string(settings.max_input) +
                  " bytes): not queued");
      ++refused;
      continue;
    }
    if (r == LineReader::Read::line) {
      const std::string n = std::to_string(seq++);
      batch_bytes += line.size();
      batch.push_back({"XADD", stream, "*", "id", prefix + ":" + n, "seq", n, "input", line});
      // A full batch goes out; so does a short one when the next line is not there yet.
      if (batch.size() < kBatch && batch_bytes < kBatchBytes && !reader.would_block()) continue;
    }
    if (!batch.empty()) {
      const size_t sent = submitter.send(batch);
      queued += sent;
      if (sent < batch.size()) break;
      batch.clear();
      batch_bytes = 0;
    }
    if (r != LineReader::Read::line) break;
  }
  int sig = submitter.stopped_by();
  if (sig == 0 && r == LineReader::Read::stopped) sig = signals.poll();
  std::string done = "queued " + std::to_string(queued) + (queued == 1 ? " task" : " tasks") + " to " + stream;
  if (queued > 0) done += " (ids " + prefix + ":0 to " + prefix + ":" + std::to_string(queued - 1) + ")";
  done += "\n";
  write_all(STDOUT_FILENO, done.data(), done.size());
  if (!submitter.fatal().empty()) {
    print_error("submit: " + submitter.fatal());
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
