// A library that exports what libshoal must not: a member of Pool::Impl, an instance of a
// standard template, without a version. check_exports_selftest.sh runs the export check
// on it to prove the check catches each.
#include <vector>

namespace shoal {
struct Pool {
  struct Impl {
    int drain();
  };
};
int Pool::Impl::drain() { return 1; }
}  // namespace shoal

template class std::vector<long>;
