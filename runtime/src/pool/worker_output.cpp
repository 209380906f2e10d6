// What a worker writes besides its results: the lines its plugin prints (stdout and
// stderr, one pipe) and its own log records (a packet pipe). Both reach the host's log
// attributed to the pool and worker the pipe belongs to, whatever the bytes claim: a
// plugin's line is data, always wrapped (a JSON string value, or text behind the
// "POOL[WORKER]: " prefix with every control character escaped), never passed through
// because it looks like a log line of the host. Runs on the pool's loop thread.
#include "common/check.hpp"
#include "common/log.hpp"
#include "common/printable.hpp"
#include "pool/worker_process.hpp"

#include <fcntl.h>
#include <limits.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace shoal::detail {

Result<WorkerPipe> worker_pipe(int flags) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | flags) != 0) return Error{Errc::ipc, std::string("pipe2: ") + std::strerror(errno)};
  WorkerPipe p;
  p.read = Fd(fds[0]);
  auto write = move_fd_above(Fd(fds[1]), kSpawnSourceMinFd);
  if (!write) return write.error();
  p.write = std::move(*write);
  // F_GETFL/F_SETFL on a pipe just made can fail only with EBADF.
  SHOAL_CHECK(::fcntl(p.read.get(), F_SETFL, ::fcntl(p.read.get(), F_GETFL) | O_NONBLOCK) == 0);
  return p;
}

namespace {

// One line a plugin (or a builder) printed, as the host logs it.
void log_output_line(const LogOrigin& origin, std::string_view line) {
  std::string text;
  if (log_format() == LogFormat::json) {
    text = log_json(LogLevel::info, line, origin, "output");
  } else {
    text = "shoal: ";
    text += origin.pool;
    if (origin.worker >= 0) text += '[' + std::to_string(origin.worker) + ']';
    if (!origin.component.empty()) text += (origin.pool.empty() ? "" : " ") + std::string(origin.component);
    text += ": ";
    // ESC, CR, backspace, C1 and broken UTF-8 would reach the operator's terminal as
    // commands (move the cursor, rewrite a line, retitle the window): escaped, visibly.
    text += printable(line);
  }
  text += '\n';
  log_raw(text);
}

// Reads of a child's output and log pipes after its exit: what it wrote before it died
// (up to 1 MiB) reaches the log; what outlives it is dropped with the pipe.
constexpr int kFinalDrainRounds = 64;

}  // namespace

bool drain_output(int fd, std::string& partial, const LogOrigin& origin, bool final) {
  auto emit = [&](std::string_view line) { log_output_line(origin, line); };
  bool open = true;
  char buf[16384];
  // Bounded per wake-up: a plugin that prints without end must not starve the tasks. The
  // last drain after the exit is bounded too (1 MiB): a daemon the plugin started with
  // setsid keeps the pipe's write end, and could keep it full for ever.
  for (int rounds = 0; rounds < (final ? kFinalDrainRounds : 4); ++rounds) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) {  // every writer is gone: the last line ends here
        open = false;
        final = true;
      }
      break;
    }
    partial.append(buf, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl; (nl = partial.find('\n', start)) != std::string::npos; start = nl + 1)
      emit(std::string_view(partial).substr(start, nl - start));
    partial.erase(0, start);
    // A line without an end in sight is cut rather than held without bound.
    if (partial.size() > 4096) {
      emit(partial);
      partial.clear();
    }
  }
  if (final && !partial.empty()) {
    emit(partial);
    partial.clear();
  }
  return open;
}

bool drain_log(int fd, const LogOrigin& origin, bool final) {
  char buf[kLogRecordMax];
  static_assert(kLogRecordMax <= PIPE_BUF, "a record must be one packet");
  // Bounded per wake-up, like the output: a flood of records must not starve the tasks.
  for (int rounds = 0; rounds < (final ? 4 * kFinalDrainRounds : 64); ++rounds) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n != 0;
    const std::string_view packet(buf, static_cast<size_t>(n));
    auto record = decode_log_record(packet);
    if (!record) {  // not written by the worker's log_line: the plugin's bytes, as data
      log_output_line(origin, packet);
      continue;
    }
    // The component is the worker's word (a plugin's, even): escaped like the message.
    const std::string component = printable(record->component, 64);
    log_line(record->level, record->message, {origin.pool, origin.worker, component});
  }
  return true;
}

void WorkerProcess::on_output(bool final) {
  if (!output_) return;
  if (!drain_output(output_.get(), partial_, {config().name, static_cast<int>(index_), {}}, final)) unwatch(output_);
}

void WorkerProcess::on_log(bool final) {
  if (!log_) return;
  if (!drain_log(log_.get(), {config().name, static_cast<int>(index_), {}}, final)) unwatch(log_);
}

}  // namespace shoal::detail
