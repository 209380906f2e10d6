// Text from a file, a config or a command line made safe to put inside a one-line
// message: the config's errors, the loader's "plugin PATH: cause" and `shoal check`'s
// "FILE:LINE:COLUMN: message" lines are read one per line, so a path holding a newline
// must not split one of them in two.
#ifndef SHOAL_COMMON_PRINTABLE_HPP
#define SHOAL_COMMON_PRINTABLE_HPP

#include <cstddef>
#include <string>
#include <string_view>

namespace shoal::detail {

/// `text` with each control character written as an escape (\n, \t, \xHH) and, when it
/// is longer than `max` bytes, cut there and ended with "...". Bytes from 0x80 up pass
/// through, so UTF-8 names stay readable.
std::string printable(std::string_view text, std::size_t max = std::string_view::npos);

}  // namespace shoal::detail

#endif
