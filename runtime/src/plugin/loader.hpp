// Loading task plugins, resource modules and shared-data builders in a worker (or a
// builder process). Only those load them: their static constructors run at load time and
// must never run in the host.
#ifndef SHOAL_PLUGIN_LOADER_HPP
#define SHOAL_PLUGIN_LOADER_HPP

#include <shoal/plugin.h>
#include <shoal/resource.h>
#include <shoal/result.hpp>
#include <shoal/shared.h>

#include <array>
#include <filesystem>
#include <optional>
#include <span>
#include <string>

namespace shoal::detail {

/// What a shared object can serve as.
enum class ModuleKind { task_plugin, resource_module, shared_builder };
inline constexpr size_t kModuleKinds = 3;
inline constexpr std::array<ModuleKind, kModuleKinds> kAllModuleKinds = {
    ModuleKind::task_plugin, ModuleKind::resource_module, ModuleKind::shared_builder};

/// The word every error about a file of `kind` starts with: "plugin", "resource module"
/// or "shared-data builder" (the loader's, `shoal check`'s and the config's messages
/// name files the same way).
const char* role_name(ModuleKind kind);

/// What a file of `kind` is called when describing it: "task plugin", "resource module"
/// or "shared-data builder".
const char* kind_name(ModuleKind kind);

/// The exports a task plugin must have (load_plugin resolves these; `shoal check` looks
/// for them in the file).
inline constexpr std::array<const char*, 4> kPluginExports = {"shoal_plugin_abi", "shoal_init", "shoal_run",
                                                              "shoal_fini"};
/// The exports a resource module must have.
inline constexpr std::array<const char*, 3> kResourceExports = {"shoal_resource_abi", "shoal_resource_open",
                                                                "shoal_resource_close"};

/// The exports a shared-data builder must have (shoal/shared.h).
inline constexpr std::array<const char*, 2> kSharedBuilderExports = {"shoal_shared_abi", "shoal_shared_build"};

/// kPluginExports, kResourceExports or kSharedBuilderExports.
std::span<const char* const> required_exports(ModuleKind kind);

/// The optional entry point of `kind` (its recover hook), null when it has none.
const char* optional_entry_point(ModuleKind kind);

struct PluginApi {
  uint32_t (*abi)() = nullptr;
  shoal_status (*init)(const shoal_host*, shoal_ctx*, void**) = nullptr;
  shoal_status (*run)(shoal_ctx*, void*, shoal_bytes) = nullptr;
  void (*fini)(shoal_ctx*, void*) = nullptr;
  void (*recover)(const shoal_host*, shoal_ctx*, uint32_t, const char*) = nullptr;  // optional
  uint32_t abi_version = 0;
  std::optional<std::string> params;  // shoal_plugin_params as read from the file, if any
};

struct ResourceApi {
  uint32_t (*abi)() = nullptr;
  shoal_status (*open)(const shoal_host*, shoal_ctx*, const char*, void**) = nullptr;
  void (*close)(shoal_ctx*, void*) = nullptr;
  void (*recover)(const shoal_host*, shoal_ctx*, const char*, uint32_t, const char*) = nullptr;  // optional
  uint32_t abi_version = 0;
  std::optional<std::string> params;  // shoal_resource_params as read from the file, if any
};

struct SharedBuilderApi {
  uint32_t (*abi)() = nullptr;
  shoal_status (*build)(const shoal_host*, shoal_ctx*, shoal_shared_builder*) = nullptr;
  uint32_t abi_version = 0;
  std::optional<std::string> params;  // shoal_shared_params as read from the file, if any
};

/// Checks that `path` is a regular ELF shared object, loads it with RTLD_NOW|RTLD_LOCAL
/// (lazy binding would turn a missing symbol into a crash in the middle of a task),
/// resolves every required export and negotiates the ABI version by calling only
/// shoal_plugin_abi. The library stays loaded until the process exits. Errors are one
/// line: "plugin PATH: cause". `from`: the file to read when it is not `path` itself (a
/// descriptor the host pinned, /proc/self/fd/N); errors still name `path`.
Result<PluginApi> load_plugin(const std::filesystem::path& path, const std::filesystem::path& from = {});

/// The same for a resource module ("resource module PATH: cause").
Result<ResourceApi> load_resource_module(const std::filesystem::path& path, const std::filesystem::path& from = {});

/// The same for a shared-data builder ("shared-data builder PATH: cause").
Result<SharedBuilderApi> load_shared_builder(const std::filesystem::path& path);

/// Checks the file before any loading: exists, regular, ELF shared object of this
/// machine (architecture and word size), not an executable. Shared with `shoal check`.
Result<void> check_shared_object(const std::filesystem::path& path, const char* what);

/// The ELF e_machine of this process: the one a module and its libraries must have.
uint16_t host_machine() noexcept;

/// The one shape of every plugin error: "WHAT PATH: cause", PATH passed through
/// printable() so the error stays one line whatever the file is called.
Error plugin_error(const char* what, const std::filesystem::path& path, const std::string& cause);

/// "1.0" for (1 << 16) | 0.
std::string abi_version_text(uint32_t version);

/// Accepts `version` when its major is this runtime's; the error names both versions.
Result<void> check_abi(uint32_t version, const std::filesystem::path& path, const char* what);

}  // namespace shoal::detail

#endif
