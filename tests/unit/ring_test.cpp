// The SPSC ring: empty, full, wrap-around, every record size, hostile cursors and
// headers, and a million records between two real processes.
#include "ipc/ring.hpp"
#include "ipc/segment.hpp"
#include "process/spawn.hpp"
#include "support/ring_pattern.hpp"
#include "support/test_env.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <random>
#include <vector>

using namespace shoal::detail;
using namespace shoal::test;

namespace {

// A one-worker segment with both ends of its task ring mapped in this process (two
// separate double mappings, as producer and consumer processes would have).
struct RingFixture {
  SegmentLayout layout;
  Fd fd;
  Mapping block, prod_map, cons_map;
  RingProducer producer;
  RingConsumer consumer;
  WorkerBlock* wb = nullptr;

  explicit RingFixture(uint64_t capacity = 4096) {
    layout = SegmentLayout{SegmentLayout::round_capacity(capacity)};
    auto seg = create_segment(layout, 0);
    REQUIRE(seg.ok());
    fd = std::move(*seg);
    auto b = map_shared(fd.get(), SegmentLayout::block_offset(), kPageSize);
    auto p = map_ring(fd.get(), layout.task_ring_offset(), layout.capacity);
    auto c = map_ring(fd.get(), layout.task_ring_offset(), layout.capacity);
    REQUIRE((b.ok() && p.ok() && c.ok()));
    block = std::move(*b);
    prod_map = std::move(*p);
    cons_map = std::move(*c);
    wb = reinterpret_cast<WorkerBlock*>(block.data());
    producer = RingProducer(&wb->tasks, prod_map.data(), layout.capacity);
    consumer = RingConsumer(&wb->tasks, cons_map.data(), layout.capacity);
  }

  bool push(uint64_t id, const std::string& payload) {
    std::byte* at = producer.reserve(record_bytes(payload.size()));
    if (at == nullptr) return false;
    RecordHeader h{};
    h.task_id = id;
    h.size = static_cast<uint32_t>(payload.size());
    write_header(at, h);
    std::memcpy(at + sizeof(RecordHeader), payload.data(), payload.size());
    producer.advance(record_bytes(payload.size()));
    producer.publish();
    return true;
  }

  std::optional<std::pair<uint64_t, std::string>> pop() {
    auto rec = consumer.peek();
    if (!rec) return std::nullopt;
    std::string s(reinterpret_cast<const char*>(rec->payload), rec->header.size);
    uint64_t id = rec->header.task_id;
    consumer.consume(*rec);
    return std::make_pair(id, s);
  }
};

std::string pattern_payload(uint64_t i, uint32_t size) {
  std::string s(size, '\0');
  for (uint32_t j = 0; j < size; ++j) s[j] = static_cast<char>(pattern_byte(i, j));
  return s;
}

}  // namespace

TEST_CASE("an empty ring yields nothing and reports no data", "[unit][ring]") {
  RingFixture f;
  CHECK_FALSE(f.consumer.has_data());
  CHECK_FALSE(f.consumer.peek().has_value());
  CHECK_FALSE(f.consumer.corrupt());
  CHECK(f.producer.drained());
  CHECK(f.producer.free_bytes() == f.layout.capacity);
}

TEST_CASE("records of every size from 0 to the maximum round-trip intact", "[unit][ring]") {
  RingFixture f;
  const uint64_t max = max_payload(f.layout.capacity);
  REQUIRE(max == f.layout.capacity - sizeof(RecordHeader));
  for (uint64_t size = 0; size <= max; size += (size < 64 ? 1 : 61)) {
    std::string payload = pattern_payload(size, static_cast<uint32_t>(size));
    REQUIRE(f.push(size, payload));
    auto got = f.pop();
    REQUIRE(got.has_value());
    CHECK(got->first == size);
    CHECK(got->second == payload);
  }
  // The exact maximum fills the whole ring in one record.
  std::string biggest = pattern_payload(7, static_cast<uint32_t>(max));
  REQUIRE(f.push(99, biggest));
  CHECK(f.producer.free_bytes() == 0);
  auto got = f.pop();
  REQUIRE(got.has_value());
  CHECK(got->second == biggest);
  // One byte more than the maximum never fits, however empty the ring is.
  CHECK(f.producer.reserve(record_bytes(max + 1)) == nullptr);
}

TEST_CASE("a full ring refuses a record until the consumer frees space", "[unit][ring]") {
  RingFixture f;
  const std::string payload(100, 'a');
  int pushed = 0;
  while (f.push(static_cast<uint64_t>(pushed), payload)) ++pushed;
  CHECK(pushed == static_cast<int>(f.layout.capacity / record_bytes(payload.size())));
  CHECK(f.producer.free_bytes() < record_bytes(payload.size()));
  auto first = f.pop();
  REQUIRE(first.has_value());
  CHECK(first->first == 0);
  CHECK(f.push(1000, payload));
  for (int i = 1; i < pushed; ++i) {
    auto r = f.pop();
    REQUIRE(r.has_value());
    CHECK(r->first == static_cast<uint64_t>(i));
  }
  auto last = f.pop();
  REQUIRE(last.has_value());
  CHECK(last->first == 1000);
  CHECK_FALSE(f.pop().has_value());
  CHECK(f.producer.drained());
}

TEST_CASE("records that cross the end of the ring stay contiguous (wrap-around)", "[unit][ring]") {
  RingFixture f;
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<uint32_t> size(0, 3000);
  uint64_t next_out = 0, next_in = 0;
  std::vector<std::string> sent;
  uint64_t wrapped = 0;
  while (next_out < 20000) {
    uint32_t s = size(rng);
    std::string payload = pattern_payload(next_in, s);
    uint64_t before = f.wb->tasks.write_pos.load() % f.layout.capacity;
    if (f.push(next_in, payload)) {
      if (before + record_bytes(s) > f.layout.capacity) ++wrapped;
      sent.push_back(std::move(payload));
      ++next_in;
      continue;
    }
    auto got = f.pop();
    REQUIRE(got.has_value());
    REQUIRE(got->first == next_out);
    REQUIRE(got->second == sent[next_out]);
    sent[next_out].clear();
    ++next_out;
  }
  CHECK(wrapped > 1000);
}

TEST_CASE("hostile cursors and headers are caught, never followed", "[unit][ring]") {
  SECTION("a write cursor more than a ring ahead") {
    RingFixture f;
    f.wb->tasks.write_pos.store(f.layout.capacity + 8);
    CHECK_FALSE(f.consumer.peek().has_value());
    CHECK(f.consumer.corrupt());
  }
  SECTION("an unaligned write cursor") {
    RingFixture f;
    f.wb->tasks.write_pos.store(13);
    CHECK_FALSE(f.consumer.peek().has_value());
    CHECK(f.consumer.corrupt());
  }
  SECTION("a write cursor that moves backwards") {
    RingFixture f;
    REQUIRE(f.push(1, "abc"));
    REQUIRE(f.pop().has_value());
    f.wb->tasks.write_pos.store(0);
    CHECK_FALSE(f.consumer.peek().has_value());
    CHECK(f.consumer.corrupt());
  }
  SECTION("a record header whose size runs past the published bytes") {
    RingFixture f;
    REQUIRE(f.push(1, "abcdef"));
    RecordHeader h{};
    h.task_id = 1;
    h.size = 0xfffffff0u;
    write_header(f.prod_map.data(), h);
    CHECK_FALSE(f.consumer.peek().has_value());
    CHECK(f.consumer.corrupt());
  }
  SECTION("an error size larger than the record") {
    RingFixture f;
    REQUIRE(f.push(1, "abcdef"));
    RecordHeader h{};
    h.task_id = 1;
    h.size = 6;
    h.error_size = 7;
    write_header(f.prod_map.data(), h);
    CHECK_FALSE(f.consumer.peek().has_value());
  }
  SECTION("a read cursor ahead of what was published") {
    RingFixture f;
    REQUIRE(f.push(1, "abc"));
    f.wb->tasks.read_pos.store(4096 * 4);
    CHECK(f.producer.free_bytes() == 0);  // refreshes the cached read cursor
    CHECK(f.producer.corrupt());
    CHECK(f.producer.reserve(64) == nullptr);
  }
  SECTION("decode_record bounds every field by the readable bytes") {
    std::vector<std::byte> buf(64);
    RecordHeader h{};
    h.size = 32;
    write_header(buf.data(), h);
    CHECK(decode_record(buf.data(), 64).has_value());
    CHECK_FALSE(decode_record(buf.data(), 63).has_value());
    CHECK_FALSE(decode_record(buf.data(), 16).has_value());
  }
}

// A leader watches the producer's cursor between turns without the data lock
// (pool/lead.cpp): what the consumer last saw, against what is published now.
TEST_CASE("the producer's cursor shows what was published since the consumer last looked", "[unit][ring]") {
  RingFixture r;
  CHECK(r.consumer.producer_cursor().load() == r.consumer.producer_seen());
  REQUIRE(r.push(1, "a"));
  CHECK(r.consumer.producer_cursor().load() != r.consumer.producer_seen());
  REQUIRE(r.pop().has_value());
  CHECK_FALSE(r.pop().has_value());
  CHECK(r.consumer.producer_cursor().load() == r.consumer.producer_seen());
}

// The block of a worker that ended while a caller led stays mapped for that caller's
// watch (and for a caller about to sleep on its futex word), detached from the segment:
// the pointer still reads what the page held, later writes to the segment no longer show
// there, and this process no longer maps the dead worker's memfd (its rings' pages).
TEST_CASE("a detached mapping keeps its last contents and no longer maps its file", "[unit][ring]") {
  const auto memfd_lines = [] {
    std::ifstream maps("/proc/self/maps");
    size_t n = 0;
    for (std::string line; std::getline(maps, line);)
      if (line.find("memfd:shoal-worker") != std::string::npos) ++n;
    return n;
  };
  const size_t before = memfd_lines();
  {
    RingFixture r;
    REQUIRE(r.push(1, "a"));
    const std::atomic<uint64_t>& cursor = r.consumer.producer_cursor();
    REQUIRE(cursor.load() != 0);
    const uint64_t published = cursor.load();
    const size_t mapped = memfd_lines();
    REQUIRE(r.block.detach());
    CHECK(cursor.load() == published);
    CHECK(memfd_lines() == mapped - 1);
    // The segment moves on; the detached copy does not follow it.
    auto again = map_shared(r.fd.get(), SegmentLayout::block_offset(), kPageSize);
    REQUIRE(again.ok());
    reinterpret_cast<WorkerBlock*>(again->data())->tasks.write_pos.store(published + 8);
    CHECK(cursor.load() == published);
  }
  CHECK(memfd_lines() == before);
}

TEST_CASE("a million records cross between two real processes intact", "[unit][ring][process]") {
  RingFixture f(64 * 1024);
  constexpr uint64_t kCount = 1'000'000;
  constexpr uint32_t kMaxSize = 256;
  int out[2];
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  Fd out_read(out[0]), out_write(out[1]);
  auto seg = move_fd_above(Fd(::fcntl(f.fd.get(), F_DUPFD_CLOEXEC, 16)), 16);
  REQUIRE(seg.ok());
  SpawnRequest req;
  req.executable = SHOAL_RING_PEER;
  req.argv = {"shoal_ring_peer", std::to_string(f.layout.capacity), std::to_string(kCount), std::to_string(kMaxSize)};
  req.env = environment_with({}, {.all = true, .names = {}});
  req.fds = {{seg->get(), 3}};
  req.stdout_to = out_write.get();
  auto child = spawn_process(req);
  REQUIRE(child.ok());
  out_write.reset();

  uint64_t sum = kFnvSeed;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (uint64_t i = 0; i < kCount;) {
    uint32_t size = pattern_size(i, kMaxSize);
    std::string payload = pattern_payload(i, size);
    if (!f.push(i, payload)) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      sched_yield();
      continue;
    }
    for (char c : payload) sum = fnv1a(sum, static_cast<unsigned char>(c));
    ++i;
  }
  std::string text;
  char buf[256];
  pollfd pfd{out_read.get(), POLLIN, 0};
  while (::poll(&pfd, 1, 60000) > 0) {
    ssize_t n = ::read(out_read.get(), buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  pollfd pid{child->pidfd.get(), POLLIN, 0};
  REQUIRE(::poll(&pid, 1, 30000) == 1);
  ExitStatus st;
  REQUIRE(reap(child->pidfd.get(), st));
  CHECK(st.exited);
  CHECK(st.code == 0);
  CHECK(text == "ok " + std::to_string(kCount) + " " + std::to_string(sum) + "\n");
}
