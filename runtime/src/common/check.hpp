#ifndef SHOAL_COMMON_CHECK_HPP
#define SHOAL_COMMON_CHECK_HPP

// SHOAL_CHECK(cond): an invariant of shoal's own code, such as a system call on a
// descriptor the caller created that can only fail if the caller is wrong (EBADF,
// EINVAL). It stays on in release builds: going on past a broken invariant would turn a
// bug into a lost task or a hang, which the promises forbid; an abort leaves a core and
// the line. Failures that the environment can cause (ENOMEM, EMFILE, a peer gone) are
// errors, handled where they happen, never checks.

namespace shoal::detail {
[[noreturn]] void check_failed(const char* expr, const char* file, int line) noexcept;
}  // namespace shoal::detail

#define SHOAL_CHECK(cond) \
  ((cond) ? static_cast<void>(0) : ::shoal::detail::check_failed(#cond, __FILE__, __LINE__))

#endif
