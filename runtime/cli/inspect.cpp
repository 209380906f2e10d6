// `shoal inspect FILE.so...`: what a shared object offers shoal, read from the file
// without loading it (the same reader as `shoal check`).
#include "check.hpp"

#include "options.hpp"
#include "terminal.hpp"
#include "common/printable.hpp"
#include "plugin/elf.hpp"
#include "plugin/loader.hpp"

#include <shoal/plugin.h>

#include <unistd.h>

#include <exception>
#include <string>
#include <utility>
#include <vector>

namespace shoal::cli {

namespace {

using detail::ElfExports;
using detail::ModuleKind;

constexpr std::string_view kInspectUsage =
    "Usage: shoal inspect FILE.so...\n"
    "\n"
    "Shows what each shared object offers shoal, read from the file without loading it,\n"
    "as lines of 'key: value' (one blank line between files):\n"
    "  file:     the path as given\n"
    "  kind:     task plugin, resource module, both, incomplete (naming the missing\n"
    "            symbols), or not a shoal plugin\n"
    "  abi:      the ABI version it declares as data (shoal_plugin_abi_version or\n"
    "            shoal_resource_abi_version) and whether this runtime accepts it, or\n"
    "            'unknown until loaded' when it declares none\n"
    "  exports:  its shoal_* symbols\n"
    "  other exports: how many other symbols it exports\n"
    "  needs:    its DT_NEEDED libraries, in order\n"
    "  soname:   its DT_SONAME\n"
    "Lists are separated by spaces; '-' stands for an empty one.\n"
    "\n"
    "Options:\n"
    "  -h, --help   show this help\n"
    "\n"
    "Exit status: 0 every file was read; 2 a file that is missing, not an ELF shared\n"
    "object for this machine, or malformed (one line on stderr), or a usage error.\n";

// Names from the file may hold any byte but NUL: escaped, each stays on its line.
std::string joined(const std::vector<std::string>& items) {
  if (items.empty()) return "-";
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : " ") + detail::printable(item);
  return out;
}

using detail::Fit;

std::string kind_line(const ElfExports& elf, Fit plugin, Fit resource) {
  const char* plugin_name = detail::kind_name(ModuleKind::task_plugin);
  const char* resource_name = detail::kind_name(ModuleKind::resource_module);
  if (plugin == Fit::complete && resource == Fit::complete) return std::string(plugin_name) + " and " + resource_name;
  if (plugin == Fit::complete) return plugin_name;
  if (resource == Fit::complete) return resource_name;
  std::string out;
  for (auto [kind, f] :
       {std::pair{ModuleKind::task_plugin, plugin}, std::pair{ModuleKind::resource_module, resource}}) {
    if (f != Fit::partial) continue;
    std::string missing;
    for (std::string_view s : detail::missing_exports(elf, kind))
      missing += (missing.empty() ? "" : " ") + std::string(s);
    out += (out.empty() ? "" : "; ") + std::string("incomplete ") + detail::kind_name(kind) + " (missing " + missing +
           ")";
  }
  return out.empty() ? "not a shoal plugin (no task plugin or resource module symbols)" : out;
}

std::string abi_text(const std::string& path, const ElfExports& elf, ModuleKind kind) {
  auto version = detail::declared_abi(elf, kind);
  if (!version) return std::string("unknown until loaded (no ") + detail::abi_symbol(kind) + ")";
  std::string text = detail::abi_version_text(*version);
  if (!detail::check_abi(*version, path, "file"))
    text += " (incompatible: this runtime speaks " + detail::abi_version_text(SHOAL_ABI_VERSION) + ")";
  return text;
}

std::string abi_line(const std::string& path, const ElfExports& elf, Fit plugin, Fit resource) {
  const bool as_plugin = plugin != Fit::none, as_resource = resource != Fit::none;
  if (as_plugin && as_resource)
    return abi_text(path, elf, ModuleKind::task_plugin) + " (" + detail::kind_name(ModuleKind::task_plugin) + "); " +
           abi_text(path, elf, ModuleKind::resource_module) + " (" + detail::kind_name(ModuleKind::resource_module) +
           ")";
  if (as_plugin) return abi_text(path, elf, ModuleKind::task_plugin);
  if (as_resource) return abi_text(path, elf, ModuleKind::resource_module);
  return "-";
}

std::string describe(const std::string& path, const ElfExports& elf) {
  const Fit plugin = detail::fit(elf, ModuleKind::task_plugin);
  const Fit resource = detail::fit(elf, ModuleKind::resource_module);
  std::string text = "file: " + detail::printable(path) + "\n";
  text += "kind: " + kind_line(elf, plugin, resource) + "\n";
  text += "abi: " + abi_line(path, elf, plugin, resource) + "\n";
  text += "exports: " + joined(elf.symbols) + "\n";
  text += "other exports: " + std::to_string(elf.other_exports) + "\n";
  text += "needs: " + joined(elf.needed) + "\n";
  text += "soname: " + (elf.soname.empty() ? std::string("-") : detail::printable(elf.soname)) + "\n";
  return text;
}

}  // namespace

std::string_view inspect_usage() noexcept { return kInspectUsage; }

int inspect_command(int argc, char** argv) {
  static constexpr CommandSpec kSpec{"inspect", kInspectUsage, "FILE.so", 1, static_cast<size_t>(-1)};
  std::vector<std::string> positional;
  if (auto code = parse_options(kSpec, argc, argv, {}, positional)) return *code;
  int status = 0;
  bool first = true;
  for (const std::string& path : positional) {
    std::string text;
    // The reader's allocations are bounded, but one that still fails costs this file's
    // description only, as any other unreadable file does.
    try {
      auto elf = detail::read_elf_exports(path, "file");
      if (!elf) {
        print_error("inspect: " + elf.error().message);
        status = 2;
        continue;
      }
      text = (first ? "" : "\n") + describe(path, *elf);
    } catch (const std::exception& e) {
      print_error("inspect: file " + detail::printable(path) + ": " + e.what());
      status = 2;
      continue;
    }
    first = false;
    if (write_all(STDOUT_FILENO, text.data(), text.size()) != 0) return 2;
  }
  return status;
}

}  // namespace shoal::cli
