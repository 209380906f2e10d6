#include "shared/reader.hpp"

#include <boost/interprocess/managed_external_buffer.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace shoal::detail {

namespace bi = boost::interprocess;

namespace {

constexpr int kSeals = F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL;

}  // namespace

struct SharedReader::Segment {
  std::string name;
  Mapping map;
  // Over the read-only mapping: opening reads nothing and writes nothing (it only takes
  // the address of the segment manager the builder constructed at the start).
  bi::managed_external_buffer buffer;
};

SharedReader::SharedReader() = default;
SharedReader::~SharedReader() = default;
SharedReader::SharedReader(SharedReader&&) noexcept = default;
SharedReader& SharedReader::operator=(SharedReader&&) noexcept = default;

std::string SharedReader::add(const std::string& name, int fd, uint64_t size) {
  const std::string what = "shared segment '" + name + "' (descriptor " + std::to_string(fd) + ")";
  struct stat st {};
  if (::fstat(fd, &st) != 0) return what + ": fstat: " + std::strerror(errno);
  if (static_cast<uint64_t>(st.st_size) != size || size == 0)
    return what + " is " + std::to_string(st.st_size) + " bytes, the host sent " + std::to_string(size);
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) return what + ": F_GET_SEALS: " + std::strerror(errno);
  // Without F_SEAL_WRITE another process holding a writable descriptor could change it
  // under every reader; without F_SEAL_SHRINK a truncate would turn reads into SIGBUS.
  if ((seals & kSeals) != kSeals) return what + " is not sealed (write, grow, shrink and seal): refused";
  void* addr = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) return what + ": mmap of " + std::to_string(size) + " bytes: " + std::strerror(errno);
  auto seg = std::make_unique<Segment>();
  seg->name = name;
  seg->map = Mapping(addr, size);
  seg->buffer = bi::managed_external_buffer(bi::open_only, addr, size);
  segments_.push_back(std::move(seg));
  return {};
}

const void* SharedReader::find(const char* name, size_t* size) const noexcept {
  if (name == nullptr || *name == '\0') return nullptr;
  for (const auto& seg : segments_) {
    // find_no_lock: the segment manager's mutex lives in the read-only mapping, so locking
    // it would be a SIGSEGV; and nothing is to be excluded, since the sealed segment cannot
    // change. The lookup walks the name index and writes nothing, so any number of plugin
    // threads may call it at once. A char lookup matches any type: the block header keeps
    // the value's byte count and alignment, whatever the builder constructed.
    try {
      const auto found = seg->buffer.find_no_lock<char>(name);
      if (found.first == nullptr) continue;
      if (size != nullptr) *size = found.second;
      return found.first;
    } catch (...) {
      return nullptr;  // a name the index cannot take (Boost may throw on a bad one)
    }
  }
  return nullptr;
}

}  // namespace shoal::detail
