// The dictionary's layout in a shared segment, used by its builder (dictionary_builder.so),
// its plugin (dictionary.so) and bench/shared.cpp.
//
// One sorted vector of fixed-size entries and one block of text: each entry holds where
// its key starts in the text, its value right after it. Two allocations in the segment
// whatever the number of words, 16 bytes per word besides the text, and a lookup is a
// binary search that compares std::string_view: it reads the segment and never allocates
// in it (a SharedString key would, and the segment is read-only in a worker). Measured
// against a SharedMap<SharedString, SharedString, std::less<>> of the same words:
// bench/NOTES.md, "Shared read-only data".
#ifndef SHOAL_PLUGINS_DICTIONARY_HPP
#define SHOAL_PLUGINS_DICTIONARY_HPP

#include <shoal/shared.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace dictionary {

struct Entry {
  uint64_t at = 0;         // the key's first byte in Dictionary::text; the value follows it
  uint32_t key_size = 0;
  uint32_t value_size = 0;
};

struct Dictionary {
  explicit Dictionary(shoal::SharedSegmentManager* segment) : entries(segment), text(segment) {}

  shoal::SharedVector<Entry> entries;  // sorted by key, each key once
  shoal::SharedVector<char> text;
  bool lowercase = false;  // keys were lowercased (ASCII): lowercase what you look up

  std::string_view key(const Entry& e) const noexcept { return {text.data() + e.at, e.key_size}; }
  std::string_view value(const Entry& e) const noexcept { return {text.data() + e.at + e.key_size, e.value_size}; }

  /// The value of `word` (empty when its line had none), or nullopt. Reads only.
  std::optional<std::string_view> find(std::string_view word) const noexcept {
    const Entry* end = entries.data() + entries.size();  // raw pointers: no offset_ptr arithmetic per step
    const Entry* it = std::lower_bound(entries.data(), end, word,
                                       [this](const Entry& e, std::string_view w) { return key(e) < w; });
    if (it == end || key(*it) != word) return std::nullopt;
    return value(*it);
  }
};

struct Filled {
  size_t words = 0, duplicates = 0;
};

inline void to_lower(std::string& s, size_t from, size_t n) {
  for (size_t i = from; i < from + n; ++i)
    if (s[i] >= 'A' && s[i] <= 'Z') s[i] = static_cast<char>(s[i] - 'A' + 'a');
}

/// The whole of a word list file, in this process's own memory.
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream all;
  if (in) all << in.rdbuf();
  if (!in || in.bad()) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
  return std::move(all).str();
}

/// Fills an empty `d` from a word list: one word a line, optionally WORD<TAB>VALUE; empty
/// lines and lines starting with '#' are skipped, a trailing '\r' dropped. A word listed
/// twice keeps its first line. Throws std::bad_alloc when the segment is full and
/// std::invalid_argument naming `source`:LINE for a line it cannot hold.
inline Filled fill(Dictionary& d, std::string list, bool lowercase, const std::string& source) {
  struct Line {
    std::string_view key, value;
  };
  std::vector<Line> lines;
  size_t lineno = 0;
  for (size_t at = 0; at < list.size();) {
    size_t end = list.find('\n', at);
    if (end == std::string::npos) end = list.size();
    size_t stop = end > at && list[end - 1] == '\r' ? end - 1 : end;
    ++lineno;
    if (stop > at && list[at] != '#') {
      size_t tab = list.find('\t', at);
      if (tab == std::string::npos || tab > stop) tab = stop;
      if (lowercase) to_lower(list, at, tab - at);
      const size_t value_at = tab < stop ? tab + 1 : stop;
      if (tab - at > UINT32_MAX || stop - value_at > UINT32_MAX)
        throw std::invalid_argument(source + ":" + std::to_string(lineno) + ": a word or value of 4 GiB or more");
      lines.push_back({{list.data() + at, tab - at}, {list.data() + value_at, stop - value_at}});
    }
    at = end + 1;
  }
  // Stable: of a word listed twice, the first line comes first and is the one kept.
  std::stable_sort(lines.begin(), lines.end(), [](const Line& a, const Line& b) { return a.key < b.key; });
  auto last = std::unique(lines.begin(), lines.end(), [](const Line& a, const Line& b) { return a.key == b.key; });
  Filled filled{static_cast<size_t>(last - lines.begin()), static_cast<size_t>(lines.end() - last)};
  size_t text_bytes = 0;
  for (auto it = lines.begin(); it != last; ++it) text_bytes += it->key.size() + it->value.size();
  // Reserved exactly: a growing vector would leave its outgrown buffers behind in the segment.
  d.text.reserve(text_bytes);
  d.entries.reserve(filled.words);
  for (auto it = lines.begin(); it != last; ++it) {
    d.entries.push_back({d.text.size(), static_cast<uint32_t>(it->key.size()), static_cast<uint32_t>(it->value.size())});
    d.text.insert(d.text.end(), it->key.begin(), it->key.end());
    d.text.insert(d.text.end(), it->value.begin(), it->value.end());
  }
  d.lowercase = lowercase;
  return filled;
}

}  // namespace dictionary

#endif  // SHOAL_PLUGINS_DICTIONARY_HPP
