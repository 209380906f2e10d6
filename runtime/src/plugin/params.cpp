// The declared-params format (sdk/docs/plugin-params.md) and its check against a pool's
// `params:`. Values are read with the config's own parsers, so `30s` or `4MiB` means
// the same in `params:` as in any other key.
#include "plugin/params.hpp"

#include "common/printable.hpp"
#include "config/values.hpp"

#include <shoal/config.hpp>

#include <algorithm>
#include <limits>

namespace shoal::detail {

namespace {

constexpr std::string_view kMagic = "shoal-params ";
constexpr uint64_t kFormatVersion = 1;
constexpr size_t kMaxNameBytes = 128;
constexpr size_t kMaxDocBytes = 512;
constexpr size_t kMaxChoices = 64;
constexpr size_t kShown = 60;  // bytes of a configured value quoted in a message

std::string in_quotes(std::string_view text) { return "'" + printable(text, kShown) + "'"; }

// A tab or a new line would end the field early; any other control character would reach
// a terminal through `shoal inspect`.
bool has_control(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  for (size_t start = 0;;) {
    const size_t end = text.find(sep, start);
    out.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

std::string joined(const std::vector<std::string>& words, std::string_view sep) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : std::string(sep)) + w;
  return out;
}

std::vector<std::string_view> names_of(const ParamDecls& decls) {
  std::vector<std::string_view> names;
  for (const auto& d : decls.params) names.emplace_back(d.name);
  return names;
}

// " (did you mean 'x'?)", else what it does take, so the message always says the way out.
std::string suggestion(const ParamDecls& decls, std::string_view name) {
  const auto names = names_of(decls);
  if (std::string hint = did_you_mean(name, names); !hint.empty()) return hint;
  if (names.empty()) return " (it declares no params)";
  std::string list;
  for (auto n : names) list += (list.empty() ? "" : ", ") + std::string(n);
  return " (it takes " + list + ")";
}

Result<void> parse_spec(ParamDecl& d, std::string_view spec) {
  if (d.type == ParamType::integer) {
    const size_t dots = spec.find("..");
    if (dots == std::string_view::npos ||
        !parse_int_in<int64_t>(spec.substr(0, dots), std::numeric_limits<int64_t>::min(),
                               std::numeric_limits<int64_t>::max(), d.min) ||
        !parse_int_in<int64_t>(spec.substr(dots + 2), std::numeric_limits<int64_t>::min(),
                               std::numeric_limits<int64_t>::max(), d.max) ||
        d.min > d.max)
      return Error{Errc::plugin, "int range " + in_quotes(spec) + " is not MIN..MAX with MIN <= MAX"};
    return {};
  }
  if (d.type == ParamType::one_of) {
    for (std::string_view word : split(spec, '|')) {
      if (word.empty()) return Error{Errc::plugin, "one_of list " + in_quotes(spec) + " has an empty word"};
      if (std::find(d.choices.begin(), d.choices.end(), word) != d.choices.end())
        return Error{Errc::plugin, "one_of list repeats " + in_quotes(word)};
      if (d.choices.size() == kMaxChoices)
        return Error{Errc::plugin, "one_of list longer than " + std::to_string(kMaxChoices) + " words"};
      d.choices.emplace_back(word);
    }
    return {};
  }
  if (!spec.empty()) return Error{Errc::plugin, "type " + type_text(d) + " takes no spec, found " + in_quotes(spec)};
  return {};
}

Result<ParamDecl> parse_line(std::string_view line) {
  const auto fields = split(line, '\t');
  // Fields after the fifth are for later versions of format 1: read past, not refused.
  if (fields.size() < 5) return Error{Errc::plugin, "expected NAME TYPE SPEC PRESENCE DOC separated by tabs"};
  ParamDecl d;
  if (fields[0].size() > kMaxNameBytes || !is_name(fields[0]))
    return Error{Errc::plugin, "param name " + in_quotes(fields[0]) + " is not letters, digits, '_', '.' or '-'"};
  d.name = fields[0];
  static constexpr std::pair<std::string_view, ParamType> kTypes[] = {
      {"string", ParamType::string}, {"int", ParamType::integer},   {"size", ParamType::size},
      {"duration", ParamType::duration}, {"bool", ParamType::boolean}, {"one_of", ParamType::one_of}};
  auto type = std::find_if(std::begin(kTypes), std::end(kTypes), [&](const auto& t) { return t.first == fields[1]; });
  if (type == std::end(kTypes))
    return Error{Errc::plugin, "param '" + d.name + "': unknown type " + in_quotes(fields[1])};
  d.type = type->second;
  if (auto s = parse_spec(d, fields[2]); !s) return Error{Errc::plugin, "param '" + d.name + "': " + s.error().message};
  const std::string_view presence = fields[3];
  if (presence == "!") {
    d.presence = Presence::required;
  } else if (presence == "?") {
    d.presence = Presence::optional;
  } else if (presence.starts_with("=")) {
    auto value = canonical_value(d, presence.substr(1));
    if (!value) return Error{Errc::plugin, "default of " + value.error().message};
    d.presence = Presence::defaulted;
    d.default_value = std::move(*value);
  } else {
    return Error{Errc::plugin, "param '" + d.name + "': presence " + in_quotes(presence) + " is not !, ? or =DEFAULT"};
  }
  if (fields[4].size() > kMaxDocBytes)
    return Error{Errc::plugin, "param '" + d.name + "': doc longer than " + std::to_string(kMaxDocBytes) + " bytes"};
  d.doc = fields[4];
  return d;
}

}  // namespace

const ParamDecl* ParamDecls::find(std::string_view name) const {
  auto it = std::find_if(params.begin(), params.end(), [&](const ParamDecl& d) { return d.name == name; });
  return it == params.end() ? nullptr : &*it;
}

Result<ParamDecls> parse_param_decls(std::string_view text) {
  auto at = [](size_t line, const std::string& why) { return Error{Errc::plugin, "line " + std::to_string(line) + ": " + why}; };
  if (text.size() > kMaxParamsText) return at(1, "longer than " + std::to_string(kMaxParamsText) + " bytes");
  if (!text.starts_with(kMagic)) return at(1, "does not start with \"shoal-params 1\"");
  if (text.empty() || text.back() != '\n') return at(1 + static_cast<size_t>(std::count(text.begin(), text.end(), '\n')), "does not end with a new line");
  auto lines = split(text.substr(0, text.size() - 1), '\n');
  uint64_t version = 0;
  if (!parse_int_in<uint64_t>(lines[0].substr(kMagic.size()), 1, std::numeric_limits<uint32_t>::max(), version))
    return at(1, "format version " + in_quotes(lines[0].substr(kMagic.size())) + " is not a number");
  if (version != kFormatVersion)
    return at(1, "format version " + std::to_string(version) + " (this runtime reads " + std::to_string(kFormatVersion) + ")");
  if (lines.size() - 1 > kMaxDeclaredParams)
    return at(kMaxDeclaredParams + 2, "more than " + std::to_string(kMaxDeclaredParams) + " params");
  ParamDecls decls;
  for (size_t i = 1; i < lines.size(); ++i) {
    // Tabs split the fields; any other control byte (a NUL, \r, ESC) is refused whole.
    std::string line(lines[i]);
    std::replace(line.begin(), line.end(), '\t', ' ');
    if (has_control(line)) return at(i + 1, "holds a control character");
    auto decl = parse_line(lines[i]);
    if (!decl) return at(i + 1, decl.error().message);
    if (decls.find(decl->name) != nullptr) return at(i + 1, "param '" + decl->name + "' declared twice");
    decls.params.push_back(std::move(*decl));
  }
  return decls;
}

std::string type_text(const ParamDecl& d) {
  switch (d.type) {
    case ParamType::string: return "string";
    case ParamType::integer: return "int " + std::to_string(d.min) + ".." + std::to_string(d.max);
    case ParamType::size: return "size";
    case ParamType::duration: return "duration";
    case ParamType::boolean: return "bool";
    case ParamType::one_of: return "one of " + joined(d.choices, "|");
  }
  return "?";
}

std::string presence_text(const ParamDecl& d) {
  switch (d.presence) {
    case Presence::required: return "required";
    case Presence::optional: return "optional";
    case Presence::defaulted: return "default " + (d.default_value.empty() ? std::string("''") : d.default_value);
  }
  return "?";
}

Result<std::string> canonical_value(const ParamDecl& d, std::string_view value) {
  std::string expected;
  switch (d.type) {
    case ParamType::string:
      return std::string(value);
    case ParamType::integer: {
      int64_t n = 0;
      if (parse_int_in<int64_t>(value, d.min, d.max, n)) return std::to_string(n);
      expected = "an integer from " + std::to_string(d.min) + " to " + std::to_string(d.max);
      break;
    }
    case ParamType::size: {
      uint64_t bytes = 0;
      if (parse_size(value, bytes)) return std::to_string(bytes);
      expected = "a size such as 4MiB or 4096";
      break;
    }
    case ParamType::duration: {
      Duration ns{};
      if (parse_duration(value, ns)) return std::to_string(ns.count());
      expected = "a duration such as 250ms or 30s";
      break;
    }
    case ParamType::boolean:
      if (value == "true" || value == "false") return std::string(value);
      expected = "true or false";
      break;
    case ParamType::one_of: {
      if (std::find(d.choices.begin(), d.choices.end(), value) != d.choices.end()) return std::string(value);
      std::vector<std::string_view> words(d.choices.begin(), d.choices.end());
      return Error{Errc::config, "param '" + d.name + "': expected one of " + joined(d.choices, ", ") + ", found " +
                                     in_quotes(value) + did_you_mean(value, words)};
    }
  }
  return Error{Errc::config, "param '" + d.name + "': expected " + expected + ", found " + in_quotes(value)};
}

std::vector<ParamProblem> check_params(const ParamDecls& decls, const std::map<std::string, std::string>& given,
                                       std::map<std::string, std::string>* canonical) {
  std::vector<ParamProblem> problems;
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : given) {
    const ParamDecl* d = decls.find(name);
    if (d == nullptr) {
      problems.push_back({ParamProblem::At::key, name, "unknown param " + in_quotes(name) + suggestion(decls, name)});
      continue;
    }
    auto v = canonical_value(*d, value);
    if (!v) {
      problems.push_back({ParamProblem::At::value, name, v.error().message});
      continue;
    }
    out[name] = std::move(*v);
  }
  for (const ParamDecl& d : decls.params) {
    if (given.contains(d.name)) continue;
    if (d.presence == Presence::required)
      problems.push_back({ParamProblem::At::missing, {},
                          "missing required param '" + d.name + "'" + (d.doc.empty() ? "" : " (" + d.doc + ")")});
    else if (d.presence == Presence::defaulted)
      out[d.name] = d.default_value;
  }
  if (problems.empty() && canonical != nullptr) *canonical = std::move(out);
  return problems;
}

std::string undeclared_param_message(const ParamDecls& decls, std::string_view name) {
  return "host->param(" + in_quotes(name) + "): not a declared param" + suggestion(decls, name) +
         "; declare it in SHOAL_PARAMS";
}

}  // namespace shoal::detail
