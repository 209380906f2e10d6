// File: shoal/result.hpp
//
// Result<T>: a value or an Error, returned by every runtime call that can fail. The
// runtime throws no exceptions of its own; a failure is a value the caller must look at.
#ifndef SHOAL_RESULT_HPP
#define SHOAL_RESULT_HPP

#include <string>
#include <utility>
#include <variant>

namespace shoal {

/// Which part of the runtime failed: a code to switch on (Error::message is for people).
/// New codes are added at the end.
enum class Errc {
  config,    ///< the YAML or a value in it; message is "FILE:LINE:COLUMN: ..." (at a worker's
             ///< start: a param its module's declaration refuses, named with the module)
  plugin,    ///< a plugin or resource module cannot be used (missing, refused by the
             ///< loader or the ABI check, its init or open failed or crashed); names the file
  spawn,     ///< the worker executable could not be started (missing, not executable, posix_spawn)
  ipc,       ///< shared memory, rings, socketpairs, descriptors, the host/worker protocol
  not_found, ///< a named pool does not exist
  failed,    ///< a pool failed (crash loop, every worker unusable), or is closed
  io,        ///< reading or writing a file, or a connection
  cancelled, ///< a pool's start was cancelled (RuntimeOptions::start_cancel_fd, terminate)
  timeout,   ///< a worker was not ready within start_timeout
  confine,   ///< the system refused a worker's limits.* or its sandbox (setrlimit, Landlock, seccomp)
};

/// A failure: the component code and one line for a person.
struct Error {
  Errc code;
  std::string message;
};

/// A value of type T, or an Error. Check with `if (r)` before `*r`.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}                 // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}             // NOLINT
  explicit operator bool() const noexcept { return v_.index() == 0; }
  bool ok() const noexcept { return v_.index() == 0; }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& value() const& { return std::get<0>(v_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT
  explicit operator bool() const noexcept { return ok_; }
  bool ok() const noexcept { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_{};
  bool ok_ = true;
};

}  // namespace shoal

#endif  // SHOAL_RESULT_HPP
