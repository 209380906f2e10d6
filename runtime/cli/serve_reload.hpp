// SIGHUP of `shoal serve`: CONFIG is read again (load_config_file, as at start) and the
// served pool's new PoolConfig is applied with Pool::reload, on a thread of its own, so
// the host goes on taking tasks and writing outcomes while the workers roll.
//
// What is logged, one line each (component "reload" of the pool):
//   info   SIGHUP: reading CONFIG
//   error  FILE:LINE:COLUMN: why; generation N keeps serving   (nothing applied)
//   warn   FILE: the redis: section changed (keys): it applies when this host restarts;
//          reloading the pool only
//   error  not applied: why; generation N keeps serving   (refused, or rolled back)
//   info   generation N serving, rolled in S s (W workers)
//   info   no worker setting or file changed: generation N serves on (W workers)
// (the pool logs its own lines about the roll besides: libshoal's, for every host)
//
// A SIGHUP that comes during a reload stays pending in the kernel (a standard signal is
// pending once however often it is sent) and starts one more reload after this one.
#ifndef SHOAL_CLI_SERVE_RELOAD_HPP
#define SHOAL_CLI_SERVE_RELOAD_HPP

#include "service_status.hpp"
#include "terminal.hpp"

#include <shoal/config.hpp>
#include <shoal/runtime.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace shoal::cli {

/// The keys of the redis: section that `shoal serve` reads and that differ between `a`
/// and `b`, by their names in the file ("stream", "visibility_timeout", ...). Keys only
/// `submit` and `collect` read are left out: they change nothing for a host.
std::vector<std::string> serve_redis_changes(const RedisConfig& a, const RedisConfig& b);

class Reloader {
 public:
  struct Setup {
    std::filesystem::path config;  ///< the file to read again, as given on the command line
    RedisConfig redis;             ///< its redis: section as read at start (flags not applied)
    /// redis.in_flight is 0 (two per worker): after a reload that changes the number of
    /// workers, the host's in-flight bound follows (take_workers).
    bool in_flight_follows_workers = false;
    /// Marked reloading while a SIGHUP is handled (systemd hears RELOADING=1, then
    /// READY=1); must outlive finish(). Null: none.
    ServiceStatus* status = nullptr;
  };

  /// Takes SIGHUP from `signals.reload_fd()` once start() is called. `pool` and
  /// `signals` must outlive finish().
  Reloader(Pool& pool, const StopSignals& signals, Setup setup);
  ~Reloader();
  Reloader(const Reloader&) = delete;
  Reloader& operator=(const Reloader&) = delete;

  void start();
  /// No reload starts from now on; one under way goes on until Pool::reload returns
  /// (Pool::terminate cuts it short). Returns at once.
  void stop();
  /// stop(), then waits until no reload is under way. A thread still reading CONFIG (a
  /// FIFO nobody writes, a hung mount) is left behind detached: it touches the pool no
  /// more once it learns of the stop.
  void finish();

  /// The pool's worker count after a reload that changed it, once; 0 otherwise.
  uint32_t take_workers();

  // What the thread uses, kept alive by the thread itself: a thread left behind by
  // finish() outlives this object. Internal (serve_reload.cpp).
  struct Shared;

 private:
  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

}  // namespace shoal::cli

#endif
