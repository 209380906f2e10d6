// libFuzzer target over the ELF reader (plugin/elf): `shoal check` and `shoal inspect`
// read files a user did not write, and the resolver reads every library a module needs.
// Whatever the bytes, each reader returns exports or one error line, reading only inside
// the file, never crashing or allocating without bound.
#include "plugin/elf.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

using namespace shoal::detail;

namespace {

// The input as a regular file (a memfd, reached by path as the readers open it).
struct InputFile {
  int fd = ::memfd_create("elf_fuzz", MFD_CLOEXEC);
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  InputFile() {
    if (fd < 0) __builtin_trap();
  }
};

void one_line(const shoal::Result<ElfExports>& result) {
  if (!result && result.error().message.find('\n') != std::string::npos) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  static InputFile input;
  if (::ftruncate(input.fd, 0) != 0 || ::pwrite(input.fd, bytes, size, 0) != static_cast<ssize_t>(size))
    __builtin_trap();
  one_line(check_module_file(input.path, ModuleKind::task_plugin));
  one_line(check_module_file(input.path, ModuleKind::resource_module));
  // Without check_shared_object's gate, as the resolver reads a needed library.
  auto library = read_elf_library(input.path, "library");
  one_line(library);
  if (library && (library->needed.size() > 4096 || library->soname.size() > kMaxElfName ||
                  library->runpath.size() > kMaxElfName || library->rpath.size() > kMaxElfName))
    __builtin_trap();
  return 0;
}
