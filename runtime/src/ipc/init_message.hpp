// The Init message: everything a worker learns from the host before it maps, loads or
// opens anything. One type, one encode (host) and one decode (worker), so the two sides
// cannot disagree on a key, and every number is checked whole and in range on the way in:
// the worker runs foreign code next, and a misread limit or layout would be silent.
#ifndef SHOAL_IPC_INIT_MESSAGE_HPP
#define SHOAL_IPC_INIT_MESSAGE_HPP

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace shoal::detail {

struct InitResource {
  std::string name, module;
  int32_t priority = 0;
  std::map<std::string, std::string> params;
};

/// One sealed segment of the pool's `shared:` data, at kWorkerFirstSharedFd + its index.
struct InitShared {
  std::string name;
  uint64_t size = 0;  ///< of the memfd: the worker refuses a descriptor of another size
};

struct InitMessage {
  /// Host and worker come from one build; a different version is refused, not guessed at.
  static constexpr uint32_t kVersion = 1;

  std::string pool, plugin;
  uint32_t index = 0, workers = 0;
  uint64_t capacity = 0;      ///< of each ring, bytes
  uint64_t segment_size = 0;  ///< of this worker's memfd: segment_mismatch() checks it
  int64_t grace_ns = 0, fini_timeout_ns = 0;
  int32_t fini_priority = 0;
  uint64_t max_memory = 0;
  int32_t host_pid = 0;
  std::string recover;        ///< the cause to recover from; empty: nothing
  bool recover_only = false;  ///< run the recover hooks and exit
  uint64_t limit_address_space = 0, limit_cpu_seconds = 0, limit_open_files = 0;
  bool core_dumps = false, no_new_privs = false;
  bool sandbox = false;
  /// The plugin and resource modules are open at kWorkerFirstFileFd + n (n = 0 for the
  /// plugin, 1 + i for resource i): the files of this generation, whatever was renamed
  /// over their paths since (Worker::choose_module_sources).
  bool pinned_files = false;
  std::vector<std::pair<std::string, bool>> sandbox_paths;  ///< path, writable
  std::map<std::string, std::string> params;
  std::vector<InitResource> resources;
  std::vector<InitShared> shared;  ///< in `shared:` order, at most kWorkerMaxShared

  // builder role: with build_builder set the process builds one `shared:` entry into
  // its memfd (descriptor 3) and exits (worker/build.cpp); plugin, resources and rings
  // are not used. The pool's limits and sandbox above still apply.
  std::string build_name, build_builder;
  uint64_t build_size = 0;
  std::map<std::string, std::string> build_params;
  bool builder_role() const noexcept { return !build_builder.empty(); }
};

/// The message body (key/value pairs, encode_kv).
std::string encode_init(const InitMessage& m);

/// The message, or one line naming the first key that is missing, unknown or malformed.
std::variant<InitMessage, std::string> decode_init(std::string_view body);

/// Why the worker must not map its segment, a descriptor of `descriptor_size` bytes
/// (fstat), with this message; empty when it may. The ring capacity must be a power of
/// two of at least kMinRingCapacity bytes, segment_size the size of that layout (else
/// host and worker disagree on it), and the descriptor exactly segment_size bytes (else
/// it is not the segment the host made for this worker). A mapping past the end of the
/// file would be a SIGBUS at the first task instead of this one line.
std::string segment_mismatch(const InitMessage& m, uint64_t descriptor_size);

}  // namespace shoal::detail

#endif
