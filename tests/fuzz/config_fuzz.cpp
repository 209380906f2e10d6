// libFuzzer target over the config loader: any text gives a Config or one error line,
// never a crash, a hang or an exception (alias bombs, deep nesting, bad UTF-8 included).
#include <shoal/config.hpp>

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(bytes), size);
  auto config = shoal::load_config_string(text, "fuzz.yaml", "/tmp");
  if (!config && config.error().message.find('\n') != std::string::npos) __builtin_trap();
  return 0;
}
