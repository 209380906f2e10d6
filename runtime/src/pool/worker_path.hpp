// Which shoal-worker executable a pool starts when the application does not name one.
#ifndef SHOAL_POOL_WORKER_PATH_HPP
#define SHOAL_POOL_WORKER_PATH_HPP

#include <shoal/runtime.hpp>

#include <string>

namespace shoal::detail {

/// The first of: options.worker_path; $SHOAL_WORKER; shoal-worker beside the running
/// executable; the build tree's, only when this code or the executable runs from that
/// build tree; the one at LIBDIR->BINDIR from the file holding this code (an installed
/// libshoal finds the worker of its own prefix, wherever that prefix was installed or
/// moved). The result may not exist: the caller reports it, naming the path.
std::string find_worker(const RuntimeOptions& options);

}  // namespace shoal::detail

#endif
