// Durations, sizes, integers, names, ${ENV} expansion and edit distance (see values.hpp).
#include "config/values.hpp"

#include <shoal/config.hpp>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <vector>

namespace shoal {
namespace detail {
namespace {

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// At most this many fraction digits count (nanoseconds of a second); later ones are
// checked to be digits and dropped, which rounds down.
constexpr std::size_t kFractionDigits = 9;

// Reads digits at text[i...] into `value`; false if there are none or they overflow.
bool read_digits(std::string_view text, std::size_t& i, uint64_t& value) {
  const std::size_t start = i;
  value = 0;
  for (; i < text.size() && is_digit(text[i]); ++i) {
    if (__builtin_mul_overflow(value, uint64_t{10}, &value) ||
        __builtin_add_overflow(value, static_cast<uint64_t>(text[i] - '0'), &value))
      return false;
  }
  return i > start;
}

// Reads ".<digits>" at text[i...] as numerator/denominator (denominator 1 when absent).
bool read_fraction(std::string_view text, std::size_t& i, uint64_t& num, uint64_t& den) {
  num = 0;
  den = 1;
  if (i >= text.size() || text[i] != '.') return true;
  const std::size_t start = ++i;
  for (; i < text.size() && is_digit(text[i]); ++i) {
    if (i - start >= kFractionDigits) continue;
    num = num * 10 + static_cast<uint64_t>(text[i] - '0');
    den *= 10;
  }
  return i > start;
}

const Unit* find_unit(std::span<const Unit> units, std::string_view suffix) {
  auto it =
      std::find_if(units.begin(), units.end(), [&](const Unit& u) { return u.suffix == suffix; });
  return it == units.end() ? nullptr : &*it;
}

constexpr uint64_t kKiB = uint64_t{1} << 10;
constexpr uint64_t kKB = 1000;
constexpr std::array kSizeUnits{
    Unit{"", 1},
    Unit{"B", 1},
    Unit{"KiB", kKiB},
    Unit{"MiB", kKiB << 10},
    Unit{"GiB", kKiB << 20},
    Unit{"TiB", kKiB << 30},
    Unit{"KB", kKB},
    Unit{"MB", kKB * 1000},
    Unit{"GB", kKB * 1000 * 1000},
    Unit{"TB", kKB * 1000 * 1000 * 1000},
};

constexpr uint64_t kSecond = 1'000'000'000;
constexpr std::array kDurationUnits{
    Unit{"ns", 1},      Unit{"us", 1'000},       Unit{"ms", 1'000'000},
    Unit{"s", kSecond}, Unit{"m", 60 * kSecond}, Unit{"h", 3600 * kSecond},
};

}  // namespace

std::string size_text(uint64_t bytes) {
  for (auto unit = kSizeUnits.rbegin(); unit != kSizeUnits.rend(); ++unit)
    if (unit->suffix.ends_with("iB") && bytes != 0 && bytes % unit->factor == 0)
      return std::to_string(bytes / unit->factor) + std::string(unit->suffix);
  return std::to_string(bytes) + (bytes == 1 ? " byte" : " bytes");
}

bool parse_scaled(std::string_view text, std::span<const Unit> units, uint64_t max, uint64_t& out) {
  std::size_t i = 0;
  uint64_t whole = 0, num = 0, den = 1;
  if (!read_digits(text, i, whole) || !read_fraction(text, i, num, den)) return false;
  const Unit* unit = find_unit(units, text.substr(i));
  if (unit == nullptr || (den > 1 && unit->factor == 1)) return false;
  // floor(num * factor / den) without overflow: den <= 10^9, so each product fits.
  const uint64_t part = (unit->factor / den) * num + (unit->factor % den) * num / den;
  uint64_t total = 0;
  if (__builtin_mul_overflow(whole, unit->factor, &total) ||
      __builtin_add_overflow(total, part, &total) || total > max)
    return false;
  out = total;
  return true;
}

bool parse_integer(std::string_view text, IntText& out) {
  std::size_t i = 0;
  IntText t;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    t.negative = text[0] == '-';
    i = 1;
  }
  if (!read_digits(text, i, t.magnitude) || i != text.size()) return false;
  out = t;
  return true;
}

std::pair<size_t, size_t> url_password_span(std::string_view url) {
  size_t start = 0;
  if (const size_t scheme = url.find("://"); scheme != std::string_view::npos)
    start = scheme + 3;
  else if (const size_t colon = url.find(':'); colon != std::string_view::npos)
    start = colon + 1;  // a mistyped URL ("redis:/u:pw@h") must not show its password either
  else
    return {0, 0};
  // The last '@': a password may hold '@' and '/' unescaped, and the URL parser reads it so.
  const size_t at = url.rfind('@');
  if (at == std::string_view::npos || at < start) return {0, 0};
  // USER:PASSWORD, or a lone word, which may be a password as well: hidden whole.
  const size_t colon = url.substr(start, at - start).find(':');
  return {colon == std::string_view::npos ? start : start + colon + 1, at};
}

std::string redact_url(std::string_view url) {
  const auto [first, last] = url_password_span(url);
  if (first == last) return std::string(url);
  return std::string(url.substr(0, first)) + "***" + std::string(url.substr(last));
}

bool parse_listen(std::string_view text, std::string& host, uint16_t& port) {
  std::string_view h, p = text;
  if (text.starts_with('[')) {  // [::1]:9464
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return false;
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
    if (h.empty()) return false;
  } else if (const size_t colon = text.rfind(':'); colon != std::string_view::npos) {
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
    if (h.find(':') != std::string_view::npos) return false;  // a bare IPv6 address needs [ ]
  }
  for (char c : h)
    if (c <= ' ' || c > '~' || c == '/' || c == '[' || c == ']') return false;
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string_view::npos) return false;
  uint32_t n = 0;
  for (char c : p) n = n * 10 + static_cast<uint32_t>(c - '0');
  if (n > 65535) return false;
  host = h.empty() ? std::string("127.0.0.1") : std::string(h);
  port = static_cast<uint16_t>(n);
  return true;
}

bool is_name(std::string_view text) noexcept {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return is_alpha(c) || is_digit(c) || c == '_' || c == '.' || c == '-';
  });
}

bool is_env_name(std::string_view text) noexcept {
  return !text.empty() && !is_digit(text[0]) && std::all_of(text.begin(), text.end(), [](char c) {
    return is_alpha(c) || is_digit(c) || c == '_';
  });
}

EnvExpansion expand_env(std::string_view text, std::string_view config_dir) {
  using Status = EnvExpansion::Status;
  EnvExpansion r;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool dollar = text[i] == '$' && i + 1 < text.size();
    if (dollar && text[i + 1] == '$') {
      r.text += '$';
      ++i;
    } else if (dollar && text[i + 1] == '{') {
      const std::size_t close = text.find('}', i + 2);
      if (close == std::string_view::npos) return {Status::malformed, {}, "unterminated '${'"};
      const std::string name(text.substr(i + 2, close - i - 2));
      if (!is_env_name(name)) return {Status::malformed, {}, "bad variable name '" + name + "'"};
      if (name == "SHOAL_CONFIG_DIR" && !config_dir.empty()) {
        r.text += config_dir;
        i = close;
        continue;
      }
      const char* value = std::getenv(name.c_str());
      if (value == nullptr) return {Status::unset, {}, name};
      r.text += value;
      i = close;
    } else {
      r.text += text[i];
    }
  }
  return r;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // Three rows of the classic table: two back (for swaps), previous, current.
  std::vector<std::size_t> two(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        cur[j] = std::min(cur[j], two[j - 2] + 1);
    }
    std::swap(two, prev);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string_view closest_match(std::string_view word, std::span<const std::string_view> candidates,
                               std::size_t max_distance) {
  std::string_view best;
  std::size_t best_distance = max_distance + 1;
  for (std::string_view c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

std::string did_you_mean(std::string_view word, std::span<const std::string_view> candidates) {
  const std::string_view near = closest_match(word, candidates);
  return near.empty() ? std::string() : " (did you mean '" + std::string(near) + "'?)";
}

}  // namespace detail

bool parse_duration(std::string_view text, Duration& out) {
  uint64_t ns = 0;
  if (text == "0") {
    out = Duration{0};
    return true;
  }
  if (!detail::parse_scaled(text, detail::kDurationUnits,
                            static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), ns))
    return false;
  out = Duration{static_cast<int64_t>(ns)};
  return true;
}

bool parse_size(std::string_view text, uint64_t& out) {
  return detail::parse_scaled(text, detail::kSizeUnits, std::numeric_limits<uint64_t>::max(), out);
}

}  // namespace shoal
