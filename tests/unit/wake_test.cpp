// The wake primitive (ipc/wake.hpp): a listener that announced its sleep is woken by
// every notify after a change, in both directions, and a notifier finds the listener
// asleep only when it announced.
#include "common/event.hpp"
#include "common/fd.hpp"
#include "ipc/layout.hpp"
#include "ipc/wake.hpp"

#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/eventfd.h>

#include <chrono>
#include <memory>
#include <thread>

using namespace shoal::detail;

namespace {

// Longer than any scheduling delay of a loaded test machine, far shorter than the test's
// timeout: a wait that lasts this long was not woken.
constexpr int64_t kLostNs = 2'000'000'000;

int64_t elapsed_ns(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

TEST_CASE("wake: announcing, notifying and waking set and read the block's words", "[unit][wake]") {
  auto block = std::make_unique<WorkerBlock>();
  const WakeChannel worker = worker_channel(*block);
  const WakeChannel host = host_channel(*block);
  CHECK(worker.sleeping == &block->worker_sleeping);
  CHECK(worker.word == &block->worker_wake);
  CHECK(host.sleeping == &block->host_sleeping);
  CHECK(host.word == nullptr);

  // A listener that did not announce is not woken: no bump, no system call.
  CHECK_FALSE(WakeNotifier(worker).notify());
  CHECK(block->worker_wake.load() == 0);
  WakeListener(worker).announce();
  CHECK(WakeNotifier(worker).notify());
  CHECK(block->worker_wake.load() == 1);
  CHECK(block->worker_sleeping.load() == 1);  // the listener takes its announcement down
  WakeListener(worker).withdraw();
  CHECK_FALSE(WakeNotifier(worker).notify());
  // wake() does not look at the announcement (a stop from a signal handler).
  WakeNotifier(worker).wake();
  CHECK(block->worker_wake.load() == 2);

  // Host channel: one notifier per announced sleep writes the eventfd.
  CHECK_FALSE(WakeNotifier(host).notify_once());
  WakeListener(host).announce();
  CHECK(WakeNotifier(host).notify());  // looks only
  CHECK(WakeNotifier(host).notify_once());
  CHECK_FALSE(WakeNotifier(host).notify_once());
  CHECK(block->host_sleeping.load() == 0);
}

TEST_CASE("wake: a listener returns at once when ready() already holds", "[unit][wake]") {
  auto block = std::make_unique<WorkerBlock>();
  int calls = 0;
  WakeListener(worker_channel(*block)).wait([&] { return ++calls > 0; }, -1);
  CHECK(calls == 1);
  CHECK(block->worker_sleeping.load() == 0);
}

// Host and worker roles in two threads, the way the pool uses the primitive: the "host"
// publishes a task and notifies the worker channel, the "worker" publishes its result and
// notifies the host channel once per sleep, the host sleeping in poll on an eventfd.
// Every round trip makes one side sleep or nearly so; a lost wake-up would show as a wait
// of kLostNs.
TEST_CASE("wake: no wake-up is lost in 20000 round trips in both directions", "[unit][wake]") {
  constexpr uint64_t kRounds = 20000;
  auto block = std::make_unique<WorkerBlock>();
  Fd event(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  REQUIRE(event);
  std::atomic<uint64_t> task{0}, result{0};
  std::atomic<uint64_t> lost{0};  // a broken primitive ends the test after a few, not 20000
  uint64_t worker_lost = 0, host_lost = 0, host_woken = 0, worker_woken = 0;
  const auto give_up = [&] { return lost.load() >= 3; };

  std::thread worker([&] {
    const WakeListener listener(worker_channel(*block));
    const WakeNotifier to_host(host_channel(*block));
    for (uint64_t i = 1; i <= kRounds; ++i) {
      const auto since = std::chrono::steady_clock::now();
      // A spin of varying length first, as the worker does: it puts the announcement
      // close to the host's publish, where a missing fence would lose the wake-up.
      for (uint64_t spin = i % 128; spin > 0 && task.load(std::memory_order_acquire) < i; --spin)
        __builtin_ia32_pause();
      listener.wait([&] { return task.load(std::memory_order_acquire) >= i || give_up(); }, kLostNs);
      if (elapsed_ns(since) >= kLostNs) ++worker_lost, ++lost;
      if (give_up()) break;
      result.store(i, std::memory_order_release);
      if (to_host.notify_once()) eventfd_signal(event.get());
    }
  });

  const WakeListener host(host_channel(*block));
  const WakeNotifier to_worker(worker_channel(*block));
  for (uint64_t i = 1; i <= kRounds && !give_up(); ++i) {
    task.store(i, std::memory_order_release);
    if (to_worker.notify()) ++worker_woken;
    while (!give_up()) {
      host.announce();
      WakeListener::fence();
      if (result.load(std::memory_order_acquire) >= i) break;
      pollfd p{event.get(), POLLIN, 0};
      const int n = ::poll(&p, 1, static_cast<int>(kLostNs / 1'000'000));
      if (n == 0) ++host_lost, ++lost;
      eventfd_drain(event.get());
      ++host_woken;
      host.withdraw();
    }
    host.withdraw();
  }
  worker.join();
  CHECK(worker_lost == 0);
  CHECK(host_lost == 0);
  // Both sides did sleep: the futex and the eventfd paths were taken.
  CHECK(worker_woken > 0);
  CHECK(host_woken > 0);
  CHECK(result.load() == kRounds);
}
