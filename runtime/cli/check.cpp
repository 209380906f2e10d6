// `shoal check CONFIG`: the config is loaded as `shoal run` would load it, then every
// plugin and resource module it names is read as a file, never loaded: a plugin whose
// static constructor crashes, or a file made to break a parser, can only yield a line.
#include "check.hpp"

#include "options.hpp"
#include "terminal.hpp"
#include "common/printable.hpp"
#include "plugin/elf.hpp"
#include "plugin/params.hpp"
#include "plugin/needed.hpp"

#include <shoal/config.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <exception>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace shoal::cli {

namespace {

using detail::ModuleKind;
using detail::ParamProblem;

constexpr std::string_view kCheckUsage =
    "Usage: shoal check CONFIG\n"
    "\n"
    "Validates CONFIG and every task plugin, resource module and shared-data builder it\n"
    "names, without loading any of them (so no plugin code runs): each file must exist,\n"
    "be an ELF shared object for this machine, export the symbols its role requires\n"
    "(shoal_plugin_abi, shoal_init, shoal_run, shoal_fini; or shoal_resource_abi,\n"
    "shoal_resource_open, shoal_resource_close; or shoal_shared_abi, shoal_shared_build)\n"
    "and, when it declares its ABI version as data (shoal_plugin_abi_version /\n"
    "shoal_resource_abi_version / shoal_shared_abi_version), have this runtime's major.\n"
    "A file that declares its params (shoal_plugin_params / shoal_resource_params /\n"
    "shoal_shared_params) has each configured param checked against them: an unknown\n"
    "name, a value of the wrong type or out of range, a missing required param. Each\n"
    "library it needs (DT_NEEDED, and theirs in turn) must be found as the dynamic\n"
    "loader of a worker would find it: RPATH, LD_LIBRARY_PATH (the pool's env, or this\n"
    "one), RUNPATH, /etc/ld.so.cache, the default directories.\n"
    "\n"
    "Standard output gets one line per problem:\n"
    "  FILE:LINE:COLUMN: message\n"
    "(1:1 when the problem has no position, as when CONFIG cannot be read).\n"
    "Standard error gets a note for each file whose ABI version is known only once a\n"
    "worker loads it or whose params cannot be checked, and a summary line.\n"
    "\n"
    "Options:\n"
    "  -h, --help   show this help\n"
    "\n"
    "Exit status: 0 no problem; 2 a problem in CONFIG or a file it names, or a usage error.\n";

std::string location(const std::string& file, SourcePosition at) {
  return detail::printable(file) + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) + ": ";
}

// True when `text` starts with "LINE:COLUMN: ".
bool has_position(std::string_view text) {
  for (int part = 0; part < 2; ++part) {
    const size_t digits = std::min(text.find_first_not_of("0123456789"), text.size());
    if (digits == 0 || digits == text.size() || text[digits] != ':') return false;
    text.remove_prefix(digits + 1);
  }
  return text.starts_with(" ");
}

// What one plugin or resource module is configured with, and where.
struct ModuleUse {
  SourcePosition at;  // its `plugin:` or `module:` key
  std::string owner;  // "pool 'x'" or "pool 'x' resource 'db'"
  const std::filesystem::path& file;
  ModuleKind kind;
  const std::map<std::string, std::string>& params;
  const std::map<std::string, ParamPosition>& params_at;
};

// `params:` against the module's declaration: each problem at the param it is about (the
// key of an unknown name, the value of a bad one), a missing one at the module's key.
void check_params(const Config& config, const ModuleUse& use, const std::string& declaration, CheckReport& report) {
  const std::string file = config.source.string();
  const std::string module = std::string(detail::role_name(use.kind)) + " " + detail::printable(use.file.string()) + ": ";
  auto decls = detail::parse_param_decls(declaration);
  if (!decls) {
    report.problems.push_back(location(file, use.at) + use.owner + ": " + module + detail::params_symbol(use.kind) +
                              ": " + decls.error().message);
    return;
  }
  for (const auto& problem : detail::check_params(*decls, use.params)) {
    SourcePosition at = use.at;
    if (auto it = use.params_at.find(problem.name); problem.at != ParamProblem::At::missing && it != use.params_at.end())
      at = problem.at == ParamProblem::At::key ? it->second.key : it->second.value;
    report.problems.push_back(location(file, at) + use.owner + ": " + module + problem.message);
  }
}

void check_file(const Config& config, const ModuleUse& use, const detail::LibrarySearch& search, CheckReport& report) {
  ++report.files;
  const std::string where = location(config.source.string(), use.at) + use.owner + ": ";
  const auto& file = use.file;
  const ModuleKind kind = use.kind;
  // The reader's allocations are bounded, but one that still fails is this file's
  // problem line, not the end of the whole check.
  try {
    auto elf = detail::check_module_file(file, kind);
    if (!elf) {
      report.problems.push_back(where + elf.error().message);
      return;
    }
    for (const detail::MissingLibrary& missing : detail::missing_libraries(file, *elf, search))
      report.problems.push_back(where + detail::plugin_error(detail::role_name(kind), file, describe(missing)).message);
    // One note for what the file leaves to be found out at run time.
    const bool abi = detail::declared_abi(*elf, kind).has_value();
    const auto& params = detail::declared_params(*elf, kind);
    std::string missing, consequence;
    if (!abi) {
      missing = detail::abi_symbol(kind);
      consequence = "its ABI version is known only once a worker loads it";
    }
    if (!params) {
      missing += (missing.empty() ? "" : " or ") + std::string(detail::params_symbol(kind));
      consequence += (consequence.empty() ? "" : ", and ") + std::string("its params are not checked");
    }
    if (!missing.empty())
      report.notes.push_back("note: " + where + detail::printable(file.string()) + " declares no " + missing + ": " +
                             consequence);
    if (params) check_params(config, use, *params, report);
  } catch (const std::exception& e) {
    report.problems.push_back(where + detail::role_name(kind) + " " + detail::printable(file.string()) +
                              ": cannot be checked: " + e.what());
  }
}

void write_lines(int fd, const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& line : lines) text += line + "\n";
  (void)write_all(fd, text.data(), text.size());
}

}  // namespace

// Config errors read "FILE:LINE:COLUMN: message", except the one that has no position: a
// file that cannot be read ("FILE: cannot read: why"). It is put at 1:1, so that every
// problem line has the one form editors and scripts parse.
std::string config_problem(const std::string& file, const std::string& message) {
  const std::string prefix = detail::printable(file) + ":";
  if (!message.starts_with(prefix)) return location(file, {1, 1}) + message;
  const std::string_view rest = std::string_view(message).substr(prefix.size());
  if (has_position(rest)) return message;
  return location(file, {1, 1}) + std::string(rest.starts_with(" ") ? rest.substr(1) : rest);
}

void check_pool_files(const Config& config, const PoolConfig& pool, CheckReport& report) {
  const std::string owner = "pool '" + pool.name + "'";
  // The workers' LD_LIBRARY_PATH: the pool's `env` sets it over the one they inherit.
  std::optional<std::string> library_path;
  if (auto it = pool.env.find("LD_LIBRARY_PATH"); it != pool.env.end()) {
    library_path = it->second;
  } else if (const char* inherited = std::getenv("LD_LIBRARY_PATH")) {
    library_path = inherited;
  }
  const detail::LibrarySearch search = detail::library_search(library_path);
  check_file(config, {pool.plugin_at, owner, pool.plugin, ModuleKind::task_plugin, pool.params, pool.params_at},
             search, report);
  for (const ResourceConfig& resource : pool.resources)
    check_file(config,
               {resource.module_at, owner + " resource '" + resource.name + "'", resource.module,
                ModuleKind::resource_module, resource.params, resource.params_at},
               search, report);
  for (const SharedConfig& entry : pool.shared)
    check_file(config,
               {entry.builder_at, owner + " shared '" + entry.name + "'", entry.builder, ModuleKind::shared_builder,
                entry.params, entry.params_at},
               search, report);
}

std::string_view check_usage() noexcept { return kCheckUsage; }

int check_command(int argc, char** argv) {
  static constexpr CommandSpec kSpec{"check", kCheckUsage, "CONFIG", 1, 1};
  std::vector<std::string> positional;
  if (auto code = parse_options(kSpec, argc, argv, {}, positional)) return *code;
  const std::string& path = positional.front();

  CheckReport report;
  auto config = load_config_file(path);
  if (!config) {
    report.problems.push_back(config_problem(path, config.error().message));
  } else {
    for (const PoolConfig& pool : config->pools) check_pool_files(*config, pool, report);
  }
  write_lines(STDOUT_FILENO, report.problems);
  for (const auto& note : report.notes) print_warning("check: " + note);
  if (!report.problems.empty()) {
    const size_t n = report.problems.size();
    print_error("check: " + detail::printable(path) + ": " + std::to_string(n) + (n == 1 ? " problem" : " problems"));
    return 2;
  }
  const size_t pools = config->pools.size();
  print_info("check: " + detail::printable(path) + ": ok (" + std::to_string(pools) +
              (pools == 1 ? " pool, " : " pools, ") +
              std::to_string(report.files) + (report.files == 1 ? " module file)" : " module files)"));
  return 0;
}

}  // namespace shoal::cli
