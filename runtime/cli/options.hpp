// Command-line parsing shared by subcommands: `--name VALUE`, `--name=VALUE`, flags,
// `--` to end options, `-h/--help`; an option given twice or with an empty value is a
// usage error. Also the choice of a pool and the `redis:` settings with flags on top.
#ifndef SHOAL_CLI_OPTIONS_HPP
#define SHOAL_CLI_OPTIONS_HPP

#include "terminal.hpp"
#include "common/printable.hpp"
#include "config/values.hpp"

#include <shoal/config.hpp>

#include <algorithm>
#include <array>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shoal::cli {

/// One option: a value (`value` set) or a flag (`flag` set).
struct OptionSpec {
  std::string_view name;  ///< "--redis"
  std::string* value = nullptr;
  bool* flag = nullptr;
};

/// What a subcommand takes besides its options.
struct CommandSpec {
  std::string_view command;       ///< "serve", for messages
  std::string_view usage;         ///< printed by --help
  std::string_view positional;    ///< "CONFIG", for messages
  size_t min_positional = 0;
  size_t max_positional = 1;
};

/// Parses `argv` into the specs and `positional`. Returns an exit code when the
/// arguments settle the command (0 after --help, 2 after a usage error, reported).
inline std::optional<int> parse_options(const CommandSpec& cmd, int argc, char** argv,
                                        std::span<const OptionSpec> specs, std::vector<std::string>& positional) {
  const std::string prefix = std::string(cmd.command) + ": ";
  std::vector<bool> seen(specs.size(), false);
  bool options_done = false;
  for (int i = 0; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (options_done || arg.size() < 2 || arg[0] != '-') {
      positional.emplace_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      ::fwrite(cmd.usage.data(), 1, cmd.usage.size(), stdout);
      std::fflush(stdout);
      return 0;
    }
    std::string_view name = arg;
    std::optional<std::string_view> value;
    if (auto eq = arg.find('='); eq != std::string_view::npos && arg.starts_with("--")) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    const auto it = std::find_if(specs.begin(), specs.end(), [&](const OptionSpec& s) { return s.name == name; });
    if (it == specs.end()) {
      std::array<std::string_view, 32> names{"--help"};  // no command takes that many
      size_t count = 1;
      for (const auto& spec : specs)
        if (count < names.size()) names[count++] = spec.name;
      std::string hint = detail::did_you_mean(name, std::span(names.data(), count));
      if (hint.empty()) hint = " (see 'shoal " + std::string(cmd.command) + " --help')";
      print_error(prefix + "unknown option '" + detail::printable(name, 60) + "'" + hint);
      return 2;
    }
    const size_t index = static_cast<size_t>(it - specs.begin());
    if (seen[index]) {
      print_error(prefix + "option '" + std::string(name) + "' given twice");
      return 2;
    }
    seen[index] = true;
    if (it->flag != nullptr) {
      if (value) {
        print_error(prefix + "option '" + std::string(name) + "' takes no value");
        return 2;
      }
      *it->flag = true;
      continue;
    }
    if (!value) {
      if (i + 1 >= argc) {
        print_error(prefix + "option '" + std::string(name) + "' needs a value");
        return 2;
      }
      value = argv[++i];
    }
    if (value->empty()) {
      print_error(prefix + "option '" + std::string(name) + "' needs a non-empty value");
      return 2;
    }
    *it->value = std::string(*value);
  }
  if (positional.size() < cmd.min_positional) {
    print_error(prefix + "missing " + std::string(cmd.positional) + " (see 'shoal " + std::string(cmd.command) +
                " --help')");
    return 2;
  }
  if (positional.size() > cmd.max_positional) {
    print_error(prefix + "unexpected argument '" + detail::printable(positional[cmd.max_positional], 60) + "'");
    return 2;
  }
  return std::nullopt;
}

inline std::string pool_names(const Config& config) {
  std::string names;
  for (const auto& p : config.pools) {
    if (!names.empty()) names += ", ";
    names += p.name;
  }
  return names;
}

/// The pool to use: `requested` if given (it must exist), else the config's only pool.
/// On failure, the one-line message for the user.
inline Result<std::string> choose_pool(const Config& config, const std::string& requested,
                                       const std::string& config_path) {
  if (requested.empty()) {
    if (config.pools.empty()) return Error{Errc::config, config_path + ": no pools defined"};
    if (config.pools.size() > 1)
      return Error{Errc::config, config_path + " has " + std::to_string(config.pools.size()) + " pools (" +
                                     pool_names(config) + "); choose one with --pool NAME"};
    return config.pools.front().name;
  }
  if (std::none_of(config.pools.begin(), config.pools.end(),
                   [&](const PoolConfig& p) { return p.name == requested; })) {
    std::vector<std::string_view> names;
    for (const auto& p : config.pools) names.push_back(p.name);
    std::string hint = detail::did_you_mean(requested, names);
    if (hint.empty()) hint = " (pools: " + pool_names(config) + ")";
    return Error{Errc::not_found, "no pool named '" + detail::printable(requested, 60) + "' in " +
                                      detail::printable(config_path) + hint};
  }
  return requested;
}

/// The Redis flags every scale-out command takes; an empty string was not given.
struct RedisFlags {
  std::string url, stream, group, consumer, pool, password_file;
};

/// The config's `redis:` section with each flag that was given on top. Fails (a usage
/// message) when no URL is known.
inline Result<RedisConfig> redis_settings(const RedisConfig& from_file, const RedisFlags& flags,
                                          std::string_view command) {
  RedisConfig r = from_file;
  for (auto [flag, key] : {std::pair{&flags.url, &r.url}, std::pair{&flags.stream, &r.stream},
                           std::pair{&flags.group, &r.group}, std::pair{&flags.consumer, &r.consumer},
                           std::pair{&flags.pool, &r.pool}}) {
    if (!flag->empty()) *key = *flag;
  }
  if (!flags.password_file.empty()) r.password_file = flags.password_file;
  if (r.url.empty())
    return Error{Errc::config, std::string(command) + ": missing --redis URL (or redis.url in CONFIG)"};
  return r;
}

}  // namespace shoal::cli

#endif
