// shoal-worker: one process of a pool. Opens its resources, loads one task plugin, runs
// tasks from its task ring, writes outcomes into its result ring, and runs its finalizer
// chain on every way out that can run code.
//
// Threads: the main thread runs tasks and, on an orderly stop, the chain. The control
// thread watches the host (control-socket EOF, the parent-death signal) and the stop
// signals (SIGTERM, SIGINT, SIGHUP; their handler only sets flags and wakes it), and
// enforces shutdown.grace. The watchdog thread
// bounds each finalizer by shutdown.fini_timeout, whichever thread runs the chain.
#ifndef SHOAL_WORKER_WORKER_HPP
#define SHOAL_WORKER_WORKER_HPP

#include "task_clock.hpp"
#include "finalize/chain.hpp"
#include "ipc/control.hpp"
#include "ipc/init_message.hpp"
#include "ipc/ring.hpp"
#include "ipc/segment.hpp"
#include "plugin/loader.hpp"
#include "plugin/params.hpp"
#include "shared/reader.hpp"

#include <shoal/plugin.h>

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace shoal::detail {
class Worker;
}

/// The opaque context handed to plugins and resource modules: which component is
/// calling, so that param() answers with that component's own params.
struct shoal_ctx {
  shoal::detail::Worker* worker;
  const std::map<std::string, std::string>* params;
  std::string component;  // "plugin", "resource db"
  // The component's declared params, null when it declares none; `owner` names it in
  // the error about reading an undeclared one ("plugin PATH").
  const shoal::detail::ParamDecls* declared = nullptr;
  std::string owner;
};

namespace shoal::detail {

enum class LocalStop : uint32_t { none = 0, signal = 1, host_gone = 2, recycle = 3, channel_lost = 4, recover_only = 5 };
// fatal: no new process could start either (kExitFatal); failed: init or an open refused,
// which may pass (kExitStartFailed).
// built: the builder role's build succeeded and was reported (exit 0).
enum class Started { ready, fatal, failed, stopped, built };
enum class Phase : uint32_t { starting = 0, idle = 1, in_task = 2, in_chain = 3 };

class Worker {
 public:
  /// Reads the Init message, maps the segment, opens the resources, loads the plugin and
  /// runs its init. On failure closes what was opened, sends Fatal with the one-line
  /// cause and returns `fatal`. A stop that arrives meanwhile (or a recover-only start)
  /// still runs every recover hook, opens nothing more and returns `stopped`: serve()
  /// then runs the chain of what did open.
  Started start();
  /// Serves tasks until told to stop, then runs the chain. Returns the exit code.
  int serve();
  /// Runs the chain from the process's exit path (a plugin that calls exit()).
  void run_chain_at_exit();

  // Host-table implementations (called through shoal_ctx).
  void* reserve(size_t size);
  shoal_status emit(const void* data, size_t size);
  void report_error(shoal_status code, const char* msg);
  bool should_stop() const noexcept;
  void* resource(const char* name) const;
  const void* shared(const char* name, size_t* size) const noexcept { return shared_.find(name, size); }
  void log(const shoal_ctx* ctx, int32_t level, const char* msg) const;
  uint32_t index() const noexcept { return init_.index; }
  void add_finalizer(int32_t priority, shoal_finalizer_fn fn, void* arg);
  /// host->param of a name the component does not declare: fails the call it came from.
  void undeclared_param(const shoal_ctx* ctx, const char* key);

 private:
  // start.cpp
  /// Sends the Fatal message (`code` for Pool::start's error, `message` for people).
  bool fatal(Errc code, const std::string& message);
  bool map_segment();
  void warm_up();
  bool map_shared_data();
  bool apply_limits();
  // confine.cpp
  bool harden();
  bool apply_sandbox();
  bool open_resources();
  void log_recover_error(const shoal_ctx* ctx);
  bool load_plugin_and_init();
  bool apply_declared_params(const std::optional<std::string>& text, std::map<std::string, std::string>& params,
                             shoal_ctx& ctx, ModuleKind kind, const std::string& path, const std::string& prefix);
  void choose_module_sources();
  // build.cpp: the builder role (shared data)
  bool map_build_segment();
  Started build();
  Started out_of_space(const std::string& detail);
  // control.cpp
  void start_threads();
  void control_loop();
  void watchdog_loop();
  void begin_stop(LocalStop why);
  static void stop_signal_handler(int sig) noexcept;
  void run_chain();
  void abandon(const std::string& why);
  void note(const std::string& text);
  void send_control(MsgType type, std::string_view body) noexcept;
  bool channels_intact() const noexcept;
  bool stopping() const noexcept { return local_stop_.load() != 0; }
  // worker.cpp
  template <class Pred>
  void wait_until(Pred ready);
  void wake_self() noexcept;
  void wake_host() noexcept;
  std::byte* result_space(uint64_t bytes);
  bool claim(uint64_t task_id) noexcept;
  bool next_task(RecordView& out);
  void run_task(const RecordView& task);
  bool over_memory_limit();

  // The host's Init message as decoded, read in place for the worker's whole life (set
  // once in start(), before any other thread exists; never written again).
  InitMessage init_;
  // What each module is loaded from: 0 the plugin, 1 + i resource i (choose_module_sources).
  std::vector<std::string> module_sources_;

  Mapping block_map_, task_map_, result_map_;
  // The pool's shared read-only segments (init_.shared), mapped in start() before any
  // plugin thread exists and never changed after: host->shared reads it from any thread.
  SharedReader shared_;
  Mapping build_map_;  // the builder role's memfd, read-write
  WorkerBlock* block_ = nullptr;
  // What descriptors 4 and 5 were when the worker started: a plugin may close them and
  // open files that land on the same numbers. Their loss ends the worker, which cannot
  // tell the host anything any more; nothing of the worker's must go into those files.
  struct FdId {
    dev_t dev = 0;
    ino_t ino = 0;
    bool is(int fd) const noexcept;  // fd still names this file (one fstat)
  };
  FdId control_id_, event_id_;
  std::atomic<bool> chain_reported_{false};
  RingConsumer tasks_;
  RingProducer results_;

  PluginApi api_;
  void* user_ = nullptr;
  shoal_host host_{};
  shoal_ctx plugin_ctx_{};
  std::deque<shoal_ctx> resource_ctx_;  // deque: stable addresses for the modules
  std::deque<ParamDecls> declared_;     // what each ctx's `declared` points at
  std::map<std::string, void*, std::less<>> handles_;
  FinalizerChain chain_;

  int stop_event_fd_ = -1;  // written by the stop signals' handler, read by the control thread
  FdId stop_event_id_;
  int statm_fd_ = -1;
  int64_t next_memory_check_ns_ = 0;
  std::atomic<uint32_t> local_stop_{0};  // LocalStop
  std::atomic<uint32_t> phase_{0};       // Phase
  std::atomic<bool> abandoned_{false};   // the control thread took over after grace

  // watchdog state: the finalizer running now and when it must have returned
  std::mutex wd_mu_;
  std::condition_variable wd_cv_;
  std::string wd_entry_;
  int64_t wd_deadline_ns_ = 0;

  // The output of the task being run: written in place after a record header at the
  // result ring's write cursor, published when run returns.
  std::byte* out_record_ = nullptr;
  uint64_t out_size_ = 0;
  bool failed_ = false;
  // The error of an undeclared host->param: kept over later reports of the same call (a
  // C++ plugin's exception about the missing value would otherwise hide the cause).
  bool error_fixed_ = false;
  bool start_may_pass_ = false;  // the start failed in init or an open, not in loading
  // When the last task ended, and whether this thread has waited since. Back-to-back
  // tasks take their start from the previous end: one clock read per task instead of two
  // (two were 7-10% of all CPU with tiny tasks); the duration then includes the ~50 ns of
  // ring bookkeeping between them.
  int64_t last_end_ns_ = 0;  // clock_'s timeline
  TaskClock clock_;
  bool waited_ = true;
  bool linger_ = false;
  bool hot_ = false;  // a leader was just woken for a result: its next task is near
  uint64_t woken_for_ = 0;  // the wake_after_task this worker already woke the host for
  std::string error_;
};

/// The Landlock ABI version of the running kernel; 0 when it has none.
int landlock_abi() noexcept;

}  // namespace shoal::detail

extern "C" void shoal_worker_atexit();

#endif
