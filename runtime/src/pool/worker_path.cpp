// Locating shoal-worker. A path fixed at configure time is wrong after
// `cmake --install --prefix OTHER` or a moved prefix, and a build tree's worker found
// first would let an installed libshoal start a stale worker of another version, so
// both are derived from where this code runs instead.
#include "pool/worker_path.hpp"

#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <system_error>

namespace shoal::detail {

namespace {

namespace fs = std::filesystem;

// Its address names the file this code was linked into.
const char kAnchor = 0;

bool is_executable(const fs::path& path) { return ::access(path.c_str(), X_OK) == 0; }

fs::path canonical_or_empty(const fs::path& path) {
  std::error_code ec;
  fs::path out = fs::canonical(path, ec);
  return ec ? fs::path() : out;
}

// libshoal for an application linking it; the program itself where shoal_core is linked
// statically (the CLI, the tests). dladdr's dli_fname is argv[0] for the program, which
// may be relative to a folder the program has left, so the link map tells the two apart:
// the program's entry has an empty l_name, and /proc/self/exe names it instead.
fs::path own_file() {
  Dl_info info{};
  link_map* map = nullptr;
  if (::dladdr1(&kAnchor, &info, reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP) == 0 || map == nullptr) return {};
  return canonical_or_empty(map->l_name[0] != '\0' ? fs::path(map->l_name) : fs::path("/proc/self/exe"));
}

// Both canonical: component-wise, so /a/build2 is not inside /a/build.
bool is_inside(const fs::path& path, const fs::path& dir) {
  if (path.empty() || dir.empty()) return false;
  return std::mismatch(dir.begin(), dir.end(), path.begin(), path.end()).first == dir.end();
}

}  // namespace

std::string find_worker(const RuntimeOptions& options) {
  if (!options.worker_path.empty()) return options.worker_path;
  if (const char* env = std::getenv("SHOAL_WORKER"); env != nullptr && *env != '\0') return env;
  const fs::path exe = canonical_or_empty("/proc/self/exe");
  if (!exe.empty() && is_executable(exe.parent_path() / "shoal-worker"))
    return (exe.parent_path() / "shoal-worker").string();
  const fs::path self = own_file();
  const fs::path build_dir = canonical_or_empty(SHOAL_BUILD_DIR);
  if ((is_inside(self, build_dir) || is_inside(exe, build_dir)) && is_executable(SHOAL_WORKER_BUILD_PATH))
    return SHOAL_WORKER_BUILD_PATH;
  if (self.empty()) return "shoal-worker";  // not found; named so the error says what is missing
  return (self.parent_path() / SHOAL_LIB_TO_BIN / "shoal-worker").lexically_normal().string();
}

}  // namespace shoal::detail
