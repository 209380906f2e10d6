// The worker's task loop: take a task from the ring, run it in place, write its outcome
// in place, and the host-table calls a plugin makes meanwhile.
#include "worker.hpp"

#include "common/event.hpp"
#include "common/log.hpp"
#include "ipc/wake.hpp"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace shoal::detail {

namespace {

// A short spin before sleeping (~1-2 µs), no longer: the next task comes from a caller
// through the host's loop thread, and with those two and this worker on 2 CPUs a longer
// spin keeps a CPU from the very threads that would send it. Round trips, p50 of 5 runs
// of `shoal_bench --only rtt` each, interleaved: a 10 µs spin 84 µs idle and 67 µs busy;
// a 2 µs spin 47 and 49 µs; these 64 pauses 37 and 43 µs. Tiny-task throughput was the
// same for all three.
constexpr int kSpinPauses = 64;
// Except after waking a caller that slept on this worker's result (pool/lead.cpp): that
// caller is likely to send the next task as soon as it runs, a futex wake-up later
// (~5 µs), and the loop thread sleeps meanwhile, so a spin takes no CPU anyone needs. A
// 64-pause spin would end first, and each back-to-back task would wake both sides.
constexpr int64_t kLingerNs = 20'000;
// RSS is read at most this often for max_memory (a read of /proc per task would cost
// more than a tiny task).
constexpr int64_t kMemoryCheckNs = 1'000'000;

}  // namespace

template <class Pred>
void Worker::wait_until(Pred ready) {
  waited_ = true;
  for (int i = 0; i < kSpinPauses; ++i) {
    if (ready()) return;
    __builtin_ia32_pause();
  }
  if (linger_) {
    linger_ = false;
    for (const int64_t until = clock_.now() + kLingerNs; clock_.now() < until;)
      for (int i = 0; i < 16; ++i) {
        if (ready()) return;
        __builtin_ia32_pause();
      }
  }
  // The one-second bound is a safety net only: every state change notifies.
  WakeListener(worker_channel(*block_)).wait(ready, 1'000'000'000);
}

void Worker::wake_self() noexcept {
  if (block_ == nullptr) return;
  WakeNotifier(worker_channel(*block_)).wake();
}

void Worker::wake_host() noexcept {
  // A caller that leads the data path and sleeps on this worker's result (pool/lead.cpp)
  // is woken first: it, not the loop, is who reads the result then.
  if (WakeNotifier(leader_channel(*block_)).notify()) waited_ = linger_ = true;
  if (WakeNotifier(host_channel(*block_)).notify_once()) {
    waited_ = true;  // the syscalls are not the next task's time
    // A plugin may have closed the eventfd and opened a file of its own on the number:
    // the wake-up must not land in it. A lost eventfd ends the worker (its exit wakes
    // the host, which then reads the results still in the ring).
    if (!event_id_.is(kWorkerEventFd)) {
      begin_stop(LocalStop::channel_lost);
      return;
    }
    eventfd_signal(kWorkerEventFd);
  }
}

bool Worker::should_stop() const noexcept {
  uint64_t cancel = block_->cancel_task.load(std::memory_order_relaxed);
  return local_stop_.load(std::memory_order_relaxed) != 0 ||
         block_->stop.load(std::memory_order_relaxed) == static_cast<uint32_t>(StopMode::now) ||
         (cancel != 0 && cancel == block_->running_task.load(std::memory_order_relaxed));
}

std::byte* Worker::result_space(uint64_t bytes) {
  std::byte* p = results_.reserve(bytes);
  if (p != nullptr) return p;
  wake_host();  // results it has not been told about fill the ring: it must drain them
  wait_until([&] {
    return (p = results_.reserve(bytes)) != nullptr || results_.corrupt() ||
           local_stop_.load() == static_cast<uint32_t>(LocalStop::host_gone);
  });
  return p;
}

void* Worker::reserve(size_t size) {
  if (out_record_ == nullptr) {
    report_error(SHOAL_E_INVALID, "reserve called outside of shoal_run");
    return nullptr;
  }
  uint64_t need = record_bytes(out_size_ + size);
  if (size > init_.capacity || need > init_.capacity) {
    report_error(SHOAL_E_NO_SPACE, ("output of " + std::to_string(out_size_ + size) +
                                    " bytes exceeds the result ring capacity of " + std::to_string(init_.capacity) +
                                    " bytes (raise queue.capacity)")
                                       .c_str());
    return nullptr;
  }
  std::byte* base = result_space(need);
  if (base == nullptr) return nullptr;
  void* at = base + sizeof(RecordHeader) + out_size_;
  out_size_ += size;
  return at;
}

shoal_status Worker::emit(const void* data, size_t size) {
  if (data == nullptr && size != 0) return SHOAL_E_INVALID;
  // Not a full ring: the plugin should hear that the call itself was wrong.
  if (out_record_ == nullptr) {
    report_error(SHOAL_E_INVALID, "emit called outside of shoal_run");
    return SHOAL_E_INVALID;
  }
  void* p = reserve(size);
  if (p == nullptr) return SHOAL_E_NO_SPACE;
  if (size != 0) std::memcpy(p, data, size);
  return SHOAL_OK;
}

void Worker::report_error(shoal_status, const char* msg) {
  failed_ = true;
  if (error_fixed_) return;
  error_ = msg != nullptr && *msg != '\0' ? msg : "plugin reported an error";
  // Outside a task (a finalizer, a close), nobody collects the message: log it.
  if (phase_.load() == static_cast<uint32_t>(Phase::in_chain))
    logf(LogLevel::error, "%s[%u]: finalizer reported: %s", init_.pool.c_str(), init_.index, error_.c_str());
}

void* Worker::resource(const char* name) const {
  auto it = handles_.find(std::string_view(name));
  return it == handles_.end() ? nullptr : it->second;
}

void Worker::log(const shoal_ctx* ctx, int32_t level, const char* msg) const {
  auto lv = level <= SHOAL_LOG_DEBUG ? LogLevel::debug
            : level == SHOAL_LOG_INFO ? LogLevel::info
            : level == SHOAL_LOG_WARN ? LogLevel::warn
                                      : LogLevel::error;
  log_line(lv, msg, {init_.pool, static_cast<int>(init_.index), ctx->component});
}

void Worker::undeclared_param(const shoal_ctx* ctx, const char* key) {
  const std::string message = ctx->owner + ": " + undeclared_param_message(*ctx->declared, key);
  log(ctx, SHOAL_LOG_ERROR, message.c_str());
  report_error(SHOAL_E_INVALID, message.c_str());
  error_fixed_ = true;
}

void Worker::add_finalizer(int32_t priority, shoal_finalizer_fn fn, void* arg) {
  chain_.add(priority, "plugin finalizer p=" + std::to_string(priority), [fn, arg] { fn(arg); });
}

bool Worker::over_memory_limit() {
  if (init_.max_memory == 0 || statm_fd_ < 0) return false;
  const int64_t now = last_end_ns_;  // read at the end of the task just run
  if (now < next_memory_check_ns_) return false;
  next_memory_check_ns_ = now + kMemoryCheckNs;
  waited_ = true;  // the read below is not the next task's time
  char buf[128];
  ssize_t n = ::pread(statm_fd_, buf, sizeof buf - 1, 0);
  if (n <= 0) return false;
  buf[n] = '\0';
  unsigned long long size_pages = 0, resident_pages = 0;
  if (std::sscanf(buf, "%llu %llu", &size_pages, &resident_pages) != 2) return false;
  uint64_t rss = resident_pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  if (rss <= init_.max_memory) return false;
  note("recycled: RSS " + std::to_string(rss) + " bytes passed max_memory " + std::to_string(init_.max_memory));
  return true;
}

bool Worker::claim(uint64_t task_id) noexcept {
  uint64_t seen = block_->claimed.load(std::memory_order_relaxed);
  // Uncontended but for the rare take-back: the host claims only queued tasks, so the
  // swap fails only when the host took this very task, and then it is not ours to run.
  while (seen < task_id)
    if (block_->claimed.compare_exchange_weak(seen, task_id, std::memory_order_acq_rel)) return true;
  return false;
}

bool Worker::next_task(RecordView& out) {
  for (;;) {
    auto stop = static_cast<StopMode>(block_->stop.load(std::memory_order_acquire));
    if (stop == StopMode::now || local_stop_.load() != 0) return false;
    if (auto rec = tasks_.peek()) {
      // Taken back by the host (it runs elsewhere): pass over it, with no result.
      if (!claim(rec->header.task_id)) {
        tasks_.consume(*rec);
        continue;
      }
      out = *rec;
      return true;
    }
    if (tasks_.corrupt()) return false;
    if (stop == StopMode::drain) return false;
    wait_until([&] {
      return tasks_.has_data() || block_->stop.load(std::memory_order_relaxed) != 0 || local_stop_.load() != 0;
    });
  }
}

void Worker::run_task(const RecordView& task) {
  block_->running_task.store(task.header.task_id, std::memory_order_release);
  out_record_ = result_space(record_bytes(0));
  out_size_ = 0;
  failed_ = false;
  error_fixed_ = false;
  error_.clear();
  if (out_record_ == nullptr) return;  // host gone: the stop path takes over
  phase_.store(static_cast<uint32_t>(Phase::in_task));
  const int64_t t0 = waited_ ? clock_.now() : last_end_ns_;
  waited_ = false;
  shoal_status rc = api_.run(&plugin_ctx_, user_, shoal_bytes{task.payload, task.header.size});
  last_end_ns_ = clock_.now();
  const int64_t elapsed = last_end_ns_ - t0;
  phase_.store(static_cast<uint32_t>(Phase::idle));
  // The control thread gave up on this task after grace and is running the chain; this
  // thread must not touch the rings or the plugin again.
  if (abandoned_.load()) ::pause();
  tasks_.consume(task);
  if (rc != SHOAL_OK && !failed_) report_error(rc, ("shoal_run returned " + std::to_string(rc)).c_str());
  // The error text follows the output; cut it so that the record still fits the ring,
  // and say so at its end.
  uint64_t room = max_payload(init_.capacity) - out_size_;
  if (error_.size() > room) {
    const std::string mark = " [error text cut: " + std::to_string(error_.size()) + " bytes]";
    error_.resize(room > mark.size() ? room - mark.size() : 0);
    if (room >= mark.size()) error_ += mark;
  }
  std::byte* base = result_space(record_bytes(out_size_ + error_.size()));
  out_record_ = nullptr;
  if (base == nullptr) return;
  std::memcpy(base + sizeof(RecordHeader) + out_size_, error_.data(), error_.size());
  RecordHeader h{};
  h.task_id = task.header.task_id;
  h.size = static_cast<uint32_t>(out_size_ + error_.size());
  h.status = static_cast<uint32_t>(failed_ ? WireStatus::error : WireStatus::ok);
  h.error_size = static_cast<uint32_t>(error_.size());
  h.duration_ns = static_cast<uint64_t>(elapsed);
  write_header(base, h);
  results_.advance(record_bytes(h.size));
  results_.publish();
  block_->running_task.store(0, std::memory_order_release);
  // One wake-up of the host per half a queue: while enough tasks are still queued here,
  // the host has nothing urgent to do, and waking it would take a CPU from the workers.
  // It is woken once when the task the host named is done (it refills then), when this
  // worker is about to run dry, when the result ring fills (result_space), and for every
  // result of a lone task.
  const uint64_t wake_after = block_->wake_after_task.load(std::memory_order_relaxed);
  if (wake_after != 0 && wake_after != woken_for_ && task.header.task_id >= wake_after) {
    woken_for_ = wake_after;
    wake_host();
  } else if (tasks_.at_most_one_left()) {
    wake_host();
  }
}

int Worker::serve() {
  RecordView task{};
  while (next_task(task)) {
    run_task(task);
    if (over_memory_limit()) begin_stop(LocalStop::recycle);
  }
  run_chain();
  return local_stop_.load() == static_cast<uint32_t>(LocalStop::channel_lost) ? kExitChannelLost : 0;
}

}  // namespace shoal::detail
