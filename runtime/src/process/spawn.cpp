#include "process/spawn.hpp"

#include "common/check.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

extern char** environ;

namespace shoal::detail {

namespace {

struct FileActions {
  posix_spawn_file_actions_t fa;
  FileActions() { posix_spawn_file_actions_init(&fa); }
  ~FileActions() { posix_spawn_file_actions_destroy(&fa); }
};
struct Attr {
  posix_spawnattr_t a;
  Attr() { posix_spawnattr_init(&a); }
  ~Attr() { posix_spawnattr_destroy(&a); }
};

}  // namespace

Result<Child> spawn_process(const SpawnRequest& request) {
  FileActions actions;
  int max_target = 2;
  for (auto [from, to] : request.fds) {
    // dup2 onto itself would keep close-on-exec set; callers pass fds above the targets.
    if (from == to) return Error{Errc::spawn, "spawn: descriptor " + std::to_string(from) + " maps onto itself"};
    posix_spawn_file_actions_adddup2(&actions.fa, from, to);
    if (to > max_target) max_target = to;
  }
  if (request.stdout_to >= 0) posix_spawn_file_actions_adddup2(&actions.fa, request.stdout_to, STDOUT_FILENO);
  if (request.stdin_null) posix_spawn_file_actions_addopen(&actions.fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  // Descriptors the host application opened without O_CLOEXEC must not leak into workers.
  posix_spawn_file_actions_addclosefrom_np(&actions.fa, max_target + 1);

  Attr attr;
  sigset_t none;
  sigemptyset(&none);
  for (int sig : request.blocked) sigaddset(&none, sig);
  sigset_t all_defaults;
  sigfillset(&all_defaults);
  sigdelset(&all_defaults, SIGKILL);
  sigdelset(&all_defaults, SIGSTOP);
  // posix_spawn inherits the blocked mask and ignored signals; a worker must start clean.
  posix_spawnattr_setsigmask(&attr.a, &none);
  posix_spawnattr_setsigdefault(&attr.a, &all_defaults);
  // Its own process group: a terminal's Ctrl-C reaches the host, which stops the workers
  // in order, instead of killing every worker mid-task at once.
  posix_spawnattr_setpgroup(&attr.a, 0);
  posix_spawnattr_setflags(&attr.a, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

  std::vector<char*> argv;
  for (const auto& a : request.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : request.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = -1;
  int rc = posix_spawn(&pid, request.executable.c_str(), &actions.fa, &attr.a, argv.data(), envp.data());
  if (rc != 0) return Error{Errc::spawn, "cannot start " + request.executable + ": " + std::strerror(rc)};
  Child child;
  child.pid = pid;
  // A zombie still has a pidfd: opening it after the spawn cannot miss an early exit.
  child.pidfd = Fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!child.pidfd) {
    int err = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return Error{Errc::spawn, std::string("pidfd_open: ") + std::strerror(err)};
  }
  // pidfd_open(2) always sets close-on-exec: a second worker never inherits the first's.
  return child;
}

bool reap(int pidfd, ExitStatus& status) {
  siginfo_t info{};
  if (::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG) != 0) return false;
  if (info.si_pid == 0) return false;
  status.exited = info.si_code == CLD_EXITED;
  status.code = status.exited ? info.si_status : 0;
  status.signal = status.exited ? 0 : info.si_status;
  return true;
}

void signal_child(int pidfd, int sig) noexcept {
  // ESRCH: the child has exited (its pidfd lives until the reap), and the exit is
  // reported through the pidfd anyway. EPERM: the worker exec'd a setuid program (a pool
  // without limits.no_new_privs allows it), which no signal of ours reaches: not a bug
  // of ours, so no abort of the host. Any other failure is (a bad descriptor or signal).
  if (::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) != 0) SHOAL_CHECK(errno == ESRCH || errno == EPERM);
}

std::string describe(const ExitStatus& status) {
  if (status.exited) return "exit code " + std::to_string(status.code);
  const char* abbrev = sigabbrev_np(status.signal);
  return "signal " + std::to_string(status.signal) + (abbrev ? std::string(" (SIG") + abbrev + ")" : std::string());
}

bool is_basic_env_name(std::string_view name) noexcept {
  static constexpr std::string_view kNames[] = {"PATH", "HOME",     "USER",     "LOGNAME",         "SHELL",
                                                "TMPDIR", "TZ",     "LANG",     "LANGUAGE",        "LD_LIBRARY_PATH",
                                                "SHOAL_LOG", "SHOAL_LOG_FORMAT"};
  for (std::string_view n : kNames)
    if (name == n) return true;
  return name.starts_with("LC_") || (name.ends_with("SAN_OPTIONS") && name.size() <= 16);
}

std::vector<std::string> environment_with(const std::vector<std::pair<std::string, std::string>>& overrides,
                                          const EnvInherit& inherit) {
  // A worker runs foreign code: the host's environment (credentials, tokens, a Redis
  // password in a ${ENV} URL) reaches it only by name, never by default.
  auto wanted = [&](std::string_view name) {
    return inherit.all || is_basic_env_name(name) ||
           std::find(inherit.names.begin(), inherit.names.end(), name) != inherit.names.end();
  };
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq == nullptr) continue;
    std::string name(*e, static_cast<size_t>(eq - *e));
    if (wanted(name)) env[std::move(name)] = eq + 1;
  }
  for (const auto& [k, v] : overrides) env[k] = v;
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

}  // namespace shoal::detail
