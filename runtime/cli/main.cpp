// The `shoal` command: dispatches to its subcommands. Errors are one line on stderr
// starting with "shoal: "; exit 2 is a usage error everywhere.
#include "check.hpp"
#include "run.hpp"
#include "scale_out.hpp"

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
    "  check CONFIG       validate a config and every plugin and resource module it\n"
    "                     names, reading the files without loading them\n"
    "  inspect FILE.so... show a shared object's shoal exports, declared ABI version\n"
    "                     and needed libraries, without loading it\n"
    "  serve CONFIG --redis URL\n"
    "                     run tasks from a Redis stream; several hosts share one\n"
    "  submit --redis URL [--input FILE|-]\n"
    "                     queue one task per input line on a Redis stream\n"
    "  collect --redis URL [--expect N] [--follow]\n"
    "                     print the results of a Redis stream, once per task id\n"
    "  help [COMMAND]     show this help, or a command's\n"
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
    if (topic == "serve" || topic == "submit" || topic == "collect") {
      write_out(topic == "serve"    ? shoal::cli::serve_usage()
                : topic == "submit" ? shoal::cli::submit_usage()
                                    : shoal::cli::collect_usage());
      return 0;
    }
    if (topic == "check" || topic == "inspect") {
      write_out(topic == "check" ? shoal::cli::check_usage() : shoal::cli::inspect_usage());
      return 0;
    }
    write_err("unknown command '" + std::string(topic) + "' (see 'shoal --help')");
    return kExitUsage;
  }
  if (command == "run") return shoal::cli::run_command(argc - 2, argv + 2);
  if (command == "serve") return shoal::cli::serve_command(argc - 2, argv + 2);
  if (command == "submit") return shoal::cli::submit_command(argc - 2, argv + 2);
  if (command == "collect") return shoal::cli::collect_command(argc - 2, argv + 2);
  if (command == "check") return shoal::cli::check_command(argc - 2, argv + 2);
  if (command == "inspect") return shoal::cli::inspect_command(argc - 2, argv + 2);
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
