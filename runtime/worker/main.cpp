// shoal-worker: started by a shoal host with posix_spawn, never by hand. Descriptors 3
// (segment), 4 (control socket) and 5 (host eventfd) are set up by the host.
#include "worker.hpp"

#include <cstdio>
#include <cstring>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc > 1 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "--version") == 0)) {
    std::fputs("shoal-worker: a worker process of a shoal pool; started by the shoal host, not by hand\n", stderr);
    return 0;
  }
  static shoal::detail::Worker worker;  // static: outlives every finalizer run from exit paths
  if (!worker.start()) return shoal::detail::kExitFatal;
  int code = worker.serve();
  // The plugin stays loaded (never dlclose'd); skip static destructors of foreign code.
  std::fflush(nullptr);
  _exit(code);
}
