// Reads input line by line for subcommands that take one task per line (`run`,
// `submit`): a trailing \r is stripped, the last line needs no newline, and a blocking
// read can be interrupted through an eventfd.
#ifndef SHOAL_CLI_LINE_READER_HPP
#define SHOAL_CLI_LINE_READER_HPP

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace shoal::cli {

// Reads lines from a descriptor with read(2), and can be woken out of a blocking read by
// an eventfd: a terminal or a pipe may never deliver another byte, and the run must still
// be able to stop (Ctrl-C, a broken output) and join this thread.
class LineReader {
 public:
  // too_long: a line longer than max_line; `line` is empty and too_long_size() tells its
  // length. The reader held at most max_line bytes of it and skipped the rest.
  enum class Read { line, too_long, eof, stopped, error };

  /// `max_line`: the longest line returned (without its \r\n); a longer one is skipped
  /// to its newline and reported as too_long, so memory stays bounded whatever the input
  /// (/dev/zero is one endless line).
  /// `separator` '\0': records end at a NUL byte and keep any \r (binary input).
  LineReader(int fd, int wake_fd, size_t max_line = SIZE_MAX, char separator = '\n')
      : fd_(fd), wake_fd_(wake_fd), max_line_(max_line), sep_(separator), buf_(kChunk) {}

  Read next(std::string& line) {
    for (;;) {
      const char* base = buf_.data();
      if (const void* nl = std::memchr(base + begin_, sep_, end_ - begin_)) {
        const size_t stop = static_cast<size_t>(static_cast<const char*>(nl) - base);
        const Read r = take(line, stop);
        begin_ = stop + 1;
        consumed_ += line_bytes_ + 1;
        return r;
      }
      if (eof_) {
        if (begin_ == end_ && !skipping_) return Read::eof;
        // The last line had no newline: it is still a line.
        const Read r = take(line, end_);
        begin_ = end_;
        consumed_ += line_bytes_;
        return r;
      }
      // Past the limit (one byte more for a \r that would be stripped) the line can only
      // be refused: its bytes are counted and dropped instead of kept.
      if (end_ - begin_ > max_line_ + 1 && max_line_ != SIZE_MAX) {
        skipping_ = true;
        skipped_ += end_ - begin_ - 1;
        begin_ = end_ - 1;  // keep the last byte: it may be the \r before the newline
      }
      if (Read r = fill(); r != Read::line) return r;
    }
  }

  /// The length of the line next() last reported as too_long (a trailing \r excluded).
  uint64_t too_long_size() const { return too_long_size_; }

  /// True when next() would wait for input: no complete line is buffered and the
  /// descriptor has nothing to read yet. A caller that batches lines sends what it has
  /// then, instead of holding lines a slow producer wrote long ago.
  bool would_block() const {
    if (eof_ || std::memchr(buf_.data() + begin_, sep_, end_ - begin_) != nullptr) return false;
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
  }

  int error() const { return error_; }
  uint64_t consumed() const { return consumed_; }

 private:
  static constexpr size_t kChunk = 64 * 1024;

  Read take(std::string& line, size_t stop) {
    line_bytes_ = skipped_ + (stop - begin_);
    uint64_t len = line_bytes_;
    if (sep_ == '\n' && stop > begin_ && buf_[stop - 1] == '\r') --len;
    skipped_ = 0;
    if (skipping_ || len > max_line_) {
      skipping_ = false;
      too_long_size_ = len;
      line.clear();
      return Read::too_long;
    }
    line.assign(buf_.data() + begin_, static_cast<size_t>(len));
    return Read::line;
  }

  // Read::line here means "more bytes, or end of input: look for a line again".
  Read fill() {
    if (begin_ > 0) {
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() - end_ < kChunk / 2) buf_.resize(buf_.size() * 2);
    for (;;) {
      pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
      int n = ::poll(fds, 2, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        error_ = errno;
        return Read::error;
      }
      if (fds[1].revents != 0) return Read::stopped;
      ssize_t got = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
      if (got > 0) {
        end_ += static_cast<size_t>(got);
        return Read::line;
      }
      if (got == 0) {
        eof_ = true;
        return Read::line;
      }
      if (errno == EINTR || errno == EAGAIN) continue;
      error_ = errno;
      return Read::error;
    }
  }

  int fd_;
  int wake_fd_;
  size_t max_line_;
  char sep_;
  std::vector<char> buf_;
  size_t begin_ = 0, end_ = 0;
  uint64_t line_bytes_ = 0;
  uint64_t consumed_ = 0;
  bool skipping_ = false;      // inside a line past max_line_: counting, not keeping
  uint64_t skipped_ = 0;       // bytes of that line dropped so far
  uint64_t too_long_size_ = 0;
  bool eof_ = false;
  int error_ = 0;
};

}  // namespace shoal::cli

#endif
