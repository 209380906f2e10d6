// The builder role of shoal-worker: one `shared:` entry built into the memfd the host
// made (descriptor 3), then a Built report and the exit. The host seals the memfd once
// this process is gone (shared/build.cpp); nothing here is trusted by the readers
// beyond what the host checks.
#include "worker.hpp"

#include "config/values.hpp"

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/managed_external_buffer.hpp>
#include <boost/version.hpp>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <string>

namespace shoal::detail {

namespace bi = boost::interprocess;

namespace {

// The C builder's view is the first member: the callbacks get back to the rest from it.
struct BuildState {
  shoal_shared_builder b{};
  bi::managed_external_buffer::segment_manager* segment = nullptr;
  bool out_of_space = false;  // a construct or allocate found no room
};

BuildState& state_of(shoal_shared_builder* b) { return *reinterpret_cast<BuildState*>(b); }

void* build_construct(shoal_shared_builder* b, const char* name, size_t size) {
  if (b == nullptr || name == nullptr || *name == '\0') return nullptr;
  BuildState& s = state_of(b);
  // std::nothrow: NULL both when the name is taken and when the segment is full; only
  // the second is "raise size", told apart by the name.
  if (s.segment->find_no_lock<char>(name).first != nullptr) return nullptr;
  char* p = s.segment->construct<char>(name, std::nothrow)[size == 0 ? 1 : size](0);
  if (p == nullptr) s.out_of_space = true;
  return p;
}

void* build_allocate(shoal_shared_builder* b, size_t size, size_t align) {
  if (b == nullptr || align == 0 || (align & (align - 1)) != 0) return nullptr;
  BuildState& s = state_of(b);
  void* p = s.segment->allocate_aligned(size == 0 ? 1 : size, align, std::nothrow);
  if (p == nullptr) s.out_of_space = true;
  return p;
}

}  // namespace

bool Worker::map_build_segment() {
  // Mapped and closed before anything is loaded and before the process may become
  // dumpable (limits.core_dumps): a writable memfd must not be reachable through
  // /proc/PID/fd/3 while foreign code runs.
  struct stat st {};
  if (::fstat(kWorkerSegmentFd, &st) != 0)
    return fatal(Errc::ipc, std::string("shared segment (descriptor 3): fstat: ") + std::strerror(errno));
  if (static_cast<uint64_t>(st.st_size) != init_.build_size)
    return fatal(Errc::ipc, "shared segment (descriptor 3) is " + std::to_string(st.st_size) + " bytes, the host sent " +
                                std::to_string(init_.build_size));
  auto map = map_shared(kWorkerSegmentFd, 0, init_.build_size);
  if (!map) return fatal(Errc::ipc, map.error().message);
  ::close(kWorkerSegmentFd);
  build_map_ = std::move(*map);
  return true;
}

Started Worker::out_of_space(const std::string& detail) {
  fatal(Errc::plugin, "the builder needs more than its size " + size_text(init_.build_size) + detail +
                          ": raise `size` of shared entry '" + init_.build_name + "'");
  return Started::fatal;
}

Started Worker::build() {
  // An orphaned builder has no one to report to and nothing to close: the death of the
  // host's building thread kills it. A host gone before this call is seen by getppid.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || (init_.host_pid != 0 && ::getppid() != init_.host_pid)) {
    fatal(Errc::ipc, "the host is gone");
    return Started::fatal;
  }
  const std::string& path = init_.build_builder;
  auto api = load_shared_builder(path);
  if (!api) {
    fatal(Errc::plugin, api.error().message);
    return Started::fatal;
  }
  shoal_ctx ctx{this, &init_.build_params, "shared " + init_.build_name, nullptr, {}};
  if (!apply_declared_params(api->params, init_.build_params, ctx, ModuleKind::shared_builder, path, ""))
    return Started::fatal;
  const std::string builder = role_name(ModuleKind::shared_builder) + std::string(" ") + path;
  try {
    bi::managed_external_buffer segment(bi::create_only, build_map_.data(), build_map_.size());
    BuildState state;
    state.segment = segment.get_segment_manager();
    state.b = shoal_shared_builder{sizeof(shoal_shared_builder), BOOST_VERSION, init_.build_size, build_construct,
                                   build_allocate, state.segment};
    failed_ = false;
    error_.clear();
    shoal_status rc = SHOAL_OK;
    std::string escaped;
    // A C++ builder written without SHOAL_SHARED_BUILDER may let an exception out: it
    // ends here rather than in std::terminate, and an allocation failure still reads as
    // the segment being full.
    try {
      rc = api->build(&host_, &ctx, &state.b);
    } catch (const bi::bad_alloc&) {
      state.out_of_space = true;
    } catch (const std::bad_alloc&) {
      state.out_of_space = true;
    } catch (const std::exception& e) {
      escaped = std::string("threw: ") + e.what();
    } catch (...) {
      escaped = "threw an exception of an unknown type";
    }
    if (state.out_of_space || rc == SHOAL_E_NO_SPACE) return out_of_space("");
    if (!escaped.empty() || rc != SHOAL_OK || failed_) {
      const std::string why = !escaped.empty() ? escaped
                              : error_.empty() ? "returned " + std::to_string(rc)
                                               : "build failed: " + error_;
      fatal(Errc::plugin, builder + ": " + why);
      return Started::fatal;
    }
    const uint64_t named = segment.get_num_named_objects();
    if (named == 0) {
      fatal(Errc::plugin, builder + ": named nothing (construct at least one object for the readers to find)");
      return Started::fatal;
    }
    const uint64_t used = segment.get_size() - segment.get_free_memory();
    send_control(MsgType::built, encode_kv({{"used", std::to_string(used)}, {"named", std::to_string(named)}}));
    return Started::built;
  } catch (const bi::interprocess_exception& e) {
    // create_only over a buffer too small for the segment's own header.
    return out_of_space(std::string(" (") + e.what() + ")");
  }
}

}  // namespace shoal::detail
