// libFuzzer target over the decoders of bytes that cross between host and worker on the
// control socket and the log pipe (ipc/control, ipc/init_message, common/log): framing
// as the host reads a worker's stream (MessageReader, any chunking), the key/value body,
// the Init message and the segment it describes, and a log record as the host renders
// it. A worker is foreign code's process: whatever it writes, the host decodes a message
// or refuses it in one line, never reading outside the bytes or crashing.
#include "common/log.hpp"
#include "common/printable.hpp"
#include "ipc/control.hpp"
#include "ipc/init_message.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

using namespace shoal::detail;

namespace {

void decode_body(const Message& m) {
  (void)decode_kv(m.body);
  if (m.type != MsgType::init) return;
  auto init = decode_init(m.body);
  if (const auto* error = std::get_if<std::string>(&init)) {
    if (error->find('\n') != std::string::npos) __builtin_trap();
    return;
  }
  const auto& message = std::get<InitMessage>(init);
  (void)segment_mismatch(message, message.segment_size);
  // What the host sent is what the worker reads back.
  if (!std::holds_alternative<InitMessage>(decode_init(encode_init(message)))) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size == 0) return 0;
  const std::string_view data(reinterpret_cast<const char*>(bytes) + 1, size - 1);
  // The first byte picks how the stream arrives: reads of 1 to 256 bytes.
  const size_t chunk = size_t{bytes[0]} + 1;
  // The host's reader of a worker (a small bound) and the worker's of the host.
  for (uint32_t bound : {kMaxWorkerMessage, kMaxControlMessage}) {
    MessageReader reader(bound);
    for (size_t at = 0; at < data.size(); at += chunk) {
      const std::string_view piece = data.substr(at, chunk);
      reader.feed(piece.data(), piece.size());
      while (auto m = reader.next()) decode_body(*m);
      if (reader.bad()) break;
    }
  }
  // The same bytes as one packet of the log pipe.
  if (auto record = decode_log_record(data)) {
    const std::string component = printable(record->component, 64);
    const std::string json = log_json(record->level, record->message, {"pool", 0, component});
    if (json.find('\n') != std::string::npos) __builtin_trap();
  }
  return 0;
}
