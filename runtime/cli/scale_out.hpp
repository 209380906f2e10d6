// Scale-out subcommands over Redis Streams (redis/streams.hpp has the layout):
// `shoal submit` queues one task per input line, `shoal serve` runs them in a local pool
// (several hosts share one consumer group), `shoal collect` prints the results once per
// task id, `shoal dead` lists, requeues and purges the dead letters. Each returns the
// process exit code.
#ifndef SHOAL_CLI_SCALE_OUT_HPP
#define SHOAL_CLI_SCALE_OUT_HPP

#include <string_view>

namespace shoal::cli {

std::string_view serve_usage() noexcept;
std::string_view submit_usage() noexcept;
std::string_view collect_usage() noexcept;
std::string_view dead_usage() noexcept;

/// `args` are the words after the subcommand's name.
int serve_command(int argc, char** argv);
int submit_command(int argc, char** argv);
int collect_command(int argc, char** argv);
int dead_command(int argc, char** argv);

}  // namespace shoal::cli

#endif
