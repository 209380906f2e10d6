// A worker's Fatal message carries the Errc that Pool::start returns: it must come
// through for every code, and a body without one (another build's worker, or plugin code
// writing to the channel) must still reach a person whole, as the plugin's failure.
#include "ipc/fatal.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace shoal;
using namespace shoal::detail;

TEST_CASE("fatal message: every code and its cause come through", "[unit][fatal]") {
  for (int c = 0; c <= static_cast<int>(kLastErrc); ++c) {
    const auto code = static_cast<Errc>(c);
    INFO("code " << c);
    const Error e = decode_fatal(encode_fatal(code, "limits.open_files: setrlimit: Operation not permitted"));
    CHECK(e.code == code);
    CHECK(e.message == "limits.open_files: setrlimit: Operation not permitted");
  }
  const Error empty = decode_fatal(encode_fatal(Errc::ipc, ""));
  CHECK(empty.code == Errc::ipc);
  CHECK(empty.message.empty());
}

TEST_CASE("fatal message: a body without a known code is the plugin's failure, whole", "[unit][fatal]") {
  for (const std::string& body : {std::string("plugin /p.so: init failed"), std::string(1, '\0') + "x",
                                 std::string(1, static_cast<char>(2 + static_cast<int>(kLastErrc))) + "x",
                                 std::string("\xff") + "x", std::string()}) {
    const Error e = decode_fatal(body);
    CHECK(e.code == Errc::plugin);
    CHECK(e.message == body);
  }
}
