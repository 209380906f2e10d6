// Host side of a `shared:` entry's build: a memfd, one shoal-worker in the builder role
// over it, its report, its end, then the seals. The host never maps the segment
// writable and never follows a pointer in it: all it trusts is what the kernel says
// (size, seals) and the builder's two numbers, checked against those.
#include "shared/segment.hpp"

#include "common/check.hpp"
#include "common/log.hpp"
#include "config/values.hpp"
#include "ipc/control.hpp"
#include "ipc/fatal.hpp"
#include "ipc/init_message.hpp"
#include "pool/worker_process.hpp"
#include "process/spawn.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>

namespace shoal::detail {

namespace {

using Clock = std::chrono::steady_clock;

// Seals that make the memfd read-only for good: no write (a writable mapping made
// before would keep writing, so the seal refuses while one exists), no size change, no
// seal removed or added.
constexpr int kSeals = F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL;

std::optional<uint64_t> kv_number(const KeyValues& kv, std::string_view key) {
  for (const auto& [k, v] : kv) {
    if (k != key) continue;
    uint64_t value = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
    if (ec == std::errc() && end == v.data() + v.size() && !v.empty()) return value;
    return std::nullopt;
  }
  return std::nullopt;
}

// The builder process from spawn to reap, and what it said.
class Build {
 public:
  Build(const SharedConfig& entry, const SharedBuildSite& site) : entry_(entry), site_(site) {}
  ~Build() { finish(); }

  /// The sealed segment reopened read-only; used and named as the builder reported.
  Result<Fd> run();
  uint64_t used = 0, named = 0;

 private:
  std::string who() const { return "pool '" + site_.pool->name + "': shared '" + entry_.name + "'"; }
  Error fail(Errc code, const std::string& cause) const { return Error{code, who() + ": " + cause}; }
  Result<Fd> make_memfd() const;
  Result<void> spawn(const Fd& memfd);
  Result<void> wait();
  void on_control();
  void finish() noexcept;

  const SharedConfig& entry_;
  const SharedBuildSite& site_;
  Child child_;
  Fd control_, output_, log_;
  std::string partial_;
  MessageReader reader_{kMaxWorkerMessage};
  uint64_t control_bytes_ = 0;
  std::optional<Error> fatal_;
  std::optional<KeyValues> built_;
  bool flooded_ = false;
  std::optional<ExitStatus> status_;
};

Result<Fd> Build::make_memfd() const {
  const std::string name = "shoal-shared-" + entry_.name;
  Fd fd(::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return fail(Errc::ipc, std::string("memfd_create: ") + std::strerror(errno));
  if (::ftruncate(fd.get(), static_cast<off_t>(entry_.size)) != 0)
    return fail(Errc::ipc, "ftruncate to " + size_text(entry_.size) + ": " + std::strerror(errno));
  // Above the numbers the builder's descriptors take, so the spawn's dup2 never maps a
  // descriptor onto itself.
  auto moved = move_fd_above(std::move(fd), kSpawnSourceMinFd);
  if (!moved) return fail(Errc::ipc, moved.error().message);
  return std::move(*moved);
}

Result<void> Build::spawn(const Fd& memfd) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return fail(Errc::ipc, std::string("socketpair: ") + std::strerror(errno));
  Fd host_end(sv[0]);
  auto worker_end = move_fd_above(Fd(sv[1]), kSpawnSourceMinFd);
  if (!worker_end) return fail(Errc::ipc, worker_end.error().message);
  auto out_pipe = worker_pipe(0);
  if (!out_pipe) return fail(Errc::ipc, out_pipe.error().message);
  auto log_pipe = worker_pipe(O_DIRECT);
  if (!log_pipe) return fail(Errc::ipc, log_pipe.error().message);
  const PoolConfig& pool = *site_.pool;
  SpawnRequest req;
  req.executable = site_.worker_exe;
  req.argv = {"shoal-worker", "--pool", pool.name, "--shared", entry_.name};
  req.env = worker_environment(pool);
  req.fds = {{memfd.get(), kWorkerSegmentFd}, {worker_end->get(), kWorkerControlFd},
             {out_pipe->write.get(), STDERR_FILENO}, {log_pipe->write.get(), kWorkerLogFd}};
  req.stdout_to = out_pipe->write.get();
  req.stdin_null = true;
  auto child = spawn_process(req);
  if (!child) return fail(child.error().code, child.error().message);
  child_ = std::move(*child);
  control_ = std::move(host_end);
  output_ = std::move(out_pipe->read);
  log_ = std::move(log_pipe->read);

  InitMessage init = pool_init_message(pool);
  init.build_name = entry_.name;
  init.build_builder = entry_.builder.string();
  init.build_size = entry_.size;
  init.build_params = entry_.params;
  // A builder gone already is EPIPE here; its exit says why.
  (void)write_all(control_.get(), encode_message(MsgType::init, encode_init(init)));
  SHOAL_CHECK(::fcntl(control_.get(), F_SETFL, ::fcntl(control_.get(), F_GETFL) | O_NONBLOCK) == 0);
  return {};
}

void Build::on_control() {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(control_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) control_.reset();  // EOF: the exit follows
      break;
    }
    control_bytes_ += static_cast<uint64_t>(n);
    if (control_bytes_ > kMaxWorkerControlBytes) {
      flooded_ = true;
      break;
    }
    reader_.feed(buf, static_cast<size_t>(n));
  }
  while (auto m = reader_.next()) {
    if (m->type == MsgType::fatal && !fatal_) fatal_ = decode_fatal(m->body);
    else if (m->type == MsgType::built && !built_) built_ = decode_kv(m->body).value_or(KeyValues{});
  }
  if (reader_.bad()) flooded_ = true;
}

Result<void> Build::wait() {
  const PoolConfig& pool = *site_.pool;
  const bool bounded = pool.start_timeout.count() != 0;
  const Clock::time_point deadline = bounded ? Clock::now() + pool.start_timeout : Clock::time_point::max();
  // LogOrigin holds views: the component text must outlive it (a temporary here was a
  // stack-use-after-scope that ASan caught and a plain build printed by luck).
  const std::string component = "shared " + entry_.name;
  const LogOrigin origin{pool.name, -1, component};
  while (!status_) {
    pollfd fds[5] = {{child_.pidfd.get(), POLLIN, 0}, {control_.get(), POLLIN, 0}, {output_.get(), POLLIN, 0},
                     {log_.get(), POLLIN, 0}, {site_.cancel_fd, POLLIN, 0}};
    int timeout = -1;
    if (bounded) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0)
        return fail(Errc::timeout, "the builder did not finish within start_timeout (" +
                                       std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(pool.start_timeout).count()) +
                                       "ms; raise the pool's start_timeout)");
      timeout = static_cast<int>(std::min<int64_t>(left, 60'000));
    }
    if (::poll(fds, 5, timeout) < 0 && errno != EINTR) return fail(Errc::ipc, std::string("poll: ") + std::strerror(errno));
    if (fds[4].revents != 0) return fail(Errc::cancelled, "start cancelled while the builder ran");
    if (fds[1].revents != 0) on_control();
    if (flooded_) return fail(Errc::plugin, "the builder flooded its control channel");
    if (fds[2].revents != 0 && !drain_output(output_.get(), partial_, origin, false)) output_.reset();
    if (fds[3].revents != 0 && !drain_log(log_.get(), origin, false)) log_.reset();
    ExitStatus st;
    if (fds[0].revents != 0 && reap(child_.pidfd.get(), st)) status_ = st;
  }
  // Whatever it wrote before its end reaches the log, its last words the reader.
  if (control_) on_control();
  if (output_) drain_output(output_.get(), partial_, origin, true);
  if (log_) drain_log(log_.get(), origin, true);
  if (fatal_) return fail(fatal_->code, fatal_->message);
  if (!status_->exited)
    return fail(Errc::plugin, "the builder crashed: " + describe(*status_));
  if (status_->code != 0 || !built_)
    return fail(Errc::plugin, "the builder exited without a report: " + describe(*status_));
  const auto u = kv_number(*built_, "used"), n = kv_number(*built_, "named");
  if (!u || !n) return fail(Errc::ipc, "the builder's report is malformed");
  used = *u;
  named = *n;
  return {};
}

void Build::finish() noexcept {
  if (!child_.pidfd) return;
  if (!status_) {
    signal_child(child_.pidfd.get(), SIGKILL);
    siginfo_t info{};
    while (::waitid(P_PIDFD, static_cast<id_t>(child_.pidfd.get()), &info, WEXITED) != 0 && errno == EINTR) {
    }
  }
  // Whatever the builder forked is in its process group: it must not outlive it (nor
  // hold the memfd writable, which would keep the seal from being set).
  ::kill(-child_.pid, SIGKILL);
  child_.pidfd.reset();
}

Result<Fd> Build::run() {
  auto memfd = make_memfd();
  if (!memfd) return memfd.error();
  if (auto s = spawn(*memfd); !s) return s.error();
  auto done = wait();
  finish();
  if (!done) return done.error();
  if (named == 0) return fail(Errc::plugin, "the builder named nothing");
  if (used > entry_.size)
    return fail(Errc::ipc, "the builder reports " + std::to_string(used) + " bytes used of " + std::to_string(entry_.size));
  if (::fcntl(memfd->get(), F_ADD_SEALS, kSeals) != 0) {
    if (errno == EBUSY)
      return fail(Errc::ipc, "cannot seal the segment: a process still maps it writable (did the builder leave one running?)");
    return fail(Errc::ipc, std::string("cannot seal the segment: ") + std::strerror(errno));
  }
  struct stat st {};
  const int seals = ::fcntl(memfd->get(), F_GET_SEALS);
  if (::fstat(memfd->get(), &st) != 0 || static_cast<uint64_t>(st.st_size) != entry_.size || (seals & kSeals) != kSeals)
    return fail(Errc::ipc, "the sealed segment is not " + size_text(entry_.size) + " with every seal");
  // Workers get a descriptor that cannot be reopened for writing or mapped writable
  // (O_RDONLY, and F_SEAL_WRITE for good measure).
  const std::string self = "/proc/self/fd/" + std::to_string(memfd->get());
  Fd readonly(::open(self.c_str(), O_RDONLY | O_CLOEXEC));
  if (!readonly) return fail(Errc::ipc, "reopening the segment read-only: " + std::string(std::strerror(errno)));
  auto moved = move_fd_above(std::move(readonly), kSpawnSourceMinFd);
  if (!moved) return fail(Errc::ipc, moved.error().message);
  return std::move(*moved);
}

}  // namespace

Result<SharedSegmentPtr> build_shared(const SharedConfig& entry, const SharedBuildSite& site) {
  if (site.pool == nullptr) return Error{Errc::config, "shared '" + entry.name + "': no pool"};
  if (entry.name.empty() || entry.builder.empty() || entry.size == 0)
    return Error{Errc::config, "pool '" + site.pool->name + "': shared '" + entry.name +
                                   "': name, builder and a size above 0 are required"};
  const auto started = Clock::now();
  Build build(entry, site);
  auto fd = build.run();
  if (!fd) return fd.error();
  auto segment = std::make_shared<SharedSegment>();
  segment->name = entry.name;
  segment->fd = std::move(*fd);
  segment->size = entry.size;
  segment->used = build.used;
  segment->build_time = std::chrono::duration_cast<Duration>(Clock::now() - started);
  segment->generation = site.generation;
  segment->stamp = shared_stamp(entry);
  log_line(LogLevel::info,
           "shared '" + entry.name + "': built in " +
               std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(segment->build_time).count()) +
               "ms, " + std::to_string(build.used) + " bytes used of " + size_text(entry.size),
           {site.pool->name, -1, {}});
  return SharedSegmentPtr(std::move(segment));
}

std::string shared_stamp(const SharedConfig& entry) {
  std::string s = entry.name + "\n" + entry.builder.string() + "\n" + std::to_string(entry.size) + "\n" +
                  file_stamp(entry.builder);
  for (const auto& [k, v] : entry.params) s += "\n" + k + "=" + v;
  return s;
}

}  // namespace shoal::detail
