// The worker's finalizer chain: entries run highest priority first, equal priorities
// last-registered first, each exactly once whatever path reaches the chain.
#ifndef SHOAL_FINALIZE_CHAIN_HPP
#define SHOAL_FINALIZE_CHAIN_HPP

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace shoal::detail {

class FinalizerChain {
 public:
  /// Adds an entry. `name` identifies it in reports ("plugin fini", "resource db").
  void add(int32_t priority, std::string name, std::function<void()> fn);
  /// Runs every entry not yet run, in chain order. A second caller (another thread, or a
  /// re-entrant call from an entry) runs nothing twice: each entry is claimed before it runs.
  void run_all();
  /// As run_all, telling `observer` the name of each entry before it runs and nullptr
  /// after it returned (the worker's watchdog bounds each entry by fini_timeout). An
  /// entry that throws is reported through `observer`'s caller and the chain goes on.
  using Observer = std::function<void(const std::string* entry)>;
  void run_all(const Observer& observer);
  /// Who owns the chain ("worker 3 (pid 812)"), named when an entry throws.
  void set_owner(std::string owner) { owner_ = std::move(owner); }
  /// Names in the order run_all would run them (for tests).
  std::vector<std::string> order() const;

 private:
  struct Entry {
    int32_t priority;
    uint64_t seq;
    std::string name;
    std::function<void()> fn;
    bool claimed = false;
  };
  struct Claimed {
    std::string name;
    std::function<void()> fn;
  };
  // Entries are claimed one at a time under the mutex and run outside it, so an entry
  // that calls add() or run_all() does not deadlock. The claim is a copy made under the
  // mutex, never a pointer into entries_: add() may reallocate the vector at any time
  // (the task thread, still in shoal_run, calls add_finalizer while the control thread
  // runs the chain for the abandoned task).
  std::optional<Claimed> claim_next();
  mutable std::mutex mu_;
  std::vector<Entry> entries_;
  uint64_t next_seq_ = 0;
  std::string owner_;
};

}  // namespace shoal::detail

#endif
