// File: shoal/config.hpp
//
// The parsed form of a shoal YAML file (see config/reference.md for every key). A
// PoolConfig can also be built in code and handed to Pool::start directly.
#ifndef SHOAL_CONFIG_HPP
#define SHOAL_CONFIG_HPP

#include <shoal/export.hpp>
#include <shoal/result.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace shoal {

using Duration = std::chrono::nanoseconds;

/// Where a value was written in its config file, 1-based; 0:0 when it was set in code.
/// `shoal check` names it when the file there is unusable. Members of this type carry a
/// `{}` initializer so that brace-initializing a config without them stays warning-free.
struct SourcePosition {
  uint32_t line = 0;
  uint32_t column = 0;
};

/// Where one entry of a `params:` mapping was written: its key and its value.
struct ParamPosition {
  SourcePosition key{};
  SourcePosition value{};
};

/// One entry of a pool's `resources:` list (opened in the worker before init).
struct ResourceConfig {
  std::string name;
  std::filesystem::path module;  ///< absolute after loading
  int32_t priority = 0;          ///< finalizer priority, higher closes first
  std::map<std::string, std::string> params;
  SourcePosition module_at{};    ///< where `module:` was written
  std::map<std::string, ParamPosition> params_at{};  ///< where each of `params` was written
};

/// Limits applied in each worker process before it loads anything (setrlimit, prctl).
struct Limits {
  uint64_t address_space = 0;  ///< RLIMIT_AS bytes; 0 = none. A plugin's allocations past it fail.
  uint64_t cpu_seconds = 0;    ///< RLIMIT_CPU per worker process; 0 = none (SIGXCPU, then SIGKILL)
  uint64_t open_files = 0;     ///< RLIMIT_NOFILE; 0 = inherited
  bool core_dumps = false;     ///< false: RLIMIT_CORE 0, a crashing plugin leaves no core file
  bool no_new_privs = false;   ///< PR_SET_NO_NEW_PRIVS: no setuid gains through exec
};

/// A path a sandboxed plugin may open (`sandbox.filesystem`).
struct SandboxPath {
  std::filesystem::path path;  ///< absolute after loading; a folder covers what is beneath it
  bool write = false;          ///< false: read (and list, execute); true: also write, create, remove
};

/// `sandbox:` of a pool: what a plugin's worker may do past the default confinement
/// (README, "What a plugin can reach"). Present = on: no_new_privs, a seccomp filter
/// against calls that reach other processes or the kernel's configuration, and Landlock
/// limiting the files the worker opens to `filesystem`, the system's libraries, the
/// plugin and its modules, /dev/null and the worker's own /proc/PID.
struct Sandbox {
  bool enabled = false;
  std::vector<SandboxPath> filesystem;
};

/// One pool of workers running one task plugin.
struct PoolConfig {
  std::string name;
  std::filesystem::path plugin;  ///< absolute after loading
  uint32_t workers = 0;          ///< 0 means one per CPU
  std::map<std::string, std::string> params;  ///< handed to shoal_init; non-strings as YAML text
  uint64_t max_tasks_per_worker = 0;          ///< 0 = never recycle
  uint64_t max_memory = 0;                    ///< bytes of RSS; 0 = no limit
  Duration task_timeout{0};                   ///< 0 = none
  Duration start_timeout = std::chrono::seconds(30);  ///< spawn until init returned; 0 = none
  uint32_t retries = 0;                       ///< extra attempts for crashed/timeout tasks
  uint64_t queue_capacity = 4u << 20;         ///< bytes per ring (task ring and result ring)
  Duration grace = std::chrono::seconds(5);   ///< shutdown.grace
  Duration fini_timeout = std::chrono::seconds(2);  ///< shutdown.fini_timeout
  int32_t fini_priority = 100;                ///< priority of shoal_fini in the chain
  std::map<std::string, std::string> env;     ///< extra environment of the workers
  /// Host variables a worker gets besides the basic ones (PATH, HOME, LANG, LC_*, TZ, …;
  /// config/reference.md lists them): by name, or every one with env_inherit_all.
  std::vector<std::string> env_inherit;
  bool env_inherit_all = false;               ///< `env_inherit: all`
  std::vector<ResourceConfig> resources;
  Limits limits;
  Sandbox sandbox;
  SourcePosition plugin_at{};                 ///< where `plugin:` was written
  std::map<std::string, ParamPosition> params_at{};  ///< where each of `params` was written
};

/// The `redis:` section: scale-out settings shared by `shoal serve`, `submit` and
/// `collect` (their command-line flags override each key).
struct RedisConfig {
  std::string url;                      ///< redis://HOST[:PORT][/DB]; empty = not given
  std::filesystem::path password_file;  ///< holds the password (not in the URL: `ps` shows it); empty = none
  std::string stream = "shoal:tasks";   ///< tasks; results go to STREAM:results, dead letters to STREAM:dead
  std::string group = "shoal";          ///< the consumer group every serving host reads through
  std::string consumer;                 ///< this host's name in the group; empty = HOSTNAME-PID
  std::string pool;                     ///< the pool that serves; empty = the only pool
  Duration visibility_timeout = std::chrono::seconds(30);  ///< idle time before another host claims an entry
  uint32_t max_deliveries = 3;          ///< deliveries before an entry goes to the dead-letter stream
  uint64_t max_stream_length = 100000;  ///< `submit` waits while the stream holds more entries
  uint64_t max_input = uint64_t{64} << 20;  ///< the longest input line `submit` queues, in bytes
  uint32_t in_flight = 0;               ///< entries a host holds at once; 0 = 2 per worker
};

/// The `metrics:` setting: where `shoal run` and `shoal serve` answer /metrics, /healthz
/// and /readyz (`metrics: 127.0.0.1:9464` or `metrics: {listen: ...}`).
struct MetricsConfig {
  std::string listen;          ///< HOST:PORT, [IPV6]:PORT, :PORT or PORT (loopback); empty = off
  SourcePosition listen_at{};  ///< where it was written
};

/// A whole config file: pools in file order.
struct Config {
  std::filesystem::path source;  ///< the file it came from ("<string>" for a string)
  std::vector<PoolConfig> pools;
  RedisConfig redis;             ///< defaults when the file has no `redis:` section
  MetricsConfig metrics;
};

/// Parses a config file. Relative paths are resolved against the file's folder and
/// `${NAME}` is expanded from the environment. Errors read "FILE:LINE:COLUMN: message".
SHOAL_API Result<Config> load_config_file(const std::filesystem::path& file);

/// Parses YAML text; `source` names it in errors and `base_dir` anchors relative paths.
SHOAL_API Result<Config> load_config_string(std::string_view yaml, const std::string& source,
                                            const std::filesystem::path& base_dir);

/// "250ms", "30s", "2m", "1h", "1500us", "0" -> duration. Returns false on bad text.
SHOAL_API bool parse_duration(std::string_view text, Duration& out);
/// "4MiB", "512KiB", "1GiB", "4096", "10MB" -> bytes. Returns false on bad text.
SHOAL_API bool parse_size(std::string_view text, uint64_t& out);

}  // namespace shoal

#endif  // SHOAL_CONFIG_HPP
