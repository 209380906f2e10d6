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
/// is longer than `max` bytes, cut there and ended with "...". Valid UTF-8 passes
/// through, so UTF-8 names stay readable; C1 controls (U+0080..U+009F, which terminals
/// obey like ESC sequences) and bytes that are not valid UTF-8 are escaped as \xHH.
/// The result is safe to write to a terminal: plugins' output goes through here.
std::string printable(std::string_view text, std::size_t max = std::string_view::npos);

/// The length of the well-formed UTF-8 sequence at text[i] (1 for ASCII), or 0 when it
/// is not one (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
std::size_t utf8_sequence(std::string_view text, std::size_t i);
/// text[i] starts a C1 control in UTF-8 (U+0080..U+009F; U+009B is CSI, which terminals
/// obey like ESC [).
bool is_c1(std::string_view text, std::size_t i);

}  // namespace shoal::detail

#endif
