// A worker process from spawn to reaping, and the classification of its end. What its
// output and log pipes carry is read in worker_output.cpp.
#include "pool/worker_process.hpp"

#include "common/check.hpp"
#include "ipc/fatal.hpp"
#include "ipc/init_message.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>

namespace shoal::detail {

namespace {

Error ipc_error(const char* what) { return Error{Errc::ipc, std::string(what) + ": " + std::strerror(errno)}; }

InitMessage init_message(const Generation& gen, const SpawnSite& site, uint32_t index, std::string recover,
                         bool recover_only) {
  const PoolConfig& config = gen.config;
  InitMessage init = pool_init_message(config);
  init.plugin = config.plugin.string();
  init.index = index;
  init.workers = std::max(site.workers, index + 1);
  init.capacity = site.layout.capacity;
  init.segment_size = site.layout.total();
  init.grace_ns = config.grace.count();
  init.fini_timeout_ns = config.fini_timeout.count();
  init.fini_priority = config.fini_priority;
  init.max_memory = config.max_memory;
  init.recover = std::move(recover);
  init.recover_only = recover_only;
  init.pinned_files = !gen.files.empty();
  init.params = config.params;
  for (const auto& r : config.resources) init.resources.push_back({r.name, r.module.string(), r.priority, r.params});
  for (const auto& seg : gen.shared) init.shared.push_back({seg->name, seg->size});
  return init;
}

}  // namespace

// What identifies a file's content for a reload: a file written beside and renamed over
// the old one (the way to deploy) is a new inode, one rewritten in place a new mtime.
std::string file_stamp(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
         std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
}

InitMessage pool_init_message(const PoolConfig& config) {
  InitMessage init;
  init.pool = config.name;
  init.host_pid = ::getpid();
  init.limit_address_space = config.limits.address_space;
  init.limit_cpu_seconds = config.limits.cpu_seconds;
  init.limit_open_files = config.limits.open_files;
  init.core_dumps = config.limits.core_dumps;
  init.no_new_privs = config.limits.no_new_privs;
  init.sandbox = config.sandbox.enabled;
  for (const auto& p : config.sandbox.filesystem) init.sandbox_paths.emplace_back(p.path.string(), p.write);
  return init;
}

std::vector<std::string> worker_environment(const PoolConfig& config) {
  const std::vector<std::pair<std::string, std::string>> env(config.env.begin(), config.env.end());
  return environment_with(env, {config.env_inherit_all, config.env_inherit});
}

std::string files_stamp(const PoolConfig& config) {
  std::string s = file_stamp(config.plugin);
  for (const auto& r : config.resources) s += ";" + file_stamp(r.module);
  return s;
}


GenerationPtr make_generation(const PoolConfig& config, uint32_t number, std::vector<SharedSegmentPtr> shared) {
  auto gen = std::make_shared<Generation>();
  gen->number = number;
  gen->shared = std::move(shared);
  gen->config = config;
  gen->env = worker_environment(config);
  gen->files_stamp = files_stamp(config);
  std::vector<std::filesystem::path> paths{config.plugin};
  for (const auto& r : config.resources) paths.push_back(r.module);
  if (paths.size() <= kWorkerMaxPinnedFiles) {
    for (const auto& path : paths) {
      auto fd = move_fd_above(Fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)), kSpawnSourceMinFd);
      // A file that cannot be opened is the worker's to report, by its path, as before.
      if (!fd || !*fd) {
        gen->files.clear();
        break;
      }
      gen->files.push_back(std::move(*fd));
    }
  }
  return gen;
}

WorkerProcess::WorkerProcess(GenerationPtr gen, uint32_t index, uint32_t key, int epoll)
    : gen_(std::move(gen)), index_(index), key_(key), epoll_(epoll) {}

WorkerProcess::~WorkerProcess() {
  // Only a process that never reached the epoll set, or one already reaped, is dropped:
  // the loop unwatches as it reaps. A live child would be left to init otherwise.
  for (Fd* fd : {&child_.pidfd, &control_, &output_, &log_})
    if (*fd) (void)::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd->get(), nullptr);
}

Mapping WorkerProcess::park_block() noexcept {
  block = nullptr;
  // Should the kernel refuse, the page stays shared: the segment is then held until the
  // leaders are gone, no longer.
  (void)block_map_.detach();
  return std::move(block_map_);
}

Result<std::unique_ptr<WorkerProcess>> WorkerProcess::spawn(const SpawnSite& site, GenerationPtr gen, uint32_t index,
                                                            uint32_t key, std::string recover, bool recover_only) {
  std::unique_ptr<WorkerProcess> p(new WorkerProcess(std::move(gen), index, key, site.epoll));
  // The segment: its control block and rings, fresh for each process, so a process that
  // starts never sees what an old one (stopping beside it, or dead) left there.
  auto seg = create_segment(site.layout, index);
  if (!seg) return seg.error();
  auto moved = move_fd_above(std::move(*seg), kSpawnSourceMinFd);
  if (!moved) return moved.error();
  p->segment_ = std::move(*moved);
  auto block = map_shared(p->segment_.get(), SegmentLayout::block_offset(), kPageSize);
  if (!block) return block.error();
  auto task_ring = map_ring(p->segment_.get(), site.layout.task_ring_offset(), site.layout.capacity);
  if (!task_ring) return task_ring.error();
  auto result_ring = map_ring(p->segment_.get(), site.layout.result_ring_offset(), site.layout.capacity);
  if (!result_ring) return result_ring.error();
  p->block_map_ = std::move(*block);
  p->task_map_ = std::move(*task_ring);
  p->result_map_ = std::move(*result_ring);
  p->block = reinterpret_cast<WorkerBlock*>(p->block_map_.data());
  p->tasks = RingProducer(&p->block->tasks, p->task_map_.data(), site.layout.capacity);
  p->results = RingConsumer(&p->block->results, p->result_map_.data(), site.layout.capacity);

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return ipc_error("socketpair");
  Fd host_end(sv[0]);
  auto worker_end = move_fd_above(Fd(sv[1]), kSpawnSourceMinFd);
  if (!worker_end) return worker_end.error();
  // The worker's stdout and stderr: one pipe the loop reads, so that every line reaches
  // the host's log prefixed with the pool and worker index, and nothing a plugin prints
  // can end up on the host's stdout (it carries results). Its own log records come on a
  // second pipe (common/log.hpp says why).
  auto out_pipe = worker_pipe(0);
  if (!out_pipe) return out_pipe.error();
  auto log_pipe = worker_pipe(O_DIRECT);
  if (!log_pipe) return log_pipe.error();
  const PoolConfig& config = p->gen_->config;
  SpawnRequest req;
  req.executable = site.exe;
  req.argv = {"shoal-worker", "--pool", config.name, "--index", std::to_string(index)};
  req.env = p->gen_->env;
  req.fds = {{p->segment_.get(), kWorkerSegmentFd}, {worker_end->get(), kWorkerControlFd},
             {site.result_event, kWorkerEventFd}, {out_pipe->write.get(), STDERR_FILENO},
             {log_pipe->write.get(), kWorkerLogFd}};
  for (size_t n = 0; n < p->gen_->files.size(); ++n)
    req.fds.emplace_back(p->gen_->files[n].get(), kWorkerFirstFileFd + static_cast<int>(n));
  // build_shared leaves each segment's descriptor at kSpawnSourceMinFd or above.
  for (size_t n = 0; n < p->gen_->shared.size(); ++n) {
    const int fd = p->gen_->shared[n]->fd.get();
    SHOAL_CHECK(fd >= kSpawnSourceMinFd);
    req.fds.emplace_back(fd, kWorkerFirstSharedFd + static_cast<int>(n));
  }
  req.stdout_to = out_pipe->write.get();
  req.stdin_null = true;  // a plugin that reads stdin must not eat the host's input
  // A stop asked right after the spawn waits (queued) until the worker's handler is in
  // place: a worker killed by it before then would skip its recover hooks.
  req.blocked = {SIGTERM, SIGINT, SIGHUP};
  auto child = spawn_process(req);
  if (!child) return child.error();
  p->child_ = std::move(*child);
  p->control_ = std::move(host_end);
  p->output_ = std::move(out_pipe->read);
  p->log_ = std::move(log_pipe->read);
  p->recover_sent_ = recover;
  const InitMessage init = init_message(*p->gen_, site, index, std::move(recover), recover_only);
  (void)write_all(p->control_.get(), encode_message(MsgType::init, encode_init(init)));  // EOF shows up as an exit
  SHOAL_CHECK(::fcntl(p->control_.get(), F_SETFL, ::fcntl(p->control_.get(), F_GETFL) | O_NONBLOCK) == 0);
  // Unwatched, the worker's exit would never be seen: its tasks would hang. It is killed
  // and reaped here, and the caller fails with the cause.
  if (!p->watch(p->child_.pidfd.get(), ProcessEvent::pidfd) || !p->watch(p->control_.get(), ProcessEvent::control) ||
      !p->watch(p->output_.get(), ProcessEvent::output) || !p->watch(p->log_.get(), ProcessEvent::log)) {
    Error why = ipc_error("epoll_ctl");
    signal_child(p->child_.pidfd.get(), SIGKILL);
    siginfo_t info{};
    (void)::waitid(P_PIDFD, static_cast<id_t>(p->child_.pidfd.get()), &info, WEXITED);
    return why;  // the destructor removes what was watched
  }
  if (recover_only) {
    // It runs the recover hooks and exits; nothing waits on it but the pool's end.
    p->phase_ = Phase::recovering;
    p->role = Role::recovering;
    p->set_kill_deadline(p->stop_deadline(StopMode::drain));
    return p;
  }
  if (config.start_timeout.count() != 0) p->start_deadline = std::chrono::steady_clock::now() + config.start_timeout;
  return p;
}

bool WorkerProcess::watch(int fd, ProcessEvent kind) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = (uint64_t{static_cast<uint32_t>(kind)} << 32) | key_;
  return ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

void WorkerProcess::unwatch(Fd& fd) {
  // Only EBADF, ENOENT or EINVAL can come back, each a bug of ours; the close that follows
  // would drop the registration anyway.
  SHOAL_CHECK(::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd.get(), nullptr) == 0);
  fd.reset();
}

bool WorkerProcess::wake() noexcept { return WakeNotifier(worker_channel(*block)).notify(); }

void WorkerProcess::stop(StopMode mode) {
  if (!child_.pidfd) return;  // reaped already: its end is being settled
  const bool starting = phase_ == Phase::starting;
  if (phase_ != Phase::recovering) phase_ = Phase::stopping;
  block->stop.store(static_cast<uint32_t>(mode), std::memory_order_release);
  wake();
  // The signal reaches the worker's control thread, which enforces shutdown.grace on a
  // task that ignores should_stop; the shared flag alone would wait for the task. A
  // worker still starting gets it too: it runs its recover hooks, opens nothing more,
  // and closes what it opened through its chain (grace bounds an init that hangs).
  if (mode == StopMode::now || starting) signal_child(child_.pidfd.get(), SIGTERM);
  set_kill_deadline(stop_deadline(starting ? StopMode::now : mode));
}

void WorkerProcess::kill(std::string reason, bool violation) {
  if (killed_ || !child_.pidfd) return;
  killed_ = true;  // its death is reported with this reason, not as a crash
  violation_ = violation;
  kill_reason_ = std::move(reason);
  signal_child(child_.pidfd.get(), SIGKILL);
}

Duration WorkerProcess::stop_deadline(StopMode mode) const {
  // The worker bounds itself (grace for the task, fini_timeout per finalizer); this is
  // the host's last line for a worker that cannot (stopped, or stuck in the kernel).
  const PoolConfig& config = gen_->config;
  auto entries = static_cast<int64_t>(config.resources.size()) + 2;
  Duration d = config.fini_timeout * entries + std::chrono::seconds(1);
  return mode == StopMode::now ? d + config.grace : d;
}

void WorkerProcess::set_kill_deadline(Duration after) {
  kill_at = std::min(kill_at, std::chrono::steady_clock::now() + after);
}

bool WorkerProcess::on_control() {
  if (!control_) return false;
  const std::string who = "worker " + std::to_string(index_);
  char buf[4096];
  // Bounded per wake-up and over the worker's life: a worker says little, and one that
  // floods its socket must cost the host neither memory nor its loop.
  for (int rounds = 0; rounds < 16; ++rounds) {
    ssize_t n = ::read(control_.get(), buf, sizeof buf);
    if (n > 0) {
      control_bytes_ += static_cast<uint64_t>(n);
      if (control_bytes_ > kMaxWorkerControlBytes) {
        kill(who + " flooded its control channel (more than " + std::to_string(kMaxWorkerControlBytes) +
                 " bytes of messages)",
             true);
        break;
      }
      reader_.feed(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 && !control_eof_) {
      // EOF: the process is exiting, or a plugin closed descriptor 4 in a live one. The
      // socket leaves the epoll set so that its EOF does not spin the loop; a live worker
      // notices the loss itself and stops (exit code kExitChannelLost), and if it does
      // not, it is killed once a stop would have had to end.
      control_eof_ = true;
      SHOAL_CHECK(::epoll_ctl(epoll_, EPOLL_CTL_DEL, control_.get(), nullptr) == 0);
      set_kill_deadline(stop_deadline(StopMode::now));
    }
    break;  // EAGAIN, or EOF: the pidfd reports the exit
  }
  bool became_ready = false;
  while (auto m = reader_.next()) {
    if (m->type == MsgType::ready && phase_ == Phase::starting) {
      phase_ = Phase::ready;
      was_ready_ = true;
      start_deadline = TimePoint::max();
      became_ready = true;
    } else if (m->type == MsgType::fatal && !was_ready_) {
      fatal_ = decode_fatal(m->body);
    } else if (m->type == MsgType::note && notes_.size() < 4096) {
      // A note names a finalizer or a limit: a few hundred bytes. More is cut, so that a
      // worker's words stay one readable log line.
      constexpr size_t kNoteMax = 512;
      notes_ += (notes_.empty() ? "" : "; ") + m->body.substr(0, kNoteMax);
      if (m->body.size() > kNoteMax) notes_ += "… [note cut]";
    } else if (m->type == MsgType::chain_done) {
      chain_done_ = true;
    }
  }
  if (reader_.bad())
    kill(who + " flooded its control channel (a message over " + std::to_string(kMaxWorkerMessage) + " bytes)", true);
  return became_ready;
}

std::optional<ExitStatus> WorkerProcess::collect_exit() {
  ExitStatus st;
  if (!reap(child_.pidfd.get(), st)) return std::nullopt;
  // Whatever the plugin forked is in the worker's process group (the worker leads it):
  // it must not outlive the worker. The group id cannot name another process while a
  // member still uses it. A child that left the group (setsid) escapes this.
  ::kill(-child_.pid, SIGKILL);
  return st;
}

WorkerProcess::Ended WorkerProcess::ended(const ExitStatus& st) {
  Ended e;
  e.status = st;
  e.phase = phase_;
  unwatch(child_.pidfd);
  if (!control_eof_) {
    SHOAL_CHECK(::epoll_ctl(epoll_, EPOLL_CTL_DEL, control_.get(), nullptr) == 0);
    control_eof_ = true;  // so that the read below does not remove it a second time
  }
  (void)on_control();  // a Fatal, Note or ChainDone message may still be unread
  control_.reset();
  on_output(true);
  if (output_) unwatch(output_);
  on_log(true);
  if (log_) unwatch(log_);

  const std::string who = "worker " + std::to_string(index_);
  e.was_ready = was_ready_;
  e.killed = killed_;
  e.violation = violation_;
  e.timeout_kill = timeout_kill;
  e.abandoned = st.exited && st.code == kExitAbandoned;
  e.notes = notes_;
  e.death = killed_                                       ? kill_reason_
            : st.exited && st.code == kExitChannelLost ? who + " lost its control channel (a plugin closed or replaced descriptor 4 or 5)"
                                                          : who + " died: " + describe(st);
  if (!notes_.empty()) e.death += " (" + notes_ + ")";
  // The kill reason names the task and its limits (it is logged); the stats keep the
  // kind of end only, so that equal ends count together.
  e.exit_kind = timeout_kill ? "killed by the host: task_timeout"
                : killed_    ? "killed by the host: " + describe(st)
                             : describe(st);
  // Only a chain that ran to its end says so; after any other end (a signal, `_exit`, a
  // finalizer cut short, a chain that could not report) the next process recovers first.
  // A process that was to recover and ended before it was ready may not have run the
  // hooks: the first cause stands.
  if (!chain_done_)
    e.recover_cause = !was_ready_ && !recover_sent_.empty() ? recover_sent_
                      : killed_                             ? kill_reason_ + ": " + describe(st)
                                                            : describe(st);
  if (phase_ == Phase::starting) {
    // Dying in init (a signal, an exit) is the plugin's doing, as is a flooded channel.
    e.start_failure = !fatal_.message.empty() ? Error{fatal_.code, fatal_.message + " (" + who + ")"}
                      : killed_ ? Error{start_timed_out ? Errc::timeout : Errc::plugin, kill_reason_}
                                : Error{Errc::plugin, who + " exited before it was ready: " + describe(st)};
    // The code alone could be a plugin's own exit(2): only the worker's Fatal message
    // with it says that loading failed.
    e.cannot_pass = st.exited && st.code == kExitFatal && !fatal_.message.empty();
  }
  e.running = block->running_task.load(std::memory_order_acquire);
  e.front_started = front_started;
  e.tasks = std::move(inflight);
  inflight.clear();
  return e;
}

}  // namespace shoal::detail
