// Single-producer / single-consumer byte ring over a double-mapped region, carrying
// variable-length records. Each side keeps its own cursor privately and only publishes
// it; the peer's cursor is read from shared memory, checked, and cached, so a corrupted
// or hostile peer can make the ring report an error but never an access outside it.
#ifndef SHOAL_IPC_RING_HPP
#define SHOAL_IPC_RING_HPP

#include "ipc/layout.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>

namespace shoal::detail {

class RingProducer {
 public:
  RingProducer() = default;
  RingProducer(RingHeader* header, std::byte* data, uint64_t capacity) noexcept;

  /// Where `bytes` (<= capacity) may be written at the write cursor, or nullptr while the
  /// consumer has not freed that much. Sets corrupt() if the peer's cursor is impossible.
  std::byte* reserve(uint64_t bytes) noexcept;
  /// Free bytes as last seen (refreshes the cached read cursor).
  uint64_t free_bytes() noexcept;
  /// Moves the private cursor past `bytes` just written (not yet visible to the consumer).
  void advance(uint64_t bytes) noexcept { write_ += bytes; }
  /// Makes every advanced byte visible to the consumer (release store).
  void publish() noexcept;
  /// True when everything published has been consumed.
  bool drained() noexcept;
  bool corrupt() const noexcept { return corrupt_; }
  uint64_t capacity() const noexcept { return capacity_; }

 private:
  void refresh() noexcept;
  RingHeader* header_ = nullptr;
  std::byte* data_ = nullptr;
  uint64_t capacity_ = 0;
  uint64_t write_ = 0;
  uint64_t read_cache_ = 0;
  bool corrupt_ = false;
};

/// A record as read from a ring: the header copied out of shared memory once, and a
/// pointer to the payload (still in shared memory; valid until consume()).
struct RecordView {
  RecordHeader header;
  const std::byte* payload;
  uint64_t total;  // bytes the record occupies in the ring
};

class RingConsumer {
 public:
  RingConsumer() = default;
  RingConsumer(RingHeader* header, std::byte* data, uint64_t capacity) noexcept;

  /// The next record, or nullopt when the ring is empty or corrupt (see corrupt()).
  std::optional<RecordView> peek() noexcept;
  /// True when a record is waiting (no validation beyond the cursor).
  bool has_data() noexcept;
  /// True when at most one record is left to read (the one peek would return).
  bool at_most_one_left() noexcept;
  /// Frees the record returned by peek and publishes the read cursor.
  void consume(const RecordView& record) noexcept {
    skip(record);
    release();
  }
  /// Moves past the record returned by peek; the producer may reuse it after release().
  void skip(const RecordView& record) noexcept { read_ += record.total; }
  /// Publishes the read cursor (release store): every skipped record is free.
  void release() noexcept;
  bool corrupt() const noexcept { return corrupt_; }
  /// The producer's cursor and its value as this side last read it: a thread that only
  /// wants to know whether anything was published since compares the two.
  const std::atomic<uint64_t>& producer_cursor() const noexcept { return header_->write_pos; }
  uint64_t producer_seen() const noexcept { return write_cache_; }

 private:
  RingHeader* header_ = nullptr;
  std::byte* data_ = nullptr;
  uint64_t capacity_ = 0;
  uint64_t read_ = 0;
  uint64_t write_cache_ = 0;
  bool corrupt_ = false;
};

/// Decodes and bounds-checks the record at `at`, given `available` readable bytes. The
/// header is copied once; nullopt if any field points outside `available`.
std::optional<RecordView> decode_record(const std::byte* at, uint64_t available) noexcept;

/// Writes a header at `at` (which must have record_bytes(payload) bytes reserved).
void write_header(std::byte* at, const RecordHeader& header) noexcept;

}  // namespace shoal::detail

#endif
