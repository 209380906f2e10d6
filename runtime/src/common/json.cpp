#include "common/json.hpp"

#include "common/printable.hpp"

#include <charconv>
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
    if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f) {
      // A run of plain ASCII goes in one append, not a byte at a time.
      size_t end = i + 1;
      while (end < bytes.size()) {
        const auto d = static_cast<unsigned char>(bytes[end]);
        if (d < 0x20 || d >= 0x7f || d == '"' || d == '\\') break;
        ++end;
      }
      out.append(bytes.data() + i, end - i);
      i = end;
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

namespace {

template <typename T>
void append_number(std::string& out, T value) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, r.ptr);
}

}  // namespace

void append_outcome_json(std::string& out, uint64_t seq, const OutcomeView& o) {
  out += "{\"seq\":";
  append_number(out, seq);
  out += ",\"status\":\"";
  out += to_string(o.status);
  out += "\",\"output\":";
  append_json_string(out, o.output);
  out += ",\"error\":";
  if (o.error.empty()) out += "null";
  else append_json_string(out, o.error);
  out += ",\"worker\":";
  if (o.worker < 0) out += "null";
  else append_number(out, o.worker);
  out += ",\"attempts\":";
  append_number(out, o.attempts);
  // to_chars rounds the same double exactly as printf's %.3f did, at a fraction of the
  // cost: a million-row `shoal run` spent more in snprintf than in its tasks.
  char num[48];
  const auto ms = std::to_chars(num, num + sizeof num, static_cast<double>(o.duration.count()) / 1e6,
                                std::chars_format::fixed, 3);
  out += ",\"ms\":";
  out.append(num, ms.ptr);
  out += ",\"reason\":";
  if (o.reason == Reason::none) {
    out += "null}";
  } else {
    out += '"';
    out += to_string(o.reason);
    out += "\"}";
  }
}

void append_outcome_json(std::string& out, uint64_t seq, const Outcome& o) {
  append_outcome_json(out, seq,
                      OutcomeView{o.status, o.reason, o.generation, o.output, o.error, o.worker, o.attempts, o.duration});
}

std::string outcome_json(uint64_t seq, const Outcome& outcome) {
  std::string out;
  append_outcome_json(out, seq, outcome);
  return out;
}

}  // namespace shoal::detail
