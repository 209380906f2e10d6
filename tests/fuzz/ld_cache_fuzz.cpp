// libFuzzer target over the ld.so.cache parser (plugin/needed): /etc/ld.so.cache is
// bytes `shoal check` did not write. Whatever they are, the parser reads only inside
// them and yields at most one entry per table slot, each name and path NUL-free.
#include "plugin/needed.hpp"

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(bytes), size);
  for (const auto& entry : shoal::detail::parse_ld_cache(text))
    if (entry.name.empty() || entry.path.empty() || entry.name.find('\0') != std::string::npos ||
        entry.path.size() > 4096)
      __builtin_trap();
  return 0;
}
