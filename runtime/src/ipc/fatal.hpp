// The body of a worker's Fatal message: why it cannot start, as an Errc (so that
// Pool::start's error has a code a caller can switch on) and one line for people.
#ifndef SHOAL_IPC_FATAL_HPP
#define SHOAL_IPC_FATAL_HPP

#include <shoal/result.hpp>

#include <string>
#include <string_view>

namespace shoal::detail {

// The code travels as the first byte, 1 + its value: a control character, so no cause
// (which starts with a word) is mistaken for one.
inline constexpr Errc kLastErrc = Errc::confine;

inline std::string encode_fatal(Errc code, std::string_view message) {
  std::string body(1, static_cast<char>(1 + static_cast<int>(code)));
  body += message;
  return body;
}

/// The worker's code and cause. A body without a known code (a worker of another build,
/// or plugin code writing to the channel) is taken as the plugin's failure, whole.
inline Error decode_fatal(std::string_view body) {
  if (!body.empty()) {
    const int c = static_cast<unsigned char>(body[0]) - 1;
    if (c >= 0 && c <= static_cast<int>(kLastErrc)) return Error{static_cast<Errc>(c), std::string(body.substr(1))};
  }
  return Error{Errc::plugin, std::string(body)};
}

}  // namespace shoal::detail

#endif
