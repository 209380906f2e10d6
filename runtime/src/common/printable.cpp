#include "common/printable.hpp"

#include <cstdio>

namespace shoal::detail {

std::string printable(std::string_view text, std::size_t max) {
  std::string out;
  for (std::size_t i = 0; i < text.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != 0x7f) {
      out += static_cast<char>(c);
      continue;
    }
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02x", c);
    out += c == '\n' ? "\\n" : c == '\t' ? "\\t" : buf;
  }
  return text.size() > max ? out + "..." : out;
}

}  // namespace shoal::detail
