#include "plugin/loader.hpp"

#include <boost/dll/shared_library.hpp>
#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace shoal::detail {

namespace {

Error fail(const char* what, const std::filesystem::path& path, const std::string& cause) {
  return Error{Errc::plugin, std::string(what) + " " + path.string() + ": " + cause};
}

std::string version_text(uint32_t v) { return std::to_string(v >> 16) + "." + std::to_string(v & 0xffff); }

}  // namespace

Result<void> check_shared_object(const std::filesystem::path& path, const char* what) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return fail(what, path, "file not found");
    return fail(what, path, std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return fail(what, path, "not a regular file");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(what, path, std::string("cannot open: ") + std::strerror(errno));
  Elf64_Ehdr eh{};
  ssize_t n = ::read(fd, &eh, sizeof eh);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (n != static_cast<ssize_t>(sizeof eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
    return fail(what, path, "not a shared object (no ELF header)");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64)
    return fail(what, path, "built for another machine or word size");
  if (eh.e_type != ET_DYN) return fail(what, path, "not a shared object (an ELF executable or object file)");
  // A position-independent executable is ET_DYN too; its PT_INTERP segment gives it away.
  for (uint16_t i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph{};
    if (::pread(fd, &ph, sizeof ph, static_cast<off_t>(eh.e_phoff + uint64_t{i} * eh.e_phentsize)) != sizeof ph) break;
    if (ph.p_type == PT_INTERP) return fail(what, path, "not a shared object (an executable)");
  }
  return {};
}

Result<PluginApi> load_plugin(const std::filesystem::path& path) {
  if (auto check = check_shared_object(path, "plugin"); !check) return check.error();
  namespace dll = boost::dll;
  auto lib = std::make_unique<dll::shared_library>();
  try {
    lib->load(path, dll::load_mode::rtld_now | dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    // Boost.DLL wraps dlerror's text: "... (dlerror system message: TEXT): strerror".
    std::string why = e.what();
    const std::string tag = "dlerror system message: ";
    auto at = why.find(tag);
    auto end = why.rfind("): ");
    if (at != std::string::npos && end != std::string::npos && end > at) why = why.substr(at + tag.size(), end - at - tag.size());
    return fail("plugin", path, "cannot load: " + why);
  }
  for (const char* sym : {"shoal_plugin_abi", "shoal_init", "shoal_run", "shoal_fini"})
    if (!lib->has(sym)) return fail("plugin", path, std::string("missing symbol ") + sym + " (not a shoal task plugin?)");
  PluginApi api;
  api.abi = &lib->get<uint32_t()>("shoal_plugin_abi");
  api.init = &lib->get<shoal_status(const shoal_host*, shoal_ctx*, void**)>("shoal_init");
  api.run = &lib->get<shoal_status(shoal_ctx*, void*, shoal_bytes)>("shoal_run");
  api.fini = &lib->get<void(shoal_ctx*, void*)>("shoal_fini");
  if (lib->has("shoal_recover")) api.recover = &lib->get<void(const shoal_host*, shoal_ctx*)>("shoal_recover");
  api.abi_version = api.abi();
  if ((api.abi_version >> 16) != SHOAL_ABI_MAJOR)
    return fail("plugin", path,
                "built for ABI " + version_text(api.abi_version) + " while this runtime speaks " +
                    version_text(SHOAL_ABI_VERSION));
  // Kept for the life of the process: a plugin is never unloaded in a live worker (its
  // code may still be referenced by threads, atexit handlers or finalizers).
  static std::vector<std::unique_ptr<dll::shared_library>> keep_loaded;
  keep_loaded.push_back(std::move(lib));
  return api;
}

}  // namespace shoal::detail
