// `shoal run`: one task per input line through one pool, one JSON outcome per output line.
#ifndef SHOAL_CLI_RUN_HPP
#define SHOAL_CLI_RUN_HPP

#include <string_view>

namespace shoal::cli {

/// Usage text of `shoal run` (printed by `shoal run --help` and `shoal help run`).
std::string_view run_usage() noexcept;

/// Runs the subcommand; `args` are the words after "run". Returns the process exit code:
/// 0 every task ok, 1 some task not ok, 2 usage/config/start/I-O error, 128+N when
/// stopped by signal N (the tasks still queued are reported as cancelled first).
int run_command(int argc, char** argv);

}  // namespace shoal::cli

#endif
