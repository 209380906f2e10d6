// A shared-data builder as its author writes it against an installed shoal: the SDK's
// shoal/shared.hpp and the Boost headers, nothing else.
#include <shoal/shared.hpp>

#include <cstdint>

namespace {

void build(shoal::SharedBuilder& b) {
  auto& words = b.construct<shoal::SharedVector<shoal::SharedString>>("words", b.allocator<shoal::SharedString>());
  for (const char* w : {"alpha", "beta", "gamma"}) words.emplace_back(w, b.allocator<char>());
}

}  // namespace

SHOAL_SHARED_BUILDER(build)
