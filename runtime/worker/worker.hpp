// shoal-worker: one process of a pool. Loads one task plugin, runs tasks from its task
// ring, writes outcomes into its result ring, and runs its finalizer chain on the way out.
#ifndef SHOAL_WORKER_WORKER_HPP
#define SHOAL_WORKER_WORKER_HPP

#include "finalize/chain.hpp"
#include "ipc/control.hpp"
#include "ipc/ring.hpp"
#include "ipc/segment.hpp"
#include "plugin/loader.hpp"

#include <shoal/plugin.h>

#include <atomic>
#include <map>
#include <string>

struct shoal_ctx;

namespace shoal::detail {

class Worker {
 public:
  /// Reads the Init message, maps the segment, loads the plugin and runs its init. On
  /// failure sends Fatal with the one-line cause and returns false.
  bool start();
  /// Serves tasks until told to stop, then runs the chain. Returns the exit code.
  int serve();

  // Host-table implementations (called through shoal_ctx).
  void* reserve(size_t size);
  shoal_status emit(const void* data, size_t size);
  void report_error(shoal_status code, const char* msg);
  bool should_stop() const noexcept;
  const char* param(const char* key) const;
  void log(int32_t level, const char* msg) const;
  uint32_t index() const noexcept { return index_; }
  void add_finalizer(int32_t priority, shoal_finalizer_fn fn, void* arg);

 private:
  bool fatal(const std::string& message);
  bool apply_init(const KeyValues& kv);
  bool map_segment();
  void watch_host();
  // Sleeps until `ready()` holds, after a short spin. The host bumps worker_wake after
  // every change the worker may wait for (tasks, result space, stop).
  template <class Pred>
  void wait_until(Pred ready);
  void wake_host() noexcept;
  std::byte* result_space(uint64_t bytes);
  bool next_task(RecordView& out);
  void run_task(const RecordView& task);

  std::string pool_;
  std::string plugin_path_;
  uint32_t index_ = 0;
  uint64_t capacity_ = 0;
  uint64_t segment_size_ = 0;
  int64_t grace_ns_ = 5'000'000'000;
  int32_t fini_priority_ = 100;
  std::map<std::string, std::string> params_;

  Mapping header_map_, block_map_, task_map_, result_map_;
  PoolHeader* pool_header_ = nullptr;
  WorkerBlock* block_ = nullptr;
  RingConsumer tasks_;
  RingProducer results_;

  PluginApi api_;
  void* user_ = nullptr;
  shoal_host host_{};
  FinalizerChain chain_;
  std::atomic<bool> host_gone_{false};

  // The output of the task being run: written in place after a record header at the
  // result ring's write cursor, published when run returns.
  std::byte* out_record_ = nullptr;
  uint64_t out_size_ = 0;
  bool failed_ = false;
  std::string error_;
};

}  // namespace shoal::detail

#endif
