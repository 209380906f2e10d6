// bench: a task that waits rather than computes, as a service's I/O-bound task does. The
// payload is a duration in microseconds; the task sleeps that long and returns the pool
// param `version`, so bench/reload.cpp can tell which config ran each task.
#include <shoal/plugin.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

class Sleep {
 public:
  explicit Sleep(shoal::Init& init) : version_(init.param_or("version", "")) {}
  void run(shoal::Input in, shoal::Output& out) {
    uint64_t us = 0;
    for (char c : in.view()) us = us * 10 + static_cast<uint64_t>(c - '0');
    std::this_thread::sleep_for(std::chrono::microseconds(us));
    out.write(version_);
  }

 private:
  std::string version_;
};

SHOAL_PLUGIN(Sleep)
