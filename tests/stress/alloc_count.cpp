// No heap allocation per task on map's hot path: every operator new in this process (the
// caller, the pool's loop thread) is counted while 200,000 tiny tasks go through map.
// Allocations per batch (the outcome vector, the queue's blocks) are allowed; one per
// task is not. Then submit() with a future: three per task (the task with its input,
// and std::promise's shared state and result), no more. Its own program: replacing the
// global operator new would change every other test's process too.
#include "fixture_paths.hpp"

#include <shoal/runtime.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <new>
#include <string>
#include <vector>

namespace {
std::atomic<uint64_t> g_news{0};
// Out of line: GCC pairs an inline free() with the operator new it sees and warns
// (-Wmismatched-new-delete) although this file replaces both.
[[gnu::noinline]] void release(void* p) noexcept { std::free(p); }
}  // namespace

void* operator new(std::size_t n) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::aligned_alloc(static_cast<std::size_t>(a), (n + static_cast<std::size_t>(a) - 1) & ~(static_cast<std::size_t>(a) - 1)))
    return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return ::operator new(n, a); }
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }
void operator delete(void* p, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { release(p); }

int main() {
  shoal::PoolConfig config;
  config.name = "alloc";
  config.plugin = SHOAL_PLUGIN_ECHO;
  config.workers = 2;
  auto pool = shoal::Pool::start(config);
  if (!pool) {
    std::fprintf(stderr, "alloc_count: %s\n", pool.error().message.c_str());
    return 1;
  }
  constexpr size_t kTasks = 200'000;
  const std::vector<std::string> inputs(kTasks, "12345678");
  (void)(*pool)->map(inputs);  // warm-up: queues and arrays reach their size once
  const uint64_t before = g_news.load();
  auto outcomes = (*pool)->map(inputs);
  const uint64_t during = g_news.load() - before;
  size_t ok = 0;
  for (size_t i = 0; i < kTasks; ++i) ok += outcomes[i].status == shoal::Status::ok && outcomes[i].output == inputs[i];
  const double per_task = static_cast<double>(during) / kTasks;
  std::printf("alloc_count: map: %llu allocations for %zu tasks (%.4f per task), %zu ok\n",
              static_cast<unsigned long long>(during), kTasks, per_task, ok);

  constexpr size_t kSubmits = 20'000;
  std::vector<std::future<shoal::Outcome>> futures;
  futures.reserve(kSubmits);
  const uint64_t before_submit = g_news.load();
  for (size_t i = 0; i < kSubmits; ++i) futures.push_back((*pool)->submit(inputs[i]));
  size_t submit_ok = 0;
  for (auto& f : futures) submit_ok += f.get().status == shoal::Status::ok;
  const double per_submit = static_cast<double>(g_news.load() - before_submit) / kSubmits;
  std::printf("alloc_count: submit: %.4f allocations per task, %zu ok\n", per_submit, submit_ok);
  (*pool)->join();
  // A per-task allocation anywhere on map's path would make its figure at least 1.
  if (ok != kTasks || per_task > 0.05) {
    std::fprintf(stderr, "alloc_count: FAILED (map: limit 0.05 per task)\n");
    return 1;
  }
  // Three, plus the queues' blocks (one per 32 or 64 tasks): a fourth would make it 4.
  if (submit_ok != kSubmits || per_submit > 3.2) {
    std::fprintf(stderr, "alloc_count: FAILED (submit: limit 3 per task)\n");
    return 1;
  }
  return 0;
}
