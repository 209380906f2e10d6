#include "common/fd.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace shoal::detail {

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = o.release();
  }
  return *this;
}
Fd::~Fd() { reset(); }
void Fd::reset() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<Fd> move_fd_above(Fd fd, int min_fd) {
  if (fd.get() >= min_fd) return fd;
  int moved = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, min_fd);
  if (moved < 0) return errno_error("fcntl(F_DUPFD_CLOEXEC)");
  return Fd(moved);
}

Error errno_error(const char* what) { return Error{Errc::ipc, std::string(what) + ": " + std::strerror(errno)}; }

}  // namespace shoal::detail
