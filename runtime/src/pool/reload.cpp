// Changing a running pool: Pool::reload (a rolling replacement of every worker by a new
// generation, uWSGI's chain reload) and Pool::resize. A caller queues an Operation and
// waits; the loop thread carries it out between its other work, one at a time.
//
// The roll, per slot in index order: start the new generation's process beside the old
// one; once it is ready it takes the slot and the old one retires as recycling does (its
// queued tasks go back to the pool, its running task finishes, its chain runs). Then the
// next slot. Each task runs in one process, so wholly in one generation. A new process
// that cannot start turns the roll around: the slots already switched get a process of
// the old generation back the same way, and the reload fails with the cause.
#include "common/log.hpp"
#include "plugin/elf.hpp"
#include "plugin/loader.hpp"
#include "pool/loop_common.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <future>

namespace shoal {

using namespace detail;

namespace detail {

struct Operation {
  enum class Kind { reload, resize };
  using Clock = std::chrono::steady_clock;
  Kind kind = Kind::reload;
  PoolConfig config;     // reload: the new config, validated
  uint32_t workers = 0;  // resize: the new count
  std::vector<SharedSegmentPtr> shared;  // reload: the new generation's segments, built by the caller
  std::promise<Result<void>> done;

  // ---- loop thread ----
  bool started = false;
  Clock::time_point began;
  GenerationPtr target, previous;  // reload: what the slots switch to, and back on failure
  uint32_t next = 0;               // reload: the first slot not yet looked at
  WorkerProcess* incoming = nullptr;
  Error failure{Errc::plugin, {}};      // reload: why a new process could not start (rolling back)
  std::vector<uint32_t> starting;       // resize up: slots whose first process is not ready yet
  Error start_error{Errc::plugin, {}};  // resize up: the first that could not start
};

}  // namespace detail

Pool::Impl::Impl() = default;
Pool::Impl::~Impl() = default;

namespace {

using Clock = std::chrono::steady_clock;

bool same_resources(const std::vector<ResourceConfig>& a, const std::vector<ResourceConfig>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const ResourceConfig& x, const ResourceConfig& y) {
    return x.name == y.name && x.module == y.module && x.priority == y.priority && x.params == y.params;
  });
}

bool same_sandbox(const Sandbox& a, const Sandbox& b) {
  return a.enabled == b.enabled &&
         std::equal(a.filesystem.begin(), a.filesystem.end(), b.filesystem.begin(), b.filesystem.end(),
                    [](const SandboxPath& x, const SandboxPath& y) { return x.path == y.path && x.write == y.write; });
}

// Whether the processes of `a` would be the processes of `b`: every setting a worker
// reads at its start. task_timeout and retries are the host's, `workers` is a resize.
bool same_processes(const PoolConfig& a, const PoolConfig& b) {
  return a.plugin == b.plugin && a.params == b.params && a.max_tasks_per_worker == b.max_tasks_per_worker &&
         a.max_memory == b.max_memory && a.start_timeout == b.start_timeout && a.grace == b.grace &&
         a.fini_timeout == b.fini_timeout && a.fini_priority == b.fini_priority && a.env == b.env &&
         a.env_inherit == b.env_inherit && a.env_inherit_all == b.env_inherit_all &&
         same_resources(a.resources, b.resources) && a.limits.address_space == b.limits.address_space &&
         a.limits.cpu_seconds == b.limits.cpu_seconds && a.limits.open_files == b.limits.open_files &&
         a.limits.core_dumps == b.limits.core_dumps && a.limits.no_new_privs == b.limits.no_new_privs &&
         same_sandbox(a.sandbox, b.sandbox);
}

// What `shoal check` says about the files, without loading them: the new generation must
// not be started on a file no worker could load.
Result<void> check_files(const PoolConfig& config) {
  if (auto elf = check_module_file(config.plugin, ModuleKind::task_plugin); !elf) return elf.error();
  for (const auto& r : config.resources)
    if (auto elf = check_module_file(r.module, ModuleKind::resource_module); !elf)
      return Error{Errc::plugin, "resource " + r.name + ": " + elf.error().message};
  return {};
}

uint32_t effective_workers(size_t workers) {
  return workers != 0 ? static_cast<uint32_t>(workers) : std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

Result<void> Pool::reload(const PoolConfig& config) {
  auto op = std::make_unique<Operation>();
  op->kind = Operation::Kind::reload;
  op->config = config;
  op->config.workers = effective_workers(config.workers);
  const std::string name = this->config().name;
  if (config.name != name)
    return Error{Errc::config, "pool " + name + ": a reload cannot rename the pool (to " + config.name + ")"};
  if (SegmentLayout::round_capacity(config.queue_capacity) != impl_->site.layout.capacity)
    return Error{Errc::config, "pool " + name + ": queue.capacity cannot change in a reload (restart the pool)"};
  if (auto files = check_files(op->config); !files) return Error{files.error().code, "pool " + name + ": " + files.error().message};
  // Built here, never on the loop thread: the pool serves on while a builder runs. A
  // build that fails changes nothing, as a new process that cannot start would not.
  const auto began = Clock::now();
  auto shared = impl_->build_for_reload(op->config);
  if (!shared) {
    // The build's line starts "pool 'NAME': shared 'ENTRY': ": the pool is named once.
    std::string cause = shared.error().message;
    if (const std::string own = "pool '" + name + "': "; cause.starts_with(own)) cause.erase(0, own.size());
    const std::string why = "reload failed, generation " + std::to_string(stats().generation) + " serves on: " + cause;
    impl_->counters->on_reload(stats().generation, false, why, Clock::now() - began);
    logf(LogLevel::warn, "pool %s: %s", name.c_str(), why.c_str());
    return Error{shared.error().code, "pool " + name + ": " + why};
  }
  op->shared = std::move(*shared);
  return impl_->run_operation(std::move(op));
}

Result<void> Pool::resize(size_t workers) {
  // The config's own bound on `workers` (config/reference.md).
  constexpr size_t kMaxWorkers = 1024;
  if (workers > kMaxWorkers)
    return Error{Errc::config, "pool " + config().name + ": " + std::to_string(workers) + " workers is more than " +
                                   std::to_string(kMaxWorkers)};
  auto op = std::make_unique<Operation>();
  op->kind = Operation::Kind::resize;
  op->workers = effective_workers(workers);
  return impl_->run_operation(std::move(op));
}

Result<void> Pool::Impl::run_operation(std::unique_ptr<Operation> op) {
  auto result = op->done.get_future();
  {
    // `config` is read under the lock here: the loop replaces it at the end of a reload.
    std::lock_guard lock(mu);
    if (detail::t_data_path_of == this)
      return Error{Errc::failed, "pool " + config.name + ": reload and resize cannot be called from an outcome callback"};
    if (closed) return Error{Errc::failed, "pool " + config.name + ": " + closed_reason};
    operations.push_back(std::move(op));
    has_operation.store(true, std::memory_order_relaxed);
    has_incoming.store(true, std::memory_order_seq_cst);  // the loop looks at its queues
  }
  wake_loop();
  return result.get();
}

void Pool::Impl::abandon_operations(const std::string& why) {
  std::deque<std::unique_ptr<Operation>> queued;
  {
    std::lock_guard lock(mu);
    queued.swap(operations);
    has_operation.store(false, std::memory_order_relaxed);
  }
  if (operation) queued.push_front(std::move(operation));
  for (auto& op : queued) op->done.set_value(Error{Errc::failed, "pool " + config.name + ": " + why});
}

void Pool::Impl::step_operation() {
  // One ends, the next queued one begins in the same turn: nothing else would wake the
  // loop for it once the tasks are done.
  for (;;) {
    if (!operation) {
      if (phase != Phase::running || !has_operation.load(std::memory_order_relaxed)) return;
      std::lock_guard lock(mu);
      if (operations.empty()) return;
      operation = std::move(operations.front());
      operations.pop_front();
      has_operation.store(!operations.empty(), std::memory_order_relaxed);
    }
    // A reload that changes `workers` goes on as a resize: begun again, as the other kind.
    while (operation && !operation->started) {
      Operation& op = *operation;
      op.started = true;
      if (op.began == Clock::time_point()) op.began = Clock::now();
      if (op.kind == Operation::Kind::reload) begin_reload(op);
      else begin_resize(op);
    }
    if (operation) {
      if (operation->kind == Operation::Kind::reload) step_reload(*operation);
      else step_resize(*operation);
    }
    // Under way: an event of its processes moves it on. Ended, or turned into a resize:
    // on at once.
    if (operation && operation->started) return;
  }
}

void Pool::Impl::end_operation(Result<void> result) {
  std::unique_ptr<Operation> op = std::move(operation);
  op->done.set_value(std::move(result));
}

void Pool::Impl::begin_reload(Operation& op) {
  // The host's own settings apply at once, to every process of every generation.
  {
    std::lock_guard lock(mu);
    config.task_timeout = op.config.task_timeout;
    config.retries = op.config.retries;
  }
  op.previous = generation;
  if (same_processes(op.config, generation->config) && files_stamp(op.config) == generation->files_stamp &&
      op.shared == generation->shared) {
    counters->on_reload(generation->number, true, "ok", Clock::now() - op.began);
    logf(LogLevel::info, "pool %s: reloaded; no worker setting changed, generation %u serves on", config.name.c_str(),
         generation->number);
    if (op.config.workers == slots.size()) return end_operation({});
    op.kind = Operation::Kind::resize;  // only the count changed
    op.workers = op.config.workers;
    op.started = false;
    return;
  }
  op.target = make_generation(op.config, ++last_generation, std::move(op.shared));
  logf(LogLevel::info, "pool %s: reload: rolling %zu workers to generation %u", config.name.c_str(), slots.size(),
       op.target->number);
}

void Pool::Impl::step_reload(Operation& op) {
  if (op.incoming != nullptr) return;  // it reports ready, or its failure
  const GenerationPtr& goal = op.failure.message.empty() ? op.target : op.previous;
  while (op.next < slots.size() && slots[op.next].generation == goal) ++op.next;
  if (op.next < slots.size()) {
    WorkerSlot& slot = slots[op.next];
    // A slot waiting out a back-off has no process to hand its recover cause to: the
    // new one runs the hooks.
    std::string recover = slot.process == nullptr ? std::exchange(slot.recover_cause, {}) : std::string();
    op.incoming = start_process(slot.index, goal, WorkerProcess::Role::incoming, recover);
    if (op.incoming != nullptr) return;  // it reports ready, or its failure
    // Not spawned: as a start that failed. The slot keeps its process and its cause.
    if (slot.process == nullptr && !recover.empty()) slot.recover_cause = recover;
    if (op.failure.message.empty()) {
      op.failure =
          Error{spawn_error.code, "worker " + std::to_string(slot.index) + " could not be spawned (the log says why)"};
      op.next = 0;
    } else {
      ++op.next;  // rolling back: this slot stays as it is
    }
    return step_reload(op);
  }
  // Every slot runs the goal: the roll is over once the processes it replaced are gone,
  // and those recovering after one that died (a new one that never became ready).
  if (any_leaving()) return;
  const auto took = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - op.began);
  if (!op.failure.message.empty()) {
    const std::string why = "reload failed, rolled back to generation " + std::to_string(op.previous->number) + ": " +
                            op.failure.message;
    counters->on_reload(op.previous->number, false, why, took);
    logf(LogLevel::warn, "pool %s: %s", config.name.c_str(), why.c_str());
    return end_operation(Error{op.failure.code, "pool " + config.name + ": " + why});
  }
  generation = op.target;
  publish_generation();
  {
    std::lock_guard lock(mu);
    const auto timeout = config.task_timeout;
    const auto retries = config.retries;
    const auto workers = config.workers;
    config = op.target->config;
    config.task_timeout = timeout;
    config.retries = retries;
    config.workers = workers;
  }
  counters->on_reload(op.target->number, true, "ok", took);
  logf(LogLevel::info, "pool %s: reloaded to generation %u in %s", config.name.c_str(), op.target->number,
       seconds_text(took).c_str());
  if (op.config.workers == slots.size()) return end_operation({});
  op.kind = Operation::Kind::resize;  // then the count
  op.workers = op.config.workers;
  op.started = false;  // step_operation begins it
}

bool Pool::Impl::any_leaving() const {
  return std::any_of(procs.begin(), procs.end(), [](const auto& p) {
    return p->role == WorkerProcess::Role::retiring || p->role == WorkerProcess::Role::recovering;
  });
}

void Pool::Impl::begin_resize(Operation& op) {
  const auto before = static_cast<uint32_t>(slots.size());
  site.workers = op.workers;
  if (op.workers > before) {
    counters->set_workers(op.workers);
    slots.resize(op.workers);
    for (uint32_t i = before; i < op.workers; ++i) {
      slots[i].index = i;
      slots[i].generation = generation;
      op.starting.push_back(i);
    }
    for (uint32_t i = before; i < op.workers && !failed; ++i) spawn_slot(slots[i]);
  } else {
    // The highest slots go, as recycling would end them.
    for (uint32_t i = before; i-- > op.workers;) {
      WorkerSlot& slot = slots[i];
      if (slot.process != nullptr) retire(*slot.process);
      else if (!slot.recover_cause.empty())
        start_process(i, slot.generation, WorkerProcess::Role::recovering, slot.recover_cause, true);
      slots.pop_back();
    }
    counters->set_workers(op.workers);
  }
  std::lock_guard lock(mu);
  config.workers = op.workers;
}

void Pool::Impl::step_resize(Operation& op) {
  if (!op.starting.empty() || any_leaving()) return;
  logf(LogLevel::info, "pool %s: resized to %zu workers", config.name.c_str(), slots.size());
  if (!op.start_error.message.empty())
    return end_operation(Error{op.start_error.code, "pool " + config.name + ": " + op.start_error.message});
  end_operation({});
}

void Pool::Impl::on_operation_ready(WorkerProcess& w) {
  if (!operation) return;
  Operation& op = *operation;
  if (op.kind == Operation::Kind::resize) {
    std::erase(op.starting, w.index());
    return;
  }
  if (&w != op.incoming) return;
  op.incoming = nullptr;
  WorkerSlot& slot = slots[w.index()];
  WorkerProcess* old = slot.process;
  slot.process = &w;
  slot.generation = w.generation_ptr();
  slot.waiting = false;
  slot.crash_streak = 0;
  w.role = WorkerProcess::Role::serving;
  if (old != nullptr) retire(*old);
  ++op.next;
}

void Pool::Impl::on_operation_start_failed(WorkerProcess& w, const Error& why) {
  if (!operation) return;
  Operation& op = *operation;
  if (op.kind == Operation::Kind::resize) {
    if (std::find(op.starting.begin(), op.starting.end(), w.index()) == op.starting.end()) return;
    std::erase(op.starting, w.index());
    if (op.start_error.message.empty()) op.start_error = why;
    return;
  }
  if (&w != op.incoming) return;
  op.incoming = nullptr;
  if (op.failure.message.empty()) {
    op.failure = why;  // turn around: every slot goes back to the old generation
    op.next = 0;
    return;
  }
  // The old generation cannot start again either (its file is gone?): this slot keeps
  // the new one, and the log says so.
  logf(LogLevel::warn, "pool %s: rolling back worker %u failed too (%s); it stays on generation %u",
       config.name.c_str(), w.index(), why.message.c_str(), slots[w.index()].generation->number);
  ++op.next;
}

}  // namespace shoal
