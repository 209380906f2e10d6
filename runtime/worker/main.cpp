// shoal-worker: started by a shoal host with posix_spawn, never by hand. Descriptors 3
// (segment), 4 (control socket), 5 (host eventfd) and 6 (log records) are set up by the host.
#include "worker.hpp"

#include "common/check.hpp"
#include "common/log.hpp"
#include "common/version.hpp"
#include "ipc/control.hpp"

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
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

namespace {

constexpr std::string_view kUsage =
    "Usage: shoal-worker --help | --version\n"
    "\n"
    "A worker process of a shoal pool. The host (`shoal run`, `shoal serve` or a program\n"
    "linked with libshoal) starts one per worker slot with its shared memory and control\n"
    "socket already open as descriptors 3 to 6; it is not meant to be started by hand.\n"
    "Its arguments (--pool NAME --index N; --pool NAME --shared NAME for the process\n"
    "that builds a `shared:` entry) only name it in ps(1).\n"
    "\n"
    "Options:\n"
    "  -h, --help   show this help\n"
    "  --version    show the version and the plugin ABI it speaks\n"
    "\n"
    "Exit status: 0 after --help or --version; 2 when started without a host. Under a\n"
    "host, its codes are the host's to read.\n";

bool is_socket(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::fwrite(kUsage.data(), 1, kUsage.size(), stdout);
    return 0;
  }
  if (argc > 1 && std::strcmp(argv[1], "--version") == 0) {
    const std::string line = shoal::detail::version_line("shoal-worker");
    std::fwrite(line.data(), 1, line.size(), stdout);
    return 0;
  }
  // Started from a shell, descriptor 4 is not the host's control socket: without this
  // check the read of the Init would fail and the worker would exit 2 without a word.
  if (!is_socket(shoal::detail::kWorkerControlFd)) {
    std::fputs("shoal-worker: not started by a shoal host (descriptor 4 is not its control socket); "
               "the host starts workers, see 'shoal-worker --help'\n",
               stderr);
    return 2;
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
             : started == shoal::detail::Started::built  ? 0
                                                         : worker->serve();
  // _exit: the chain has run; static destructors of foreign code must not run after
  // their fini, and the worker's own threads are still alive.
  std::fflush(nullptr);
  _exit(code);
}
