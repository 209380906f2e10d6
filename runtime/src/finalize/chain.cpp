#include "finalize/chain.hpp"

#include "common/log.hpp"

#include <algorithm>

namespace shoal::detail {

void FinalizerChain::add(int32_t priority, std::string name, std::function<void()> fn) {
  std::lock_guard lock(mu_);
  entries_.push_back(Entry{priority, next_seq_++, std::move(name), std::move(fn)});
}

std::optional<FinalizerChain::Claimed> FinalizerChain::claim_next() {
  std::lock_guard lock(mu_);
  Entry* best = nullptr;
  for (auto& e : entries_) {
    if (e.claimed) continue;
    if (best == nullptr || e.priority > best->priority || (e.priority == best->priority && e.seq > best->seq))
      best = &e;
  }
  if (best == nullptr) return std::nullopt;
  best->claimed = true;
  return Claimed{best->name, best->fn};
}

void FinalizerChain::run_all() { run_all(Observer{}); }

void FinalizerChain::run_all(const Observer& observer) {
  while (auto claimed = claim_next()) {
    auto& [name, fn] = *claimed;
    if (observer) observer(&name);
    try {
      fn();
    } catch (const std::exception& ex) {
      logf(LogLevel::error, "finalizer '%s'%s%s threw: %s", name.c_str(), owner_.empty() ? "" : " of ", owner_.c_str(),
           ex.what());
    } catch (...) {
      logf(LogLevel::error, "finalizer '%s'%s%s threw", name.c_str(), owner_.empty() ? "" : " of ", owner_.c_str());
    }
    if (observer) observer(nullptr);
  }
}

std::vector<std::string> FinalizerChain::order() const {
  std::lock_guard lock(mu_);
  std::vector<const Entry*> v;
  for (const auto& e : entries_) v.push_back(&e);
  std::sort(v.begin(), v.end(), [](const Entry* a, const Entry* b) {
    return a->priority != b->priority ? a->priority > b->priority : a->seq > b->seq;
  });
  std::vector<std::string> names;
  for (const auto* e : v) names.push_back(e->name);
  return names;
}

}  // namespace shoal::detail
