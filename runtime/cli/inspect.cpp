// `shoal inspect FILE.so...`: what a shared object offers shoal, read from the file
// without loading it (the same reader as `shoal check`).
#include "check.hpp"

#include "options.hpp"
#include "terminal.hpp"
#include "common/printable.hpp"
#include "plugin/elf.hpp"
#include "plugin/loader.hpp"
#include "plugin/params.hpp"

#include <shoal/plugin.h>

#include <unistd.h>

#include <algorithm>
#include <array>
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
    "  kind:     task plugin, resource module, shared-data builder, several of them,\n"
    "            incomplete (naming the missing symbols), or not a shoal plugin\n"
    "  abi:      the ABI version it declares as data (shoal_plugin_abi_version,\n"
    "            shoal_resource_abi_version or shoal_shared_abi_version) and whether\n"
    "            this runtime accepts it, or 'unknown until loaded' when it declares\n"
    "            none\n"
    "  exports:  its shoal_* symbols\n"
    "  other exports: how many other symbols it exports\n"
    "  needs:    its DT_NEEDED libraries, in order\n"
    "  soname:   its DT_SONAME\n"
    "  params:   the params it declares (shoal_plugin_params, shoal_resource_params or\n"
    "            shoal_shared_params), as a table on the lines below (name, type,\n"
    "            default or required, doc);\n"
    "            'none' when it takes none, 'not declared' when it says nothing\n"
    "Lists are separated by spaces; '-' stands for an empty one.\n"
    "\n"
    "Options:\n"
    "  -h, --help   show this help\n"
    "\n"
    "Exit status: 0 every file was read; 2 a file that is missing, not an ELF shared\n"
    "object for this machine, or malformed (one line on stderr; a malformed params\n"
    "declaration too), or a usage error.\n";

// Names from the file may hold any byte but NUL: escaped, each stays on its line.
std::string joined(const std::vector<std::string>& items) {
  if (items.empty()) return "-";
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : " ") + detail::printable(item);
  return out;
}

using detail::Fit;
using detail::kAllModuleKinds;
using Fits = std::array<Fit, detail::kModuleKinds>;

Fit fit_of(const Fits& fits, ModuleKind kind) { return fits[static_cast<size_t>(kind)]; }

std::string kind_line(const ElfExports& elf, const Fits& fits) {
  std::string complete, partial;
  for (ModuleKind kind : kAllModuleKinds) {
    if (fit_of(fits, kind) == Fit::complete) complete += (complete.empty() ? "" : " and ") + std::string(detail::kind_name(kind));
    if (fit_of(fits, kind) != Fit::partial) continue;
    std::string missing;
    for (std::string_view s : detail::missing_exports(elf, kind))
      missing += (missing.empty() ? "" : " ") + std::string(s);
    partial += (partial.empty() ? "" : "; ") + std::string("incomplete ") + detail::kind_name(kind) + " (missing " +
               missing + ")";
  }
  if (!complete.empty()) return complete;
  return partial.empty()
             ? "not a shoal plugin (no task plugin, resource module or shared-data builder symbols)"
             : partial;
}

std::string abi_text(const std::string& path, const ElfExports& elf, ModuleKind kind) {
  auto version = detail::declared_abi(elf, kind);
  if (!version) return std::string("unknown until loaded (no ") + detail::abi_symbol(kind) + ")";
  std::string text = detail::abi_version_text(*version);
  if (!detail::check_abi(*version, path, "file"))
    text += " (incompatible: this runtime speaks " + detail::abi_version_text(SHOAL_ABI_VERSION) + ")";
  return text;
}

// One kind: its ABI alone; several: each followed by the kind it is for.
std::string abi_line(const std::string& path, const ElfExports& elf, const Fits& fits) {
  std::vector<ModuleKind> kinds;
  for (ModuleKind kind : kAllModuleKinds)
    if (fit_of(fits, kind) != Fit::none) kinds.push_back(kind);
  if (kinds.empty()) return "-";
  if (kinds.size() == 1) return abi_text(path, elf, kinds.front());
  std::string out;
  for (ModuleKind kind : kinds)
    out += (out.empty() ? "" : "; ") + abi_text(path, elf, kind) + " (" + detail::kind_name(kind) + ")";
  return out;
}

// The declared params as a table under "params:", so that `inspect` is the module's
// config reference. Fields come from the file: each is passed through printable().
std::string params_table(const detail::ParamDecls& decls) {
  std::vector<std::array<std::string, 4>> rows = {{"NAME", "TYPE", "DEFAULT", "DOC"}};
  for (const auto& d : decls.params)
    rows.push_back({detail::printable(d.name), detail::printable(detail::type_text(d)),
                    detail::printable(detail::presence_text(d)), detail::printable(d.doc)});
  std::array<size_t, 3> width{};
  for (const auto& row : rows)
    for (size_t c = 0; c < width.size(); ++c) width[c] = std::max(width[c], row[c].size());
  std::string out;
  for (const auto& row : rows) {
    std::string line = "  ";
    for (size_t c = 0; c < width.size(); ++c) line += row[c] + std::string(width[c] - row[c].size() + 2, ' ');
    line += row[3];
    while (line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

// "params: ..." for the role the file has (the task plugin's when it is both). False in
// `ok` when the declaration is malformed: the file would fail `shoal check`.
std::string params_lines(const ElfExports& elf, const Fits& fits, bool& ok) {
  const auto* first = std::find_if(kAllModuleKinds.begin(), kAllModuleKinds.end(),
                                   [&](ModuleKind k) { return fit_of(fits, k) != Fit::none; });
  if (first == kAllModuleKinds.end()) return "params: -\n";
  const ModuleKind kind = *first;
  const auto& text = detail::declared_params(elf, kind);
  if (!text) return std::string("params: not declared (no ") + detail::params_symbol(kind) + ")\n";
  auto decls = detail::parse_param_decls(*text);
  if (!decls) {
    ok = false;
    return std::string("params: malformed ") + detail::params_symbol(kind) + ": " + decls.error().message + "\n";
  }
  if (decls->params.empty()) return "params: none\n";
  return "params:\n" + params_table(*decls);
}

std::string describe(const std::string& path, const ElfExports& elf, bool& ok) {
  Fits fits{};
  for (ModuleKind kind : kAllModuleKinds) fits[static_cast<size_t>(kind)] = detail::fit(elf, kind);
  std::string text = "file: " + detail::printable(path) + "\n";
  text += "kind: " + kind_line(elf, fits) + "\n";
  text += "abi: " + abi_line(path, elf, fits) + "\n";
  text += "exports: " + joined(elf.symbols) + "\n";
  text += "other exports: " + std::to_string(elf.other_exports) + "\n";
  text += "needs: " + joined(elf.needed) + "\n";
  text += "soname: " + (elf.soname.empty() ? std::string("-") : detail::printable(elf.soname)) + "\n";
  text += params_lines(elf, fits, ok);
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
      bool ok = true;
      text = (first ? "" : "\n") + describe(path, *elf, ok);
      if (!ok) {
        print_error("inspect: file " + detail::printable(path) + ": malformed params declaration");
        status = 2;
      }
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
