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
// chain_done: worker -> host, once its finalizer chain has run to the end. A worker that
// exits without sending it (a signal, `_exit`, a finalizer cut short) left something
// open: its replacement runs the recover hooks first.
// built: a builder process (shared data) -> host, once its build succeeded: a kv body
// with "used" (bytes of the segment in use) and "named" (named objects).
enum class MsgType : uint8_t { init = 1, ready = 2, fatal = 3, note = 4, chain_done = 5, built = 6 };

// The Init message carries every param of the pool: it may be large.
inline constexpr uint32_t kMaxControlMessage = 16u << 20;
// A worker says little (ready, a fatal cause, a few notes): what the host buffers of one
// worker is bounded by these, and a worker that sends more is killed as a flooder.
inline constexpr uint32_t kMaxWorkerMessage = 64u << 10;
inline constexpr uint64_t kMaxWorkerControlBytes = 1u << 20;

// Descriptor numbers in a worker, placed there by the spawn's file actions.
inline constexpr int kWorkerSegmentFd = 3;  // the worker's own memfd (its block and rings)
inline constexpr int kWorkerControlFd = 4;  // control socket
inline constexpr int kWorkerEventFd = 5;    // eventfd that wakes the host's loop
inline constexpr int kWorkerLogFd = 6;      // the worker's log records (common/log.hpp), a packet pipe
// The plugin's file (7) and each resource module's (8, 9, ...) as the host opened them
// for the worker's generation (InitMessage::pinned_files), 7 .. 15 below the shared
// segments, so at most 9 files are pinned; a generation with more resources pins none
// and its workers open the paths.
inline constexpr int kWorkerFirstFileFd = 7;
inline constexpr size_t kWorkerMaxPinnedFiles = 9;
// The pool's sealed shared-data segments (InitMessage::shared), read-only, in `shared:`
// order from 16 on.
inline constexpr int kWorkerFirstSharedFd = 16;
inline constexpr size_t kWorkerMaxShared = 16;
// The lowest number a descriptor the host hands to a spawn may have: above every number
// the spawn maps (3 .. 31), so that one dup2 never lands on a source a later one reads,
// nor maps a descriptor onto itself (which would leave it close-on-exec).
inline constexpr int kSpawnSourceMinFd = kWorkerFirstSharedFd + static_cast<int>(kWorkerMaxShared);

// Worker exit codes the host interprets. Before Ready, with a Fatal message saying why:
// kExitFatal: a new process would fail the same way (the plugin or a module cannot be
//   loaded, a malformed Init, a limit or the sandbox refused): never respawned, the pool
//   fails with the message.
// kExitStartFailed: the plugin's init or a resource's open refused. That may pass (a
//   database that was down), so a respawn is retried with back-off.
inline constexpr int kExitFatal = 2;
inline constexpr int kExitStartFailed = 3;
inline constexpr int kExitFiniTimeout = 4;  // a finalizer passed fini_timeout (a note names it)
inline constexpr int kExitAbandoned = 5;    // a task passed grace during a stop; the chain ran
inline constexpr int kExitChannelLost = 6;  // the plugin closed or replaced descriptor 4 or 5

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
  explicit MessageReader(uint32_t max_message = kMaxControlMessage) noexcept : max_(max_message) {}
  void feed(const char* data, size_t n) { buf_.append(data, n); }
  /// The next whole message; nullopt if incomplete. Sets bad() on an oversized frame.
  std::optional<Message> next();
  bool bad() const noexcept { return bad_; }
  /// Bytes fed but not yet returned as messages.
  size_t buffered() const noexcept { return buf_.size(); }

 private:
  std::string buf_;
  uint32_t max_;
  bool bad_ = false;
};

/// Blocking helpers for the worker side. False on EOF or error. A socket is written with
/// MSG_NOSIGNAL: a peer that is gone is EPIPE, never SIGPIPE.
bool write_all(int fd, std::string_view bytes) noexcept;
bool read_message(int fd, Message& out);

}  // namespace shoal::detail

#endif
