#include "common/mapping.hpp"

#include "common/fd.hpp"

#include <sys/mman.h>
#include <sys/types.h>

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
  return ::mmap(addr_, len_, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED;
}

Result<Mapping> map_shared(int fd, uint64_t offset, uint64_t len) {
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(offset));
  if (p == MAP_FAILED) return errno_error("mmap(MAP_SHARED)");
  return Mapping(p, len);
}

}  // namespace shoal::detail
