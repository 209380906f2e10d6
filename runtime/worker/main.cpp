// shoal-worker: started by a shoal host with posix_spawn, never by hand. Descriptors 3
// (segment), 4 (control socket), 5 (host eventfd) and 6 (log records) are set up by the host.
#include "worker.hpp"

#include "common/check.hpp"
#include "common/log.hpp"
#include "ipc/control.hpp"

#include <shoal/plugin.h>

#include <cstdio>
#include <cstring>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

// In a sanitizer build the sanitizer would catch a plugin's SIGSEGV or SIGABRT and exit
// with its own code, and the host would report "exit code 66" instead of the signal.
// The worker leaves those signals to the kernel so that a crash is reported as one.
#if defined(__SANITIZE_ADDRESS__)
extern "C" const char* __asan_default_options() { return "handle_segv=0:handle_abort=0:handle_sigbus=0"; }
#endif
#if defined(__SANITIZE_THREAD__)
extern "C" const char* __tsan_default_options() { return "handle_segv=0:handle_abort=0:handle_sigbus=0"; }
#endif

int main(int argc, char** argv) {
  // help2man builds shoal-worker.1 from these two answers (stdout, exit 0).
  if (argc > 1 && std::strcmp(argv[1], "--version") == 0) {
    std::printf("shoal-worker %s (plugin ABI %d.%d)\n", SHOAL_VERSION, SHOAL_ABI_MAJOR, SHOAL_ABI_MINOR);
    return 0;
  }
  if (argc > 1 && std::strcmp(argv[1], "--help") == 0) {
    std::fputs("Usage: shoal-worker\n"
               "A worker process of a shoal pool: started by the shoal host (shoal run, shoal serve or\n"
               "an application linking libshoal) with its descriptors set up, never by hand.\n"
               "The host finds it beside itself, beside libshoal, or at $SHOAL_WORKER.\n"
               "\n"
               "  --help      show this help\n"
               "  --version   show the version and the plugin ABI it loads\n",
               stdout);
    return 0;
  }
  // Not dumpable from the first instruction we run: until the Init is read and the
  // memfd (descriptor 3) mapped and closed, another process of the same user could
  // otherwise reopen it through /proc/PID/fd/3 and read or forge this worker's tasks.
  // (The few instructions between exec and here remain; Worker::harden turns it back on
  // for limits.core_dumps.)
  SHOAL_CHECK(::prctl(PR_SET_DUMPABLE, 0) == 0);  // EINVAL only
  // A worker never dies of SIGPIPE: a write to a host that is gone (the control socket,
  // the log pipe) must fail with EPIPE so the finalizer chain still runs. A handler, not
  // SIG_IGN: an ignored signal would stay ignored in whatever a plugin execs.
  struct sigaction pipe_action {};
  pipe_action.sa_handler = [](int) {};
  pipe_action.sa_flags = SA_RESTART;
  sigemptyset(&pipe_action.sa_mask);
  SHOAL_CHECK(::sigaction(SIGPIPE, &pipe_action, nullptr) == 0);  // EINVAL only
  // The stop signals wait (queued) until their handler is in place (start_threads, which
  // unblocks them again): a stop that arrives during the start must not kill the process
  // before it can close what it opened.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&stop_signals, sig);
  SHOAL_CHECK(::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr) == 0);
  // Log records go to the host on their own pipe, apart from what the plugin prints
  // (common/log.hpp says why); without it (a worker started by hand) they go to stderr.
  struct stat log_pipe {};
  if (::fstat(shoal::detail::kWorkerLogFd, &log_pipe) == 0 && S_ISFIFO(log_pipe.st_mode))
    shoal::detail::set_log_channel(shoal::detail::kWorkerLogFd);
  // Never destroyed: its threads and the exit path (a plugin's exit()) use it until the
  // process is gone.
  auto* worker = new shoal::detail::Worker();
  const auto started = worker->start();
  int code = started == shoal::detail::Started::fatal    ? shoal::detail::kExitFatal
             : started == shoal::detail::Started::failed ? shoal::detail::kExitStartFailed
                                                         : worker->serve();
  // _exit: the chain has run; static destructors of foreign code must not run after
  // their fini, and the worker's own threads are still alive.
  std::fflush(nullptr);
  _exit(code);
}
