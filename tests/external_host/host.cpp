// embed_host CONFIG POOL INPUT...: runs each INPUT through POOL and prints one line per
// task, "STATUS OUTPUT", in input order. Exit 0 when every task was ok, 1 when one was
// not, 2 when the config or the pool failed.
#include <shoal/runtime.hpp>

#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: embed_host CONFIG POOL INPUT...\n";
    return 2;
  }
  shoal::RuntimeOptions options;
  options.worker_path = EMBED_WORKER;
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
  (*pool)->close();
  (*pool)->join();
  return status;
}
