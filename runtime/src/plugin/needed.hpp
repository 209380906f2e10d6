// Which libraries a module needs that a worker's dynamic loader would not find, worked
// out from the files alone: `shoal check` reports them, so that a plugin whose DT_NEEDED
// library is missing is refused before any worker fails to start. Nothing is loaded (no
// dlopen): a library's constructors would run in the checking process.
#ifndef SHOAL_PLUGIN_NEEDED_HPP
#define SHOAL_PLUGIN_NEEDED_HPP

#include "plugin/elf.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shoal::detail {

/// One entry of an ld.so.cache: the name a library is asked for (its soname) and its path.
struct CacheEntry {
  std::string name, path;
};

/// The entries of an ld.so.cache file (glibc's "glibc-ld.so.cache1.1" format, alone or
/// after the old "ld.so-1.7.0" table), in file order, those for other kinds of object
/// (libc5, a.out) left out. The bytes are untrusted: every count and string offset is
/// checked against them, and bytes that are not such a cache yield no entry, as the
/// loader then ignores the cache.
std::vector<CacheEntry> parse_ld_cache(std::string_view bytes);

/// Where a worker's loader looks for a library, besides the RUNPATH and RPATH of the
/// object that needs it (ld.so(8)).
struct LibrarySearch {
  std::vector<std::string> library_path;  ///< LD_LIBRARY_PATH, split on ':' and ';'
  std::vector<CacheEntry> cache;          ///< /etc/ld.so.cache
  std::vector<std::string> system_dirs;   ///< the default directories, searched last
};

/// The search of a worker whose LD_LIBRARY_PATH is `ld_library_path` (nullopt: unset).
LibrarySearch library_search(const std::optional<std::string>& ld_library_path);

/// A library the loader would not find.
struct MissingLibrary {
  std::string name;              ///< as the DT_NEEDED entry writes it
  std::vector<std::string> via;  ///< the libraries from the module down to the one that needs it
  std::vector<std::string> skipped;  ///< "PATH: why" of each file by that name the loader would pass over
};

/// Resolves the DT_NEEDED entries of `module` (read as `elf`) and, transitively, of every
/// library they find, in the loader's order: a name with a '/' as it is; else the RPATH
/// of the object and of those that pulled it in (when it has no RUNPATH),
/// LD_LIBRARY_PATH, its RUNPATH, the cache, the default directories. $ORIGIN, $LIB and
/// $PLATFORM are expanded. A file counts only when it is an ELF shared object of this
/// machine and word size; each name is looked for once, and the walk is bounded in depth
/// and in files read. Returns the names not found.
std::vector<MissingLibrary> missing_libraries(const std::filesystem::path& module, const ElfExports& elf,
                                              const LibrarySearch& search);

/// "needs NAME (through A, B), which the dynamic loader does not find[; skipped ...]".
std::string describe(const MissingLibrary& missing);

}  // namespace shoal::detail

#endif
