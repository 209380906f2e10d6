// Helpers shared by the tests: temporary folders, fixture paths, pool configs, and the
// checks that a test left no process behind.
#ifndef SHOAL_TESTS_TEST_ENV_HPP
#define SHOAL_TESTS_TEST_ENV_HPP

#include "fixture_paths.hpp"
#include "support/subprocess.hpp"

#include <shoal/config.hpp>
#include <shoal/runtime.hpp>

#include <chrono>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace shoal::test {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/// Sanitizer builds start and stop processes several times slower: time bounds that test
/// "promptly" are multiplied by this, never the ones that test "not before".
inline constexpr int kSlow = 5;
inline constexpr bool kSanitized = true;
#else
inline constexpr int kSlow = 1;
inline constexpr bool kSanitized = false;
#endif

/// A fresh folder under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  /// Writes `text` to `name` inside the folder and returns its path.
  std::filesystem::path write(const std::string& name, const std::string& text) const;

 private:
  std::filesystem::path path_;
};

/// build/tests/fixtures/<name>.so
std::string fixture(const std::string& name);

/// A pool config over `plugin` with `workers` workers and short shutdown timings.
PoolConfig pool_config(const std::string& plugin, uint32_t workers);

/// Starts a pool; fails the test (naming the cause) when it cannot start.
std::unique_ptr<Pool> start_pool(const PoolConfig& config);

/// The outcome behind `f`; fails the test if it is not ready within `limit`.
/// Runs the `shoal` CLI (`args` without the program) with `options`, 60 s unless set,
/// and requires that it ended by itself: spawned, within its time, by no signal.
ProcessResult shoal_cli(std::vector<std::string> args, ProcessOptions options = {});

Outcome get(std::future<Outcome> f, std::chrono::seconds limit = std::chrono::seconds(30));

/// True once every pid in `pids` is gone (reaped or never existed), waiting up to `limit`.
bool all_gone(const std::vector<int>& pids, std::chrono::milliseconds limit = std::chrono::milliseconds(5000));

/// True when this process has no child at all: every worker and builder was reaped.
bool no_child_left();

/// The entries of folder `dir` now (/dev/shm: a memfd leaves none there; /proc/self/fd).
size_t entries_in(const std::filesystem::path& dir);

/// True once `path` exists, waiting up to `limit`.
bool wait_for_file(const std::filesystem::path& path, std::chrono::milliseconds limit);

/// A program left running while the test acts on it (signals it, kills it). stdin,
/// stdout and stderr are files; the destructor kills and reaps it if still running.
class Background {
 public:
  Background(const std::vector<std::string>& argv, const std::filesystem::path& stdin_file,
             const std::filesystem::path& stdout_file, const std::filesystem::path& stderr_file);
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  bool started() const { return pid_ > 0; }
  int pid() const { return pid_; }
  void signal(int sig) const;
  /// Waits for the exit; false on timeout. `code` is the exit code, or 128+signal.
  bool wait(std::chrono::milliseconds limit, int& code);

 private:
  int pid_ = -1;
  int pidfd_ = -1;
};

/// Resident set of a process in KiB (0 when it is gone).
long rss_kib(int pid);

/// The largest rss_kib(pid) seen every 20 ms for `span`: how much a process that keeps
/// reading (an endless input) holds.
long peak_rss_kib(int pid, std::chrono::milliseconds span);

/// A TCP socket listening on a free port of 127.0.0.1 (its number in `port`); fails the
/// test when it cannot. The caller closes it.
int listen_loopback(int& port);

/// Reads a whole file ("" if missing).
std::string read_file(const std::filesystem::path& path);

/// `argv` as a user runs it: the log at its defaults (SHOAL_LOG and SHOAL_LOG_FORMAT,
/// which ctest sets, unset), stdin from `stdin_file` (empty: /dev/null), `env` on top,
/// 60 s (times kSlow) to finish. Fails the test when it cannot start or times out.
ProcessResult run_as_user(const std::vector<std::string>& argv, const std::string& stdin_file = {},
                          std::vector<std::pair<std::string, std::string>> env = {});

}  // namespace shoal::test

#endif
