#include "plugin/loader.hpp"

#include "common/printable.hpp"
#include "plugin/elf.hpp"

#include <boost/dll/shared_library.hpp>
#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace shoal::detail {

namespace {

// The e_machine a file must have to load into this process. Only the 64-bit ELF layout is
// read (Elf64_Ehdr), so only 64-bit machines are listed.
#if defined(__x86_64__)
constexpr uint16_t kHostMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr uint16_t kHostMachine = EM_AARCH64;
#else
#error "shoal: add this machine's ELF e_machine to kHostMachine"
#endif

}  // namespace

uint16_t host_machine() noexcept { return kHostMachine; }

namespace {

// What tells the kinds apart, in one table indexed by ModuleKind.
struct KindNames {
  const char* role;
  const char* kind;
  std::span<const char* const> exports;
  const char* optional_entry;
};
constexpr KindNames kKindNames[kModuleKinds] = {
    {"plugin", "task plugin", kPluginExports, "shoal_recover"},
    {"resource module", "resource module", kResourceExports, "shoal_resource_recover"},
    {"shared-data builder", "shared-data builder", kSharedBuilderExports, nullptr},
};

const KindNames& names_of(ModuleKind kind) { return kKindNames[static_cast<size_t>(kind)]; }

}  // namespace

const char* role_name(ModuleKind kind) { return names_of(kind).role; }

const char* kind_name(ModuleKind kind) { return names_of(kind).kind; }

std::span<const char* const> required_exports(ModuleKind kind) { return names_of(kind).exports; }

const char* optional_entry_point(ModuleKind kind) { return names_of(kind).optional_entry; }

Error plugin_error(const char* what, const std::filesystem::path& path, const std::string& cause) {
  return Error{Errc::plugin, std::string(what) + " " + printable(path.string()) + ": " + cause};
}

std::string abi_version_text(uint32_t v) { return std::to_string(v >> 16) + "." + std::to_string(v & 0xffff); }

Result<void> check_abi(uint32_t version, const std::filesystem::path& path, const char* what) {
  if ((version >> 16) == SHOAL_ABI_MAJOR) return {};
  return plugin_error(what, path,
                      "built for ABI " + abi_version_text(version) + " while this runtime speaks " +
                          abi_version_text(SHOAL_ABI_VERSION));
}

Result<void> check_shared_object(const std::filesystem::path& path, const char* what) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return plugin_error(what, path, "file not found");
    return plugin_error(what, path, std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return plugin_error(what, path, "not a regular file");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return plugin_error(what, path, std::string("cannot open: ") + std::strerror(errno));
  Elf64_Ehdr eh{};
  ssize_t n = ::read(fd, &eh, sizeof eh);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (n != static_cast<ssize_t>(sizeof eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
    return plugin_error(what, path, "not a shared object (no ELF header)");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != kHostMachine)
    return plugin_error(what, path, "built for another machine or word size");
  if (eh.e_type != ET_DYN) return plugin_error(what, path, "not a shared object (an ELF executable or object file)");
  // A position-independent executable is ET_DYN too; its PT_INTERP segment gives it away.
  for (uint16_t i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph{};
    if (::pread(fd, &ph, sizeof ph, static_cast<off_t>(eh.e_phoff + uint64_t{i} * eh.e_phentsize)) != sizeof ph) break;
    if (ph.p_type == PT_INTERP) return plugin_error(what, path, "not a shared object (an executable)");
  }
  return {};
}

namespace {

namespace dll = boost::dll;

// A loaded library whose exports are looked up by name. Kept for the life of the
// process: a plugin is never unloaded in a live worker (its code may still be referenced
// by threads, atexit handlers or finalizers).
class Library {
 public:
  template <class F>
  F* fn(const char* name) const {
    return lib_->has(name) ? &lib_->get<F>(name) : nullptr;
  }
  static Result<Library> open(const std::filesystem::path& path, const std::filesystem::path& from, ModuleKind kind) {
    const char* what = role_name(kind);
    // What `shoal check` checks, before dlopen runs any of the file's code: a data symbol
    // under an entry point's name would load and resolve, then crash every task. Its
    // errors name the file as configured, not the descriptor it was read through.
    auto check = check_module_file(from, kind);
    if (!check) {
      std::string message = check.error().message;
      if (from != path)
        if (auto at = message.find(from.string()); at != std::string::npos) message.replace(at, from.string().size(), path.string());
      return Error{check.error().code, message};
    }
    auto lib = std::make_unique<dll::shared_library>();
    try {
      lib->load(from, dll::load_mode::rtld_now | dll::load_mode::rtld_local);
    } catch (const std::exception& e) {
      // Boost.DLL wraps dlerror's text: "... (dlerror system message: TEXT): strerror".
      std::string why = e.what();
      const std::string tag = "dlerror system message: ";
      auto at = why.find(tag);
      auto end = why.rfind("): ");
      if (at != std::string::npos && end != std::string::npos && end > at)
        why = why.substr(at + tag.size(), end - at - tag.size());
      return plugin_error(what, path, "cannot load: " + why);
    }
    for (const char* sym : required_exports(kind))
      if (!lib->has(sym)) return plugin_error(what, path, std::string("missing symbol ") + sym + " (not a shoal " + what + "?)");
    static std::vector<std::unique_ptr<dll::shared_library>> keep_loaded;
    keep_loaded.push_back(std::move(lib));
    // The declaration as read from the very file loaded: the same bytes `shoal check` reads.
    return Library(keep_loaded.back().get(), declared_params(*check, kind));
  }
  const std::optional<std::string>& params() const { return params_; }

 private:
  Library(dll::shared_library* lib, std::optional<std::string> params) : lib_(lib), params_(std::move(params)) {}
  dll::shared_library* lib_;
  std::optional<std::string> params_;
};

}  // namespace

Result<PluginApi> load_plugin(const std::filesystem::path& path, const std::filesystem::path& from) {
  const char* what = role_name(ModuleKind::task_plugin);
  auto lib = Library::open(path, from.empty() ? path : from, ModuleKind::task_plugin);
  if (!lib) return lib.error();
  PluginApi api;
  api.abi = lib->fn<uint32_t()>("shoal_plugin_abi");
  api.init = lib->fn<shoal_status(const shoal_host*, shoal_ctx*, void**)>("shoal_init");
  api.run = lib->fn<shoal_status(shoal_ctx*, void*, shoal_bytes)>("shoal_run");
  api.fini = lib->fn<void(shoal_ctx*, void*)>("shoal_fini");
  api.recover = lib->fn<void(const shoal_host*, shoal_ctx*, uint32_t, const char*)>("shoal_recover");
  api.params = lib->params();
  api.abi_version = api.abi();
  if (auto abi = check_abi(api.abi_version, path, what); !abi) return abi.error();
  return api;
}

Result<ResourceApi> load_resource_module(const std::filesystem::path& path, const std::filesystem::path& from) {
  const char* what = role_name(ModuleKind::resource_module);
  auto lib = Library::open(path, from.empty() ? path : from, ModuleKind::resource_module);
  if (!lib) return lib.error();
  ResourceApi api;
  api.abi = lib->fn<uint32_t()>("shoal_resource_abi");
  api.open = lib->fn<shoal_status(const shoal_host*, shoal_ctx*, const char*, void**)>("shoal_resource_open");
  api.close = lib->fn<void(shoal_ctx*, void*)>("shoal_resource_close");
  api.recover =
      lib->fn<void(const shoal_host*, shoal_ctx*, const char*, uint32_t, const char*)>("shoal_resource_recover");
  api.params = lib->params();
  api.abi_version = api.abi();
  if (auto abi = check_abi(api.abi_version, path, what); !abi) return abi.error();
  return api;
}

Result<SharedBuilderApi> load_shared_builder(const std::filesystem::path& path) {
  const char* what = role_name(ModuleKind::shared_builder);
  auto lib = Library::open(path, path, ModuleKind::shared_builder);
  if (!lib) return lib.error();
  SharedBuilderApi api;
  api.abi = lib->fn<uint32_t()>("shoal_shared_abi");
  api.build = lib->fn<shoal_status(const shoal_host*, shoal_ctx*, shoal_shared_builder*)>("shoal_shared_build");
  api.params = lib->params();
  api.abi_version = api.abi();
  if (auto abi = check_abi(api.abi_version, path, what); !abi) return abi.error();
  return api;
}

}  // namespace shoal::detail
