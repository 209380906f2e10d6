// The worker's control and watchdog threads: how a worker learns that it must stop, and
// how the finalizer chain stays bounded whoever runs it.
#include "worker.hpp"

#include "common/check.hpp"
#include "common/event.hpp"
#include "common/log.hpp"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace shoal::detail {

namespace {

Worker* g_worker = nullptr;
pid_t g_worker_pid = 0;  // a process with another pid runs the handler in a forked child

std::string seconds_text(int64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%gs", static_cast<double>(ns) / 1e9);
  return buf;
}

}  // namespace

void Worker::stop_signal_handler(int sig) noexcept {
  const int saved_errno = errno;  // the interrupted code may be about to read it
  // A child a plugin forked without exec inherits this handler (exec resets it): the
  // signal is the child's own, and its default action must stand, not the worker's stop.
  if (::getpid() != g_worker_pid) {
    ::signal(sig, SIG_DFL);
    ::raise(sig);  // pending until this handler returns (sig is blocked in it), then fatal
    return;
  }
  // Only async-signal-safe steps: a lock-free atomic, a futex wake, fstat and write. The
  // eventfd wakes the control thread at once, unless a plugin put a file of its own on
  // its number; the flag alone still reaches the control thread within its next check.
  g_worker->begin_stop(LocalStop::signal);
  if (g_worker->stop_event_id_.is(g_worker->stop_event_fd_)) eventfd_signal(g_worker->stop_event_fd_);
  errno = saved_errno;
}

void Worker::start_threads() {
  // The stop signals arrive through a handler that only sets flags, and are unblocked in
  // every thread. WHY not a signalfd with the signals blocked in every thread: the mask
  // is inherited by whatever a plugin starts (system(), posix_spawn, fork+exec), and
  // neither exec nor glibc's posix_spawn (which runs no atfork handler) clears it, so
  // those programs would ignore kill -TERM for ever. A handled signal is reset to its
  // default by exec, and an empty mask is what they inherit. The cost: a stop signal may
  // cut a plugin's blocking call short with EINTR (SA_RESTART avoids it where it can).
  // The signals stay blocked from the spawn (SpawnRequest::blocked) until the handler is
  // in place, so a stop during the start waits for it instead of killing the process.
  stop_event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct stat ev {};
  if (stop_event_fd_ >= 0 && ::fstat(stop_event_fd_, &ev) == 0) stop_event_id_ = {ev.st_dev, ev.st_ino};
  g_worker = this;
  g_worker_pid = ::getpid();
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&stop_signals, sig);
  struct sigaction action {};
  action.sa_handler = stop_signal_handler;
  action.sa_mask = stop_signals;  // one handler at a time: a second signal waits
  action.sa_flags = SA_RESTART;
  // sigaction, pthread_sigmask and prctl below fail only for an invalid argument (EINVAL).
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) SHOAL_CHECK(::sigaction(sig, &action, nullptr) == 0);
  // Threads created below inherit the empty mask; a signal queued during the start is
  // delivered here, at once.
  SHOAL_CHECK(::pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr) == 0);

  // First line against an orphaned worker: SIGTERM when the host's spawning thread dies
  // (the pool's loop thread, which lives as long as the pool). It races with a host
  // that died before this call, hence the getppid() check; the control socket's EOF is
  // the second line, for whatever the signal misses.
  SHOAL_CHECK(::prctl(PR_SET_PDEATHSIG, SIGTERM) == 0);
  if (init_.host_pid != 0 && ::getppid() != init_.host_pid) begin_stop(LocalStop::host_gone);

  struct stat st {};
  if (::fstat(kWorkerControlFd, &st) == 0) control_id_ = {st.st_dev, st.st_ino};
  if (::fstat(kWorkerEventFd, &st) == 0) event_id_ = {st.st_dev, st.st_ino};

  std::thread([this] { control_loop(); }).detach();
  std::thread([this] { watchdog_loop(); }).detach();
}

void Worker::begin_stop(LocalStop why) {
  uint32_t none = 0;
  local_stop_.compare_exchange_strong(none, static_cast<uint32_t>(why));
  wake_self();
}

bool Worker::FdId::is(int fd) const noexcept {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

bool Worker::channels_intact() const noexcept { return control_id_.is(kWorkerControlFd) && event_id_.is(kWorkerEventFd); }

void Worker::send_control(MsgType type, std::string_view body) noexcept {
  // Before the threads start nothing foreign has run: the descriptor is still the host's.
  if (control_id_.ino != 0 && !channels_intact()) {
    begin_stop(LocalStop::channel_lost);
    return;
  }
  // EPIPE (the host is gone) is not an error here: the stop path runs the chain.
  (void)write_all(kWorkerControlFd, encode_message(type, body));
}

void Worker::note(const std::string& text) { send_control(MsgType::note, text); }

void Worker::abandon(const std::string& why) {
  // The main thread is inside foreign code (a task, an init, an open) and cannot be
  // interrupted, so the chain runs here while it is still there: entries must not assume
  // they run on the task's thread.
  abandoned_.store(true);
  note(why);
  run_chain();
  _exit(kExitAbandoned);
}

void Worker::control_loop() {
  pollfd fds[2] = {{kWorkerControlFd, POLLIN, 0}, {stop_event_fd_, POLLIN, 0}};
  int64_t stop_deadline = 0;
  // How often the control thread checks that descriptors 4 and 5 are still the host's:
  // a plugin that closed them would otherwise leave a worker the host can never hear.
  constexpr int kChannelCheckMs = 250;
  for (;;) {
    int timeout = kChannelCheckMs;
    if (stop_deadline != 0 && stop_deadline != INT64_MAX)
      timeout = static_cast<int>(std::clamp<int64_t>((stop_deadline - now_ns()) / 1000000 + 1, 0, kChannelCheckMs));
    int n = ::poll(fds, 2, timeout);
    if (n < 0 && errno != EINTR) break;
    if (n > 0 && fds[0].revents != 0) {
      char buf[256];
      ssize_t r = (fds[0].revents & POLLNVAL) != 0 ? -1 : ::read(kWorkerControlFd, buf, sizeof buf);
      if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
        fds[0].fd = -1;  // host gone: the kernel closed its end, however it died
        begin_stop(channels_intact() ? LocalStop::host_gone : LocalStop::channel_lost);
      }
    }
    // The handler has set the stop already; this only wakes the loop. A descriptor a
    // plugin closed or replaced leaves the poll set (the flag still works).
    if (n > 0 && fds[1].revents != 0) {
      if ((fds[1].revents & POLLNVAL) != 0 || !stop_event_id_.is(stop_event_fd_)) fds[1].fd = -1;
      else eventfd_drain(stop_event_fd_);
    }
    if (local_stop_.load() == 0 && !channels_intact()) begin_stop(LocalStop::channel_lost);
    if (local_stop_.load() != 0 && stop_deadline == 0) stop_deadline = now_ns() + init_.grace_ns;
    if (stop_deadline != 0 && now_ns() >= stop_deadline) {
      const auto phase = static_cast<Phase>(phase_.load());
      if (phase == Phase::in_task)
        abandon("task abandoned: still running when shutdown.grace " + seconds_text(init_.grace_ns) + " passed");
      // A stop must not wait for an init (or an open, or a recover hook) that takes
      // longer than grace: what opened closes through the chain, the plugin's fini does
      // not run (its init never returned).
      if (phase == Phase::starting)
        abandon("stopped while starting: init had not returned when shutdown.grace " + seconds_text(init_.grace_ns) +
                " passed");
      stop_deadline = INT64_MAX;  // the main thread is past its task and stops by itself
    }
  }
}

void Worker::watchdog_loop() {
  std::unique_lock lock(wd_mu_);
  for (;;) {
    if (wd_deadline_ns_ == 0) {
      wd_cv_.wait(lock);
      continue;
    }
    int64_t now = now_ns();
    if (now >= wd_deadline_ns_) {
      std::string entry = wd_entry_;
      lock.unlock();
      note("finalizer '" + entry + "' of worker " + std::to_string(init_.index) + " (pid " + std::to_string(::getpid()) +
           ") did not return within shutdown.fini_timeout " + seconds_text(init_.fini_timeout_ns));
      // The rest of the chain cannot run after a hung entry: it may hold what they need.
      _exit(kExitFiniTimeout);
    }
    wd_cv_.wait_for(lock, std::chrono::nanoseconds(wd_deadline_ns_ - now));
  }
}

void Worker::run_chain() {
  phase_.store(static_cast<uint32_t>(Phase::in_chain));
  chain_.run_all([this](const std::string* entry) {
    std::lock_guard lock(wd_mu_);
    if (entry != nullptr) {
      wd_entry_ = *entry;
      wd_deadline_ns_ = now_ns() + init_.fini_timeout_ns;
    } else {
      wd_deadline_ns_ = 0;
    }
    wd_cv_.notify_all();
  });
  // Only a chain that ran to its end says so: the host recovers after any other exit.
  if (!chain_reported_.exchange(true)) send_control(MsgType::chain_done, {});
}

void Worker::run_chain_at_exit() { run_chain(); }

}  // namespace shoal::detail

// A plugin that calls exit() still gets its chain: the exit path runs this handler. It is
// registered after the plugin loaded, so it runs before the plugin's own static
// destructors and fini still sees its globals alive.
extern "C" void shoal_worker_atexit() {
  // A child the plugin forked (no exec) inherits this handler: its exit() must not run
  // the worker's fini and closes (a shared database socket would be closed under the
  // worker) nor tell the host, over the inherited socket, that the chain ran.
  if (shoal::detail::g_worker != nullptr && ::getpid() == shoal::detail::g_worker_pid)
    shoal::detail::g_worker->run_chain_at_exit();
}
