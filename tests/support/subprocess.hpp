// Running a program as a test subject: posix_spawn (never fork: the test process has
// threads), stdout and stderr captured through pipes, stdin from a file, and a deadline
// after which the process is killed and the result says so.
#ifndef SHOAL_TESTS_SUBPROCESS_HPP
#define SHOAL_TESTS_SUBPROCESS_HPP

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace shoal::test {

struct ProcessResult {
  int exit_code = -1;      ///< exit status when it exited; -1 when a signal ended it
  int signal = 0;          ///< the signal that ended it, 0 when it exited
  bool timed_out = false;  ///< the deadline passed: it was killed with SIGKILL
  std::string spawn_error; ///< non-empty when it could not be started at all
  std::string out;         ///< everything it wrote to stdout
  std::string err;         ///< everything it wrote to stderr
};

struct ProcessOptions {
  /// File connected to its stdin; empty means /dev/null.
  std::string stdin_file;
  /// Time for the process to exit and close its output. A descendant still holding
  /// stdout or stderr after the process exited counts against it too.
  std::chrono::milliseconds timeout{30000};
  /// NAME=value pairs set on top of this process's environment.
  std::vector<std::pair<std::string, std::string>> env;
  /// Names removed from the environment it inherits (before `env` is applied).
  std::vector<std::string> unset;
};

/// Runs `argv` (argv[0] is a path, or a name looked up in PATH) to completion or until
/// the deadline. Each call reaps its child: no zombie is left for later checks.
ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& options);

/// The common case: stdin from `stdin_file` (empty: /dev/null), a deadline.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& stdin_file = {},
                          std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// "exit 2" / "signal 9" / "timed out" plus the captured stderr, for test messages.
std::string describe(const ProcessResult& result);

}  // namespace shoal::test

#endif
