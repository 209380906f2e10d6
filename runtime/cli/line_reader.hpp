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
  enum class Read { line, eof, stopped, error };

  LineReader(int fd, int wake_fd) : fd_(fd), wake_fd_(wake_fd), buf_(kChunk) {}

  Read next(std::string& line) {
    for (;;) {
      const char* base = buf_.data();
      if (const void* nl = std::memchr(base + begin_, '\n', end_ - begin_)) {
        const size_t stop = static_cast<size_t>(static_cast<const char*>(nl) - base);
        take(line, stop);
        begin_ = stop + 1;
        consumed_ += line_bytes_ + 1;
        return Read::line;
      }
      if (eof_) {
        if (begin_ == end_) return Read::eof;
        // The last line had no newline: it is still a line.
        take(line, end_);
        begin_ = end_;
        consumed_ += line_bytes_;
        return Read::line;
      }
      if (Read r = fill(); r != Read::line) return r;
    }
  }

  /// True when next() would wait for input: no complete line is buffered and the
  /// descriptor has nothing to read yet. A caller that batches lines sends what it has
  /// then, instead of holding lines a slow producer wrote long ago.
  bool would_block() const {
    if (eof_ || std::memchr(buf_.data() + begin_, '\n', end_ - begin_) != nullptr) return false;
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
  }

  int error() const { return error_; }
  uint64_t consumed() const { return consumed_; }

 private:
  static constexpr size_t kChunk = 64 * 1024;

  void take(std::string& line, size_t stop) {
    line_bytes_ = stop - begin_;
    size_t len = line_bytes_;
    if (len > 0 && buf_[begin_ + len - 1] == '\r') --len;
    line.assign(buf_.data() + begin_, len);
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
  std::vector<char> buf_;
  size_t begin_ = 0, end_ = 0, line_bytes_ = 0;
  uint64_t consumed_ = 0;
  bool eof_ = false;
  int error_ = 0;
};

}  // namespace shoal::cli

#endif
