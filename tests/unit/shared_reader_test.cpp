// The worker's side of the shared read-only data (shared/reader.hpp), in this process: a
// segment built here the way a builder builds one (a Boost.Interprocess
// managed_external_buffer over a memfd), sealed, reopened read-only, then looked up.
#include "shared/reader.hpp"

#include <boost/interprocess/managed_external_buffer.hpp>

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

using namespace shoal::detail;
namespace bi = boost::interprocess;

namespace {

constexpr int kAllSeals = F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL;

// A memfd of `size` bytes holding "numbers" (count uint64_t, i*i) and "greeting", sealed
// with `seals`, returned as a read-only descriptor (as the host hands it to workers).
int built_segment(uint64_t size, uint64_t count, int seals, const char* tag = "") {
  const int fd = ::memfd_create("shared-reader-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  REQUIRE(fd >= 0);
  REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
  void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  REQUIRE(addr != MAP_FAILED);
  {
    bi::managed_external_buffer buf(bi::create_only, addr, size);
    auto* n = buf.construct<uint64_t>("numbers")[count](0);
    for (uint64_t i = 0; i < count; ++i) n[i] = i * i;
    const std::string text = std::string("hello") + tag;
    std::memcpy(buf.construct<char>("greeting")[text.size() + 1](0), text.c_str(), text.size() + 1);
  }
  REQUIRE(::munmap(addr, size) == 0);
  if (seals != 0) REQUIRE(::fcntl(fd, F_ADD_SEALS, seals) == 0);
  const int ro = ::open(("/proc/self/fd/" + std::to_string(fd)).c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(ro >= 0);
  ::close(fd);
  return ro;
}

}  // namespace

TEST_CASE("shared reader: a sealed segment's named objects are found read-only in order", "[unit][shared]") {
  const int a = built_segment(1 << 20, 1000, kAllSeals, " a");
  const int b = built_segment(64 << 10, 10, kAllSeals, " b");
  SharedReader reader;
  CHECK(reader.add("first", a, 1 << 20).empty());
  CHECK(reader.add("second", b, 64 << 10).empty());
  ::close(a);
  ::close(b);  // the mappings outlive the descriptors
  size_t size = 0;
  const auto* n = static_cast<const uint64_t*>(reader.find("numbers", &size));
  REQUIRE(n != nullptr);
  CHECK(size == 1000 * sizeof(uint64_t));  // the first segment's, searched first
  CHECK(n[999] == 999u * 999u);
  const auto* g = static_cast<const char*>(reader.find("greeting", &size));
  REQUIRE(g != nullptr);
  CHECK(std::string(g) == "hello a");
  CHECK(size == 8);
  CHECK(reader.find("nothing", &size) == nullptr);
  CHECK(reader.find("", &size) == nullptr);
  CHECK(reader.find(nullptr, &size) == nullptr);
  CHECK(reader.find("numbers", nullptr) == n);
  // Read-only for good: the sealed file refuses a writable mapping (mprotect: EACCES).
  void* page = const_cast<uint64_t*>(n);
  page = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(page) & ~uintptr_t{4095});
  CHECK(::mprotect(page, 4096, PROT_READ | PROT_WRITE) == -1);
  CHECK(errno == EACCES);
}

TEST_CASE("shared reader: an unsealed segment or one of another size is refused with one line", "[unit][shared]") {
  SharedReader reader;
  const int loose = built_segment(64 << 10, 10, F_SEAL_GROW | F_SEAL_SHRINK);
  const std::string why = reader.add("words", loose, 64 << 10);
  CHECK(why == "shared segment 'words' (descriptor " + std::to_string(loose) +
                   ") is not sealed (write, grow, shrink and seal): refused");
  ::close(loose);
  const int sealed = built_segment(64 << 10, 10, kAllSeals);
  CHECK(reader.add("words", sealed, 4096) == "shared segment 'words' (descriptor " + std::to_string(sealed) +
                                                 ") is 65536 bytes, the host sent 4096");
  ::close(sealed);
  CHECK(reader.size() == 0);
  CHECK(reader.find("numbers", nullptr) == nullptr);
}
