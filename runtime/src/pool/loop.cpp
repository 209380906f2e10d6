// The pool's event loop: one thread that spawns and supervises the workers (their life
// cycle is in supervise.cpp), moves tasks into their rings and outcomes out of them. It sleeps in epoll on the workers' pidfds
// and control sockets, the eventfd workers write after publishing a result, the eventfd
// callers write after submitting, and a timerfd for shutdown deadlines.
//
// This thread spawns every worker and lives as long as the pool, so nothing a worker
// relies on is tied to a caller's thread that may end earlier.
#include "common/check.hpp"
#include "common/log.hpp"
#include "pool/loop_common.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>

namespace shoal {

using namespace detail;


namespace {

// A user callback that throws must not take the loop (and every other task) down.
template <class Fn>
void guarded(const std::string& pool, Fn&& deliver) noexcept {
  try {
    deliver();
  } catch (const std::exception& e) {
    logf(LogLevel::error, "pool %s: an outcome callback threw: %s", pool.c_str(), e.what());
  } catch (...) {
    logf(LogLevel::error, "pool %s: an outcome callback threw", pool.c_str());
  }
}

Outcome to_outcome(const OutcomeView& v) {
  Outcome o;
  o.status = v.status;
  o.reason = v.reason;
  o.generation = v.generation;
  o.output.assign(v.output);
  o.error.assign(v.error);
  o.worker = v.worker;
  o.attempts = v.attempts;
  o.duration = v.duration;
  return o;
}

}  // namespace

void Pool::Impl::complete(TaskPtr task, Outcome&& outcome) {
  counters->on_outcome(outcome.status, outcome.worker, outcome.duration);
  guarded(config.name, [&] { finish(std::move(task), std::move(outcome)); });
}

void Pool::Impl::complete_view(TaskPtr task, const OutcomeView& view) {
  counters->on_outcome(view.status, view.worker, view.duration);
  const auto to = release_batch_task(std::move(task));  // a lambda cannot capture a binding in clang 14
  guarded(config.name, [&] { to.first->put_view(to.second, view); });
}

// A caller's turn delivers only what cannot run anyone else's code on its thread: a
// future, a map's outcome slot, or a view of its own map_views (lead.cpp).
bool Pool::Impl::caller_delivers(const Task& task) const noexcept {
  if (task.kind == Task::Kind::future) return true;
  if (task.kind != Task::Kind::batch) return false;
  return !task.batch->takes_views() || task.batch == leading_batch;
}

bool Pool::Impl::drain_results(WorkerProcess& w) {
  const bool timeouts = config.task_timeout.count() != 0;
  bool any = false;
  if (w.killed()) return false;  // its ring is not to be trusted; its exit settles its tasks
  while (auto rec = w.results.peek()) {
    if (w.inflight.empty() || w.inflight.front()->id != rec->header.task_id) {
      w.results.release();
      kill_worker(w, "worker " + std::to_string(w.index()) + " wrote a result for a task it was not given", true);
      return any;
    }
    if (led_by_caller && !caller_delivers(*w.inflight.front())) {
      left_for_loop = true;  // the rest of this ring waits for the loop, in order
      break;
    }
    w.stalled = false;
    TaskPtr task = std::move(w.inflight.front());
    w.inflight.pop_front();
    --inflight_total;
    const auto* p = reinterpret_cast<const char*>(rec->payload);
    const uint32_t out_size = rec->header.size - rec->header.error_size;
    OutcomeView v;
    v.status = rec->header.status == static_cast<uint32_t>(WireStatus::ok) ? Status::ok : Status::error;
    v.reason = v.status == Status::ok ? Reason::none : Reason::plugin_error;
    v.output = std::string_view(p, out_size);
    v.error = std::string_view(p + out_size, rec->header.error_size);
    v.worker = static_cast<int32_t>(w.index());
    v.generation = w.generation().number;
    v.duration = std::chrono::nanoseconds(rec->header.duration_ns);
    v.attempts = ++task->attempts;
    const bool timed_out = task->id == w.timed_out_id;
    ++w.served;
    double d = static_cast<double>(rec->header.duration_ns);
    avg_task_ns = avg_task_ns == 0 ? d : avg_task_ns * 0.9 + d * 0.1;
    // The clock is read only when a timeout needs it: it is per task on the hot path.
    if (timeouts && !w.inflight.empty()) w.front_started = std::chrono::steady_clock::now();
    if (timed_out) {
      // It honoured should_stop after its timeout: the outcome is timeout, the worker lives on.
      w.timed_out_id = 0;
      Outcome o = to_outcome(v);
      w.results.skip(*rec);
      o.status = Status::timeout;
      o.reason = Reason::timed_out;
      o.error = "task_timeout " + seconds_text(config.task_timeout) + " passed; the task stopped when asked";
      retry_or_complete(task, std::move(o));
    } else if (task->batch != nullptr && task->batch->takes_views()) {
      complete_view(std::move(task), v);  // the output is read in place, then released
      w.results.skip(*rec);
    } else {
      Outcome o = to_outcome(v);
      w.results.skip(*rec);
      complete(std::move(task), std::move(o));
    }
    any = true;
  }
  if (w.results.corrupt()) kill_worker(w, "worker " + std::to_string(w.index()) + " corrupted its result ring", true);
  if (any) {
    // One release of the read records per drain, not one per record: the cursor's cache
    // line is what the worker reads when its result ring fills.
    w.results.release();
    w.wake();  // it may be waiting for result space
  }
  // max_tasks_per_worker: the host gives a process no more than that, so when the last
  // result is in, the worker is empty and can run its chain and be replaced.
  const uint64_t max_tasks = w.config().max_tasks_per_worker;
  if (max_tasks != 0 && w.phase() == WorkerProcess::Phase::ready && w.dispatched >= max_tasks && w.inflight.empty())
    stop_worker(w, StopMode::drain);
  return any;
}

size_t Pool::Impl::dispatch_depth() const {
  if (avg_task_ns <= 0) return 1;
  double d = std::ceil(kQueueTargetNs / avg_task_ns);
  return static_cast<size_t>(std::clamp(d, 1.0, static_cast<double>(kMaxDepth)));
}

bool Pool::Impl::pending_ready() const {
  const Queued& q = pending.front();
  return q.task || q.batch->next < q.batch->ready.load(std::memory_order_acquire);
}

size_t Pool::Impl::pending_input_size() const {
  const Queued& q = pending.front();
  return q.task ? input_size(*q.task) : q.batch->input_size(q.batch->next);
}

TaskPtr Pool::Impl::pop_pending() {
  Queued& q = pending.front();
  --pending_count;
  if (q.task) {
    TaskPtr t = std::move(q.task);
    pending.pop_front();
    return t;
  }
  BatchSink* b = q.batch;
  // Only a cancel gets here before dispatch saw the input ready. The caller is making its
  // outcome slots and waits for nothing of this thread's meanwhile: this wait is bounded.
  while (b->next >= b->ready.load(std::memory_order_acquire)) std::this_thread::yield();
  TaskPtr t(task_cache.get());
  t->input = b->writer != nullptr ? std::string_view() : std::string_view(b->inputs[b->next]);
  t->batch = b;
  t->cache = &task_cache;
  t->index = b->next;
  t->attempts = 0;
  t->suspect = false;
  if (++b->next == b->count) pending.pop_front();
  return t;
}

void Pool::Impl::push_pending_front(TaskPtr task) {
  pending.push_front(Queued{std::move(task)});
  ++pending_count;
}

void Pool::Impl::cancel_pending(const Outcome& outcome) {
  while (!pending.empty()) complete(pop_pending(), Outcome(outcome));
}

// An InputWriter's input is written where the worker will read it, unpublished until the
// ring's cursor advances: a writer that throws leaves nothing behind but an error outcome.
bool Pool::Impl::write_input(TaskPtr& t, std::span<std::byte> dst) {
  if (t->batch == nullptr || t->batch->writer == nullptr) {
    std::memcpy(dst.data(), t->input.data(), dst.size());
    return true;
  }
  std::string why;
  try {
    t->batch->writer->write(t->index, dst);
    return true;
  } catch (const std::exception& e) {
    why = e.what();
  } catch (...) {
    why = "an exception that is not a std::exception";
  }
  Outcome thrown;
  thrown.status = Status::error;
  thrown.error = "input writer for index " + std::to_string(t->index) + " threw: " + why;
  complete(std::move(t), std::move(thrown));
  return false;
}

void Pool::Impl::dispatch() {
  if (pending.empty()) return;
  size_t depth = dispatch_depth();
  size_t free_workers = 0;
  // A stalled worker gave its queued tasks back: it gets none until its running one ends.
  for (auto& p : procs)
    if (p->usable() && p->inflight.size() < depth) ++free_workers;
  // One whose whole queue was taken back between two tasks holds nothing: no result will
  // lift its mark. Kept from tasks while others have room (it was slow, or stopped), it
  // gets them once none has: the last worker left after a resize to 1 otherwise hung the
  // pool with tasks queued.
  if (free_workers == 0)
    for (auto& p : procs)
      if (p->stalled && p->inflight.empty()) {
        p->stalled = false;
        if (p->usable()) ++free_workers;
      }
  if (free_workers == 0) return;
  // Spread what is pending evenly over the workers that have room, so a short batch is
  // not all queued behind the first worker.
  size_t share = (pending_count + free_workers - 1) / free_workers;
  const bool timeouts = config.task_timeout.count() != 0;
  const uint64_t limit = max_payload(site.layout.capacity);
  bool for_loop = false;
  for (auto& p : procs) {
    if (pending.empty() || for_loop) break;
    WorkerProcess& w = *p;
    if (!w.usable()) continue;
    size_t room = w.inflight.size() < depth ? depth - w.inflight.size() : 0;
    const uint64_t max_tasks = w.config().max_tasks_per_worker;
    if (max_tasks != 0) room = std::min<size_t>(room, max_tasks - w.dispatched);
    for (size_t n = std::min(room, share); n > 0 && !pending.empty(); --n) {
      if (!pending_ready()) break;
      // An InputWriter is the caller's code: never run on another caller's thread.
      const Queued& front = pending.front();
      const BatchSink* owner = front.task ? front.task->batch : front.batch;
      if (led_by_caller && owner != nullptr && owner->writer != nullptr && owner != leading_batch) {
        left_for_loop = for_loop = true;
        break;
      }
      const size_t size = pending_input_size();
      if (size > limit) {  // a batch's input, checked only now (a submit's was at enqueue)
        // Its refusal is a view for a map_views callback: never on another caller's thread.
        if (led_by_caller && owner != nullptr && owner->takes_views() && owner != leading_batch) {
          left_for_loop = for_loop = true;
          break;
        }
        counters->on_refused();
        Outcome refused = rejection(Reason::input_too_large, too_large(size));
        guarded(config.name, [&] { finish(pop_pending(), std::move(refused)); });
        continue;
      }
      // A suspect task runs alone: only into an empty queue, and nothing after it.
      const bool suspect = pending.front().task && pending.front().task->suspect;
      if (suspect && !w.inflight.empty()) break;
      std::byte* at = w.tasks.reserve(record_bytes(size));
      if (at == nullptr) {
        if (w.tasks.corrupt()) kill_worker(w, "worker " + std::to_string(w.index()) + " corrupted its task ring", true);
        break;
      }
      TaskPtr t = pop_pending();
      if (!write_input(t, std::span(at + sizeof(RecordHeader), size))) continue;
      t->id = next_task_id++;
      RecordHeader h{};
      h.task_id = t->id;
      h.size = static_cast<uint32_t>(size);
      write_header(at, h);
      w.tasks.advance(record_bytes(size));
      if (timeouts && w.inflight.empty()) w.front_started = std::chrono::steady_clock::now();
      w.last_dispatched = t->id;
      w.inflight.push_back(std::move(t));
      ++inflight_total;
      ++w.dispatched;
      w.published = true;
      if (suspect) break;
    }
  }
  for (auto& p : procs) {
    WorkerProcess& w = *p;
    if (!w.published) continue;
    w.published = false;
    // One host wake-up per half a queue: each one takes a CPU from a worker for a few
    // microseconds, which with 100 µs tasks on 2 CPUs was 4-6% of the throughput.
    const size_t keep = std::max<size_t>(1, depth / 2);
    const size_t k = w.inflight.size();
    // A lone task's result wakes the host anyway (the worker is about to run dry), so 0
    // does: then a stream of lone tasks (back-to-back apply) leaves the line as it is and
    // in the worker's cache, where a store per task moved it to the host and back.
    const uint64_t after = k > 1 ? w.inflight[k > keep ? k - keep - 1 : 0]->id : 0;
    if (w.block->wake_after_task.load(std::memory_order_relaxed) != after)
      w.block->wake_after_task.store(after, std::memory_order_relaxed);
    w.tasks.publish();
    woke_worker |= w.wake();
  }
}

bool Pool::Impl::take_incoming() {
  if (!has_incoming.load(std::memory_order_acquire)) return false;
  std::vector<Queued>& batch = incoming_spare;
  batch.clear();
  bool term = false;
  {
    std::lock_guard lock(mu);
    batch.swap(incoming);
    has_incoming.store(false, std::memory_order_relaxed);
    term = terminating;
  }
  for (auto& q : batch) {
    pending_count += q.count();
    pending.push_back(std::move(q));
  }
  batch.clear();
  // The loop's turn after a terminate cancels them: a caller's turn never runs callbacks.
  if ((term || phase == Phase::done) && !led_by_caller)
    cancel_pending(stopped_outcome(term, "pool terminated before the task started"));
  return term;
}

bool Pool::Impl::retry_or_complete(TaskPtr& task, Outcome&& outcome) {
  if (task->attempts <= config.retries && !terminate_seen && !failed) {
    push_pending_front(std::move(task));
    return true;
  }
  outcome.attempts = task->attempts;
  complete(std::move(task), std::move(outcome));
  return false;
}

// Only the rings the loop drains count: a killed worker's ring may hold garbage for
// ever, and must not keep the loop from sleeping until its exit is reaped.
bool Pool::Impl::any_result_waiting() {
  for (auto& p : procs)
    if (p->drained() && p->results.has_data()) return true;
  return false;
}

void Pool::Impl::sleep_for_events(std::unique_lock<std::mutex>& data, bool spin) {
  if (spin && leaders == 0) {
    int64_t until = now_ns() + kHostSpinNs;
    for (int i = 0;; ++i) {
      if (has_incoming.load(std::memory_order_relaxed) || any_result_waiting()) return;
      if ((i & 15) == 15 && now_ns() > until) break;
      __builtin_ia32_pause();
    }
  }
  // Announce the sleep to callers and to every worker whose ring is drained, then look
  // once more: one that published just before the announcement is seen here, one that
  // publishes after it sees the announcement and writes an eventfd (ipc/wake.hpp).
  //
  // A leading caller reads the results itself: then the workers are not asked to wake
  // the loop (it sleeps deaf), and the last leader to leave with tasks still out wakes it
  // instead (lead.cpp). `leaders` and `loop_deaf` change only under data_mu, which this
  // thread holds until epoll_wait: a leader that leaves later sees loop_deaf.
  WakeListener(loop_channel()).announce();
  const bool led = leaders != 0;
  loop_deaf = led;
  if (!led)
    for (auto& p : procs)
      if (p->drained()) WakeListener(host_channel(*p->block)).announce();
  WakeListener::fence();
  bool skip = has_incoming.load() || (!led && any_result_waiting());
  epoll_event events[32];
  data.unlock();
  int n = skip ? ::epoll_wait(epoll.get(), events, 32, 0) : ::epoll_wait(epoll.get(), events, 32, -1);
  lock_for_loop(data);
  loop_deaf = false;
  for (auto& p : procs) WakeListener(host_channel(*p->block)).withdraw();
  WakeListener(loop_channel()).withdraw();
  for (int i = 0; i < n; ++i) {
    auto kind = static_cast<EventKind>(events[i].data.u64 >> 32);
    auto index = static_cast<uint32_t>(events[i].data.u64 & 0xffffffffu);
    switch (kind) {
      case kSubmit: eventfd_drain(submit_event.get()); break;
      case kResult: eventfd_drain(result_event.get()); break;
      case kTimer: on_timer(); break;
      case kStartTimer: on_start_timer(); break;
      case kTaskTimer: on_task_timer(); break;
      case kStealTimer: on_steal_timer(); break;
      case kStartCancel: on_start_cancel(); break;
      case kControl:
      case kPidfd:
      case kOutput:
      case kLog: on_process_event(kind, index); break;
    }
  }
}

void Pool::Impl::on_process_event(uint32_t kind, uint32_t key) {
  // A process reaped earlier in the same batch of events is gone: its events are stale.
  WorkerProcess* w = nullptr;
  for (auto& p : procs)
    if (p->key() == key) w = p.get();
  if (w == nullptr) return;
  switch (kind) {
    case kControl: on_control(*w); break;
    case kPidfd: on_exit(*w); break;
    case kOutput: w->on_output(false); break;
    case kLog: w->on_log(false); break;
    default: break;
  }
}

bool Pool::Impl::watch(int fd, uint64_t key) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = key;
  return ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
}

void Pool::Impl::unwatch(int fd) {
  // Only EBADF, ENOENT or EINVAL can come back, each a bug of ours; the close that follows
  // would drop the registration anyway.
  SHOAL_CHECK(::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, fd, nullptr) == 0);
}

void Pool::Impl::run_loop() {
  std::unique_lock data(data_mu);  // dropped only inside epoll_wait (sleep_for_events)
  t_data_path_of = this;
  for (auto& slot : slots) {
    spawn_slot(slot);
    if (phase == Phase::done || start_state == StartState::failed) break;
  }
  for (;;) {
    take_incoming();
    bool progress = false;
    for (auto& p : procs)
      if (p->drained()) progress |= drain_results(*p);
    bool term = false, is_closed = false;
    {
      std::lock_guard lock(mu);
      term = terminating;
      is_closed = closed;
    }
    if (term && !terminate_seen) {
      terminate_seen = true;
      take_incoming();
      cancel_pending(cancellation(Reason::terminated, "pool terminated before the task started"));
      if (phase == Phase::starting) finish_start(false, Error{Errc::cancelled, "pool terminated while starting"});
      request_stop(StopMode::now);
    }
    if (!stop_requested) {
      step_operation();
      dispatch();
    }
    maybe_arm_steal();
    if (is_closed && !stop_requested && pending.empty() && inflight_total == 0 && !has_incoming.load() &&
        phase == Phase::running)
      request_stop(StopMode::drain);
    if (stop_requested && procs.empty()) {
      take_incoming();  // a submit racing with close already holds a task: it gets its outcome
      break;
    }
    arm_task_timer();
    counters->set_load(pending_count, inflight_total);
    wake_moved_sleepers();
    // Spin only when results come faster than a sleep and wake-up would take: with
    // longer tasks the spinning host would take CPU from the workers it waits for.
    sleep_for_events(data, !progress && inflight_total > 0 && avg_task_ns < kHostSpinNs);
  }
  phase = Phase::done;
  {
    std::lock_guard lock(mu);
    closed = true;
  }
  take_incoming();
  // The last line of "exactly one outcome": whatever is still queued (a worker's tasks
  // that came back while the pool stopped) ends here.
  cancel_pending(stopped_outcome(terminate_seen, "pool stopped before the task started"));
  counters->set_load(0, 0);
  finish_start(false, Error{Errc::cancelled, "pool stopped while starting"});
  abandon_operations("pool stopped");  // none can be queued after `closed`; none waits for ever
}

void Pool::Impl::on_start_cancel() {
  // Once: the descriptor stays readable (the caller reads it), and it means nothing
  // after the start.
  unwatch(start_cancel_fd);
  start_cancel_fd = -1;
  if (phase != Phase::starting) return;
  finish_start(false, Error{Errc::cancelled, "start cancelled"});
  request_terminate();
}

}  // namespace shoal
