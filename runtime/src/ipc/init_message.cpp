#include "ipc/init_message.hpp"

#include "common/printable.hpp"
#include "ipc/control.hpp"
#include "ipc/layout.hpp"

#include <bit>
#include <charconv>
#include <limits>
#include <optional>
#include <type_traits>

namespace shoal::detail {

namespace {

constexpr std::string_view kResource = "resource.";
constexpr std::string_view kParam = "param.";
constexpr std::string_view kShared = "shared.";
constexpr std::string_view kBuildParam = "build.param.";
// More would be a config no one writes; the bound keeps a bad index from allocating.
constexpr size_t kMaxResources = 4096;
constexpr uint64_t kMaxRingCapacity = uint64_t{1} << 62;

// The whole text, decimal, in T's range: "12x", "", "-1" for an unsigned, or a value past
// the type are errors, never a prefix or a wrapped number (strtoull took them).
template <class T>
std::optional<T> number(std::string_view text) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::optional<bool> flag(std::string_view text) {
  if (text == "1") return true;
  if (text == "0") return false;
  return std::nullopt;
}

void put(KeyValues& kv, std::string key, const std::string& value) { kv.emplace_back(std::move(key), value); }

template <class T>
  requires std::is_integral_v<T>
void put(KeyValues& kv, std::string key, T value) {
  kv.emplace_back(std::move(key), std::is_same_v<T, bool> ? (value ? "1" : "0") : std::to_string(value));
}

// One table of the scalar fields, read by both directions: a key added to one side only
// cannot exist. M is InitMessage or const InitMessage.
template <class M, class F>
void scalars(M& m, F&& f) {
  f("pool", m.pool);
  f("plugin", m.plugin);
  f("index", m.index);
  f("workers", m.workers);
  f("capacity", m.capacity);
  f("segment_size", m.segment_size);
  f("grace_ns", m.grace_ns);
  f("fini_timeout_ns", m.fini_timeout_ns);
  f("fini_priority", m.fini_priority);
  f("max_memory", m.max_memory);
  f("host_pid", m.host_pid);
  f("recover", m.recover);
  f("recover_only", m.recover_only);
  f("limit.address_space", m.limit_address_space);
  f("limit.cpu_seconds", m.limit_cpu_seconds);
  f("limit.open_files", m.limit_open_files);
  f("limit.core_dumps", m.core_dumps);
  f("limit.no_new_privs", m.no_new_privs);
  f("sandbox", m.sandbox);
  f("pinned_files", m.pinned_files);
  f("build.name", m.build_name);
  f("build.builder", m.build_builder);
  f("build.size", m.build_size);
}

template <class T>
bool assign(T& field, const std::string& text) {
  if constexpr (std::is_same_v<T, std::string>) {
    field = text;
    return true;
  } else if constexpr (std::is_same_v<T, bool>) {
    auto v = flag(text);
    if (v) field = *v;
    return v.has_value();
  } else {
    auto v = number<T>(text);
    if (v) field = *v;
    return v.has_value();
  }
}

}  // namespace

std::string encode_init(const InitMessage& m) {
  KeyValues kv;
  put(kv, "version", InitMessage::kVersion);
  scalars(m, [&](const char* key, const auto& field) { put(kv, key, field); });
  for (const auto& [path, write] : m.sandbox_paths) put(kv, write ? "sandbox.write" : "sandbox.read", path);
  for (const auto& [k, v] : m.params) put(kv, std::string(kParam) + k, v);
  for (const auto& [k, v] : m.build_params) put(kv, std::string(kBuildParam) + k, v);
  for (size_t i = 0; i < m.resources.size(); ++i) {
    const auto& r = m.resources[i];
    const std::string pre = std::string(kResource) + std::to_string(i) + ".";
    put(kv, pre + "name", r.name);
    put(kv, pre + "module", r.module);
    put(kv, pre + "priority", r.priority);
    for (const auto& [k, v] : r.params) put(kv, pre + std::string(kParam) + k, v);
  }
  for (size_t i = 0; i < m.shared.size(); ++i) {
    const std::string pre = std::string(kShared) + std::to_string(i) + ".";
    put(kv, pre + "name", m.shared[i].name);
    put(kv, pre + "size", m.shared[i].size);
  }
  return encode_kv(kv);
}

std::variant<InitMessage, std::string> decode_init(std::string_view body) {
  auto kv = decode_kv(body);
  if (!kv) return std::string("init message: not a list of keys and values");
  const bool versioned = !kv->empty() && kv->front().first == "version";
  if (!versioned || number<uint32_t>(kv->front().second) != InitMessage::kVersion)
    return "init message: version " + (versioned ? printable(kv->front().second, 16) : std::string("missing")) +
           ", this worker reads " + std::to_string(InitMessage::kVersion) + " (host and worker of different builds?)";
  InitMessage m;
  const auto bad = [](const std::string& key, const std::string& value) {
    return "init message: " + printable(key, 64) + ": malformed value '" + printable(value, 64) + "'";
  };
  for (size_t i = 1; i < kv->size(); ++i) {
    // Not a structured binding: clang 14 (the fuzz build) cannot capture one in a lambda.
    const std::string& key = (*kv)[i].first;
    const std::string& value = (*kv)[i].second;
    bool known = false, ok = true;
    scalars(m, [&](const char* name, auto& field) {
      if (known || key != name) return;
      known = true;
      ok = assign(field, value);
    });
    if (known) {
      if (!ok) return bad(key, value);
      continue;
    }
    if (key == "sandbox.read" || key == "sandbox.write") {
      m.sandbox_paths.emplace_back(value, key == "sandbox.write");
    } else if (key.starts_with(kParam)) {
      m.params[key.substr(kParam.size())] = value;
    } else if (key.starts_with(kBuildParam)) {
      m.build_params[key.substr(kBuildParam.size())] = value;
    } else if (key.starts_with(kResource)) {
      // resource.<i>.<field>: name, module, priority, param.<key>
      const size_t dot = key.find('.', kResource.size());
      const auto index = dot == std::string::npos
                             ? std::nullopt
                             : number<size_t>(std::string_view(key).substr(kResource.size(), dot - kResource.size()));
      if (!index || *index >= kMaxResources) return "init message: unknown key '" + printable(key, 64) + "'";
      if (m.resources.size() <= *index) m.resources.resize(*index + 1);
      auto& r = m.resources[*index];
      const std::string field = key.substr(dot + 1);
      if (field == "name") r.name = value;
      else if (field == "module") r.module = value;
      else if (field == "priority") {
        if (!assign(r.priority, value)) return bad(key, value);
      } else if (field.starts_with(kParam)) r.params[field.substr(kParam.size())] = value;
      else return "init message: unknown key '" + printable(key, 64) + "'";
    } else if (key.starts_with(kShared)) {
      // shared.<i>.<field>: name, size
      const size_t dot = key.find('.', kShared.size());
      const auto index = dot == std::string::npos
                             ? std::nullopt
                             : number<size_t>(std::string_view(key).substr(kShared.size(), dot - kShared.size()));
      const std::string field = dot == std::string::npos ? std::string() : key.substr(dot + 1);
      if (!index || *index >= kWorkerMaxShared || (field != "name" && field != "size"))
        return "init message: unknown key '" + printable(key, 64) + "'";
      if (m.shared.size() <= *index) m.shared.resize(*index + 1);
      if (field == "name") m.shared[*index].name = value;
      else if (!assign(m.shared[*index].size, value)) return bad(key, value);
    } else {
      return "init message: unknown key '" + printable(key, 64) + "'";
    }
  }
  if (m.builder_role()) {
    if (m.build_name.empty() || m.build_size == 0)
      return std::string("init message: build.name or build.size missing in the builder role");
    return m;
  }
  if (m.plugin.empty() || m.workers == 0 || m.capacity == 0 || m.index >= m.workers)
    return std::string("init message: plugin, workers, capacity or index missing or out of range");
  for (size_t i = 0; i < m.resources.size(); ++i)
    if (m.resources[i].name.empty() || m.resources[i].module.empty())
      return "init message: resource " + std::to_string(i) + " has no name or module";
  for (size_t i = 0; i < m.shared.size(); ++i)
    if (m.shared[i].name.empty() || m.shared[i].size == 0)
      return "init message: shared segment " + std::to_string(i) + " has no name or size";
  return m;
}

std::string segment_mismatch(const InitMessage& m, uint64_t descriptor_size) {
  // Bounded above so that the layout's size cannot wrap around.
  if (m.capacity < kMinRingCapacity || m.capacity > kMaxRingCapacity || !std::has_single_bit(m.capacity))
    return "init message: ring capacity " + std::to_string(m.capacity) + " is not a power of two from " +
           std::to_string(kMinRingCapacity) + " to 2^62 bytes";
  const uint64_t expected = SegmentLayout{m.capacity}.total();
  if (m.segment_size != expected)
    return "init message: segment_size " + std::to_string(m.segment_size) + " does not match rings of " +
           std::to_string(m.capacity) + " bytes (" + std::to_string(expected) +
           " bytes; host and worker of different builds?)";
  if (descriptor_size != m.segment_size)
    return "shared-memory segment (descriptor 3) is " + std::to_string(descriptor_size) + " bytes, the host sent " +
           std::to_string(m.segment_size) + ": not this worker's segment";
  return {};
}

}  // namespace shoal::detail
