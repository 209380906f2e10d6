// Unit tests of the scale-out settings: the `redis:` section of a config (defaults, every
// key, errors at their position) and Redis URL parsing.
#include <shoal/config.hpp>

#include "config/values.hpp"
#include "redis/client.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace std::chrono_literals;
namespace redis = shoal::detail::redis;

namespace {

const std::string kPools = "pools:\n  p:\n    plugin: /x.so\n";

shoal::Config load(const std::string& yaml) {
  auto r = shoal::load_config_string(yaml, "cfg.yaml", "/base");
  INFO((r ? std::string() : r.error().message));
  REQUIRE(r.ok());
  return std::move(*r);
}

std::string error_of(const std::string& yaml) {
  auto r = shoal::load_config_string(yaml, "cfg.yaml", "/base");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == shoal::Errc::config);
  return r.error().message;
}

}  // namespace

TEST_CASE("redis config: defaults without a redis section", "[unit][redis]") {
  const auto c = load(kPools);
  CHECK(c.redis.url.empty());
  CHECK(c.redis.stream == "shoal:tasks");
  CHECK(c.redis.group == "shoal");
  CHECK(c.redis.consumer.empty());
  CHECK(c.redis.pool.empty());
  CHECK(c.redis.visibility_timeout == 30s);
  CHECK(c.redis.max_deliveries == 3);
  CHECK(c.redis.max_stream_length == 100000);
  CHECK(c.redis.in_flight == 0);
  CHECK(c.redis.max_input == 64u << 20);
}

TEST_CASE("redis config: every key", "[unit][redis]") {
  ::setenv("SHOAL_TEST_HOST", "box7", 1);
  const auto c = load(kPools +
                      "redis:\n  url: redis://10.0.0.5:6380/2\n  stream: jobs\n  group: fleet\n"
                      "  consumer: ${SHOAL_TEST_HOST}\n  pool: p\n  visibility_timeout: 1.5s\n"
                      "  max_deliveries: 5\n  max_stream_length: 1000\n  in_flight: 16\n  max_input: 1KiB\n");
  CHECK(c.redis.url == "redis://10.0.0.5:6380/2");
  CHECK(c.redis.stream == "jobs");
  CHECK(c.redis.group == "fleet");
  CHECK(c.redis.consumer == "box7");
  CHECK(c.redis.pool == "p");
  CHECK(c.redis.visibility_timeout == 1500ms);
  CHECK(c.redis.max_deliveries == 5);
  CHECK(c.redis.max_stream_length == 1000);
  CHECK(c.redis.in_flight == 16);
  CHECK(c.redis.max_input == 1024);
}

TEST_CASE("redis config: errors name the key and position", "[unit][redis]") {
  CHECK(error_of(kPools + "redis:\n  ur1: redis://x\n") ==
        "cfg.yaml:5:3: unknown key 'ur1' in redis (did you mean 'url'?)");
  CHECK(error_of(kPools + "redis:\n  url: http://x\n") ==
        "cfg.yaml:5:8: redis.url: expected a URL such as redis://127.0.0.1:6379 or unix:///run/redis.sock, "
        "found 'http://x'");
  CHECK(error_of(kPools + "redis:\n  visibility_timeout: 50ms\n") ==
        "cfg.yaml:5:23: redis.visibility_timeout: expected a duration of at least 100ms, found '50ms'");
  CHECK(error_of(kPools + "redis:\n  max_deliveries: 0\n").find("redis.max_deliveries: expected an integer from 1") !=
        std::string::npos);
  CHECK(error_of(kPools + "redis:\n  stream: \"\"\n").find("redis.stream: expected a non-empty string") !=
        std::string::npos);
  CHECK(error_of(kPools + "redis:\n  max_input: 1GiB\n") ==
        "cfg.yaml:5:14: redis.max_input: expected a size from 1 byte to 512MiB such as 64MiB, found '1GiB'");
  CHECK(error_of(kPools + "redis: [a]\n").find("redis: expected a mapping") != std::string::npos);
}

TEST_CASE("redis URL: forms accepted and refused", "[unit][redis]") {
  auto u = redis::parse_url("redis://127.0.0.1:6380");
  REQUIRE(u.ok());
  CHECK(u->host == "127.0.0.1");
  CHECK(u->port == 6380);
  CHECK(u->db == 0);
  CHECK(u->password.empty());

  u = redis::parse_url("redis://cache.local");
  REQUIRE(u.ok());
  CHECK(u->host == "cache.local");
  CHECK(u->port == 6379);

  u = redis::parse_url("redis://app:s%40cret@[::1]:7000/3");
  REQUIRE(u.ok());
  CHECK(u->host == "::1");
  CHECK(u->port == 7000);
  CHECK(u->user == "app");
  CHECK(u->password == "s@cret");
  CHECK(u->db == 3);
  CHECK(u->display.find("s@cret") == std::string::npos);  // never shown
  CHECK(u->display.find("s%40cret") == std::string::npos);

  u = redis::parse_url("unix:///run/redis.sock");
  REQUIRE(u.ok());
  CHECK(u->unix_path == "/run/redis.sock");

  for (const char* bad : {"http://x", "redis://", "redis://h:0", "redis://h:65536", "redis://h:x", "redis://h/x",
                          "redis://[::1", "unix://relative", "redis://u:%zz@h"}) {
    INFO(bad);
    auto r = redis::parse_url(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find(shoal::detail::redact_url(bad)) != std::string::npos);
  }
}

// Issue 14 item 8: a password in a URL never reaches a message, whatever is wrong with
// the rest of it, nor the config's errors.
TEST_CASE("redis URL: errors show the URL with its password redacted", "[unit][redis][secrets]") {
  CHECK(shoal::detail::redact_url("redis://app:hunter2@h:1/2") == "redis://app:***@h:1/2");
  CHECK(shoal::detail::redact_url("redis://hunter2@h") == "redis://***@h");
  CHECK(shoal::detail::redact_url("redis://a:b@hunter2@h") == "redis://a:***@h");
  CHECK(shoal::detail::redact_url("redis://h:6379") == "redis://h:6379");
  // Mistyped URLs (no "://") still hide it; so does a password holding '/'.
  CHECK(shoal::detail::redact_url("redis:/u:hunter2@h") == "redis:/u:***@h");
  CHECK(shoal::detail::redact_url("redis:u:hunter2@h") == "redis:u:***@h");
  CHECK(shoal::detail::redact_url("redis://:ab/cd@h/0") == "redis://:***@h/0");
  for (const char* bad : {"redis://app:hunter2@h:x", "redis://hunter2@h:0", "redis://app:hunter2@", "redis://a:%zzhunter2@h",
                          "redis://app:hunter2@h/x", "redis://app:hunter2@[::1"}) {
    INFO(bad);
    auto r = redis::parse_url(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("hunter2") == std::string::npos);
    const std::string& m = r.error().message;
    CHECK((m.find(":***@") != std::string::npos || m.find("//***@") != std::string::npos));
  }
  const std::string err = error_of(kPools + "redis:\n  url: http://app:hunter2@h\n");
  CHECK(err.find("hunter2") == std::string::npos);
  CHECK(err.find("http://app:***@h") != std::string::npos);
}
