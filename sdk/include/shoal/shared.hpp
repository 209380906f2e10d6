// File: shoal/shared.hpp
//
// The C++ side of a shared-data builder (shoal/shared.h): SHOAL_SHARED_BUILDER(fn) turns
//   void fn(shoal::SharedBuilder& b)
// into the builder's exports. `b` is a Host (params, log) plus the segment: its
// Boost.Interprocess segment manager, allocators for the Shared* containers below, and
// construct<T>(name) for the objects readers find by name (init.shared<T>(name)).
//
// The segment is mapped at another address in every process: what the builder stores
// must hold offsets, never raw pointers. Boost.Interprocess containers do (offset_ptr).
// Readers map it read-only: a reader that looks a key up must not build a SharedString
// (its allocator would write to the segment); compare through std::string_view, e.g.
// SharedMap with std::less<> and a heterogeneous find.
//
// A builder needs the Boost headers (header-only Interprocess) of the very version the
// worker was built with: the layouts of the containers are Boost's, and a mismatch is
// refused before fn runs.
#ifndef SHOAL_SHARED_HPP
#define SHOAL_SHARED_HPP

#include <shoal/plugin.hpp>
#include <shoal/shared.h>

#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/containers/map.hpp>
#include <boost/interprocess/containers/string.hpp>
#include <boost/interprocess/containers/vector.hpp>
#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/managed_external_buffer.hpp>
#include <boost/version.hpp>

#include <cstdint>
#include <functional>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

namespace shoal {

using SharedSegmentManager = boost::interprocess::managed_external_buffer::segment_manager;
template <class T>
using SharedAllocator = boost::interprocess::allocator<T, SharedSegmentManager>;
using SharedString = boost::interprocess::basic_string<char, std::char_traits<char>, SharedAllocator<char>>;
template <class T>
using SharedVector = boost::interprocess::vector<T, SharedAllocator<T>>;
template <class K, class V, class Cmp = std::less<>>
using SharedMap = boost::interprocess::map<K, V, Cmp, SharedAllocator<std::pair<const K, V>>>;

/// What SHOAL_SHARED_BUILDER hands the build function; a Host (params, log) plus the segment.
class SharedBuilder : public Host {
 public:
  SharedBuilder(const shoal_host* host, shoal_ctx* ctx, shoal_shared_builder* b) noexcept : Host(host, ctx), b_(b) {}
  SharedSegmentManager* segment() const noexcept { return static_cast<SharedSegmentManager*>(b_->segment_manager); }
  /// An allocator for containers that live in the segment.
  template <class T>
  SharedAllocator<T> allocator() const {
    return SharedAllocator<T>(segment());
  }
  /// A named object readers find with init.shared<T>(name); throws std::bad_alloc when the
  /// segment is full (the build then fails naming the `size` key), std::invalid_argument
  /// when the name is taken.
  template <class T, class... A>
  T& construct(const char* name, A&&... args) {
    if (name == nullptr || *name == '\0') throw std::invalid_argument("shared object name is empty");
    try {
      return *segment()->template construct<T>(name)(std::forward<A>(args)...);
    } catch (const boost::interprocess::bad_alloc&) {
      throw std::bad_alloc();
    } catch (const boost::interprocess::interprocess_exception& e) {
      if (e.get_error_code() != boost::interprocess::already_exists_error) throw;
      throw std::invalid_argument(std::string("shared object name '") + name + "' is taken");
    }
  }
  /// Bytes of the whole segment (the entry's `size`).
  uint64_t size() const noexcept { return b_->size; }
  shoal_shared_builder* raw_builder() const noexcept { return b_; }

 private:
  shoal_shared_builder* b_;
};

namespace detail {

// The C boundary of a C++ builder: a Boost of another version, then any exception, is
// reported; running out of segment (Boost's own bad_alloc, from containers, or
// std::bad_alloc) returns SHOAL_E_NO_SPACE, which the worker words as "raise `size`".
template <class F>
shoal_status build_shared(const shoal_host* host, shoal_ctx* ctx, shoal_shared_builder* b, F&& fn) noexcept {
  if (b == nullptr || b->struct_size < sizeof(shoal_shared_builder)) {
    report(host, ctx, "the worker's shoal_shared_builder is older than this builder's shoal/shared.h");
    return SHOAL_E_INVALID;
  }
  if (b->boost_version != BOOST_VERSION) {
    const std::string why = "built against Boost " + std::to_string(BOOST_VERSION / 100000) + "." +
                            std::to_string(BOOST_VERSION / 100 % 1000) + " while the worker uses Boost " +
                            std::to_string(b->boost_version / 100000) + "." +
                            std::to_string(b->boost_version / 100 % 1000) +
                            " (the segment's layout is Boost's: rebuild the builder against the worker's Boost)";
    report(host, ctx, why.c_str());
    return SHOAL_E_INVALID;
  }
  // Only running out of segment is told apart; every other exception is a plugin's
  // (guarded, as for init and run).
  bool full = false;
  const shoal_status rc = guarded(host, ctx, [&] {
    SharedBuilder builder(host, ctx, b);
    try {
      fn(builder);
    } catch (const boost::interprocess::bad_alloc&) {
      full = true;
    } catch (const std::bad_alloc&) {
      full = true;
    }
  });
  if (!full) return rc;
  host->report_error(ctx, SHOAL_E_NO_SPACE, "the segment is full");
  return SHOAL_E_NO_SPACE;
}

}  // namespace detail
}  // namespace shoal

/// Writes the exports (shoal_shared_abi, shoal_shared_abi_version, shoal_shared_build);
/// fn is `void fn(shoal::SharedBuilder&)`; exceptions are caught at the C boundary.
#define SHOAL_SHARED_BUILDER(fn)                                                                 \
  extern "C" {                                                                                   \
  SHOAL_EXPORT extern const uint32_t shoal_shared_abi_version = SHOAL_ABI_VERSION;               \
  SHOAL_EXPORT uint32_t shoal_shared_abi(void) { return SHOAL_ABI_VERSION; }                     \
  SHOAL_EXPORT shoal_status shoal_shared_build(const shoal_host* h, shoal_ctx* c, shoal_shared_builder* b) { \
    return ::shoal::detail::build_shared(h, c, b, fn);                                           \
  }                                                                                              \
  }

#endif  // SHOAL_SHARED_HPP
