#include "common/mapping.hpp"

#include "common/fd.hpp"

#include <sys/mman.h>
#include <sys/types.h>

#include <cstring>

namespace shoal::detail {

Mapping& Mapping::operator=(Mapping&& o) noexcept {
  if (this != &o) {
    if (addr_ != nullptr) ::munmap(addr_, len_);
    addr_ = o.addr_;
    len_ = o.len_;
    o.addr_ = nullptr;
    o.len_ = 0;
  }
  return *this;
}
Mapping::~Mapping() {
  if (addr_ != nullptr) ::munmap(addr_, len_);
}

bool Mapping::detach() noexcept {
  if (addr_ == nullptr) return true;
  // A private copy moved over the shared pages in one step (mremap replaces what is at
  // the target): a reader never sees the range unmapped, nor zeros in place of the words.
  void* copy = ::mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (copy == MAP_FAILED) return false;
  std::memcpy(copy, addr_, len_);
  if (::mprotect(copy, len_, PROT_READ) != 0 ||
      ::mremap(copy, len_, len_, MREMAP_MAYMOVE | MREMAP_FIXED, addr_) == MAP_FAILED) {
    ::munmap(copy, len_);
    return false;
  }
  return true;
}

Result<Mapping> map_shared(int fd, uint64_t offset, uint64_t len) {
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(offset));
  if (p == MAP_FAILED) return errno_error("mmap(MAP_SHARED)");
  return Mapping(p, len);
}

}  // namespace shoal::detail
