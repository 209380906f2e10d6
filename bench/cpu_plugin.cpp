// bench: a CPU-bound task. The payload is an iteration count; the task runs the same
// arithmetic loop as bench/peers.py's cpu_task and returns the final value.
#include <shoal/plugin.hpp>

#include <cstdint>
#include <string>

class Cpu {
 public:
  explicit Cpu(shoal::Init&) {}
  void run(shoal::Input in, shoal::Output& out) {
    uint64_t n = 0;
    for (char c : in.view()) n = n * 10 + static_cast<uint64_t>(c - '0');
    uint64_t x = 1;
    for (uint64_t i = 0; i < n; ++i) x = (x * 6364136223846793005ull + 1442695040888963407ull) ^ (x >> 29);
    out.write(std::to_string(x & 0xffff));
  }
};

SHOAL_PLUGIN(Cpu)
