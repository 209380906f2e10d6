// embed_host [--default-worker] CONFIG POOL INPUT...: runs each INPUT through POOL and
// prints one line per task, "STATUS OUTPUT", in input order. Exit 0 when every task was
// ok, 1 when one was not, 2 when the config or the pool failed. With --default-worker
// the worker path is left to libshoal, which finds the worker of its own prefix, and
// stderr gets "worker: PATH" for each executable the pool's workers run.
#include <shoal/runtime.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

// The executables of this process's children, found through each process's parent in
// /proc/PID/stat (/proc/PID/task/TID/children needs a kernel option not every kernel has).
std::set<std::string> child_executables() {
  std::set<std::string> exes;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    std::ifstream stat(entry.path() / "stat");
    std::string text;
    if (!std::getline(stat, text)) continue;
    // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so the fields
    // are counted from the last ')'.
    const auto close = text.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(text.substr(close + 1));
    std::string state;
    long ppid = 0;
    if (!(fields >> state >> ppid) || ppid != static_cast<long>(::getpid())) continue;
    const auto exe = std::filesystem::read_symlink(entry.path() / "exe", ec);
    if (!ec) exes.insert(exe.string());
  }
  return exes;
}

}  // namespace

int main(int argc, char** argv) {
  const bool default_worker = argc > 1 && std::string(argv[1]) == "--default-worker";
  if (default_worker) {
    --argc;
    ++argv;
  }
  if (argc < 3) {
    std::cerr << "usage: embed_host [--default-worker] CONFIG POOL INPUT...\n";
    return 2;
  }
  shoal::RuntimeOptions options;
  if (!default_worker) options.worker_path = EMBED_WORKER;
  auto runtime = shoal::Runtime::from_file(argv[1], options);
  if (!runtime) {
    std::cerr << runtime.error().message << '\n';
    return 2;
  }
  auto pool = runtime->pool(argv[2]);
  if (!pool) {
    std::cerr << pool.error().message << '\n';
    return 2;
  }
  const std::vector<std::string> inputs(argv + 3, argv + argc);
  int status = 0;
  for (const shoal::Outcome& o : (*pool)->map(inputs)) {
    std::cout << shoal::to_string(o.status) << ' ' << (o.status == shoal::Status::ok ? o.output : o.error) << '\n';
    if (o.status != shoal::Status::ok) status = 1;
  }
  if (default_worker)
    for (const auto& exe : child_executables()) std::cerr << "worker: " << exe << '\n';
  (*pool)->close();
  (*pool)->join();
  return status;
}
