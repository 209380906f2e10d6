// The `shoal` command: dispatches to its subcommands. Errors are one line on stderr
// starting with "shoal: "; exit 2 is a usage error everywhere.
#include "run.hpp"

#include <shoal/plugin.h>

#include <cstdio>
#include <exception>
#include <string>
#include <string_view>

#ifndef SHOAL_VERSION
#define SHOAL_VERSION "1.0.0"
#endif

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
    "                     one task per input line, one JSON outcome per output line\n"
    "  check CONFIG       validate a config and its plugins (not implemented yet)\n"
    "  inspect PLUGIN.so  show a plugin's exports and ABI version (not implemented yet)\n"
    "  serve CONFIG --redis URL\n"
    "                     take tasks from a Redis stream (not implemented yet)\n"
    "  help [COMMAND]     show this help, or a command's\n"
    "\n"
    "Run 'shoal COMMAND --help' for a command's options.\n"
    "\n"
    "Exit status: 0 every task ok; 1 some task not ok; 2 usage, config or start error,\n"
    "or a command that is not implemented yet.\n";

void write_out(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

void write_err(const std::string& message) {
  std::string line = "shoal: " + message + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

bool is_unimplemented(std::string_view command) {
  return command == "check" || command == "inspect" || command == "serve";
}

int dispatch(int argc, char** argv) {
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
    char text[96];
    std::snprintf(text, sizeof text, "shoal %s (plugin ABI %d.%d)\n", SHOAL_VERSION, SHOAL_ABI_MAJOR,
                  SHOAL_ABI_MINOR);
    write_out(text);
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
    if (is_unimplemented(topic)) {
      write_err(std::string(topic) + ": not implemented yet");
      return kExitUsage;
    }
    write_err("unknown command '" + std::string(topic) + "' (see 'shoal --help')");
    return kExitUsage;
  }
  if (command == "run") return shoal::cli::run_command(argc - 2, argv + 2);
  if (is_unimplemented(command)) {
    write_err(std::string(command) + ": not implemented yet");
    return kExitUsage;
  }
  if (command.starts_with("-")) {
    write_err("unknown option '" + std::string(command) + "' (see 'shoal --help')");
    return kExitUsage;
  }
  write_err("unknown command '" + std::string(command) + "' (see 'shoal --help')");
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  // The runtime reports failures as values; what can still throw here is the standard
  // library (bad_alloc, thread creation). It ends the run as an error, never as abort().
  try {
    return dispatch(argc, argv);
  } catch (const std::exception& e) {
    write_err(std::string("internal error: ") + e.what());
  } catch (...) {
    write_err("internal error: unknown exception");
  }
  return kExitUsage;
}
