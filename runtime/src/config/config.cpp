// Loads a shoal YAML config (every key: config/reference.md) with yaml-cpp 0.7.
//
// yaml-cpp throws; nothing thrown leaves this file. Every failure is returned as
// Error{Errc::config, "FILE:LINE:COLUMN: message"} (Errc::io when the file cannot be
// read). Three yaml-cpp 0.7 traps are handled here:
//  - duplicate keys are kept by yaml-cpp (lookup returns the first): each mapping is
//    walked pair by pair and a repeated key is an error naming the first one;
//  - aliases are shared nodes, so a small file can expand to ~10^8 nodes when walked
//    (and `&a [*a]` is a cycle): every node visited is counted against kMaxNodes and
//    rendering is depth-bounded;
//  - past 499 levels the parser throws DeepRecursion saying "bad file": reworded;
//  - a double-quoted "\0" becomes a real NUL inside the std::string, which every C string
//    made from it (a plugin path, an env value, a param) would silently end at: refused
//    where each node is visited.
#include <shoal/config.hpp>

#include "common/printable.hpp"
#include "config/values.hpp"
#include "ipc/control.hpp"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <exception>
#include <iterator>
#include <limits>
#include <sstream>
#include <system_error>
#include <thread>
#include <utility>

namespace shoal {
namespace {

namespace fs = std::filesystem;
using Status = Result<void>;

constexpr std::size_t kMaxNodes = 100000;
// Real configs are a few KiB; the cap bounds what an endless or huge file (/dev/zero, a
// log given by mistake) costs before it is refused, instead of growing until bad_alloc.
constexpr std::size_t kMaxFileBytes = std::size_t{16} << 20;
constexpr int kMaxDepth = 499;         // yaml-cpp 0.7 refuses a 500th level (DepthGuard<500>)
constexpr std::size_t kMaxShown = 60;  // characters of a value quoted in a message
// A segment is one memfd every worker maps whole: 1 TiB is far past any real table and
// keeps a typo (`size: 1PiB`) from reaching ftruncate.
constexpr uint64_t kMaxSharedSize = uint64_t{1} << 40;
constexpr std::string_view kNameRule = "a name of letters, digits, '_', '.' or '-'";

struct Ctx {
  std::string source;     // FILE in messages
  fs::path base_dir;      // absolute; relative paths resolve against it
  std::size_t nodes = 0;  // nodes visited so far
  YAML::Mark second_document;  // where a second document starts, if any
};

// A node being read, where errors about it point, and how messages name it.
struct Located {
  YAML::Node node;
  YAML::Mark mark;     // the node's own, or its key's when it has none worth showing
  std::string label;   // "task_timeout", "queue.capacity", "pool 'digest'"
  std::string prefix;  // what the labels of its children start with
};

// ---------------------------------------------------------------- messages

SourcePosition source_position(const YAML::Mark& m) {
  if (m.is_null()) return {1, 1};
  return {static_cast<uint32_t>(m.line + 1), static_cast<uint32_t>(m.column + 1)};
}

std::string position(const YAML::Mark& m) {
  const SourcePosition p = source_position(m);
  return std::to_string(p.line) + ":" + std::to_string(p.column);
}

// A value quoted in a message is cut at kMaxShown characters; paths and parser messages
// are passed max = npos and kept whole.
std::string printable(std::string_view text, std::size_t max = kMaxShown) { return detail::printable(text, max); }

Error error_at(const Ctx& ctx, const YAML::Mark& mark, const std::string& message) {
  return Error{Errc::config, printable(ctx.source, std::string::npos) + ":" + position(mark) + ": " + message};
}

std::string with_label(const std::string& label, const std::string& message) {
  return label.empty() ? message : label + ": " + message;
}

std::string in_quotes(std::string_view text) { return "'" + printable(text) + "'"; }

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar:
      return in_quotes(n.Scalar());
    case YAML::NodeType::Sequence:
      return n.size() == 0 ? "an empty sequence" : "a sequence";
    case YAML::NodeType::Map:
      return n.size() == 0 ? "an empty mapping" : "a mapping";
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

Error expected(const Ctx& ctx, const Located& at, std::string_view what) {
  return error_at(
      ctx, at.mark,
      with_label(at.label, "expected " + std::string(what) + ", found " + describe(at.node)));
}

std::string too_deep() { return "nesting deeper than " + std::to_string(kMaxDepth) + " levels"; }

// ---------------------------------------------------------------- walking

// yaml-cpp marks an empty value (`plugin:` then a new line) at the next token, so a
// null node is reported at its key instead.
YAML::Mark mark_of(const YAML::Node& node, const YAML::Mark& fallback) {
  return node.IsNull() || node.Mark().is_null() ? fallback : node.Mark();
}

Located member(const Located& map, const YAML::Node& key, const YAML::Node& value) {
  const std::string name = printable(key.Scalar());
  std::string label = map.prefix.empty() ? name : map.prefix + "." + name;
  return Located{value, mark_of(value, key.Mark()), label, label};
}

Located element(const Located& seq, const YAML::Node& item, std::size_t index) {
  std::string label = seq.label + "[" + std::to_string(index) + "]";
  return Located{item, mark_of(item, seq.mark), label, label};
}

// Counts one visited node; aliases make a node count each time it is reached.
Status visit(Ctx& ctx, const YAML::Node& node, const YAML::Mark& fallback) {
  if (++ctx.nodes <= kMaxNodes) return {};
  return error_at(ctx, mark_of(node, fallback),
                  "config too large: more than " + std::to_string(kMaxNodes) +
                      " nodes after expanding aliases");
}

// Every scalar the walkers hand on passes here first (keys, values, sequence items), so
// no reader needs its own check for an embedded NUL.
Status no_nul(const Ctx& ctx, const Located& at) {
  if (!at.node.IsScalar()) return {};
  const std::string& text = at.node.Scalar();
  const std::size_t nul = text.find('\0');
  if (nul == std::string::npos) return {};
  return error_at(ctx, at.mark,
                  with_label(at.label, "a NUL character (\\x00) at byte " + std::to_string(nul + 1) + " of " +
                                           in_quotes(text)));
}

// Calls f(key, value) for each pair of a mapping in file order, after counting both
// nodes and checking that the key is a scalar not seen before in this mapping.
template <class F>
Status for_each_pair(Ctx& ctx, const Located& map, F&& f) {
  std::map<std::string, YAML::Mark, std::less<>> seen;
  for (auto it = map.node.begin(); it != map.node.end(); ++it) {
    const YAML::Node key = it->first;
    const YAML::Node value = it->second;
    if (auto s = visit(ctx, key, map.mark); !s) return s;
    if (auto s = visit(ctx, value, map.mark); !s) return s;
    const YAML::Mark key_mark = mark_of(key, map.mark);
    if (!key.IsScalar())
      return error_at(ctx, key_mark,
                      with_label(map.label, "expected a key name, found " + describe(key)));
    if (auto s = no_nul(ctx, Located{key, key_mark, map.label, map.prefix}); !s) return s;
    const auto [first, fresh] = seen.emplace(key.Scalar(), key_mark);
    if (!fresh)
      return error_at(ctx, key_mark,
                      "duplicate key " + in_quotes(key.Scalar()) + " (first at " +
                          position(first->second) + ")");
    const Located located = member(map, key, value);
    if (auto s = no_nul(ctx, located); !s) return s;
    if (auto s = f(key, located); !s) return s;
  }
  return {};
}

// Calls f(item) for each item of a sequence, after counting it.
template <class F>
Status for_each_item(Ctx& ctx, const Located& seq, F&& f) {
  std::size_t index = 0;
  for (auto it = seq.node.begin(); it != seq.node.end(); ++it, ++index) {
    const YAML::Node item = *it;
    if (auto s = visit(ctx, item, seq.mark); !s) return s;
    const Located located = element(seq, item, index);
    if (auto s = no_nul(ctx, located); !s) return s;
    if (auto s = f(located); !s) return s;
  }
  return {};
}

// One known key of a mapping and how its value is read into T.
template <class T>
struct Field {
  std::string_view key;
  bool required;
  Status (*read)(Ctx&, const Located&, T&);
};

template <class T, std::size_t N>
Error unknown_key(const Ctx& ctx, const Located& map, const YAML::Node& key,
                  const Field<T> (&fields)[N]) {
  std::array<std::string_view, N> names;
  std::transform(std::begin(fields), std::end(fields), names.begin(),
                 [](const Field<T>& f) { return f.key; });
  std::string message = "unknown key " + in_quotes(key.Scalar());
  if (!map.label.empty()) message += " in " + map.label;
  message += detail::did_you_mean(key.Scalar(), names);
  return error_at(ctx, key.Mark(), message);
}

// The one walker for mappings with a fixed set of keys: unknown keys and missing
// required keys are errors; each known key's value goes to its reader.
template <class T, std::size_t N>
Status read_fields(Ctx& ctx, const Located& map, const Field<T> (&fields)[N], T& out) {
  if (!map.node.IsMap()) return expected(ctx, map, "a mapping");
  std::array<bool, N> seen{};
  auto status = for_each_pair(ctx, map, [&](const YAML::Node& key, const Located& value) {
    const auto* f = std::find_if(std::begin(fields), std::end(fields),
                                 [&](const Field<T>& x) { return x.key == key.Scalar(); });
    if (f == std::end(fields)) return Status(unknown_key(ctx, map, key, fields));
    seen[static_cast<std::size_t>(f - fields)] = true;
    return f->read(ctx, value, out);
  });
  if (!status) return status;
  for (std::size_t i = 0; i < N; ++i) {
    if (fields[i].required && !seen[i])
      return error_at(
          ctx, map.mark,
          with_label(map.label, "missing required key '" + std::string(fields[i].key) + "'"));
  }
  return {};
}

// ---------------------------------------------------------------- values

// Accepts a scalar for which parse(text) is true; anything else is "expected <what>".
template <class Parse>
Status read_scalar(const Ctx& ctx, const Located& at, std::string_view what, Parse&& parse) {
  if (at.node.IsScalar() && parse(at.node.Scalar())) return {};
  return expected(ctx, at, what);
}

// A scalar's text with ${NAME} expanded from the environment.
Result<std::string> expanded(const Ctx& ctx, const Located& at, std::string_view what) {
  if (!at.node.IsScalar()) return expected(ctx, at, what);
  detail::EnvExpansion e = detail::expand_env(at.node.Scalar(), ctx.base_dir.string());
  switch (e.status) {
    case detail::EnvExpansion::Status::ok:
      return std::move(e.text);
    case detail::EnvExpansion::Status::unset:
      return error_at(
          ctx, at.mark,
          with_label(at.label, "environment variable '" + printable(e.detail) + "' is not set"));
    case detail::EnvExpansion::Status::malformed:
      break;
  }
  return error_at(ctx, at.mark,
                  with_label(at.label, printable(e.detail) + " in " + in_quotes(at.node.Scalar()) +
                                           " (write ${NAME}, or $$ for a literal $)"));
}

// yaml-cpp tags a quoted scalar "!" (a plain one "?").
bool quoted(const YAML::Node& node) { return node.Tag() == "!"; }

// `workers: "2"` is a string in YAML; reading it as a number would make the loader
// disagree with every other YAML tool about the same file. Refused, saying why, when the
// text would otherwise have been read.
template <class Parse>
Status read_unquoted(const Ctx& ctx, const Located& at, std::string_view what, Parse&& parse) {
  if (at.node.IsScalar() && quoted(at.node) && parse(at.node.Scalar()))
    return error_at(ctx, at.mark,
                    with_label(at.label, "expected " + std::string(what) + ", found the string " +
                                             in_quotes(at.node.Scalar()) + " (write it without quotes)"));
  return read_scalar(ctx, at, what, parse);
}

template <class I>
Status read_int(const Ctx& ctx, const Located& at, I min, I max, I& out) {
  const std::string what =
      min == 0 && max == std::numeric_limits<I>::max()
          ? std::string("a non-negative integer")
          : "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  return read_unquoted(ctx, at, what, [&](const std::string& text) {
    return detail::parse_int_in(text, min, max, out);
  });
}

Status read_duration(const Ctx& ctx, const Located& at, Duration& out) {
  return read_scalar(ctx, at, "a duration such as 250ms or 30s",
                     [&](const std::string& text) { return parse_duration(text, out); });
}

Status read_size(const Ctx& ctx, const Located& at, uint64_t min, uint64_t max,
                 std::string_view what, uint64_t& out) {
  return read_scalar(ctx, at, what, [&](const std::string& text) {
    uint64_t bytes = 0;
    if (!parse_size(text, bytes) || bytes < min || bytes > max) return false;
    out = bytes;
    return true;
  });
}

Status read_bool(const Ctx& ctx, const Located& at, bool& out) {
  return read_unquoted(ctx, at, "true or false", [&](const std::string& t) {
    if (t == "true") out = true;
    else if (t == "false") out = false;
    else return false;
    return true;
  });
}

Status read_name(Ctx& ctx, const Located& at, std::string& out) {
  return read_scalar(ctx, at, kNameRule, [&](const std::string& text) {
    out = text;
    return detail::is_name(text);
  });
}

// A path with ${NAME} expanded, made absolute against the base folder and normalized.
Status read_path(Ctx& ctx, const Located& at, fs::path& out) {
  constexpr std::string_view what = "a file path";
  Result<std::string> text = expanded(ctx, at, what);
  if (!text) return text.error();
  if (text->empty()) return expected(ctx, at, what);
  const fs::path p(*text);
  out = (p.is_absolute() ? p : ctx.base_dir / p).lexically_normal();
  return {};
}

// Writes a sequence or mapping (or anything inside one) to a flow-style emitter.
Status render(Ctx& ctx, const Located& at, YAML::Emitter& out, int depth) {
  if (depth > kMaxDepth) return error_at(ctx, at.mark, too_deep());
  if (at.node.IsMap()) {
    out << YAML::BeginMap;
    auto s = for_each_pair(ctx, at, [&](const YAML::Node& key, const Located& value) {
      out << YAML::Key << key.Scalar() << YAML::Value;
      return render(ctx, value, out, depth + 1);
    });
    out << YAML::EndMap;
    return s;
  }
  if (at.node.IsSequence()) {
    out << YAML::BeginSeq;
    auto s = for_each_item(ctx, at,
                           [&](const Located& item) { return render(ctx, item, out, depth + 1); });
    out << YAML::EndSeq;
    return s;
  }
  if (!at.node.IsScalar()) {
    out << YAML::Null;
    return {};
  }
  Result<std::string> text = expanded(ctx, at, "a value");
  if (!text) return text.error();
  if (quoted(at.node)) out << YAML::DoubleQuoted;  // it was quoted: keep it a string
  out << *text;
  return {};
}

// A param's value: a scalar as its (expanded) text, null as "", anything else as YAML
// flow text such as "[a, b]" or "{k: v}".
Result<std::string> param_text(Ctx& ctx, const Located& at) {
  if (at.node.IsNull()) return std::string();
  if (at.node.IsScalar()) return expanded(ctx, at, "a value");
  YAML::Emitter out;
  out.SetMapFormat(YAML::Flow);
  out.SetSeqFormat(YAML::Flow);
  if (auto s = render(ctx, at, out, 1); !s) return s.error();
  if (!out.good())
    return error_at(ctx, at.mark,
                    with_label(at.label, "cannot write as YAML: " +
                                             printable(out.GetLastError(), std::string::npos)));
  return std::string(out.c_str(), out.size());
}

// Each param's position is kept: `shoal check` points at it when the module's declared
// params refuse it.
Status read_params(Ctx& ctx, const Located& at, std::map<std::string, std::string>& out,
                   std::map<std::string, ParamPosition>& positions) {
  if (!at.node.IsMap()) return expected(ctx, at, "a mapping");
  return for_each_pair(ctx, at, [&](const YAML::Node& key, const Located& value) {
    Result<std::string> text = param_text(ctx, value);
    if (!text) return Status(text.error());
    out[key.Scalar()] = std::move(*text);
    positions[key.Scalar()] = ParamPosition{source_position(key.Mark()), source_position(value.mark)};
    return Status();
  });
}

Status read_env(Ctx& ctx, const Located& at, std::map<std::string, std::string>& out) {
  if (!at.node.IsMap()) return expected(ctx, at, "a mapping of variable names to strings");
  return for_each_pair(ctx, at, [&](const YAML::Node& key, const Located& value) {
    const Located name{key, key.Mark(), at.label, at.prefix};
    if (auto s =
            read_scalar(ctx, name, "a variable name such as OMP_NUM_THREADS", detail::is_env_name);
        !s)
      return s;
    Result<std::string> text = expanded(ctx, value, "a string");
    if (!text) return Status(text.error());
    out[key.Scalar()] = std::move(*text);
    return Status();
  });
}

// `all`, or a sequence of variable names: the host variables a worker gets besides the
// basic ones (process/spawn.hpp). Names only, never values: a value belongs in `env`.
Status read_env_inherit(Ctx& ctx, const Located& at, PoolConfig& p) {
  constexpr std::string_view what = "all or a sequence of variable names such as [CUDA_VISIBLE_DEVICES]";
  if (at.node.IsScalar() && at.node.Scalar() == "all") {
    p.env_inherit_all = true;
    return {};
  }
  if (!at.node.IsSequence()) return expected(ctx, at, what);
  return for_each_item(ctx, at, [&](const Located& item) {
    if (auto s = read_scalar(ctx, item, "a variable name such as CUDA_VISIBLE_DEVICES", detail::is_env_name); !s)
      return s;
    p.env_inherit.push_back(item.node.Scalar());
    return Status();
  });
}

// ---------------------------------------------------------------- key tables

constexpr Field<ResourceConfig> kResourceFields[] = {
    {"name", true,
     [](Ctx& c, const Located& v, ResourceConfig& r) { return read_name(c, v, r.name); }},
    {"module", true,
     [](Ctx& c, const Located& v, ResourceConfig& r) {
       r.module_at = source_position(v.mark);
       return read_path(c, v, r.module);
     }},
    {"priority", false,
     [](Ctx& c, const Located& v, ResourceConfig& r) {
       return read_int<int32_t>(c, v, std::numeric_limits<int32_t>::min(),
                                std::numeric_limits<int32_t>::max(), r.priority);
     }},
    {"params", false,
     [](Ctx& c, const Located& v, ResourceConfig& r) { return read_params(c, v, r.params, r.params_at); }},
};

constexpr Field<SharedConfig> kSharedFields[] = {
    {"name", true, [](Ctx& c, const Located& v, SharedConfig& e) { return read_name(c, v, e.name); }},
    {"builder", true,
     [](Ctx& c, const Located& v, SharedConfig& e) {
       e.builder_at = source_position(v.mark);
       return read_path(c, v, e.builder);
     }},
    {"size", true,
     [](Ctx& c, const Located& v, SharedConfig& e) {
       e.size_at = source_position(v.mark);
       return read_size(c, v, 1, kMaxSharedSize, "a size from 1 byte to 1TiB such as 256MiB", e.size);
     }},
    {"params", false,
     [](Ctx& c, const Located& v, SharedConfig& e) { return read_params(c, v, e.params, e.params_at); }},
};

// How messages name the entries of a list: "resource"/"resources", "shared entry"/...
struct EntryNames {
  std::string_view one, many;
};

// A list of named entries (`resources:`, `shared:`): each read with `fields`, names unique
// in the list, at most `max` entries.
template <class T, std::size_t N>
Status read_named_list(Ctx& ctx, const Located& at, const Field<T> (&fields)[N], EntryNames what, std::size_t max,
                       std::vector<T>& out) {
  if (!at.node.IsSequence()) return expected(ctx, at, "a sequence of " + std::string(what.many));
  if (at.node.size() > max)
    return error_at(ctx, at.mark,
                    with_label(at.label, std::to_string(at.node.size()) + " " + std::string(what.many) +
                                             ", more than the " + std::to_string(max) + " a pool may have"));
  std::map<std::string, YAML::Mark> names;
  return for_each_item(ctx, at, [&](const Located& item) {
    T entry;
    if (auto s = read_fields(ctx, item, fields, entry); !s) return s;
    const YAML::Mark mark = item.node["name"].Mark();  // present: required, not repeated
    const auto [first, fresh] = names.emplace(entry.name, mark);
    if (!fresh)
      return Status(error_at(ctx, mark,
                             item.label + ".name: duplicate " + std::string(what.one) + " name " + in_quotes(entry.name) +
                                 " (first at " + position(first->second) + ")"));
    out.push_back(std::move(entry));
    return Status();
  });
}

constexpr Field<PoolConfig> kQueueFields[] = {
    {"capacity", false,
     [](Ctx& c, const Located& v, PoolConfig& p) {
       return read_size(c, v, uint64_t{4} << 10, uint64_t{1} << 30,
                        "a size from 4KiB to 1GiB such as 4MiB", p.queue_capacity);
     }},
};

constexpr Field<PoolConfig> kShutdownFields[] = {
    {"grace", false,
     [](Ctx& c, const Located& v, PoolConfig& p) { return read_duration(c, v, p.grace); }},
    {"fini_timeout", false,
     [](Ctx& c, const Located& v, PoolConfig& p) { return read_duration(c, v, p.fini_timeout); }},
};

constexpr Field<PoolConfig> kLimitsFields[] = {
    {"address_space", false,
     [](Ctx& c, const Located& v, PoolConfig& p) {
       return read_size(c, v, 0, std::numeric_limits<uint64_t>::max(), "a size such as 2GiB (0: no limit)",
                        p.limits.address_space);
     }},
    {"cpu_seconds", false,
     [](Ctx& c, const Located& v, PoolConfig& p) {
       return read_int<uint64_t>(c, v, 0, uint64_t{1} << 40, p.limits.cpu_seconds);
     }},
    {"open_files", false,
     [](Ctx& c, const Located& v, PoolConfig& p) {
       return read_int<uint64_t>(c, v, 0, uint64_t{1} << 30, p.limits.open_files);
     }},
    {"core_dumps", false,
     [](Ctx& c, const Located& v, PoolConfig& p) { return read_bool(c, v, p.limits.core_dumps); }},
    {"no_new_privs", false,
     [](Ctx& c, const Located& v, PoolConfig& p) { return read_bool(c, v, p.limits.no_new_privs); }},
};

constexpr Field<SandboxPath> kSandboxPathFields[] = {
    {"path", true, [](Ctx& c, const Located& v, SandboxPath& s) { return read_path(c, v, s.path); }},
    {"access", true,
     [](Ctx& c, const Located& v, SandboxPath& s) {
       return read_scalar(c, v, "read or write", [&](const std::string& t) {
         s.write = t == "write";
         return t == "read" || t == "write";
       });
     }},
};

constexpr Field<Sandbox> kSandboxFields[] = {
    {"filesystem", false,
     [](Ctx& c, const Located& v, Sandbox& s) {
       if (!v.node.IsSequence()) return Status(expected(c, v, "a sequence of {path, access} entries"));
       return for_each_item(c, v, [&](const Located& item) {
         SandboxPath entry;
         if (auto st = read_fields(c, item, kSandboxPathFields, entry); !st) return st;
         s.filesystem.push_back(std::move(entry));
         return Status();
       });
     }},
};

constexpr Field<PoolConfig> kPoolFields[] = {
    {"plugin", true,
     [](Ctx& c, const Located& v, PoolConfig& p) {
       p.plugin_at = source_position(v.mark);
       return read_path(c, v, p.plugin);
     }},
    {"workers", false,
     [](Ctx& c, const Located& v, PoolConfig& p) {
       return read_int<uint32_t>(c, v, 1, 1024, p.workers);
     }},
    {"params", false,
     [](Ctx& c, const Located& v, PoolConfig& p) { return read_params(c, v, p.params, p.params_at); }},
    {"max_tasks_per_worker", false,
     [](Ctx& c, const Located& v, PoolConfig& p) {
       return read_int<uint64_t>(c, v, 0, std::numeric_limits<uint64_t>::max(),
                                 p.max_tasks_per_worker);
     }},
    {"max_memory", false,
     [](Ctx& c, const Located& v, PoolConfig& p) {
       return read_size(c, v, 0, std::numeric_limits<uint64_t>::max(),
                        "a size such as 512MiB or 4096", p.max_memory);
     }},
    {"task_timeout", false,
     [](Ctx& c, const Located& v, PoolConfig& p) { return read_duration(c, v, p.task_timeout); }},
    {"start_timeout", false,
     [](Ctx& c, const Located& v, PoolConfig& p) { return read_duration(c, v, p.start_timeout); }},
    {"retries", false,
     [](Ctx& c, const Located& v, PoolConfig& p) {
       return read_int<uint32_t>(c, v, 0, 100, p.retries);
     }},
    {"fini_priority", false,
     [](Ctx& c, const Located& v, PoolConfig& p) {
       return read_int<int32_t>(c, v, std::numeric_limits<int32_t>::min(),
                                std::numeric_limits<int32_t>::max(), p.fini_priority);
     }},
    {"queue", false,
     [](Ctx& c, const Located& v, PoolConfig& p) { return read_fields(c, v, kQueueFields, p); }},
    {"shutdown", false,
     [](Ctx& c, const Located& v, PoolConfig& p) { return read_fields(c, v, kShutdownFields, p); }},
    {"limits", false,
     [](Ctx& c, const Located& v, PoolConfig& p) { return read_fields(c, v, kLimitsFields, p); }},
    {"sandbox", false,
     [](Ctx& c, const Located& v, PoolConfig& p) {
       p.sandbox.enabled = true;
       if (v.node.IsNull()) return Status();  // `sandbox:` alone: on, nothing beyond the defaults
       return read_fields(c, v, kSandboxFields, p.sandbox);
     }},
    {"env", false, [](Ctx& c, const Located& v, PoolConfig& p) { return read_env(c, v, p.env); }},
    {"env_inherit", false, read_env_inherit},
    {"resources", false,
     [](Ctx& c, const Located& v, PoolConfig& p) {
       return read_named_list(c, v, kResourceFields, {"resource", "resources"}, std::numeric_limits<std::size_t>::max(),
                              p.resources);
     }},
    {"shared", false,
     [](Ctx& c, const Located& v, PoolConfig& p) {
       return read_named_list(c, v, kSharedFields, {"shared entry", "shared entries"}, detail::kWorkerMaxShared, p.shared);
     }},
};

uint32_t default_workers() { return std::clamp(std::thread::hardware_concurrency(), 1u, 1024u); }

Status read_pools(Ctx& ctx, const Located& at, Config& cfg) {
  if (!at.node.IsMap() || at.node.size() == 0)
    return expected(ctx, at, "a non-empty mapping of pool names to pools");
  return for_each_pair(ctx, at, [&](const YAML::Node& key, const Located& value) {
    PoolConfig pool;
    if (auto s = read_name(ctx, Located{key, key.Mark(), "pool name", ""}, pool.name); !s) return s;
    pool.workers = default_workers();
    const Located body{value.node, value.mark, "pool " + in_quotes(pool.name), ""};
    if (auto s = read_fields(ctx, body, kPoolFields, pool); !s) return s;
    cfg.pools.push_back(std::move(pool));
    return Status();
  });
}

// A non-empty string with ${NAME} expanded (stream, group and consumer names).
Status read_text(Ctx& ctx, const Located& at, std::string& out) {
  constexpr std::string_view what = "a non-empty string";
  Result<std::string> text = expanded(ctx, at, what);
  if (!text) return text.error();
  if (text->empty()) return expected(ctx, at, what);
  out = std::move(*text);
  return {};
}

constexpr Field<RedisConfig> kRedisFields[] = {
    {"url", false,
     [](Ctx& c, const Located& v, RedisConfig& r) {
       if (auto s = read_text(c, v, r.url); !s) return s;
       if (r.url.starts_with("redis://") || r.url.starts_with("unix://")) return Status();
       // Not expected(): it would quote the value, password and all.
       return Status(error_at(c, v.mark,
                              with_label(v.label, "expected a URL such as redis://127.0.0.1:6379 or "
                                                  "unix:///run/redis.sock, found '" +
                                                      printable(detail::redact_url(r.url), 200) + "'")));
     }},
    {"password_file", false, [](Ctx& c, const Located& v, RedisConfig& r) { return read_path(c, v, r.password_file); }},
    {"stream", false, [](Ctx& c, const Located& v, RedisConfig& r) { return read_text(c, v, r.stream); }},
    {"group", false, [](Ctx& c, const Located& v, RedisConfig& r) { return read_text(c, v, r.group); }},
    {"consumer", false, [](Ctx& c, const Located& v, RedisConfig& r) { return read_text(c, v, r.consumer); }},
    {"pool", false, [](Ctx& c, const Located& v, RedisConfig& r) { return read_name(c, v, r.pool); }},
    {"visibility_timeout", false,
     [](Ctx& c, const Located& v, RedisConfig& r) {
       // A host refreshes its running entries every third of this; much below 100ms it
       // would do little else, and one slow round trip would let another host steal them.
       if (auto s = read_duration(c, v, r.visibility_timeout); !s) return s;
       if (r.visibility_timeout >= std::chrono::milliseconds(100)) return Status();
       return Status(expected(c, v, "a duration of at least 100ms"));
     }},
    {"max_deliveries", false,
     [](Ctx& c, const Located& v, RedisConfig& r) { return read_int<uint32_t>(c, v, 1, 1000, r.max_deliveries); }},
    {"max_stream_length", false,
     [](Ctx& c, const Located& v, RedisConfig& r) {
       return read_int<uint64_t>(c, v, 1, uint64_t{1} << 40, r.max_stream_length);
     }},
    {"in_flight", false,
     [](Ctx& c, const Located& v, RedisConfig& r) { return read_int<uint32_t>(c, v, 0, 65536, r.in_flight); }},
    {"max_input", false,
     [](Ctx& c, const Located& v, RedisConfig& r) {
       // 512MiB: Redis refuses a longer string (proto-max-bulk-len's default).
       return read_size(c, v, 1, uint64_t{512} << 20, "a size from 1 byte to 512MiB such as 64MiB", r.max_input);
     }},
};

Status read_listen(Ctx& c, const Located& v, MetricsConfig& m) {
  m.listen_at = source_position(v.mark);
  return read_scalar(c, v, "an address such as 127.0.0.1:9464, [::1]:9464 or :9464 (port 0 to 65535)",
                     [&](const std::string& text) {
                       std::string host;
                       uint16_t port = 0;
                       if (!detail::parse_listen(text, host, port)) return false;
                       m.listen = text;
                       return true;
                     });
}

constexpr Field<MetricsConfig> kMetricsFields[] = {{"listen", true, read_listen}};

constexpr Field<Config> kTopFields[] = {
    {"pools", true, read_pools},
    {"redis", false,
     [](Ctx& c, const Located& v, Config& cfg) { return read_fields(c, v, kRedisFields, cfg.redis); }},
    {"metrics", false,
     [](Ctx& c, const Located& v, Config& cfg) {
       if (v.node.IsScalar()) return read_listen(c, v, cfg.metrics);
       return read_fields(c, v, kMetricsFields, cfg.metrics);
     }},
};

// Counts the documents of a stream without building them. yaml-cpp 0.7's LoadAll loops
// forever on some malformed streams (a leading ',' yields an endless run of null
// documents, each one allocated: yaml-cpp issue #1040), so documents are counted here
// with a bound instead, and only the first is built, with Load.
class DocumentCounter : public YAML::EventHandler {
 public:
  int documents = 0;
  YAML::Mark second;
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents == 2) second = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

std::vector<YAML::Node> load_documents(const std::string& text, YAML::Mark& second) {
  std::vector<YAML::Node> docs;
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentCounter counter;
  for (int calls = 0; calls < 2 && parser.HandleNextDocument(counter); ++calls) {
  }
  if (counter.documents == 0) return docs;
  docs.push_back(YAML::Load(text));
  if (counter.documents > 1) docs.push_back(YAML::Node());  // only its position is reported
  second = counter.second;
  return docs;
}

Status read_documents(Ctx& ctx, const std::vector<YAML::Node>& docs, Config& cfg) {
  const YAML::Mark start;  // 1:1
  if (docs.empty())
    return error_at(ctx, start, "expected a mapping with 'pools', found an empty document");
  if (docs.size() > 1) return error_at(ctx, ctx.second_document, "expected one YAML document, found more");
  const Located root{docs[0], mark_of(docs[0], start), "", ""};
  if (auto s = visit(ctx, root.node, start); !s) return s;
  if (!root.node.IsMap()) return expected(ctx, root, "a mapping with 'pools'");
  return read_fields(ctx, root, kTopFields, cfg);
}

fs::path absolute_dir(const fs::path& dir) {
  std::error_code ec;
  const fs::path abs = fs::absolute(dir.empty() ? fs::path(".") : dir, ec);
  return ec ? dir : abs.lexically_normal();
}

Error io_error(const fs::path& file, int err) {
  return Error{Errc::io, printable(file.string(), std::string::npos) + ": cannot read: " +
                             std::generic_category().message(err)};
}

Result<std::string> read_file(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error(file, errno);
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0 && text.size() + static_cast<std::size_t>(n) > kMaxFileBytes) {
      ::close(fd);
      return Error{Errc::io, printable(file.string(), std::string::npos) + ": cannot read: larger than " +
                                 std::to_string(kMaxFileBytes >> 20) + " MiB, the most a config file may hold"};
    }
    if (n > 0) {
      text.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      const int err = n < 0 ? errno : 0;
      ::close(fd);
      if (err != 0) return io_error(file, err);
      return text;
    }
  }
}

}  // namespace

Result<Config> load_config_string(std::string_view yaml, const std::string& source,
                                  const std::filesystem::path& base_dir) {
  Ctx ctx{source, absolute_dir(base_dir), 0, {}};
  try {
    const std::vector<YAML::Node> docs = load_documents(std::string(yaml), ctx.second_document);
    Config cfg;
    cfg.source = source;
    if (auto s = read_documents(ctx, docs, cfg); !s) return s.error();
    return cfg;
  } catch (const YAML::DeepRecursion& e) {  // its own message says "bad file"
    return error_at(ctx, e.mark, too_deep());
  } catch (const YAML::Exception& e) {  // ParserException and the rest: mark + msg
    return error_at(ctx, e.mark, printable(e.msg, std::string::npos));
  } catch (const std::exception& e) {  // bad_alloc and the like: no position, so 1:1
    return error_at(ctx, YAML::Mark::null_mark(), printable(e.what(), std::string::npos));
  }
}

Result<Config> load_config_file(const std::filesystem::path& file) {
  Result<std::string> text = read_file(file);
  if (!text) return text.error();
  return load_config_string(*text, file.string(), file.parent_path());
}

}  // namespace shoal
