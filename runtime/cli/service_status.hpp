// What a host's watchers ask of it (the /healthz and /readyz endpoints, systemd through
// sd_notify): is it alive, is it ready, and if not, why. The main thread of `shoal serve`
// or `shoal run` sets the phase and beats once per turn of its loop; the reloader's thread
// marks a reload; the metrics responder's thread reads. Each change is passed to the
// listener (sd_notify), under the lock, so two changes are never told out of order.
#ifndef SHOAL_CLI_SERVICE_STATUS_HPP
#define SHOAL_CLI_SERVICE_STATUS_HPP

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <utility>

namespace shoal::cli {

class ServiceStatus {
 public:
  using Clock = std::chrono::steady_clock;

  enum class Phase {
    starting,  ///< pools starting (their workers' init runs)
    waiting,   ///< pools up, a dependency (Redis) not reachable: `detail` says which
    ready,     ///< serving
    stopping,  ///< a stop began: no new work is taken
  };

  struct View {
    Phase phase = Phase::starting;
    bool reloading = false;  ///< a reload rolls; the pool serves on meanwhile
    std::string detail;      ///< one line: what it waits for, why it stops, what it serves
    Clock::time_point since{};
    bool ready() const { return phase == Phase::ready; }
  };

  /// Called on every change with the new view and the previous one.
  using Listener = std::function<void(const View& now, const View& before)>;

  void set_listener(Listener l) {
    std::lock_guard lock(m_);
    listener_ = std::move(l);
  }

  /// A stop is final: later calls to set() leave it stopping.
  void set(Phase phase, std::string detail) {
    std::lock_guard lock(m_);
    if (view_.phase == Phase::stopping && phase != Phase::stopping) return;
    if (view_.phase == phase && view_.detail == detail) return;
    View before = view_;
    view_.phase = phase;
    view_.detail = std::move(detail);
    view_.since = Clock::now();
    if (listener_) listener_(view_, before);
  }

  void set_reloading(bool reloading) {
    std::lock_guard lock(m_);
    if (view_.reloading == reloading) return;
    View before = view_;
    view_.reloading = reloading;
    if (listener_) listener_(view_, before);
  }

  View get() const {
    std::lock_guard lock(m_);
    return view_;
  }

  /// The main loop turned: what /healthz and the systemd watchdog check.
  void beat() { last_beat_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed); }
  Clock::time_point last_beat() const {
    return Clock::time_point(Clock::duration(last_beat_.load(std::memory_order_relaxed)));
  }

 private:
  mutable std::mutex m_;
  View view_;
  Listener listener_;
  std::atomic<Clock::rep> last_beat_{Clock::now().time_since_epoch().count()};
};

inline const char* phase_name(ServiceStatus::Phase p) {
  switch (p) {
    case ServiceStatus::Phase::starting: return "starting";
    case ServiceStatus::Phase::waiting: return "waiting";
    case ServiceStatus::Phase::ready: return "ready";
    case ServiceStatus::Phase::stopping: return "stopping";
  }
  return "?";
}

}  // namespace shoal::cli

#endif
