// The tasks of a pool as its loop holds them: one submitted task, one map's inputs, the
// queue entries, and where each outcome goes. Loop thread only, but for the atomics a
// map's caller raises (BatchSink::ready).
#ifndef SHOAL_POOL_TASK_HPP
#define SHOAL_POOL_TASK_HPP

#include <shoal/runtime.hpp>

#include "ipc/wake.hpp"

#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace shoal::detail {

/// One map, map_unordered or map_views call: its inputs, handed to the loop as one queue
/// entry, and where its outcomes go. Its tasks are made one at a time as they are
/// dispatched (Impl::pop_pending), so a map of millions costs no per-task array or queue
/// entry. It lives until its last outcome is delivered.
class BatchSink {
 public:
  explicit BatchSink(std::span<const std::string> in) noexcept : inputs(in), count(in.size()), ready(in.size()) {}
  BatchSink(size_t n, const InputWriter& w) noexcept : writer(&w), count(n), ready(n) {}
  virtual void put(size_t index, Outcome&& outcome) = 0;
  /// Makes every outcome slot now: the batch is refused on the caller's thread.
  virtual void make_all_slots() {}
  /// map_views: the loop hands results over in place (put_view) instead of as Outcomes.
  virtual bool takes_views() const noexcept { return false; }
  virtual void put_view(size_t /*index*/, const OutcomeView& /*view*/) {}
  /// Any thread: its caller has something to take (an outcome, or the end); the caller
  /// stops leading the data path then (lead.cpp).
  virtual bool caller_may_return() const noexcept { return true; }

  const std::span<const std::string> inputs;  // empty when a writer makes them
  const InputWriter* const writer = nullptr;  // map_views with an InputWriter
  const size_t count;                         // inputs
  size_t input_size(size_t index) const { return writer != nullptr ? writer->size(index) : inputs[index].size(); }
  size_t next = 0;  // the first input not yet dispatched; the loop thread's once queued
  // Inputs below it may be dispatched: map() makes its outcome slots while its first
  // tasks run and raises this as it goes (release; the loop reads it with acquire).
  std::atomic<size_t> ready;
  // The channel its caller sleeps on while it leads (a worker's leader_channel,
  // lead.cpp), or none. Under data_mu: a delivery that lets the caller return wakes it,
  // whoever delivered it.
  WakeChannel sleep_on{};
  /// Wakes that caller and withdraws its announcement (the channel may be unmapped
  /// after: the worker may be gone by the time the caller runs again).
  void wake_sleeper() noexcept;

 protected:
  ~BatchSink() = default;
};

// One submitted task. A submit() task is a heap object owning a copy of its input; a
// batch task views the caller's input, which the blocking map call keeps alive, and its
// storage is reused from the loop's TaskCache: no allocation and no copy per task.
class TaskCache;
struct Task {
  enum class Kind : uint8_t { batch, callback, future };
  std::string_view input;
  BatchSink* batch = nullptr;           // batch tasks: where the outcome goes, at `index`
  TaskCache* cache = nullptr;           // batch tasks: where the storage returns
  size_t index = 0;
  uint64_t id = 0;                      // id of its current dispatch (changes on retry)
  uint32_t attempts = 0;                // attempts that started in a worker
  Kind kind = Kind::batch;
  // It was queued in a worker killed for breaking the protocol, whose word on what ran
  // counts for nothing: it is dispatched alone, so that if it is the task that scribbles
  // it is the one in front (and counted as run) when that worker dies too. Otherwise a
  // scribbling task would come back as "never started" again and again.
  bool suspect = false;
};
// A submit() task with a callback, or with the promise behind the future it returned,
// and the copy of its input, in one allocation. Keep each at most 120 bytes: glibc frees
// that size through its fast bins, a larger one through the arena's locked bins, which
// cost submit() half its rate when the loop thread frees what the caller allocated.
struct CallbackTask : Task {
  std::string copy;
  std::function<void(Outcome&&)> done;
};
struct FutureTask : Task {
  std::string copy;
  std::promise<Outcome> promise;
};
static_assert(sizeof(CallbackTask) <= 120 && sizeof(FutureTask) <= 120);

/// Storage for batch tasks, loop thread only: it grows to the most tasks queued and in
/// flight at once, then every dispatch reuses a returned one.
class TaskCache {
 public:
  Task* get() {
    if (free_.empty()) {
      all_.push_back(std::make_unique<Task>());
      free_.reserve(all_.size());  // so that put() never allocates
      return all_.back().get();
    }
    Task* t = free_.back();
    free_.pop_back();
    return t;
  }
  void put(Task* t) noexcept { free_.push_back(t); }

 private:
  std::vector<std::unique_ptr<Task>> all_;
  std::vector<Task*> free_;
};

struct TaskDeleter {
  void operator()(Task* t) const noexcept {
    switch (t->kind) {
      case Task::Kind::batch: t->cache->put(t); break;
      case Task::Kind::callback: delete static_cast<CallbackTask*>(t); break;
      case Task::Kind::future: delete static_cast<FutureTask*>(t); break;
    }
  }
};
using TaskPtr = std::unique_ptr<Task, TaskDeleter>;

/// A queue entry: one task, or the undispatched rest of a batch.
struct Queued {
  TaskPtr task;
  BatchSink* batch = nullptr;
  size_t count() const noexcept { return task ? 1 : batch->count - batch->next; }
};

/// A batch task's storage goes back to its cache before its outcome is delivered, since
/// the batch may end (and its caller free it) as soon as its last outcome is in. Returns
/// where that outcome goes.
inline std::pair<BatchSink*, size_t> release_batch_task(TaskPtr task) noexcept {
  const std::pair<BatchSink*, size_t> to{task->batch, task->index};
  task.reset();
  return to;
}

/// Bytes of a task's input: its own, or what its batch's writer says.
inline size_t input_size(const Task& t) {
  return t.batch != nullptr && t.batch->writer != nullptr ? t.batch->input_size(t.index) : t.input.size();
}

/// Delivers the outcome and ends the task, exactly once.
void finish(TaskPtr task, Outcome&& outcome);

}  // namespace shoal::detail

#endif
