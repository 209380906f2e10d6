#include "common/json.hpp"

#include <cstdio>

namespace shoal::detail {

namespace {

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 if it is not one
// (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
size_t utf8_sequence(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  auto cont = [&](size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
  unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;  // overlong
    if (c == 0xED && b(1) >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && b(1) >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

}  // namespace

void append_json_string(std::string& out, std::string_view bytes) {
  out += '"';
  for (size_t i = 0; i < bytes.size();) {
    auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x80) {
      size_t n = utf8_sequence(bytes, i);
      if (n == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(bytes.data() + i, n);
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
}

void append_outcome_json(std::string& out, uint64_t seq, const Outcome& o) {
  char num[64];
  out += "{\"seq\":";
  out += std::to_string(seq);
  out += ",\"status\":\"";
  out += to_string(o.status);
  out += "\",\"output\":";
  append_json_string(out, o.output);
  out += ",\"error\":";
  if (o.error.empty()) out += "null";
  else append_json_string(out, o.error);
  out += ",\"worker\":";
  out += o.worker < 0 ? std::string("null") : std::to_string(o.worker);
  out += ",\"attempts\":";
  out += std::to_string(o.attempts);
  std::snprintf(num, sizeof num, ",\"ms\":%.3f}", static_cast<double>(o.duration.count()) / 1e6);
  out += num;
}

std::string outcome_json(uint64_t seq, const Outcome& outcome) {
  std::string out;
  append_outcome_json(out, seq, outcome);
  return out;
}

}  // namespace shoal::detail
