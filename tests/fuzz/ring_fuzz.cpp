// libFuzzer target over the ring decoder: whatever a hostile or corrupted worker writes
// into a ring (cursors and record headers), the consumer reads only inside the ring.
#include "ipc/ring.hpp"
#include "ipc/segment.hpp"

#include <cstdint>
#include <cstring>
#include <vector>

using namespace shoal::detail;

namespace {

struct Ring {
  SegmentLayout layout{kMinRingCapacity};
  Fd fd;
  Mapping block, data;
  Ring() {
    auto seg = create_segment(layout, 0);
    if (!seg) __builtin_trap();
    fd = std::move(*seg);
    auto b = map_shared(fd.get(), SegmentLayout::block_offset(), kPageSize);
    auto d = map_ring(fd.get(), layout.task_ring_offset(), layout.capacity);
    if (!b || !d) __builtin_trap();
    block = std::move(*b);
    data = std::move(*d);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  // decode_record on an exact-size heap copy: any read past `size` is an ASan report.
  std::vector<std::byte> copy(size);
  if (size != 0) std::memcpy(copy.data(), bytes, size);
  (void)decode_record(copy.data(), size);

  // The whole consumer over a ring whose cursor and contents come from the input.
  static Ring ring;
  auto* wb = reinterpret_cast<WorkerBlock*>(ring.block.data());
  uint64_t write_pos = 0;
  if (size >= 8) std::memcpy(&write_pos, bytes, 8);
  size_t body = size > 8 ? std::min<size_t>(size - 8, ring.layout.capacity) : 0;
  std::memset(ring.data.data(), 0, ring.layout.capacity);
  if (body != 0) std::memcpy(ring.data.data(), bytes + 8, body);
  wb->tasks.read_pos.store(0);
  wb->tasks.write_pos.store(write_pos);
  RingConsumer consumer(&wb->tasks, ring.data.data(), ring.layout.capacity);
  for (int i = 0; i < 1024; ++i) {
    auto rec = consumer.peek();
    if (!rec) break;
    volatile std::byte sink{};
    for (uint32_t j = 0; j < rec->header.size; ++j) sink = rec->payload[j];  // touch every payload byte
    (void)sink;
    consumer.consume(*rec);
  }
  return 0;
}
