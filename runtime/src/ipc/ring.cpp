#include "ipc/ring.hpp"

#include <cstring>

namespace shoal::detail {

RingProducer::RingProducer(RingHeader* header, std::byte* data, uint64_t capacity) noexcept
    : header_(header), data_(data), capacity_(capacity) {
  write_ = header_->write_pos.load(std::memory_order_relaxed);
  read_cache_ = write_;
}

void RingProducer::refresh() noexcept {
  uint64_t r = header_->read_pos.load(std::memory_order_acquire);
  // The consumer may only move forward and never past what was published.
  if (r < read_cache_ || r > write_) {
    corrupt_ = true;
    return;
  }
  read_cache_ = r;
}

std::byte* RingProducer::reserve(uint64_t bytes) noexcept {
  if (corrupt_ || bytes > capacity_) return nullptr;
  if (capacity_ - (write_ - read_cache_) < bytes) {
    refresh();
    if (corrupt_ || capacity_ - (write_ - read_cache_) < bytes) return nullptr;
  }
  return data_ + (write_ & (capacity_ - 1));
}

uint64_t RingProducer::free_bytes() noexcept {
  refresh();
  return corrupt_ ? 0 : capacity_ - (write_ - read_cache_);
}

void RingProducer::publish() noexcept { header_->write_pos.store(write_, std::memory_order_release); }

bool RingProducer::drained() noexcept {
  refresh();
  return !corrupt_ && read_cache_ == write_;
}

RingConsumer::RingConsumer(RingHeader* header, std::byte* data, uint64_t capacity) noexcept
    : header_(header), data_(data), capacity_(capacity) {
  read_ = header_->read_pos.load(std::memory_order_relaxed);
  write_cache_ = read_;
}

bool RingConsumer::has_data() noexcept {
  if (read_ != write_cache_) return true;
  return header_->write_pos.load(std::memory_order_acquire) != read_;
}

bool RingConsumer::at_most_one_left() noexcept {
  uint64_t w = header_->write_pos.load(std::memory_order_acquire);
  if (w <= read_ || w - read_ > capacity_) return true;
  auto rec = decode_record(data_ + (read_ & (capacity_ - 1)), w - read_);
  return !rec || rec->total >= w - read_;
}

std::optional<RecordView> RingConsumer::peek() noexcept {
  if (corrupt_) return std::nullopt;
  if (read_ == write_cache_) {
    uint64_t w = header_->write_pos.load(std::memory_order_acquire);
    if (w == read_) return std::nullopt;
    // The producer may only move forward, by whole 8-byte-aligned records, and never
    // more than a ring ahead of the reader.
    if (w < write_cache_ || w - read_ > capacity_ || (w & 7) != 0) {
      corrupt_ = true;
      return std::nullopt;
    }
    write_cache_ = w;
  }
  auto rec = decode_record(data_ + (read_ & (capacity_ - 1)), write_cache_ - read_);
  if (!rec) corrupt_ = true;
  return rec;
}

void RingConsumer::release() noexcept { header_->read_pos.store(read_, std::memory_order_release); }

std::optional<RecordView> decode_record(const std::byte* at, uint64_t available) noexcept {
  if (available < sizeof(RecordHeader)) return std::nullopt;
  RecordView v{};
  std::memcpy(&v.header, at, sizeof v.header);
  if (v.header.size > available - sizeof(RecordHeader)) return std::nullopt;
  if (v.header.error_size > v.header.size) return std::nullopt;
  v.total = record_bytes(v.header.size);
  if (v.total > available) return std::nullopt;
  v.payload = at + sizeof(RecordHeader);
  return v;
}

void write_header(std::byte* at, const RecordHeader& header) noexcept {
  std::memcpy(at, &header, sizeof header);
}

}  // namespace shoal::detail
