// Text-level helpers of the config loader: numbers with units, names, ${ENV} expansion
// and the edit distance behind "did you mean". No YAML here; config.cpp walks the
// document and turns a false return into a "FILE:LINE:COLUMN: ..." error.
#ifndef SHOAL_CONFIG_VALUES_HPP
#define SHOAL_CONFIG_VALUES_HPP

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace shoal::detail {

/// A unit suffix and how many base units (bytes, nanoseconds) one of it is.
struct Unit {
  std::string_view suffix;
  uint64_t factor;
};

/// Parses "<digits>[.<digits>]<suffix>" where the suffix is one of `units` (an empty
/// suffix only if `units` lists one). The result is rounded down; a fraction needs a
/// unit whose factor is above 1 ("1.5KiB" yes, "1.5B" no). Fails above `max`.
bool parse_scaled(std::string_view text, std::span<const Unit> units, uint64_t max, uint64_t& out);

/// `bytes` as a config would write it: "16MiB" when a binary unit divides it exactly,
/// else "12345 bytes" (messages that name a size key quote it so).
std::string size_text(uint64_t bytes);

/// A decimal integer as written: optional sign, then digits (no 0x, no '_', no '.').
struct IntText {
  bool negative = false;
  uint64_t magnitude = 0;
};
/// False for anything that is not such an integer or does not fit 64 bits.
bool parse_integer(std::string_view text, IntText& out);

/// Parses a decimal integer and checks that it lies in [min, max].
template <class I>
bool parse_int_in(std::string_view text, I min, I max, I& out) {
  static_assert(std::is_integral_v<I>);
  IntText t;
  if (!parse_integer(text, t)) return false;
  if (t.negative && t.magnitude != 0) {
    constexpr uint64_t kMostNegative = uint64_t{1} << 63;
    if (t.magnitude > kMostNegative) return false;
    const auto value = static_cast<int64_t>(uint64_t{0} - t.magnitude);  // modular, C++20
    if (std::cmp_less(value, min) || std::cmp_greater(value, max)) return false;
    out = static_cast<I>(value);
    return true;
  }
  if (std::cmp_less(t.magnitude, min) || std::cmp_greater(t.magnitude, max)) return false;
  out = static_cast<I>(t.magnitude);
  return true;
}

/// `url` with the password of its user part replaced by *** (scheme://USER:***@HOST…,
/// scheme://***@HOST…). Every message or log line that may hold a URL given by the
/// operator goes through this one function: a password must not reach a terminal, a log
/// or an error report.
std::string redact_url(std::string_view url);

/// Where redact_url's "***" goes: the password's bytes [first, last) in `url`, after the
/// user's ':' up to the last '@'; first == last when there is none. Without "://" (a
/// mistyped URL) the scheme ends at the first ':'.
std::pair<size_t, size_t> url_password_span(std::string_view url);

/// A listen address: "HOST:PORT", "[IPV6]:PORT", ":PORT" or "PORT" (no host: loopback,
/// 127.0.0.1); PORT from 0 (any free one) to 65535. False for anything else.
bool parse_listen(std::string_view text, std::string& host, uint16_t& port);

/// Pool and resource names: one or more of [A-Za-z0-9_.-].
bool is_name(std::string_view text) noexcept;
/// Environment variable names: [A-Za-z_][A-Za-z0-9_]*.
bool is_env_name(std::string_view text) noexcept;

/// The result of expanding `${NAME}` references from the environment.
struct EnvExpansion {
  enum class Status { ok, unset, malformed };
  Status status = Status::ok;
  std::string text;    ///< the expanded text (status ok)
  std::string detail;  ///< the unset variable's name, or what is malformed
};
/// `${NAME}` is replaced by the variable's value, `$$` by one `$`; any other `$` is kept.
/// `${SHOAL_CONFIG_DIR}` is always `config_dir` (the config file's folder), so params that
/// name files (a database path) can be relative to the config like `plugin:` is.
/// An unset variable, an unterminated `${` or a bad name is reported, not guessed at.
EnvExpansion expand_env(std::string_view text, std::string_view config_dir = {});

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps
/// of two neighbouring characters each cost 1 ("wrokers" -> "workers" is 1).
std::size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate nearest to `word` within `max_distance` (the first on a tie), or an
/// empty view when none is that close.
std::string_view closest_match(std::string_view word, std::span<const std::string_view> candidates,
                               std::size_t max_distance = 2);

/// " (did you mean 'NEAREST'?)" after an unknown word (a config key, a command, an
/// option, a pool name), or an empty string when no candidate is close: the one wording
/// every such message uses.
std::string did_you_mean(std::string_view word, std::span<const std::string_view> candidates);

}  // namespace shoal::detail

#endif  // SHOAL_CONFIG_VALUES_HPP
