// The table of shoal_bench_shared (bench/shared.cpp): WORDS deterministic key→value lines,
// written to a file that the builder, the private-copy workers and Python's peer all load.
// Keys are 16 letters a..p (the hex digits of i times an odd constant: distinct, in no
// order), values 80-120 letters; 2,000,000 of them make a dictionary of ~252 MiB.
#ifndef SHOAL_BENCH_SHARED_DATA_HPP
#define SHOAL_BENCH_SHARED_DATA_HPP

#include <cstdint>
#include <string>

namespace bench_shared {

inline uint64_t mix(uint64_t x) {  // splitmix64's finalizer
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline void key(uint64_t i, std::string& out) {
  uint64_t x = i * 0x9E3779B97F4A7C15ull;  // odd: a bijection of the 64-bit integers
  out.assign(16, 'a');
  for (char& c : out) {
    c = static_cast<char>('a' + (x & 15));
    x >>= 4;
  }
}

inline void value(uint64_t i, std::string& out) {
  uint64_t s = mix(i);
  out.assign(80 + s % 41, 'a');
  for (size_t j = 0; j < out.size(); ++j) {
    if (j % 8 == 0) s = mix(s);
    out[j] = static_cast<char>('a' + (s >> (8 * (j % 8))) % 26);
  }
}

}  // namespace bench_shared

#endif  // SHOAL_BENCH_SHARED_DATA_HPP
