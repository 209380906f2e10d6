// The record stream of the cross-process ring test, computed identically by the
// producer (the test) and the consumer (shoal_ring_peer).
#ifndef SHOAL_TESTS_RING_PATTERN_HPP
#define SHOAL_TESTS_RING_PATTERN_HPP

#include <cstddef>
#include <cstdint>

namespace shoal::test {

inline uint32_t pattern_size(uint64_t i, uint32_t max) {
  return static_cast<uint32_t>(((i * 2654435761u) >> 7) % (uint64_t{max} + 1));
}
inline unsigned char pattern_byte(uint64_t i, size_t j) {
  return static_cast<unsigned char>(i * 31 + j * 7 + (i >> 8));
}
inline uint64_t fnv1a(uint64_t h, unsigned char b) { return (h ^ b) * 1099511628211ull; }
inline constexpr uint64_t kFnvSeed = 1469598103934665603ull;

}  // namespace shoal::test

#endif
