// What `shoal serve`, `submit` and `collect` share besides the stream layout
// (redis/streams.hpp): the setup every one of them does before its first command, the
// timings of a connection, and the re-opening of a lost one that a stop signal cuts short.
// Header-only, like the rest of the CLI's shared code.
#ifndef SHOAL_CLI_SCALE_OUT_SHARED_HPP
#define SHOAL_CLI_SCALE_OUT_SHARED_HPP

#include "options.hpp"
#include "terminal.hpp"

#include "common/printable.hpp"
#include "redis/client.hpp"
#include "redis/link.hpp"
#include "redis/streams.hpp"

#include <shoal/client.hpp>
#include <shoal/config.hpp>
#include <shoal/runtime.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

/// The first lines of the options in the usage of `submit`, `collect` and `dead`: those
/// that say where Redis and the stream are. A macro, for the usage texts are literals.
#define SHOAL_CLIENT_REDIS_OPTIONS                                                       \
  "Options (CONFIG's redis: section gives the defaults):\n"                              \
  "  --redis URL     redis://HOST[:PORT][/DB] or unix:///PATH   (redis.url)\n"           \
  "  --redis-password-file FILE\n"                                                       \
  "                  the password, kept out of the URL (which ps shows); or\n"           \
  "                  $SHOAL_REDIS_PASSWORD                      (redis.password_file)\n" \
  "  --stream NAME   the task stream (default shoal:tasks)      (redis.stream)\n"

namespace shoal::cli {

namespace redis = shoal::detail::redis;

/// How long one command may take before the connection counts as lost.
inline constexpr auto kIoTimeout = std::chrono::milliseconds(5000);

/// The pauses between attempts to reach a server that went away: short at first (a
/// restart takes a moment), never long enough to matter once it is back.
inline redis::Backoff reconnect_backoff() {
  return redis::Backoff(std::chrono::milliseconds(100), std::chrono::seconds(2));
}

/// hiredis writes with write(2): a server that closed the connection must surface as
/// EPIPE, not kill the process.
inline void ignore_sigpipe() { ::signal(SIGPIPE, SIG_IGN); }

/// The status word of a result ("ok", "crashed", …); nullopt for another word.
inline std::optional<Status> status_from(std::string_view word) { return redis::status_of(word); }

/// The variable that may carry the Redis password instead of the URL (which `ps` shows
/// when it is a flag). main() takes it out of the environment before anything starts, so
/// that no worker, nor anything else the host starts, inherits it.
inline constexpr const char* kPasswordEnv = "SHOAL_REDIS_PASSWORD";

/// $SHOAL_REDIS_PASSWORD as it was at start; nullopt when it was not set.
inline std::optional<std::string>& password_from_env() {
  static std::optional<std::string> password;
  return password;
}

/// Called once by main(), while the process has one thread (unsetenv is not thread-safe).
inline void take_password_from_env() {
  if (const char* v = std::getenv(kPasswordEnv); v != nullptr) {
    password_from_env() = std::string(v);
    ::unsetenv(kPasswordEnv);
  }
}

/// The password held in `file`: its text without one final line end. Bounded, and an
/// empty one is an error rather than no password at all.
inline Result<std::string> read_password_file(const std::filesystem::path& file) {
  constexpr size_t kMax = 64 << 10;
  const std::string what = "redis password file " + file.string();
  Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) return Error{Errc::config, "cannot open " + what + ": " + errno_text(errno)};
  std::string text(kMax + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error{Errc::config, "cannot read " + what + ": " + errno_text(errno)};
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > kMax) return Error{Errc::config, what + " is larger than 64 KiB"};
  text.resize(got);
  if (text.ends_with('\n')) text.pop_back();
  if (text.ends_with('\r')) text.pop_back();
  if (text.empty()) return Error{Errc::config, what + " is empty"};
  return text;
}

/// The password from --redis-password-file (or redis.password_file) or
/// $SHOAL_REDIS_PASSWORD, put into `url`. One source only: a password given twice is
/// refused rather than one of them silently ignored.
inline Result<void> apply_password(redis::Url& url, const std::filesystem::path& file) {
  const std::optional<std::string>& env = password_from_env();
  const int sources = (url.password.empty() ? 0 : 1) + (file.empty() ? 0 : 1) + (env ? 1 : 0);
  if (sources > 1)
    return Error{Errc::config, "the redis password is given more than once (in the URL " + url.display +
                                  ", --redis-password-file / redis.password_file, $" + kPasswordEnv + "): give one"};
  if (!file.empty()) {
    auto p = read_password_file(file);
    if (!p) return p.error();
    url.password = std::move(*p);
  } else if (env) {
    if (env->empty()) return Error{Errc::config, std::string("$") + kPasswordEnv + " is set but empty"};
    url.password = *env;
  }
  return {};
}

/// Where a command talks to: the settings (config file, flags on top) and their URL.
struct RedisTarget {
  RedisConfig settings;
  redis::Url url;
};

/// The `redis:` section `from_file` with the flags on top, and its parsed URL. The error
/// is the one-line message for the user.
inline Result<RedisTarget> redis_target(const RedisConfig& from_file, const RedisFlags& flags,
                                        std::string_view command) {
  auto settings = redis_settings(from_file, flags, command);
  if (!settings) return settings.error();
  auto url = redis::parse_url(settings->url);
  if (!url) return url.error();
  if (auto p = apply_password(*url, settings->password_file); !p) return p.error();
  return RedisTarget{std::move(*settings), std::move(*url)};
}

/// For the commands whose CONFIG is optional (`submit`, `collect`): its `redis:` section
/// when given, the defaults otherwise, with the flags on top.
inline Result<RedisTarget> redis_target(const std::vector<std::string>& positional, const RedisFlags& flags,
                                        std::string_view command) {
  RedisConfig from_file;
  if (!positional.empty()) {
    auto config = load_config_file(positional[0]);
    if (!config) return config.error();
    from_file = config->redis;
  }
  return redis_target(from_file, flags, command);
}

/// How long `submit` and `collect` keep trying to get an answer from a server that
/// went away or never spoke Redis, unless --connect-timeout says otherwise.
inline constexpr auto kDefaultConnectTimeout = std::chrono::seconds(60);

/// --connect-timeout's value: a duration, 0 for no limit; `fallback` when not given
/// (`serve` waits for its first connection as long as it takes).
inline Result<std::chrono::milliseconds> connect_timeout_from(
    const std::string& text, std::string_view command,
    std::chrono::milliseconds fallback = std::chrono::milliseconds(kDefaultConnectTimeout)) {
  if (text.empty()) return fallback;
  Duration d{};
  if (!parse_duration(text, d))
    return Error{Errc::config, std::string(command) + ": --connect-timeout: expected a duration such as 30s or 0, found '" +
                                   detail::printable(text, 100) + "'"};
  return std::chrono::duration_cast<std::chrono::milliseconds>(d);
}

/// A Redis client's line for the user (a retry is a warning).
inline void say_on_stderr(bool warning, const std::string& line) {
  warning ? print_warning(line) : print_info(line);
}

/// The Client of `submit` and `collect --job`: the target's settings, a stop signal
/// ending its waits, its lines on standard error.
inline ClientOptions client_options(const RedisTarget& target, StopSignals& signals, std::string name,
                                    std::chrono::milliseconds give_up, Duration result_ttl = std::chrono::hours(24)) {
  ClientOptions o;
  o.url = target.settings.url;
  o.password = target.url.password;
  o.stream = target.settings.stream;
  o.io_timeout = kIoTimeout;
  o.reconnect_for = give_up;
  o.max_stream_length = target.settings.max_stream_length;
  o.max_input = target.settings.max_input;
  o.result_ttl = std::chrono::duration_cast<std::chrono::milliseconds>(result_ttl);
  o.interrupt_fd = signals.fd();
  o.on_notice = say_on_stderr;
  o.name = std::move(name);
  return o;
}

/// The Redis link of `submit`, `collect` and `dead` (redis/link.hpp): a stop signal ends
/// its waits, and its lines go to standard error.
class RedisLink : public redis::Link {
 public:
  RedisLink(redis::Url url, StopSignals& signals, std::string command,
            std::chrono::milliseconds give_up = kDefaultConnectTimeout)
      : redis::Link(std::move(url), std::move(command), give_up, kIoTimeout, hooks(signals)) {}

  static Hooks hooks(StopSignals& signals) {
    Hooks h;
    h.interrupt_fd = signals.fd();
    h.interrupted = [&signals] { return signals.poll(); };
    h.say = say_on_stderr;
    return h;
  }
};

}  // namespace shoal::cli

#endif
