// Pool's public face: starting, submitting from any thread, closing. The work itself
// happens on the loop thread (loop.cpp).
#include "common/log.hpp"
#include "pool/input_limit.hpp"
#include "pool/loop_common.hpp"
#include "pool/pool_impl.hpp"
#include "pool/worker_path.hpp"

#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <system_error>

namespace shoal {

using namespace detail;

std::string_view to_string(Status s) noexcept {
  switch (s) {
    case Status::ok: return "ok";
    case Status::error: return "error";
    case Status::crashed: return "crashed";
    case Status::timeout: return "timeout";
    case Status::cancelled: return "cancelled";
    case Status::rejected: return "rejected";
  }
  return "rejected";
}

std::string_view to_string(Reason r) noexcept {
  switch (r) {
    case Reason::none: return "none";
    case Reason::plugin_error: return "plugin_error";
    case Reason::crashed: return "crashed";
    case Reason::timed_out: return "timed_out";
    case Reason::pool_closed: return "pool_closed";
    case Reason::pool_failed: return "pool_failed";
    case Reason::input_too_large: return "input_too_large";
    case Reason::terminated: return "terminated";
    case Reason::reentrant: return "reentrant";
  }
  return "none";
}

std::string_view to_string(ExitCause c) noexcept {
  switch (c) {
    case ExitCause::exit: return "exit";
    case ExitCause::error: return "error";
    case ExitCause::signal: return "signal";
    case ExitCause::timeout_kill: return "timeout_kill";
    case ExitCause::killed: return "killed";
  }
  return "killed";
}

namespace {

Error ipc_error(const char* what) { return Error{Errc::ipc, std::string(what) + ": " + std::strerror(errno)}; }

}  // namespace

Outcome Pool::Impl::rejection(Reason reason, const std::string& why) const {
  Outcome o;
  o.status = Status::rejected;
  o.reason = reason;
  o.error = why;
  return o;
}

Outcome Pool::Impl::cancellation(Reason reason, const std::string& why) const {
  Outcome o = rejection(reason, why);
  o.status = Status::cancelled;
  return o;
}

Outcome Pool::Impl::stopped_outcome(bool terminated, const std::string& why) const {
  return cancellation(terminated ? Reason::terminated : failed ? Reason::pool_failed : Reason::pool_closed, why);
}

Result<std::unique_ptr<Pool>> Pool::start(const PoolConfig& config, const RuntimeOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  if (impl->config.workers == 0) impl->config.workers = std::max(1u, std::thread::hardware_concurrency());
  impl->site.exe = find_worker(options);
  if (::access(impl->site.exe.c_str(), X_OK) != 0)
    return Error{Errc::spawn, "worker executable " + impl->site.exe + ": " + std::strerror(errno) +
                                  " (set SHOAL_WORKER to its path)"};
  // Before the first worker exists: once one runs, it may try /proc/HOST/fd at once.
  if (!options.keep_host_dumpable && ::prctl(PR_SET_DUMPABLE, 0) != 0) return ipc_error("prctl(PR_SET_DUMPABLE)");
  impl->site.layout.capacity = SegmentLayout::round_capacity(impl->config.queue_capacity);
  // Every segment is built and sealed before any worker exists: a build that fails
  // leaves nothing to stop.
  auto shared = shared_segments(impl->config, {impl->site.exe, &impl->config, 0, options.start_cancel_fd}, {});
  if (!shared) return shared.error();  // names the pool and the entry
  impl->generation = make_generation(impl->config, 0, std::move(*shared));
  impl->published_generation = impl->generation;
  impl->counters = std::make_unique<detail::PoolCounters>(impl->config.workers);
  impl->publish_shared();
  impl->slots.resize(impl->config.workers);
  impl->site.workers = impl->config.workers;
  for (uint32_t i = 0; i < impl->config.workers; ++i) {
    impl->slots[i].index = i;
    impl->slots[i].generation = impl->generation;
  }

  impl->epoll = Fd(::epoll_create1(EPOLL_CLOEXEC));
  if (!impl->epoll) return ipc_error("epoll_create1");
  impl->site.epoll = impl->epoll.get();
  auto result_event = move_fd_above(Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), kSpawnSourceMinFd);
  if (!result_event) return result_event.error();
  impl->result_event = std::move(*result_event);
  impl->site.result_event = impl->result_event.get();
  impl->submit_event = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  impl->timer = Fd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  impl->start_timer = Fd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  impl->task_timer = Fd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  impl->steal_timer = Fd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!impl->submit_event || !impl->timer || !impl->start_timer || !impl->task_timer || !impl->steal_timer)
    return ipc_error("eventfd/timerfd");
  for (auto [fd, kind] : {std::pair{impl->submit_event.get(), kSubmit}, {impl->result_event.get(), kResult},
                          {impl->timer.get(), kTimer}, {impl->start_timer.get(), kStartTimer},
                          {impl->task_timer.get(), kTaskTimer}, {impl->steal_timer.get(), kStealTimer}})
    if (!impl->watch(fd, event_key(kind, 0))) return ipc_error("epoll_ctl");
  // A descriptor epoll cannot watch (not pollable, closed) only loses the start cancel.
  if (options.start_cancel_fd >= 0 && impl->watch(options.start_cancel_fd, event_key(kStartCancel, 0)))
    impl->start_cancel_fd = options.start_cancel_fd;

  Impl* raw = impl.get();
  impl->loop = std::thread([raw] { raw->run_loop(); });
  {
    std::unique_lock lock(impl->mu);
    impl->start_cv.wait(lock, [&] { return impl->start_state != Impl::StartState::waiting; });
    if (impl->start_state == Impl::StartState::failed) {
      Error why = impl->start_error;
      lock.unlock();
      impl->loop.join();
      return Error{why.code, "pool " + impl->config.name + ": " + why.message};
    }
  }
  return std::unique_ptr<Pool>(new Pool(std::move(impl)));
}

Pool::Pool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Pool::~Pool() {
  if (impl_ && impl_->loop.joinable()) {
    terminate();
    impl_->loop.join();
  }
}

void Pool::Impl::enqueue(Queued entry) {
  const uint64_t limit = max_payload(site.layout.capacity);
  std::string why;
  Reason reason = Reason::none;
  const bool single = entry.task != nullptr;  // entry is moved from below
  {
    std::lock_guard lock(mu);
    // A batch's input sizes are checked as its tasks are dispatched, not in a pass here.
    if (closed) {
      why = closed_reason;
      reason = closed_code;
    } else if (!single && detail::t_data_path_of == this) {
      // The thread that would deliver these outcomes is this one, inside a callback.
      why = "pool " + config.name +
            ": map, map_unordered, map_views and apply cannot be called from an outcome callback of the same pool"
            " (it would wait for itself); submit can";
      reason = Reason::reentrant;
    } else if (entry.task && entry.task->input.size() > limit) {
      why = too_large(entry.task->input.size());
      reason = Reason::input_too_large;
    } else {
      incoming.push_back(std::move(entry));
      has_incoming.store(true, std::memory_order_seq_cst);
    }
  }
  if (why.empty()) {
    // A task goes into a ring on this thread when the data path is free, else the loop
    // takes it in. A batch's caller leads as soon as it waits (lead.cpp), and wakes the
    // loop only if it cannot: a turn here would dispatch before the loop stops listening
    // for results, and the loop would wake for the first of them.
    if (single) lead_once();
    if (single && has_incoming.load(std::memory_order_seq_cst)) wake_loop();
    return;
  }
  // Refused before the loop saw it: this thread is the only one delivering for it.
  if (entry.task) {
    counters->on_refused();
    finish(std::move(entry.task), rejection(reason, why));
    return;
  }
  entry.batch->make_all_slots();
  for (size_t i = 0; i < entry.batch->count; ++i) {
    counters->on_refused();
    entry.batch->put(i, rejection(reason, why));
  }
}

// After has_incoming was set (and whatever it announces): the loop looks at it before it
// sleeps, or is woken here if it announced its sleep first.
void Pool::Impl::wake_loop() {
  if (WakeNotifier(loop_channel()).notify()) eventfd_signal(submit_event.get());
}

std::string Pool::Impl::too_large(size_t bytes) const {
  return too_large_message(bytes, max_payload(site.layout.capacity), config.name);
}

void detail::finish(TaskPtr task, Outcome&& outcome) {
  switch (task->kind) {
    case Task::Kind::batch: {
      const auto [batch, index] = release_batch_task(std::move(task));
      batch->put(index, std::move(outcome));
      return;
    }
    case Task::Kind::callback: {
      auto* t = static_cast<CallbackTask*>(task.release());
      auto done = std::move(t->done);
      delete t;
      done(std::move(outcome));
      return;
    }
    case Task::Kind::future: {
      auto* t = static_cast<FutureTask*>(task.release());
      std::promise<Outcome> promise = std::move(t->promise);
      delete t;
      promise.set_value(std::move(outcome));
      return;
    }
  }
}

void Pool::submit(std::string_view input, std::function<void(Outcome&&)> on_done) {
  auto* t = new CallbackTask;
  t->kind = Task::Kind::callback;
  t->copy.assign(input);
  t->input = t->copy;
  t->done = std::move(on_done);
  impl_->enqueue(Queued{TaskPtr(t)});
}

std::future<Outcome> Pool::submit(std::string_view input) {
  // The promise lives in the task: one allocation fewer than a callback holding it.
  auto* t = new FutureTask;
  t->kind = Task::Kind::future;
  t->copy.assign(input);
  t->input = t->copy;
  auto future = t->promise.get_future();
  impl_->enqueue(Queued{TaskPtr(t)});
  return future;
}

namespace {

// Asks for transparent huge pages on a large block about to be written in full: a map
// of a million outcomes is 88 MB, and faulting it in 4 KiB pages cost more than the
// tasks themselves on a virtual machine (tens of thousands of page faults per call).
void prefer_huge_pages(void* data, size_t bytes) noexcept {
  constexpr uintptr_t kHuge = 2u << 20;
  if (bytes < 2 * kHuge) return;
  auto begin = (reinterpret_cast<uintptr_t>(data) + kPageSize - 1) & ~(uintptr_t{kPageSize} - 1);
  auto end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(uintptr_t{kPageSize} - 1);
  (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // a hint: failure is harmless
}

// The outcomes of one map, map_unordered or map_views call. It is freed by the caller
// once every outcome is in; the thread delivering the last one signals under the mutex,
// so it is done with the batch before the caller can see the end. Outcomes are delivered
// by one thread at a time, under the pool's data_mu (the loop thread's or the leading
// caller's turn), or, for a batch refused before the loop saw it, by the caller's thread
// alone, so the count down and the callbacks need no lock of their own.
class Batch final : public BatchSink {
 public:
  using ViewFn = std::function<void(size_t, const OutcomeView&)>;

  Batch(size_t n, const InputWriter& w, const ViewFn* views)
      : BatchSink(n, w), keep_order_(false), views_(views), remaining_(n) {}
  Batch(std::span<const std::string> in, bool keep_order, const ViewFn* views = nullptr)
      : BatchSink(in), keep_order_(keep_order && views == nullptr), views_(views), remaining_(in.size()) {
    if (keep_order_) {
      ordered_.reserve(in.size());  // never reallocated: the loop writes through slots_
      prefer_huge_pages(ordered_.data(), in.size() * sizeof(Outcome));
      slots_ = ordered_.data();
      ready.store(0, std::memory_order_relaxed);
    }
  }

  // map's outcome slots are made while its first tasks run, not all before: they are 88
  // bytes each, and on a virtual machine whose fresh pages fault in slowly, making the
  // 88 MB of a million outcomes took longer than running the tasks, every worker idle.
  void submit(Pool::Impl& impl) {
    if (keep_order_) make_slots(std::min(count, kFirstSlots));
    impl.enqueue(Queued{TaskPtr(), this});
    // Only map keeps slots: map_unordered and map_views made 88 bytes of Outcome per
    // input here too, for nothing (a million-input map_views faulted in 88 MB).
    while (keep_order_ && ordered_.size() < count) {
      make_slots(std::min(count, ordered_.size() + kMoreSlots));
      impl.has_incoming.store(true, std::memory_order_seq_cst);  // the loop dispatches more
      impl.wake_loop();
    }
  }

  void make_all_slots() override {
    if (keep_order_) make_slots(count);
  }

  bool takes_views() const noexcept override { return views_ != nullptr; }

  void put_view(size_t index, const OutcomeView& v) override {
    // Counted down even when the callback throws: the caller must not wait forever.
    struct CountDown {
      Batch* b;
      ~CountDown() { b->count_down(); }
    } done{this};
    (*views_)(index, v);
  }

  void put(size_t index, Outcome&& o) override {
    if (views_ != nullptr) {  // an outcome that never reached the ring (crashed, rejected, ...)
      const OutcomeView v{o.status, o.reason, o.generation, o.output, o.error, o.worker, o.attempts, o.duration};
      put_view(index, v);
      return;
    }
    if (keep_order_) {
      // Each slot is written by one delivery only; the mutex below publishes them all.
      slots_[index] = std::move(o);
      count_down();
      return;
    }
    std::lock_guard lock(mu_);
    // The caller waits for the queue to become non-empty: one wake-up per burst.
    bool wake = done_.empty();
    done_.emplace_back(index, std::move(o));
    if (wake) {
      any_done_.store(true, std::memory_order_release);
      cv_.notify_one();
      wake_sleeper();
    }
  }

  // The caller leads the data path while it waits (lead.cpp), then sleeps until the loop
  // delivers the rest.
  void wait_all(Pool::Impl& impl) {
    impl.lead_while_waiting(*this);
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return finished_; });
  }

  std::vector<Outcome> wait_ordered(Pool::Impl& impl) {
    wait_all(impl);
    return std::move(ordered_);
  }

  bool caller_may_return() const noexcept override {
    return keep_order_ || views_ != nullptr ? done_all_.load(std::memory_order_acquire)
                                            : any_done_.load(std::memory_order_acquire);
  }

  // Hands out what has completed, as it completes; false once all were handed out.
  bool next(Pool::Impl& impl, std::vector<std::pair<size_t, Outcome>>& out) {
    if (handed_ == count) return false;
    impl.lead_while_waiting(*this);
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !done_.empty(); });
    out.swap(done_);
    any_done_.store(false, std::memory_order_relaxed);
    handed_ += out.size();
    return true;
  }

 private:
  static constexpr size_t kFirstSlots = 4096, kMoreSlots = 32768;

  // The slots below `upto` exist (within the reserved capacity: no reallocation), then
  // the loop may dispatch their inputs. The loop never waits for this thread's lock.
  void make_slots(size_t upto) {
    ordered_.resize(upto);
    ready.store(upto, std::memory_order_release);
  }

  void count_down() {
    if (--remaining_ != 0) return;
    std::lock_guard lock(mu_);
    finished_ = true;
    done_all_.store(true, std::memory_order_release);
    cv_.notify_one();
    wake_sleeper();
  }

  const bool keep_order_;
  const ViewFn* views_;
  std::vector<Outcome> ordered_;
  Outcome* slots_ = nullptr;  // ordered_.data(): the loop thread never reads the vector itself
  size_t remaining_;
  size_t handed_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool finished_ = false;
  std::vector<std::pair<size_t, Outcome>> done_;
  // What caller_may_return reads without mu_: finished_, and done_ not empty.
  std::atomic<bool> done_all_{false}, any_done_{false};
};

// apply(): one input, one outcome, no slot vector, mutex or condition variable (a
// Batch's cost a tenth of a busy round trip). The outcome is delivered under data_mu by
// whoever drains it (its caller leading, another leader, the loop), or on the caller's
// thread when it is refused at enqueue. The caller may return the moment it sees `state_`
// done, so the delivering thread's last touch of this object is that exchange; a futex
// wake-up after it may reach a dead address, which only wakes nobody.
class OneShot final : public BatchSink {
 public:
  explicit OneShot(const std::string& input) noexcept : BatchSink(std::span<const std::string>(&input, 1)) {}

  void put(size_t, Outcome&& o) override {
    outcome_ = std::move(o);
    wake_sleeper();  // before the flag: a caller asleep on its worker's word
    if (state_.exchange(kDone, std::memory_order_acq_rel) == kWaiting) futex_wake_all(&state_);
  }

  bool caller_may_return() const noexcept override { return state_.load(std::memory_order_acquire) == kDone; }

  Outcome wait(Pool::Impl& impl) {
    impl.lead_while_waiting(*this);
    uint32_t expected = kPending;
    if (state_.compare_exchange_strong(expected, kWaiting, std::memory_order_acq_rel))
      while (state_.load(std::memory_order_acquire) == kWaiting) futex_wait(&state_, kWaiting, -1);
    return std::move(outcome_);
  }

 private:
  static constexpr uint32_t kPending = 0, kWaiting = 1, kDone = 2;
  Outcome outcome_;
  std::atomic<uint32_t> state_{kPending};
};

}  // namespace

Outcome Pool::apply(std::string_view input) {
  const std::string copy(input);
  OneShot one(copy);
  impl_->enqueue(Queued{TaskPtr(), &one});
  return one.wait(*impl_);
}

std::vector<Outcome> Pool::map(std::span<const std::string> inputs) {
  if (inputs.empty()) return {};
  Batch batch(inputs, true);
  batch.submit(*impl_);
  return batch.wait_ordered(*impl_);
}

void Pool::map_unordered(std::span<const std::string> inputs,
                         const std::function<void(size_t index, Outcome&& outcome)>& on_done) {
  if (inputs.empty()) return;
  Batch batch(inputs, false);
  batch.submit(*impl_);
  std::vector<std::pair<size_t, Outcome>> ready;
  // The callback runs without the batch lock, so a slow consumer never blocks the loop.
  // The loop delivers into the batch until its last outcome: a callback that throws must
  // not end the batch early, so the rest are awaited (and dropped) before the rethrow.
  std::exception_ptr thrown;
  while (batch.next(*impl_, ready)) {
    for (auto& [i, o] : ready) {
      if (thrown) continue;
      try {
        on_done(i, std::move(o));
      } catch (...) {
        thrown = std::current_exception();
      }
    }
    ready.clear();
  }
  if (thrown) std::rethrow_exception(thrown);
}

void Pool::map_views(std::span<const std::string> inputs,
                     const std::function<void(size_t index, const OutcomeView& outcome)>& on_done) {
  if (inputs.empty()) return;
  Batch batch(inputs, false, &on_done);
  batch.submit(*impl_);
  batch.wait_all(*impl_);
}

void Pool::map_views(size_t count, const InputWriter& inputs,
                     const std::function<void(size_t index, const OutcomeView& outcome)>& on_done) {
  if (count == 0) return;
  if (!inputs.size || !inputs.write) throw std::invalid_argument("map_views: an InputWriter needs both size and write");
  Batch batch(count, inputs, &on_done);
  batch.submit(*impl_);
  batch.wait_all(*impl_);
}

void Pool::close() {
  std::lock_guard lock(impl_->mu);
  impl_->closed = true;
  impl_->has_incoming.store(true);  // wakes the loop so it notices the close
  eventfd_signal(impl_->submit_event.get());
}

void Pool::join() {
  if (detail::t_data_path_of == impl_.get())
    throw std::system_error(std::make_error_code(std::errc::resource_deadlock_would_occur),
                            "pool " + impl_->config.name + ": join from an outcome callback of the same pool");
  close();
  if (impl_->loop.joinable()) impl_->loop.join();
}

void Pool::terminate() { impl_->request_terminate(); }

void Pool::Impl::request_terminate() {
  std::lock_guard lock(mu);
  closed = true;
  closed_reason = "pool closed";
  closed_code = Reason::pool_closed;
  terminating = true;
  has_incoming.store(true);
  eventfd_signal(submit_event.get());
}

PoolConfig Pool::config() const {
  std::lock_guard lock(impl_->mu);
  return impl_->config;
}



size_t Pool::live_workers() const {
  std::lock_guard lock(impl_->mu);
  return impl_->pids.size();
}

std::vector<int> Pool::worker_pids() const {
  std::lock_guard lock(impl_->mu);
  return impl_->pids;
}

PoolStats Pool::stats() const { return impl_->counters->snapshot(); }

}  // namespace shoal
