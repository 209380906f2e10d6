// The lifecycle fixtures' event log, read back: what each worker process (by pid) logged,
// in order, and the pool configs and YAML that make them log it.
#ifndef SHOAL_TESTS_LIFECYCLE_EVENTS_HPP
#define SHOAL_TESTS_LIFECYCLE_EVENTS_HPP

#include "support/test_env.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace shoal::test {

using Events = std::map<int, std::vector<std::string>>;  // pid -> events in order

inline Events read_events(const std::filesystem::path& log) {
  Events ev;
  std::istringstream in(read_file(log));
  std::string line;
  while (std::getline(in, line)) {
    auto at = line.rfind(" pid=");
    REQUIRE(at != std::string::npos);
    ev[std::stoi(line.substr(at + 5))].push_back(line.substr(0, at));
  }
  return ev;
}

// Waits until `pred(events)` holds or the deadline passes; returns the last events read.
template <class Pred>
Events wait_events(const std::filesystem::path& log, std::chrono::milliseconds limit, Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    Events ev = read_events(log);
    if (pred(ev) || std::chrono::steady_clock::now() > deadline) return ev;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

inline bool logged(const std::vector<std::string>& events, const std::string& event) {
  return std::find(events.begin(), events.end(), event) != events.end();
}

inline std::vector<int> pids_of(const Events& ev) {
  std::vector<int> pids;
  for (const auto& [pid, events] : ev) pids.push_back(pid);
  return pids;
}

inline const std::vector<std::string> kStart = {"open db", "open cache", "init"};
// fini at 100; db closes at 10; the finalizers at 5 run last-registered first; cache at 0.
inline const std::vector<std::string> kChain = {"finalizer p=200 #3", "fini-start", "fini", "close db",
                                                "finalizer p=5 #2",   "finalizer p=5 #1", "close cache"};

inline std::vector<std::string> full_life() {
  std::vector<std::string> v = kStart;
  v.insert(v.end(), kChain.begin(), kChain.end());
  return v;
}

// kStart, then `middle` (what the tasks logged), then kChain.
inline std::vector<std::string> life_with(const std::vector<std::string>& middle) {
  std::vector<std::string> v = kStart;
  v.insert(v.end(), middle.begin(), middle.end());
  v.insert(v.end(), kChain.begin(), kChain.end());
  return v;
}

inline PoolConfig lifecycle_config(const std::filesystem::path& log, uint32_t workers) {
  PoolConfig c = pool_config(fixture("fx_lifecycle"), workers);
  c.params = {{"log", log.string()}, {"finalizers", "5,5,200"}};
  ResourceConfig db{"db", fixture("fx_resource"), 10, {{"log", log.string()}}};
  ResourceConfig cache{"cache", fixture("fx_resource"), 0, {{"log", log.string()}}};
  c.resources = {db, cache};
  c.grace = std::chrono::milliseconds(300);
  c.fini_timeout = std::chrono::seconds(1);
  return c;
}

// The pool as a one-pool YAML file (pool name "life") for `shoal run`.
inline std::string yaml_for(const PoolConfig& c) {
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  std::ostringstream y;
  y << "pools:\n  life:\n    plugin: " << c.plugin.string() << "\n    workers: " << c.workers << "\n    params: {";
  const char* sep = "";
  for (const auto& [k, v] : c.params) {
    y << sep << k << ": \"" << v << "\"";
    sep = ", ";
  }
  y << "}\n    shutdown: {grace: " << duration_cast<milliseconds>(c.grace).count()
    << "ms, fini_timeout: " << duration_cast<milliseconds>(c.fini_timeout).count() << "ms}\n";
  if (c.resources.empty()) return y.str();
  y << "    resources:\n";
  for (const auto& r : c.resources)
    y << "      - {name: " << r.name << ", module: " << r.module.string() << ", priority: " << r.priority
      << ", params: {log: " << r.params.at("log") << "}}\n";
  return y.str();
}

}  // namespace shoal::test

#endif
