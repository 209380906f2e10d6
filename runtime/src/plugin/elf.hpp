// What a shared object exports, read from the file without loading it: its dynamic
// symbols, its DT_NEEDED libraries and the ABI version it declares in a data symbol.
// `shoal check` and `shoal inspect` use it, so a plugin's static constructors never run
// in the process that checks it, and a broken or hostile file can only yield an error.
#ifndef SHOAL_PLUGIN_ELF_HPP
#define SHOAL_PLUGIN_ELF_HPP

#include "plugin/loader.hpp"

#include <shoal/result.hpp>

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shoal::detail {

/// The longest symbol or library name accepted; a longer one makes the file malformed.
/// Real names, even mangled C++ ones of plugins, stay far below it.
inline constexpr size_t kMaxElfName = 1024;

/// The dynamic view of a shared object, as the dynamic loader would see its exports.
/// Only names starting with "shoal_" are kept, each at most kMaxElfName bytes: a forged
/// file whose entries all point at one huge name must not make the reader copy it per
/// entry. The other exports are only counted.
struct ElfExports {
  std::vector<std::string> symbols;  ///< exported dynamic symbols named shoal_*; sorted, unique
  size_t other_exports = 0;          ///< how many other names it exports (unique)
  /// The shoal_* exports that are not code (STT_OBJECT, STT_TLS, STT_COMMON): an entry
  /// point among them links and resolves, then crashes the worker that calls it.
  std::vector<std::string> data_symbols;
  std::vector<std::string> needed;   ///< DT_NEEDED entries, in file order
  std::string soname;                ///< DT_SONAME, empty when there is none
  std::string runpath;               ///< DT_RUNPATH, empty when there is none
  std::string rpath;                 ///< DT_RPATH, empty when there is none
  /// Per ModuleKind: the value of its ABI data symbol (abi_symbol(kind)), when the file
  /// defines it.
  std::array<std::optional<uint32_t>, kModuleKinds> abi;
  /// Per ModuleKind: the text of its params symbol (params_symbol(kind),
  /// plugin/params.hpp) without its NUL, when the file defines it.
  std::array<std::optional<std::string>, kModuleKinds> params;

  bool exports(std::string_view name) const;
};

/// Reads `path` with pread only (no mmap: a file truncated while it is read must not
/// raise SIGBUS), after check_shared_object has accepted it. Every offset and size taken
/// from the file is bounds-checked. The file needs its section headers: `strip` keeps
/// them, and .dynsym with them. Errors read "WHAT PATH: cause", like the loader's.
Result<ElfExports> read_elf_exports(const std::filesystem::path& path, const char* what);

/// The same for a library a module needs (needed.hpp): any ELF shared object of this
/// machine's class and machine, executables with an interpreter included (libc.so.6 has
/// one), since the dynamic loader maps those too. Its errors read as read_elf_exports's.
Result<ElfExports> read_elf_library(const std::filesystem::path& path, const char* what);

/// The required exports of `kind` that `elf` lacks, in the loader's order.
std::vector<std::string_view> missing_exports(const ElfExports& elf, ModuleKind kind);

/// The ABI version `elf` declares for `kind` (its data symbol), if it declares one.
std::optional<uint32_t> declared_abi(const ElfExports& elf, ModuleKind kind);

/// The name of that data symbol: "shoal_plugin_abi_version", "shoal_resource_abi_version"
/// or "shoal_shared_abi_version".
const char* abi_symbol(ModuleKind kind);

/// The params declaration `elf` holds for `kind`, if it holds one.
const std::optional<std::string>& declared_params(const ElfExports& elf, ModuleKind kind);

/// The name of its data symbol: "shoal_plugin_params", "shoal_resource_params" or
/// "shoal_shared_params".
const char* params_symbol(ModuleKind kind);

/// How far `elf` goes towards `kind`: every required export; some of them, or only the
/// ABI data symbol; or nothing of it. The one classification `shoal check` (a file in
/// the wrong role) and `shoal inspect` (its kind line) both use.
enum class Fit { complete, partial, none };
Fit fit(const ElfExports& elf, ModuleKind kind);

/// Everything that can be known about `path` as a `kind` without loading it: a shared
/// object exporting every required symbol, each entry point (required or optional) a
/// function, and, when it declares an ABI version, one of this runtime's major. Errors are the loader's "plugin PATH: cause" lines.
Result<ElfExports> check_module_file(const std::filesystem::path& path, ModuleKind kind);

}  // namespace shoal::detail

#endif
