// File: shoal/plugin.hpp
//
// Header-only C++ layer over shoal/plugin.h. A plugin is a class:
//
//   class Upper {
//    public:
//     explicit Upper(shoal::Init& init);                 // shoal_init; throw to fail the start
//     void run(shoal::Input in, shoal::Output& out);     // shoal_run; throw for an `error`
//   };                                                   // ~Upper() runs as shoal_fini
//   SHOAL_PLUGIN(Upper)
//
// Params are declared next to it with SHOAL_PARAMS (shoal/plugin.h) and read typed:
//
//   SHOAL_PARAMS(SHOAL_PARAM_INT("n", 1, 64, SHOAL_DEFAULT("8"), "batch size")
//                SHOAL_PARAM_DURATION("wait", SHOAL_DEFAULT("1s"), "pause between batches"))
//   n_ = init.param<int64_t>("n");                       // 8 unless configured
//   wait_ = init.param<std::chrono::milliseconds>("wait");
//
// SHOAL_PLUGIN writes the extern "C" exports. Every exception is caught at the C
// boundary: std::exception becomes an `error` outcome carrying what(), anything else
// "unknown exception". The object lives from init to fini, in the worker process.
#ifndef SHOAL_PLUGIN_HPP
#define SHOAL_PLUGIN_HPP

#include <shoal/plugin.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

namespace shoal {

namespace detail {

template <class T>
struct is_duration : std::false_type {};
template <class R, class P>
struct is_duration<std::chrono::duration<R, P>> : std::true_type {};

[[noreturn]] inline void bad_param(const char* key, const char* value, const char* want) {
  throw std::invalid_argument(std::string("param '") + key + "': '" + value + "' is not " + want +
                              " (declare the param with its type in SHOAL_PARAMS)");
}

// `text` is the canonical form the worker hands over for a declared param (shoal/plugin.h).
template <class T>
T param_as(const char* key, const char* text) {
  const char* end = text + std::strlen(text);
  if constexpr (std::is_same_v<T, std::string>) {
    return std::string(text, end);
  } else if constexpr (std::is_same_v<T, bool>) {
    if (std::strcmp(text, "true") == 0) return true;
    if (std::strcmp(text, "false") == 0) return false;
    bad_param(key, text, "true or false");
  } else if constexpr (std::is_integral_v<T>) {
    T out{};
    auto [at, ec] = std::from_chars(text, end, out);
    if (ec != std::errc() || at != end || at == text) bad_param(key, text, "an integer in the range of the type asked for");
    return out;
  } else if constexpr (is_duration<T>::value) {
    int64_t ns = 0;
    auto [at, ec] = std::from_chars(text, end, ns);
    if (ec != std::errc() || at != end || at == text) bad_param(key, text, "a duration in nanoseconds");
    return std::chrono::duration_cast<T>(std::chrono::nanoseconds(ns));
  } else {
    static_assert(is_duration<T>::value, "param<T>: T is std::string, bool, an integer type or a std::chrono::duration");
  }
}

}  // namespace detail

/// Thrown by Output when the result ring cannot hold the output; its message names the
/// limit. Let it propagate: the task becomes `error`.
class OutputTooLarge : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Runtime services shared by Init, Output and the task: a thin view of the host table.
class Host {
 public:
  Host(const shoal_host* host, shoal_ctx* ctx) noexcept : host_(host), ctx_(ctx) {}
  /// Pool parameter `key`, or nullopt. The view is valid until fini.
  std::optional<std::string_view> param(const char* key) const {
    const char* v = host_->param(ctx_, key);
    if (v == nullptr) return std::nullopt;
    return std::string_view(v);
  }
  /// Pool parameter `key`, or `fallback` when absent.
  std::string param_or(const char* key, std::string_view fallback) const {
    auto v = param(key);
    return std::string(v ? *v : fallback);
  }
  /// Declared param `key` as a T: std::string (any type), bool (BOOL), an integer type
  /// (INT; SIZE as bytes), a std::chrono::duration (DURATION). The worker has checked the
  /// value against SHOAL_PARAMS and filled in the default, so this throws (failing init
  /// or the task) only when the param has no value (optional, not configured), when the
  /// plugin declares nothing, or when T does not fit the declared type.
  template <class T>
  T param(const char* key) const {
    const char* v = host_->param(ctx_, key);
    if (v == nullptr)
      throw std::invalid_argument(std::string("param '") + key + "' has no value (not configured, no default)");
    return detail::param_as<T>(key, v);
  }
  /// Index of this worker within its pool.
  uint32_t worker_index() const noexcept { return host_->worker_index(ctx_); }
  /// True once the current task should end early (terminate, timeout).
  bool should_stop() const noexcept { return host_->should_stop(ctx_) != 0; }
  /// A line in the host's log.
  void log(int32_t level, const char* msg) const noexcept { host_->log(ctx_, level, msg); }
  /// Resource handle configured under `resources:`, or nullptr.
  void* resource(const char* name) const noexcept { return host_->resource(ctx_, name); }
  /// Adds `fn(arg)` to the worker's finalizer chain at `priority` (higher runs first).
  void add_finalizer(int32_t priority, shoal_finalizer_fn fn, void* arg) const {
    if (host_->add_finalizer(ctx_, priority, fn, arg) != SHOAL_OK)
      throw std::runtime_error("add_finalizer failed");
  }
  /// The object a builder named `name` (SharedBuilder::construct<T>, shoal/shared.hpp);
  /// throws std::invalid_argument when no segment has it, when its size is not
  /// sizeof(T), or when the worker speaks ABI 1.0 (no host->shared). Valid for the
  /// worker's life, read-only: a write to it is a SIGSEGV. Look keys up without
  /// allocating (std::string_view, a SharedMap's heterogeneous find): an allocation
  /// through the segment's allocator writes to it.
  template <class T>
  const T& shared(const char* name) const {
    const std::string_view bytes = shared_bytes(name);
    if (bytes.size() != sizeof(T))
      throw std::invalid_argument(std::string("shared object '") + name + "' is " + std::to_string(bytes.size()) +
                                  " bytes, not the " + std::to_string(sizeof(T)) + " of the type asked for");
    return *reinterpret_cast<const T*>(bytes.data());
  }
  /// The bytes of a named block (a C builder's construct), same errors but any size.
  std::string_view shared_bytes(const char* name) const {
    if (!SHOAL_HOST_HAS(host_, shared))
      throw std::invalid_argument(std::string("shared object '") + name +
                                  "': this worker speaks plugin ABI 1.0 (host->shared needs 1.1)");
    size_t size = 0;
    const void* p = host_->shared(ctx_, name, &size);
    if (p == nullptr)
      throw std::invalid_argument(std::string("shared object '") + name + "': no shared segment of the pool has it");
    return {static_cast<const char*>(p), size};
  }
  const shoal_host* raw() const noexcept { return host_; }
  shoal_ctx* ctx() const noexcept { return ctx_; }

 protected:
  const shoal_host* host_;
  shoal_ctx* ctx_;
};

/// What a plugin constructor receives.
class Init : public Host {
 public:
  using Host::Host;
};

/// Task input: bytes in shared memory, valid until run returns (copy what you keep).
class Input {
 public:
  explicit Input(shoal_bytes b) noexcept : data_(static_cast<const char*>(b.data)), size_(b.size) {}
  const char* data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }
  std::string_view view() const noexcept { return {data_, size_}; }

 private:
  const char* data_;
  size_t size_;
};

/// Task output: appended in place into the result ring.
class Output : public Host {
 public:
  using Host::Host;
  /// Appends a copy of `bytes`.
  void write(std::string_view bytes) {
    if (host_->emit(ctx_, bytes.data(), bytes.size()) != SHOAL_OK)
      throw OutputTooLarge("output does not fit the result ring (raise queue.capacity)");
  }
  /// Appends `n` bytes and returns where to write them (valid until the next write/reserve).
  char* reserve(size_t n) {
    void* p = host_->reserve(ctx_, n);
    if (p == nullptr) throw OutputTooLarge("output does not fit the result ring (raise queue.capacity)");
    return static_cast<char*>(p);
  }
};

namespace detail {

inline void report(const shoal_host* host, shoal_ctx* ctx, const char* msg) noexcept {
  host->report_error(ctx, SHOAL_E_FAILED, msg);
}

// Runs `f` and turns any exception into a reported error, so none crosses the C boundary.
template <class F>
shoal_status guarded(const shoal_host* host, shoal_ctx* ctx, F&& f) noexcept {
  try {
    f();
    return SHOAL_OK;
  } catch (const std::bad_alloc&) {
    report(host, ctx, "out of memory (std::bad_alloc)");
  } catch (const std::exception& e) {
    report(host, ctx, e.what());
  } catch (...) {
    report(host, ctx, "unknown exception");
  }
  return SHOAL_E_FAILED;
}

template <class Plugin>
struct Exports {
  static inline const shoal_host* host = nullptr;

  static shoal_status init(const shoal_host* h, shoal_ctx* ctx, void** user) noexcept {
    host = h;
    return guarded(h, ctx, [&] {
      Init init(h, ctx);
      *user = new Plugin(init);
    });
  }
  static shoal_status run(shoal_ctx* ctx, void* user, shoal_bytes input) noexcept {
    return guarded(host, ctx, [&] {
      Output out(host, ctx);
      static_cast<Plugin*>(user)->run(Input(input), out);
    });
  }
  static void fini(shoal_ctx* ctx, void* user) noexcept {
    (void)guarded(host, ctx, [&] { delete static_cast<Plugin*>(user); });
  }
};

}  // namespace detail
}  // namespace shoal

/// Exports `Class` as this shared object's task plugin. Use once per plugin. Also
/// defines shoal_plugin_abi_version, the ABI version `shoal check` reads from the file.
#define SHOAL_PLUGIN(Class)                                                                 \
  extern "C" {                                                                              \
  SHOAL_EXPORT extern const uint32_t shoal_plugin_abi_version = SHOAL_ABI_VERSION;          \
  SHOAL_EXPORT uint32_t shoal_plugin_abi(void) { return SHOAL_ABI_VERSION; }                \
  SHOAL_EXPORT shoal_status shoal_init(const shoal_host* h, shoal_ctx* c, void** u) {       \
    return ::shoal::detail::Exports<Class>::init(h, c, u);                                  \
  }                                                                                         \
  SHOAL_EXPORT shoal_status shoal_run(shoal_ctx* c, void* u, shoal_bytes in) {              \
    return ::shoal::detail::Exports<Class>::run(c, u, in);                                  \
  }                                                                                         \
  SHOAL_EXPORT void shoal_fini(shoal_ctx* c, void* u) { ::shoal::detail::Exports<Class>::fini(c, u); } \
  }

#endif  // SHOAL_PLUGIN_HPP
