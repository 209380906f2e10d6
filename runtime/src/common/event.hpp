// Wake-ups through an eventfd: the host's loop, the worker's stop handler, the CLI.
#ifndef SHOAL_COMMON_EVENT_HPP
#define SHOAL_COMMON_EVENT_HPP

namespace shoal::detail {

/// Writes 1 to an eventfd; EAGAIN (counter saturated) still leaves it readable.
/// Async-signal-safe (one write).
void eventfd_signal(int fd) noexcept;
/// Reads and discards an eventfd's counter (non-blocking fd).
void eventfd_drain(int fd) noexcept;

}  // namespace shoal::detail

#endif
