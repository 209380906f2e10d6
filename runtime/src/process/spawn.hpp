// Starting and supervising worker processes without fork(): a forked copy of a threaded
// host inherits locks held by threads that do not exist in the child.
#ifndef SHOAL_PROCESS_SPAWN_HPP
#define SHOAL_PROCESS_SPAWN_HPP

#include "common/fd.hpp"

#include <shoal/result.hpp>

#include <sys/types.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shoal::detail {

struct SpawnRequest {
  std::string executable;              // absolute path
  std::vector<std::string> argv;       // argv[0] included
  std::vector<std::string> env;        // "NAME=value", the whole environment
  std::vector<std::pair<int, int>> fds;  // (descriptor in the host, number in the child)
  int stdout_to = -1;                  // child's stdout goes to this host fd (-1: inherit)
  bool stdin_null = false;             // child's stdin is /dev/null (else inherited)
  std::vector<int> blocked;            // signals blocked in the child from its first instruction
};

struct Child {
  pid_t pid = -1;
  Fd pidfd;  // readable when the child exits; signals go through it (no pid reuse race)
};

/// posix_spawn with only `blocked` in its signal mask, default dispositions, its own process group,
/// and every descriptor above the mapped ones closed.
Result<Child> spawn_process(const SpawnRequest& request);

/// How a process ended, from waitid on its pidfd.
struct ExitStatus {
  bool exited = false;  // true: code is the exit code; false: signal killed it
  int code = 0;
  int signal = 0;
};
/// Reaps the child behind `pidfd` (which must be readable). False if it is not dead yet.
bool reap(int pidfd, ExitStatus& status);
/// Sends `sig` through the pidfd (never to a recycled pid).
void signal_child(int pidfd, int sig) noexcept;
/// "exit code 3" / "signal 11 (SIGSEGV)".
std::string describe(const ExitStatus& status);

/// Which of this process's variables a child gets.
struct EnvInherit {
  bool all = false;                 ///< every one (a pool's `env_inherit: all`)
  std::vector<std::string> names;   ///< these, besides what is_basic_env_name() accepts
};

/// What any program needs to run and that says nothing secret: PATH, HOME, USER, LOGNAME,
/// SHELL, TMPDIR, TZ, LANG, LANGUAGE, LC_*, LD_LIBRARY_PATH, the sanitizers' *SAN_OPTIONS,
/// and the runtime's own SHOAL_LOG and SHOAL_LOG_FORMAT.
bool is_basic_env_name(std::string_view name) noexcept;

/// The variables of this process that `inherit` lets through, as "NAME=value" strings,
/// with `overrides` applied on top.
std::vector<std::string> environment_with(const std::vector<std::pair<std::string, std::string>>& overrides,
                                          const EnvInherit& inherit);

}  // namespace shoal::detail

#endif
