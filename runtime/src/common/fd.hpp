// An owned file descriptor, and what the runtime does to descriptors it owns: shared by
// the host (pool/, process/), the worker and the CLI.
#ifndef SHOAL_COMMON_FD_HPP
#define SHOAL_COMMON_FD_HPP

#include <shoal/result.hpp>

namespace shoal::detail {

/// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  ~Fd();
  int get() const noexcept { return fd_; }
  int release() noexcept { int f = fd_; fd_ = -1; return f; }
  void reset() noexcept;
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

/// Moves `fd` to a number >= min_fd, close-on-exec, and closes the old one.
Result<Fd> move_fd_above(Fd fd, int min_fd);

/// The failure of system call `what`: "what: strerror(errno)", as an Errc::ipc error.
Error errno_error(const char* what);

}  // namespace shoal::detail

#endif
