// echo: returns each task's input as its output. Used by the tests and the benchmarks,
// so it writes through reserve() (zero copy into the result ring) rather than a buffer.
#include <shoal/plugin.hpp>

#include <cstring>

class Echo {
 public:
  explicit Echo(shoal::Init&) {}
  void run(shoal::Input in, shoal::Output& out) {
    if (in.size() == 0) return;
    std::memcpy(out.reserve(in.size()), in.data(), in.size());
  }
};

// Takes no params: any configured one is an error in `shoal check` and at worker start.
SHOAL_PARAMS()
SHOAL_PLUGIN(Echo)
