// The version line `shoal --version` and `shoal-worker --version` print (help2man reads
// both). SHOAL_VERSION is project(shoal VERSION ...) in the top CMakeLists.txt, passed to
// every target that links shoal_core_internal: the version is written in one place.
#ifndef SHOAL_COMMON_VERSION_HPP
#define SHOAL_COMMON_VERSION_HPP

#include <shoal/plugin.h>

#include <string>
#include <string_view>

#ifndef SHOAL_VERSION
#error "SHOAL_VERSION comes from CMake (shoal_core_internal)"
#endif

namespace shoal::detail {

/// "PROGRAM 1.2.3 (plugin ABI 1.0)\n"
inline std::string version_line(std::string_view program) {
  return std::string(program) + " " + SHOAL_VERSION + " (plugin ABI " + std::to_string(SHOAL_ABI_MAJOR) + "." +
         std::to_string(SHOAL_ABI_MINOR) + ")\n";
}

}  // namespace shoal::detail

#endif
