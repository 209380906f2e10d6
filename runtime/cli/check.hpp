// `shoal check` and `shoal inspect`: what a config and the shared objects it names hold,
// read from the files without loading any of them.
#ifndef SHOAL_CLI_CHECK_HPP
#define SHOAL_CLI_CHECK_HPP

#include <string_view>

namespace shoal::cli {

/// Usage text of `shoal check` (`shoal check --help`, `shoal help check`).
std::string_view check_usage() noexcept;

/// Validates a config and every plugin and resource module it names; `argv` are the
/// words after "check". Returns 0 when nothing is wrong, 2 on a problem or usage error.
int check_command(int argc, char** argv);

/// Usage text of `shoal inspect`.
std::string_view inspect_usage() noexcept;

/// Describes each shared object named in `argv`. Returns 0 when every file was read,
/// 2 when one could not be (not found, not an ELF shared object, malformed) or on a
/// usage error.
int inspect_command(int argc, char** argv);

}  // namespace shoal::cli

#endif
