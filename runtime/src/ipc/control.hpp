// Framed messages on the control socket between the host and one worker (a stream
// socketpair). The host sends one Init; the worker answers Ready or Fatal. The socket
// also tells the worker that the host is gone: EOF arrives when the host dies, however
// it dies, because the kernel closes its end.
#ifndef SHOAL_IPC_CONTROL_HPP
#define SHOAL_IPC_CONTROL_HPP

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shoal::detail {

// init: host -> worker, once. ready/fatal: worker -> host at the end of its start.
// note: worker -> host, a line the host adds to the worker's exit cause (which finalizer
// hung, why a task was abandoned, why it recycled itself).
enum class MsgType : uint8_t { init = 1, ready = 2, fatal = 3, note = 4 };

inline constexpr uint32_t kMaxControlMessage = 16u << 20;

// Descriptor numbers in a worker, placed there by the spawn's file actions.
inline constexpr int kWorkerSegmentFd = 3;  // the pool's memfd
inline constexpr int kWorkerControlFd = 4;  // control socket
inline constexpr int kWorkerEventFd = 5;    // eventfd that wakes the host's loop

// Worker exit codes the host interprets. kExitFatal before Ready means "do not respawn":
// the plugin cannot be used, and the Fatal message says why.
inline constexpr int kExitFatal = 2;
inline constexpr int kExitFiniTimeout = 4;  // a finalizer passed fini_timeout (a note names it)
inline constexpr int kExitAbandoned = 5;    // a task passed grace during a stop; the chain ran

struct Message {
  MsgType type{};
  std::string body;
};

using KeyValues = std::vector<std::pair<std::string, std::string>>;

/// Frame: u32 body length, u8 type, body.
std::string encode_message(MsgType type, std::string_view body);
std::string encode_kv(const KeyValues& kv);
std::optional<KeyValues> decode_kv(std::string_view body);

/// Accumulates bytes read from a non-blocking socket and yields whole messages.
class MessageReader {
 public:
  void feed(const char* data, size_t n) { buf_.append(data, n); }
  /// The next whole message; nullopt if incomplete. Sets bad() on an oversized frame.
  std::optional<Message> next();
  bool bad() const noexcept { return bad_; }

 private:
  std::string buf_;
  bool bad_ = false;
};

/// Blocking helpers for the worker side. False on EOF or error.
bool write_all(int fd, std::string_view bytes) noexcept;
bool read_message(int fd, Message& out);

}  // namespace shoal::detail

#endif
