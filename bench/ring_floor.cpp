// floor_ring_stream: the bare two-process ring stream, issue 19's floor for tiny-task
// map. This process and a peer (this executable again, `--ring-peer`) share one memfd
// laid out as a worker's segment: the same rings (ipc/ring.hpp), the same 32-byte record
// header, the same wake-up protocol (ipc/wake.hpp: the peer sleeps on worker_wake, this
// side on an eventfd announced in host_sleeping). The peer echoes each 8-byte task into
// the result ring, one record and one publish at a time as a worker does; this side
// writes tasks while there is room and reads results while there are some, in batches as
// the loop's dispatch and drain do, on one thread. No Pool, no loop thread, no caller
// hand-over, no Outcome: what is left is the cost of the rings and the two processes.
#include "bench.hpp"

#include "common/event.hpp"
#include "common/fd.hpp"
#include "ipc/ring.hpp"
#include "ipc/segment.hpp"
#include "ipc/wake.hpp"
#include "process/spawn.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

namespace bench {

using namespace shoal::detail;

namespace {

constexpr int kSegmentFd = 3, kEventFd = 4;
// The ring of the tiny map's pools (bench.cpp's pool(): 4 MiB), so both see the same
// cache footprint.
constexpr uint64_t kCapacity = 4u << 20;
// Records written (or read) before one publish (or release): small enough that the peer
// starts on a batch while the next one is written, large enough that the shared cursor
// lines move once per batch, not once per record.
constexpr uint64_t kBatch = 256;
// Spins before either side sleeps: long enough to cover the other side's next batch
// (a few µs), bounded so that an idle side gives its CPU back.
constexpr int kSpinPauses = 2048;
constexpr uint64_t kPayload = sizeof(uint64_t);  // the tiny map's 8-byte input

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "shoal_bench: ring floor: %s\n", why.c_str());
  std::exit(2);
}

template <class Ready>
bool spin_until(Ready&& ready) {
  for (int i = 0; i < kSpinPauses; ++i) {
    if (ready()) return true;
    __builtin_ia32_pause();
  }
  return ready();
}

// Both processes map the segment the same way.
struct Shared {
  Mapping block_map, task_map, result_map;
  WorkerBlock* block = nullptr;

  Shared(int fd, const SegmentLayout& layout) {
    auto b = map_shared(fd, SegmentLayout::block_offset(), kPageSize);
    auto t = map_ring(fd, layout.task_ring_offset(), layout.capacity);
    auto r = map_ring(fd, layout.result_ring_offset(), layout.capacity);
    if (!b || !t || !r) fail("cannot map the segment");
    block_map = std::move(*b);
    task_map = std::move(*t);
    result_map = std::move(*r);
    block = reinterpret_cast<WorkerBlock*>(block_map.data());
  }
};

}  // namespace

int ring_floor_peer(int argc, char** argv) {
  if (argc != 4) return 2;
  const SegmentLayout layout{std::strtoull(argv[2], nullptr, 10)};
  const uint64_t count = std::strtoull(argv[3], nullptr, 10);
  const pid_t parent = ::getppid();
  Shared s(kSegmentFd, layout);
  RingConsumer tasks(&s.block->tasks, s.task_map.data(), layout.capacity);
  RingProducer results(&s.block->results, s.result_map.data(), layout.capacity);
  const WakeListener listener(worker_channel(*s.block));
  const WakeNotifier host(host_channel(*s.block));
  // Spin, then sleep on worker_wake; the bench notifies after each batch it writes or
  // frees. An orphan (the bench died) gives up at the next one-second re-check.
  auto wait = [&](auto ready) {
    if (spin_until(ready)) return;
    listener.wait([&] { return ready() || ::getppid() != parent; }, 1'000'000'000);
    if (::getppid() != parent) std::exit(3);
  };
  for (uint64_t done = 0; done < count;) {
    auto rec = tasks.peek();
    if (!rec) {
      if (tasks.corrupt()) return 1;
      wait([&] { return tasks.has_data(); });
      continue;
    }
    std::byte* out = results.reserve(rec->total);
    if (out == nullptr) {
      if (results.corrupt()) return 1;
      wait([&] { return results.reserve(rec->total) != nullptr || results.corrupt(); });
      continue;
    }
    std::memcpy(out + sizeof(RecordHeader), rec->payload, rec->header.size);
    RecordHeader h{};
    h.task_id = rec->header.task_id;
    h.size = rec->header.size;
    write_header(out, h);
    tasks.consume(*rec);
    results.advance(record_bytes(h.size));
    results.publish();
    // A fence and a load while the bench is awake; one eventfd write per sleep of it.
    if (host.notify_once()) eventfd_signal(kEventFd);
    ++done;
  }
  return 0;
}

void ring_stream_floor(bool quick) {
  const uint64_t n = quick ? 200'000 : 1'000'000, warm = 10'000;
  constexpr int reps = 3;  // the median of 3 streams, as a_map_tiny's median of 3 maps
  const SegmentLayout layout{SegmentLayout::round_capacity(kCapacity)};
  auto seg = create_segment(layout, 0);
  if (!seg) fail(seg.error().message);
  Fd event(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!event) fail("eventfd");
  Shared s(seg->get(), layout);
  RingProducer tasks(&s.block->tasks, s.task_map.data(), layout.capacity);
  RingConsumer results(&s.block->results, s.result_map.data(), layout.capacity);
  const WakeNotifier worker(worker_channel(*s.block));
  const WakeListener listener(host_channel(*s.block));

  // Above 16 first: the child's numbers 3 and 4 must not be taken by the other one.
  auto seg_fd = move_fd_above(std::move(*seg), 16);
  auto event_fd = move_fd_above(std::move(event), 16);
  if (!seg_fd || !event_fd) fail("cannot move the descriptors");
  SpawnRequest req;
  req.executable = std::filesystem::read_symlink("/proc/self/exe").string();
  req.argv = {"shoal_bench", "--ring-peer", std::to_string(layout.capacity), std::to_string(warm + reps * n)};
  req.env = environment_with({}, {.all = true, .names = {}});
  req.fds = {{seg_fd->get(), kSegmentFd}, {event_fd->get(), kEventFd}};
  req.stdin_null = true;
  auto child = spawn_process(req);
  if (!child) fail(child.error().message);

  uint64_t next_id = 1, expect_id = 1, wrong = 0;
  // Results wait with nobody to read them: spin, then announce the sleep, re-check, and
  // block on the eventfd (the peer writes it once it sees the announcement).
  auto wait_for_results = [&] {
    if (spin_until([&] { return results.has_data(); })) return;
    listener.announce();
    WakeListener::fence();
    if (!results.has_data()) {
      // The pidfd too: a peer that died writes no eventfd. It also exits when it is done,
      // possibly after publishing its last results while this side slept: only a dead
      // peer that left nothing to read is a failure.
      pollfd both[] = {{event_fd->get(), POLLIN, 0}, {child->pidfd.get(), POLLIN, 0}};
      const int ready = ::poll(both, 2, 10'000);
      if (ready <= 0 || ((both[1].revents & POLLIN) != 0 && !results.has_data())) {
        ExitStatus st;
        fail("the peer stopped answering (" +
             (ready <= 0 ? std::string("no result in 10 s") : reap(both[1].fd, st) ? describe(st) : "exited") +
             "; tasks " + std::to_string(s.block->tasks.write_pos.load()) + " written, " +
             std::to_string(s.block->tasks.read_pos.load()) + " read; results " +
             std::to_string(s.block->results.write_pos.load()) + " written, " +
             std::to_string(s.block->results.read_pos.load()) + " read)");
      }
      eventfd_drain(event_fd->get());
    }
    listener.withdraw();
  };
  auto stream = [&](uint64_t count) {
    const uint64_t last = next_id + count;
    while (expect_id < last) {
      bool progress = false;
      uint64_t written = 0;
      for (std::byte* p; written < kBatch && next_id < last && (p = tasks.reserve(record_bytes(kPayload)));
           ++written, ++next_id) {
        RecordHeader h{};
        h.task_id = next_id;
        h.size = kPayload;
        write_header(p, h);
        std::memcpy(p + sizeof(RecordHeader), &next_id, kPayload);
        tasks.advance(record_bytes(kPayload));
      }
      if (written > 0) {
        tasks.publish();
        worker.notify();
        progress = true;
      }
      uint64_t read = 0;
      for (; read < kBatch; ++read, ++expect_id) {
        auto rec = results.peek();
        if (!rec) break;
        uint64_t echoed = 0;
        std::memcpy(&echoed, rec->payload, std::min<uint64_t>(rec->header.size, kPayload));
        wrong += rec->header.task_id != expect_id || rec->header.size != kPayload || echoed != expect_id ? 1u : 0u;
        results.skip(*rec);
      }
      if (results.corrupt() || tasks.corrupt()) fail("a ring is corrupt");
      if (read > 0) {
        results.release();
        worker.notify();  // it may wait for result space
        progress = true;
      }
      if (!progress) wait_for_results();
    }
  };
  stream(warm);
  std::vector<double> rates;
  for (int rep = 0; rep < reps; ++rep) {
    auto t0 = Clock::now();
    stream(n);
    rates.push_back(static_cast<double>(n) / seconds_since(t0));
  }
  pollfd exited{child->pidfd.get(), POLLIN, 0};
  ExitStatus st;
  if (::poll(&exited, 1, 10'000) != 1 || !reap(child->pidfd.get(), st) || !st.exited || st.code != 0)
    fail("the peer did not exit cleanly");
  if (wrong != 0) fail(std::to_string(wrong) + " echoed records wrong");
  figure("floor_ring_stream", median(rates), "tasks/s");
}

}  // namespace bench
