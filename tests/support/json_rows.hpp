// A strict reader for the JSON rows the CLI writes (`shoal run`, `shoal collect`): one
// flat JSON object per line whose values are strings, integers, decimals or null. Anything
// else fails the parse, so a malformed row fails the test instead of being half understood.
#ifndef SHOAL_TESTS_JSON_ROWS_HPP
#define SHOAL_TESTS_JSON_ROWS_HPP

#include <cstdint>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace shoal::test {

struct Value {
  enum class Kind { null, string, number } kind = Kind::null;
  std::string text;  // decoded string, or the number exactly as written
};

struct Row {
  std::vector<std::string> keys;  // in the order written
  std::map<std::string, Value> fields;
  const Value& at(const std::string& key) const {
    static const Value missing{Value::Kind::null, "<missing>"};
    auto it = fields.find(key);
    return it == fields.end() ? missing : it->second;
  }
};

inline void put_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

class Parser {
 public:
  explicit Parser(const std::string& text) : s_(text) {}

  std::optional<Row> row() {
    Row r;
    if (!eat('{')) return std::nullopt;
    if (eat('}')) return at_end() ? std::optional<Row>(r) : std::nullopt;
    for (;;) {
      auto key = string();
      if (!key || !eat(':')) return std::nullopt;
      auto v = value();
      if (!v || r.fields.count(*key) != 0) return std::nullopt;
      r.keys.push_back(*key);
      r.fields[*key] = *v;
      if (eat(',')) continue;
      if (eat('}')) break;
      return std::nullopt;
    }
    return at_end() ? std::optional<Row>(r) : std::nullopt;
  }

 private:
  bool at_end() const { return i_ == s_.size(); }
  bool eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }

  std::optional<uint32_t> hex4() {
    if (i_ + 4 > s_.size()) return std::nullopt;
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<uint32_t>(c - 'A' + 10);
      else return std::nullopt;
    }
    return v;
  }

  std::optional<std::string> string() {
    if (!eat('"')) return std::nullopt;
    std::string out;
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) return std::nullopt;  // must be escaped
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (i_ >= s_.size()) return std::nullopt;
      const char e = s_[i_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          auto cp = hex4();
          if (!cp) return std::nullopt;
          if (*cp >= 0xD800 && *cp <= 0xDBFF) {
            if (!eat('\\') || !eat('u')) return std::nullopt;
            auto lo = hex4();
            if (!lo || *lo < 0xDC00 || *lo > 0xDFFF) return std::nullopt;
            *cp = 0x10000 + ((*cp - 0xD800) << 10) + (*lo - 0xDC00);
          } else if (*cp >= 0xDC00 && *cp <= 0xDFFF) {
            return std::nullopt;
          }
          put_utf8(out, *cp);
          break;
        }
        default: return std::nullopt;
      }
    }
    return std::nullopt;
  }

  std::optional<Value> value() {
    if (i_ < s_.size() && s_[i_] == '"') {
      auto str = string();
      if (!str) return std::nullopt;
      return Value{Value::Kind::string, *str};
    }
    if (s_.compare(i_, 4, "null") == 0) {
      i_ += 4;
      return Value{};
    }
    const size_t start = i_;
    if (eat('-')) {
    }
    while (i_ < s_.size() && ((s_[i_] >= '0' && s_[i_] <= '9') || s_[i_] == '.')) ++i_;
    if (i_ == start) return std::nullopt;
    return Value{Value::Kind::number, s_.substr(start, i_ - start)};
  }

  const std::string& s_;
  size_t i_ = 0;
};

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) {
      lines.push_back(text.substr(pos));  // an unterminated last line: the checks catch it
      break;
    }
    lines.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return lines;
}

/// The whitespace-separated words of `text`.
inline std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

}  // namespace shoal::test

#endif
