// Consumer half of the cross-process ring test: maps the ring the test process fills
// (descriptor 3), reads COUNT records, checks each one against the shared pattern and
// prints "ok COUNT CHECKSUM". Exits 1 at the first mismatch, naming it.
#include "ipc/ring.hpp"
#include "ipc/segment.hpp"
#include "support/ring_pattern.hpp"

#include <sched.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>

using namespace shoal::detail;
using namespace shoal::test;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: shoal_ring_peer CAPACITY COUNT MAXSIZE\n");
    return 2;
  }
  SegmentLayout layout{std::strtoull(argv[1], nullptr, 10)};
  uint64_t count = std::strtoull(argv[2], nullptr, 10);
  auto max_size = static_cast<uint32_t>(std::strtoul(argv[3], nullptr, 10));
  auto block = map_shared(3, SegmentLayout::block_offset(), kPageSize);
  auto ring = map_ring(3, layout.task_ring_offset(), layout.capacity);
  if (!block || !ring) {
    std::fprintf(stderr, "ring_peer: cannot map the segment\n");
    return 2;
  }
  auto* wb = reinterpret_cast<WorkerBlock*>(block->data());
  RingConsumer consumer(&wb->tasks, ring->data(), layout.capacity);
  uint64_t sum = kFnvSeed;
  for (uint64_t i = 0; i < count;) {
    auto rec = consumer.peek();
    if (!rec) {
      if (consumer.corrupt()) {
        std::fprintf(stderr, "ring_peer: ring corrupt at record %" PRIu64 "\n", i);
        return 1;
      }
      sched_yield();
      continue;
    }
    uint32_t want = pattern_size(i, max_size);
    if (rec->header.task_id != i || rec->header.size != want) {
      std::fprintf(stderr, "ring_peer: record %" PRIu64 ": id %" PRIu64 " size %u, expected size %u\n", i,
                   rec->header.task_id, rec->header.size, want);
      return 1;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(rec->payload);
    for (uint32_t j = 0; j < want; ++j) {
      if (p[j] != pattern_byte(i, j)) {
        std::fprintf(stderr, "ring_peer: record %" PRIu64 " byte %u differs\n", i, j);
        return 1;
      }
      sum = fnv1a(sum, p[j]);
    }
    consumer.consume(*rec);
    ++i;
  }
  std::printf("ok %" PRIu64 " %" PRIu64 "\n", count, sum);
  return 0;
}
