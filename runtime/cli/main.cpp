// The `shoal` command: dispatches to its subcommands. Errors are one line on stderr
// starting with "shoal: "; exit 2 is a usage error everywhere.
#include "check.hpp"
#include "run.hpp"
#include "scale_out.hpp"
#include "scale_out_shared.hpp"

#include "common/log.hpp"
#include "common/printable.hpp"
#include "common/version.hpp"
#include "config/values.hpp"


#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr int kExitUsage = 2;

constexpr std::string_view kUsage =
    "Usage: shoal COMMAND [ARGS...]\n"
    "       shoal --help | --version\n"
    "\n"
    "Runs C++ task plugins in a pool of worker processes described by a YAML config.\n"
    "\n"
    "Commands:\n"
    "  run CONFIG [--pool NAME] [--input FILE|-] [--output FILE|-] [--unordered]\n"
    "             [--stats FILE] [--stats-interval DURATION]\n"
    "                     one task per input line, one JSON outcome per output line\n"
    "  check CONFIG       validate a config and every plugin and resource module it\n"
    "                     names, reading the files without loading them\n"
    "  inspect FILE.so... show a shared object's shoal exports, declared ABI version\n"
    "                     and needed libraries, without loading it\n"
    "  serve CONFIG --redis URL\n"
    "                     run tasks from a Redis stream; several hosts share one\n"
    "  submit --redis URL [--input FILE|-]\n"
    "                     queue one task per input line on a Redis stream, as a job\n"
    "  collect --redis URL --job JOB [--timeout DURATION]\n"
    "                     print a job's results as they come, once per task id\n"
    "  dead list|show ID|requeue ID...|--all|purge [ID...] [--redis URL]\n"
    "                     the tasks that used up redis.max_deliveries: list, show,\n"
    "                     queue again or delete them\n"
    "  help [COMMAND]     show this help, or a command's\n"
    "\n"
    "Options for every command (before or after it):\n"
    "  --log-format text|json   the runtime's own messages and what plugins log, as\n"
    "                           'shoal: LEVEL: ...' lines (default) or JSON objects\n"
    "                           {\"time\",\"level\",\"pool\",\"worker\",\"component\",\"message\"}\n"
    "  --log-level debug|info|warn|error\n"
    "                           the least level shown (default info)\n"
    "  Both are also read from $SHOAL_LOG_FORMAT and $SHOAL_LOG; workers inherit them.\n"
    "\n"
    "Signals:\n"
    "  run      SIGINT (Ctrl-C), SIGTERM and SIGHUP stop it: queued tasks are cancelled,\n"
    "           running ones get shutdown.grace, every finalizer runs, exit 128+N; a\n"
    "           second one ends it at once\n"
    "  serve    SIGINT and SIGTERM stop it: tasks not started are handed back, running\n"
    "           ones get shutdown.grace, every finalizer runs, exit 0; a second one\n"
    "           ends it at once. SIGHUP stops nothing: it reloads the pool from CONFIG\n"
    "           while tasks flow (see 'shoal serve --help')\n"
    "  submit, collect, dead\n"
    "           SIGINT, SIGTERM and SIGHUP stop them\n"
    "\n"
    "Run 'shoal COMMAND --help' for a command's options.\n"
    "\n"
    "Exit status: 0 every task ok; 1 some task not ok; 2 usage, config or start error\n"
    "(check and inspect: 0 nothing wrong, 2 a problem found).\n";

void write_out(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

void write_err(const std::string& message) {
  std::string line = "shoal: " + message + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

bool valid_log_value(bool format, std::string_view value) {
  return format ? shoal::detail::parse_log_format(value).has_value() : shoal::detail::parse_log_level(value).has_value();
}

std::string unknown_log_value(bool format, std::string_view value) {
  return "unknown value '" + shoal::detail::printable(value, 60) + "' (" +
         (format ? "text or json" : "debug, info, warn or error") + ")";
}

// Takes --log-format and --log-level out of the arguments, wherever they are before a
// "--", and puts them in the environment: the log reads it once, and the workers the
// pools spawn inherit it.
std::optional<int> take_log_options(int& argc, char** argv) {
  int out = 1;
  bool options_done = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") options_done = true;
    const bool format = arg.starts_with("--log-format"), level = arg.starts_with("--log-level");
    std::string_view name = format ? "--log-format" : "--log-level";
    if (options_done || !(format || level) || (arg.size() > name.size() && arg[name.size()] != '=')) {
      argv[out++] = argv[i];
      continue;
    }
    std::string_view value;
    if (arg.size() > name.size()) {
      value = arg.substr(name.size() + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      write_err("option '" + std::string(name) + "' needs a value (see 'shoal --help')");
      return kExitUsage;
    }
    if (!valid_log_value(format, value)) {
      write_err("option '" + std::string(name) + "': " + unknown_log_value(format, value));
      return kExitUsage;
    }
    ::setenv(format ? "SHOAL_LOG_FORMAT" : "SHOAL_LOG", std::string(value).c_str(), 1);
  }
  argv[out] = nullptr;
  argc = out;
  // The variables are checked like the flags (a flag given above has replaced its
  // variable): the log would otherwise fall back to its default without a word.
  for (const bool format : {false, true}) {
    const char* name = format ? "SHOAL_LOG_FORMAT" : "SHOAL_LOG";
    if (const char* value = std::getenv(name); value != nullptr && !valid_log_value(format, value)) {
      write_err(std::string(name) + ": " + unknown_log_value(format, value));
      return kExitUsage;
    }
  }
  return std::nullopt;
}

// The commands, for "did you mean"; dispatch() below is what runs them.
constexpr std::string_view kCommands[] = {"run", "check", "inspect", "serve", "submit", "collect", "dead", "help"};

// " (did you mean 'X'?)" when a candidate is close, else the pointer to --help.
std::string suggestion(std::string_view word, std::span<const std::string_view> candidates) {
  const std::string near = shoal::detail::did_you_mean(word, candidates);
  return near.empty() ? " (see 'shoal --help')" : near;
}

int unknown_command(std::string_view command) {
  write_err("unknown command '" + shoal::detail::printable(command, 60) + "'" + suggestion(command, kCommands));
  return kExitUsage;
}

int dispatch(int argc, char** argv) {
  if (auto code = take_log_options(argc, argv)) return *code;
  if (argc < 2) {
    write_err("missing COMMAND (see 'shoal --help')");
    return kExitUsage;
  }
  const std::string_view command = argv[1];
  if (command == "-h" || command == "--help") {
    write_out(kUsage);
    return 0;
  }
  if (command == "--version") {
    write_out(shoal::detail::version_line("shoal"));
    return 0;
  }
  if (command == "help") {
    if (argc < 3) {
      write_out(kUsage);
      return 0;
    }
    const std::string_view topic = argv[2];
    if (topic == "run") {
      write_out(shoal::cli::run_usage());
      return 0;
    }
    if (topic == "serve" || topic == "submit" || topic == "collect") {
      write_out(topic == "serve"    ? shoal::cli::serve_usage()
                : topic == "submit" ? shoal::cli::submit_usage()
                                    : shoal::cli::collect_usage());
      return 0;
    }
    if (topic == "dead") {
      write_out(shoal::cli::dead_usage());
      return 0;
    }
    if (topic == "check" || topic == "inspect") {
      write_out(topic == "check" ? shoal::cli::check_usage() : shoal::cli::inspect_usage());
      return 0;
    }
    return unknown_command(topic);
  }
  if (command == "run") return shoal::cli::run_command(argc - 2, argv + 2);
  if (command == "serve") return shoal::cli::serve_command(argc - 2, argv + 2);
  if (command == "submit") return shoal::cli::submit_command(argc - 2, argv + 2);
  if (command == "collect") return shoal::cli::collect_command(argc - 2, argv + 2);
  if (command == "dead") return shoal::cli::dead_command(argc - 2, argv + 2);
  if (command == "check") return shoal::cli::check_command(argc - 2, argv + 2);
  if (command == "inspect") return shoal::cli::inspect_command(argc - 2, argv + 2);
  if (command.starts_with("-")) {
    constexpr std::string_view kOptions[] = {"--help", "--version", "--log-format", "--log-level"};
    write_err("unknown option '" + shoal::detail::printable(command, 60) + "'" + suggestion(command, kOptions));
    return kExitUsage;
  }
  return unknown_command(command);
}

// A password written into an argument (`--redis redis://USER:PASSWORD@HOST`) is readable
// by every user in /proc/PID/cmdline, which is the process's own argv memory, for as long
// as the host runs. The arguments are parsed from copies and the password in the original
// is overwritten with '*' (as mysql and psql do with theirs); only a `ps` that ran in the
// first moments saw it, which is why the README points to a file or a variable instead.
void scrub_url_password(char* arg) {
  const auto [first, last] = shoal::detail::url_password_span(arg);
  std::fill(arg + first, arg + last, '*');
}

}  // namespace

int main(int argc, char** argv) {
  // The runtime reports failures as values; what can still throw here is the standard
  // library (bad_alloc, thread creation). It ends the run as an error, never as abort().
  try {
    shoal::cli::take_password_from_env();
    std::vector<std::string> copies(argv, argv + argc);
    std::vector<char*> args;
    for (auto& a : copies) args.push_back(a.data());
    args.push_back(nullptr);
    for (int i = 1; i < argc; ++i) scrub_url_password(argv[i]);
    return dispatch(argc, args.data());
  } catch (const std::exception& e) {
    write_err(std::string("internal error: ") + e.what());
  } catch (...) {
    write_err("internal error: unknown exception");
  }
  return kExitUsage;
}
