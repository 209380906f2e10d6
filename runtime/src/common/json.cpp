#include "common/json.hpp"

#include "common/printable.hpp"

#include <cstdio>

namespace shoal::detail {


void append_json_string(std::string& out, std::string_view bytes) {
  out += '"';
  for (size_t i = 0; i < bytes.size();) {
    auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x80) {
      size_t n = utf8_sequence(bytes, i);
      if (n == 0) {
        out += "\\ufffd";
        ++i;
      } else if (is_c1(bytes, i)) {  // valid JSON raw, but a terminal obeys it like ESC
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(bytes[i + 1]));
        out += buf;
        i += n;
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
  std::snprintf(num, sizeof num, ",\"ms\":%.3f", static_cast<double>(o.duration.count()) / 1e6);
  out += num;
  out += ",\"reason\":";
  if (o.reason == Reason::none) {
    out += "null}";
  } else {
    out += '"';
    out += to_string(o.reason);
    out += "\"}";
  }
}

std::string outcome_json(uint64_t seq, const Outcome& outcome) {
  std::string out;
  append_outcome_json(out, seq, outcome);
  return out;
}

}  // namespace shoal::detail
