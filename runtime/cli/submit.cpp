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
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <string>
#include <vector>

namespace shoal::cli {

namespace {

constexpr std::string_view kSubmitUsage =
    "Usage: shoal submit [CONFIG] [--redis URL] [--stream NAME] [--input FILE|-] [--prefix TEXT]\n"
    "\n"
    "Queues one task per input line on a Redis stream for 'shoal serve' hosts: the entry\n"
    "holds the line (input), its 0-based number (seq) and a task id PREFIX:SEQ. Prints how\n"
    "many were queued. The stream never holds more than redis.max_stream_length entries\n"
    "(tasks not yet finished): submit waits for room, nothing is dropped.\n"
    "\n"
    "Options (CONFIG's redis: section gives the defaults):\n"
    "  --redis URL     redis://HOST[:PORT][/DB] or unix:///PATH   (redis.url)\n"
    "  --stream NAME   the task stream (default shoal:tasks)      (redis.stream)\n"
    "  --input FILE    read tasks from FILE (default -, standard input)\n"
    "  --prefix TEXT   task ids are TEXT:SEQ (default: the time in ms and this process id)\n"
    "  -h, --help      show this help\n"
    "\n"
    "Exit status: 0 every line queued; 2 usage, config, input or first connection error;\n"
    "128+N stopped by signal N (the count printed is what was queued).\n";

constexpr size_t kBatch = 512;

class Submitter {
 public:
  Submitter(redis::Url url, const RedisConfig& cfg, StopSignals& signals)
      : link_(std::move(url), signals, "submit"), cfg_(cfg), keys_(redis::Keys::of(cfg.stream)) {}

  Result<void> open() { return link_.open(); }

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
        link_.lost(len.error().message);
        continue;
      }
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
        link_.lost(replies.error().message);
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
  return std::to_string(ms.count()) + "-" + std::to_string(::getpid());
}

}  // namespace

std::string_view submit_usage() noexcept { return kSubmitUsage; }

int submit_command(int argc, char** argv) {
  RedisFlags flags;
  std::string input = "-", prefix;
  const OptionSpec specs[] = {{"--redis", &flags.url}, {"--stream", &flags.stream}, {"--input", &input},
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
  if (prefix.empty()) prefix = default_prefix();

  Submitter submitter(target->url, settings, signals);
  if (auto o = submitter.open(); !o) {
    print_error(o.error().message);
    return 2;
  }
  const std::string stream = settings.stream;
  // The signalfd doubles as the reader's wake-up: a signal ends a read that waits on a
  // terminal or a pipe.
  LineReader reader(input_fd, signals.fd());
  std::vector<redis::Args> batch;
  uint64_t queued = 0, seq = 0;
  std::string line;
  LineReader::Read r = LineReader::Read::line;
  for (;;) {
    r = reader.next(line);
    if (r == LineReader::Read::line) {
      const std::string n = std::to_string(seq++);
      batch.push_back({"XADD", stream, "*", "id", prefix + ":" + n, "seq", n, "input", line});
      // A full batch goes out; so does a short one when the next line is not there yet.
      if (batch.size() < kBatch && !reader.would_block()) continue;
    }
    if (!batch.empty()) {
      const size_t sent = submitter.send(batch);
      queued += sent;
      if (sent < batch.size()) break;
      batch.clear();
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
  return 0;
}

}  // namespace shoal::cli
