#include "ipc/control.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace shoal::detail {

namespace {
void put_u32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); }
bool get_u32(std::string_view& in, uint32_t& v) {
  if (in.size() < sizeof v) return false;
  std::memcpy(&v, in.data(), sizeof v);
  in.remove_prefix(sizeof v);
  return true;
}
bool get_str(std::string_view& in, std::string& s) {
  uint32_t n = 0;
  if (!get_u32(in, n) || n > in.size()) return false;
  s.assign(in.data(), n);
  in.remove_prefix(n);
  return true;
}
}  // namespace

std::string encode_message(MsgType type, std::string_view body) {
  std::string out;
  out.reserve(5 + body.size());
  put_u32(out, static_cast<uint32_t>(body.size()));
  out.push_back(static_cast<char>(type));
  out.append(body);
  return out;
}

std::string encode_kv(const KeyValues& kv) {
  std::string out;
  put_u32(out, static_cast<uint32_t>(kv.size()));
  for (const auto& [k, v] : kv) {
    put_u32(out, static_cast<uint32_t>(k.size()));
    out += k;
    put_u32(out, static_cast<uint32_t>(v.size()));
    out += v;
  }
  return out;
}

std::optional<KeyValues> decode_kv(std::string_view body) {
  uint32_t n = 0;
  if (!get_u32(body, n)) return std::nullopt;
  KeyValues kv;
  for (uint32_t i = 0; i < n; ++i) {
    std::string k, v;
    if (!get_str(body, k) || !get_str(body, v)) return std::nullopt;
    kv.emplace_back(std::move(k), std::move(v));
  }
  return kv;
}

std::optional<Message> MessageReader::next() {
  if (bad_ || buf_.size() < 5) return std::nullopt;
  uint32_t n = 0;
  std::memcpy(&n, buf_.data(), sizeof n);
  if (n > max_) {
    bad_ = true;
    return std::nullopt;
  }
  if (buf_.size() < 5 + size_t{n}) return std::nullopt;
  Message m{static_cast<MsgType>(buf_[4]), buf_.substr(5, n)};
  buf_.erase(0, 5 + size_t{n});
  return m;
}

bool write_all(int fd, std::string_view bytes) noexcept {
  bool socket = true;
  while (!bytes.empty()) {
    ssize_t n = socket ? ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) : ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == ENOTSOCK && socket) {
      socket = false;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

namespace {
bool read_exact(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}
}  // namespace

bool read_message(int fd, Message& out) {
  char head[5];
  if (!read_exact(fd, head, sizeof head)) return false;
  uint32_t n = 0;
  std::memcpy(&n, head, sizeof n);
  if (n > kMaxControlMessage) return false;
  out.type = static_cast<MsgType>(head[4]);
  out.body.resize(n);
  return n == 0 || read_exact(fd, out.body.data(), n);
}

}  // namespace shoal::detail
