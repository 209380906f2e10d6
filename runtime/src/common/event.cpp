#include "common/event.hpp"

#include <unistd.h>

#include <cstdint>

namespace shoal::detail {

void eventfd_signal(int fd) noexcept {
  uint64_t one = 1;
  ssize_t n = ::write(fd, &one, sizeof one);
  (void)n;
}

void eventfd_drain(int fd) noexcept {
  uint64_t v;
  ssize_t n = ::read(fd, &v, sizeof v);
  (void)n;
}

}  // namespace shoal::detail
