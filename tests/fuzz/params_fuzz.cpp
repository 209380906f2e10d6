// libFuzzer target over the declared-params reader (plugin/params.hpp): the text comes
// from a plugin file nobody vetted. Any bytes give a declaration or one error line, never
// a crash or an exception; a declaration that parses is then checked against params
// taken from the same bytes, and every problem is one line too, as is every default.
#include "plugin/params.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace {

void one_line(const std::string& text) {
  if (text.find('\n') != std::string::npos) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  // The input is "DECLARATION\0NAME=VALUE\0NAME=VALUE...": the part after the first NUL
  // (which the ELF reader never passes on) feeds the check.
  std::string_view all(reinterpret_cast<const char*>(bytes), size);
  const size_t nul = all.find('\0');
  auto decls = shoal::detail::parse_param_decls(all.substr(0, nul));
  if (!decls) {
    one_line(decls.error().message);
    return 0;
  }
  std::map<std::string, std::string> given;
  for (size_t at = nul; at != std::string_view::npos && at < all.size();) {
    const size_t next = all.find('\0', at + 1);
    const std::string_view entry = all.substr(at + 1, next == std::string_view::npos ? std::string_view::npos : next - at - 1);
    const size_t eq = entry.find('=');
    given[std::string(entry.substr(0, eq))] = eq == std::string_view::npos ? "" : std::string(entry.substr(eq + 1));
    at = next;
  }
  std::map<std::string, std::string> canonical;
  auto problems = shoal::detail::check_params(*decls, given, &canonical);
  for (const auto& p : problems) one_line(p.message);
  for (const auto& d : decls->params) {
    one_line(shoal::detail::type_text(d));
    one_line(shoal::detail::presence_text(d));
    // A default is canonical already: reading it again gives it back unchanged (not for
    // a duration, whose canonical form, nanoseconds without a unit, is not config text).
    if (d.presence == shoal::detail::Presence::defaulted && d.type != shoal::detail::ParamType::duration) {
      auto again = shoal::detail::canonical_value(d, d.default_value);
      if (!again || *again != d.default_value) __builtin_trap();
    }
  }
  one_line(shoal::detail::undeclared_param_message(*decls, given.empty() ? "x" : given.begin()->first));
  return 0;
}
