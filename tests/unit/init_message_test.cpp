// The Init message is the host's word to a worker before it loads anything: every field
// must come through as sent, and anything else must be refused with the key named.
#include "ipc/control.hpp"
#include "ipc/init_message.hpp"
#include "ipc/layout.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <variant>

using namespace shoal::detail;

namespace {

InitMessage full() {
  InitMessage m;
  m.pool = "digest";
  m.plugin = "/opt/p.so";
  m.index = 2;
  m.workers = 3;
  m.capacity = 1 << 20;
  m.segment_size = SegmentLayout{m.capacity}.total();
  m.grace_ns = 5'000'000'000;
  m.fini_timeout_ns = -1;  // signed fields keep their sign
  m.fini_priority = -7;
  m.max_memory = uint64_t{1} << 40;
  m.host_pid = 4242;
  m.recover = "signal 9 (SIGKILL)";
  m.recover_only = true;
  m.limit_address_space = 1;
  m.limit_cpu_seconds = 2;
  m.limit_open_files = 3;
  m.core_dumps = true;
  m.no_new_privs = true;
  m.sandbox = true;
  m.sandbox_paths = {{"/data", false}, {"/tmp/out", true}};
  m.params = {{"algorithm", "sha512"}, {"empty", ""}};
  m.resources = {{"db", "/opt/db.so", 10, {{"path", "w.db"}}}, {"cache", "/opt/c.so", -1, {}}};
  return m;
}

// The message with one key's value replaced, or a key added.
std::string with(const std::string& key, const std::string& value) {
  auto kv = decode_kv(encode_init(full()));
  REQUIRE(kv);
  bool found = false;
  for (auto& [k, v] : *kv)
    if (k == key) v = value, found = true;
  if (!found) kv->emplace_back(key, value);
  return encode_kv(*kv);
}

std::string error_of(const std::string& body) {
  auto d = decode_init(body);
  REQUIRE(std::holds_alternative<std::string>(d));
  return std::get<std::string>(d);
}

}  // namespace

TEST_CASE("init message: every field comes through as sent", "[unit][init]") {
  auto d = decode_init(encode_init(full()));
  REQUIRE(std::holds_alternative<InitMessage>(d));
  const InitMessage& m = std::get<InitMessage>(d);
  const InitMessage f = full();
  CHECK(m.pool == f.pool);
  CHECK(m.plugin == f.plugin);
  CHECK(m.index == f.index);
  CHECK(m.workers == f.workers);
  CHECK(m.capacity == f.capacity);
  CHECK(m.segment_size == f.segment_size);
  CHECK(m.grace_ns == f.grace_ns);
  CHECK(m.fini_timeout_ns == f.fini_timeout_ns);
  CHECK(m.fini_priority == f.fini_priority);
  CHECK(m.max_memory == f.max_memory);
  CHECK(m.host_pid == f.host_pid);
  CHECK(m.recover == f.recover);
  CHECK(m.recover_only == f.recover_only);
  CHECK(m.limit_address_space == f.limit_address_space);
  CHECK(m.limit_cpu_seconds == f.limit_cpu_seconds);
  CHECK(m.limit_open_files == f.limit_open_files);
  CHECK(m.core_dumps == f.core_dumps);
  CHECK(m.no_new_privs == f.no_new_privs);
  CHECK(m.sandbox == f.sandbox);
  CHECK(m.sandbox_paths == f.sandbox_paths);
  CHECK(m.params == f.params);
  REQUIRE(m.resources.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    CHECK(m.resources[i].name == f.resources[i].name);
    CHECK(m.resources[i].module == f.resources[i].module);
    CHECK(m.resources[i].priority == f.resources[i].priority);
    CHECK(m.resources[i].params == f.resources[i].params);
  }
}

TEST_CASE("init message: a number is whole, decimal and in range, or refused with its key", "[unit][init]") {
  // strtoull, used before, read "12x" as 12, "-1" as 2^64-1 and "" as 0.
  CHECK(error_of(with("capacity", "12x")) == "init message: capacity: malformed value '12x'");
  CHECK(error_of(with("capacity", "")) == "init message: capacity: malformed value ''");
  CHECK(error_of(with("index", "-1")) == "init message: index: malformed value '-1'");
  CHECK(error_of(with("index", "4294967296")) == "init message: index: malformed value '4294967296'");
  CHECK(error_of(with("fini_priority", "2147483648")) ==
        "init message: fini_priority: malformed value '2147483648'");
  CHECK(error_of(with("resource.0.priority", "x")) == "init message: resource.0.priority: malformed value 'x'");
  CHECK(error_of(with("sandbox", "yes")) == "init message: sandbox: malformed value 'yes'");
  CHECK(error_of(with("index", "3")) == "init message: plugin, workers, capacity or index missing or out of range");
}

TEST_CASE("init message: unknown keys, a wrong version and a bad resource index are refused", "[unit][init]") {
  CHECK(error_of(with("colour", "blue")) == "init message: unknown key 'colour'");
  // A host's or a forged key is quoted escaped: the error stays one line (found by fuzz_control).
  CHECK(error_of(with("colour\nred", "blue")) == "init message: unknown key 'colour\\nred'");
  CHECK(error_of(with("resource.0.priority", "1\n2")) == "init message: resource.0.priority: malformed value '1\\n2'");
  CHECK(error_of(with("resource.x.name", "db")) == "init message: unknown key 'resource.x.name'");
  CHECK(error_of(with("resource.4096.name", "db")) == "init message: unknown key 'resource.4096.name'");
  CHECK(error_of(with("resource.0.colour", "blue")) == "init message: unknown key 'resource.0.colour'");
  CHECK(error_of(with("resource.3.name", "late")) == "init message: resource 2 has no name or module");
  CHECK(error_of(with("version", "2")) ==
        "init message: version 2, this worker reads 1 (host and worker of different builds?)");
  CHECK(error_of(encode_kv({{"pool", "p"}})) ==
        "init message: version missing, this worker reads 1 (host and worker of different builds?)");
  CHECK(error_of("\x01") == "init message: not a list of keys and values");
}

TEST_CASE("init message: the segment is mapped only if the layout and the descriptor match it", "[unit][init]") {
  const InitMessage f = full();
  const uint64_t size = f.segment_size;
  CHECK(size == 2 * kPageSize + 2 * f.capacity);
  CHECK(segment_mismatch(f, size).empty());
  // A descriptor of another size is not this worker's segment (a SIGBUS when the rings
  // were mapped past its end, before the check).
  CHECK(segment_mismatch(f, size - kPageSize) ==
        "shared-memory segment (descriptor 3) is 2101248 bytes, the host sent 2105344: not this worker's segment");
  CHECK(segment_mismatch(f, size + kPageSize) ==
        "shared-memory segment (descriptor 3) is 2109440 bytes, the host sent 2105344: not this worker's segment");
  CHECK(segment_mismatch(f, 0) ==
        "shared-memory segment (descriptor 3) is 0 bytes, the host sent 2105344: not this worker's segment");
  InitMessage m = full();
  m.segment_size = 3 << 20;
  CHECK(segment_mismatch(m, m.segment_size) ==
        "init message: segment_size 3145728 does not match rings of 1048576 bytes (2105344 bytes; host and worker "
        "of different builds?)");
  for (uint64_t capacity : {uint64_t{0}, uint64_t{2048}, uint64_t{12288}, uint64_t{1} << 63}) {
    m.capacity = capacity;
    m.segment_size = SegmentLayout{capacity}.total();
    CHECK(segment_mismatch(m, m.segment_size) == "init message: ring capacity " + std::to_string(capacity) +
                                                    " is not a power of two from 4096 to 2^62 bytes");
  }
  m.capacity = uint64_t{1} << 62;
  m.segment_size = SegmentLayout{m.capacity}.total();
  CHECK(segment_mismatch(m, m.segment_size).empty());
}

TEST_CASE("init message: the shared segments come through in order and a bad one is refused", "[unit][init]") {
  InitMessage sent = full();
  sent.shared = {{"words", 1 << 20}, {"routes", 4096}};
  auto d = decode_init(encode_init(sent));
  REQUIRE(std::holds_alternative<InitMessage>(d));
  const auto& got = std::get<InitMessage>(d).shared;
  REQUIRE(got.size() == 2);
  CHECK(got[0].name == "words");
  CHECK(got[0].size == 1 << 20);
  CHECK(got[1].name == "routes");
  CHECK(got[1].size == 4096);
  CHECK(std::get<InitMessage>(decode_init(encode_init(full()))).shared.empty());

  CHECK(error_of(with("shared.0.size", "1k")) == "init message: shared.0.size: malformed value '1k'");
  CHECK(error_of(with("shared.0.colour", "x")) == "init message: unknown key 'shared.0.colour'");
  CHECK(error_of(with("shared.x.name", "w")) == "init message: unknown key 'shared.x.name'");
  CHECK(error_of(with("shared.16.name", "w")) == "init message: unknown key 'shared.16.name'");
  CHECK(error_of(with("shared.0.name", "w")) == "init message: shared segment 0 has no name or size");
  CHECK(error_of(with("shared.1.size", "64")) == "init message: shared segment 0 has no name or size");
}

TEST_CASE("init message: the builder role's fields come through and need a name and a size", "[unit][init][shared]") {
  InitMessage b;
  b.pool = "digest";
  b.host_pid = 7;
  b.limit_open_files = 64;
  b.build_name = "words";
  b.build_builder = "/opt/words.so";
  b.build_size = uint64_t{16} << 20;
  b.build_params = {{"file", "/data/words.txt"}, {"count", "3"}};
  auto d = decode_init(encode_init(b));
  REQUIRE(std::holds_alternative<InitMessage>(d));
  const InitMessage& m = std::get<InitMessage>(d);
  CHECK(m.builder_role());
  CHECK(m.build_name == b.build_name);
  CHECK(m.build_builder == b.build_builder);
  CHECK(m.build_size == b.build_size);
  CHECK(m.build_params == b.build_params);
  CHECK(m.params.empty());  // a builder's params are its own, never the plugin's
  CHECK(m.limit_open_files == 64);
  CHECK_FALSE(std::get<InitMessage>(decode_init(encode_init(full()))).builder_role());

  b.build_size = 0;
  CHECK(std::get<std::string>(decode_init(encode_init(b))) ==
        "init message: build.name or build.size missing in the builder role");
  b.build_size = 1;
  b.build_name.clear();
  CHECK(std::get<std::string>(decode_init(encode_init(b))) ==
        "init message: build.name or build.size missing in the builder role");
}
