// `shoal check` and `shoal inspect`: what a config and the shared objects it names hold,
// read from the files without loading any of them.
#ifndef SHOAL_CLI_CHECK_HPP
#define SHOAL_CLI_CHECK_HPP

#include <shoal/config.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace shoal::cli {

/// Usage text of `shoal check` (`shoal check --help`, `shoal help check`).
std::string_view check_usage() noexcept;

/// Validates a config and every plugin and resource module it names; `argv` are the
/// words after "check". Returns 0 when nothing is wrong, 2 on a problem or usage error.
int check_command(int argc, char** argv);

/// The problems and notes found in a config's shared objects, and how many were read.
struct CheckReport {
  std::vector<std::string> problems;  ///< "FILE:LINE:COLUMN: pool 'NAME': ..." each
  std::vector<std::string> notes;     ///< "note: ..." (an ABI version known only once loaded)
  size_t files = 0;
};

/// Reads `pool`'s plugin and resource modules as `shoal check` does (never loading
/// them); each problem is put at the key of `config.source` that names the file.
void check_pool_files(const Config& config, const PoolConfig& pool, CheckReport& report);

/// A config error of `file` as "FILE:LINE:COLUMN: message": load_config_file's errors
/// have that form already, except one without a position ("FILE: cannot read: ..."),
/// which is put at 1:1.
std::string config_problem(const std::string& file, const std::string& message);

/// Usage text of `shoal inspect`.
std::string_view inspect_usage() noexcept;

/// Describes each shared object named in `argv`. Returns 0 when every file was read,
/// 2 when one could not be (not found, not an ELF shared object, malformed) or on a
/// usage error.
int inspect_command(int argc, char** argv);

}  // namespace shoal::cli

#endif
