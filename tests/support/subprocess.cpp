#include "support/subprocess.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

extern char** environ;

namespace shoal::test {

namespace {

using Clock = std::chrono::steady_clock;

struct Pipe {
  int read = -1;
  int write = -1;
  ~Pipe() {
    if (read >= 0) ::close(read);
    if (write >= 0) ::close(write);
  }
};

std::vector<std::string> environment(const std::vector<std::pair<std::string, std::string>>& overrides,
                                     const std::vector<std::string>& unset) {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq != nullptr) env[std::string(*e, static_cast<size_t>(eq - *e))] = eq + 1;
  }
  for (const auto& name : unset) env.erase(name);
  for (const auto& [k, v] : overrides) env[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

// Drains whatever is readable; false once the write side is closed.
bool drain(int fd, std::string& into) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      into.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN;
  }
}

void set_status(ProcessResult& r, int status) {
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  }
}

}  // namespace

ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& options) {
  ProcessResult result;
  if (argv.empty()) {
    result.spawn_error = "empty argv";
    return result;
  }
  Pipe out, err;
  int fds[2];
  // Close-on-exec on our ends: only the dup2'ed copies reach the child, so EOF arrives
  // when the child (and whatever it passed them on to) is done with them.
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    result.spawn_error = std::string("pipe2: ") + std::strerror(errno);
    return result;
  }
  out.read = fds[0];
  out.write = fds[1];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    result.spawn_error = std::string("pipe2: ") + std::strerror(errno);
    return result;
  }
  err.read = fds[0];
  err.write = fds[1];

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const std::string in = options.stdin_file.empty() ? std::string("/dev/null") : options.stdin_file;
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out.write, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err.write, STDERR_FILENO);
  // Descriptors the test process opened without O_CLOEXEC (Catch2, other tests' leftovers)
  // would otherwise keep pipes open in the subject.
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  // The subject starts as from a shell: nothing blocked or ignored that the test runner
  // happened to block or ignore.
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::vector<std::string> env = environment(options.env, options.unset);
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, argv[0].c_str(), &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    result.spawn_error = "cannot start " + argv[0] + ": " + std::strerror(rc);
    return result;
  }
  ::close(out.write);
  out.write = -1;
  ::close(err.write);
  err.write = -1;
  ::fcntl(out.read, F_SETFL, O_NONBLOCK);
  ::fcntl(err.read, F_SETFL, O_NONBLOCK);

  // A pidfd joins the poll set, so the exit is seen without a busy wait on waitpid.
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  const auto deadline = Clock::now() + options.timeout;
  bool out_open = true, err_open = true, exited = pidfd < 0;
  int status = 0;
  bool reaped = false;
  while (out_open || err_open || !exited) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      result.timed_out = true;
      break;
    }
    pollfd p[3] = {{out_open ? out.read : -1, POLLIN, 0},
                   {err_open ? err.read : -1, POLLIN, 0},
                   {exited ? -1 : pidfd, POLLIN, 0}};
    // Without a pidfd, wake up now and then to look for the exit with WNOHANG.
    const int wait_ms = pidfd < 0 ? 10 : static_cast<int>(left);
    if (::poll(p, 3, wait_ms) < 0 && errno != EINTR) break;
    if (out_open && p[0].revents != 0) out_open = drain(out.read, result.out);
    if (err_open && p[1].revents != 0) err_open = drain(err.read, result.err);
    if (!exited && p[2].revents != 0) exited = true;
    if (pidfd < 0 && !reaped && ::waitpid(pid, &status, WNOHANG) == pid) reaped = true;
    if (pidfd < 0) exited = reaped;
  }
  if (result.timed_out) {
    ::kill(pid, SIGKILL);
  }
  if (!reaped) {
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (pidfd >= 0) ::close(pidfd);
  set_status(result, status);
  return result;
}

ProcessResult run_process(const std::vector<std::string>& argv, const std::string& stdin_file,
                          std::chrono::milliseconds timeout) {
  ProcessOptions options;
  options.stdin_file = stdin_file;
  options.timeout = timeout;
  return run_process(argv, options);
}

std::string describe(const ProcessResult& result) {
  std::string s;
  if (!result.spawn_error.empty()) {
    s = "not started: " + result.spawn_error;
  } else if (result.timed_out) {
    s = "timed out (killed)";
  } else if (result.signal != 0) {
    s = "signal " + std::to_string(result.signal);
  } else {
    s = "exit " + std::to_string(result.exit_code);
  }
  return s + "; stderr: " + result.err;
}

}  // namespace shoal::test
