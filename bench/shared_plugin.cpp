// bench_shared: the plugin of shoal_bench_shared (bench/shared.cpp). Param `mode`:
//   shared   the dictionary the pool's `shared:` entry built (plugins/dictionary's builder),
//            mapped read-only
//   private  the same structure built in init from `file` in this worker's own memory, as
//            a worker without `shared:` would (same code: dictionary::fill over a Boost
//            segment laid on an anonymous mapping)
//   none     no table: an empty worker
// `touch`: read every byte of the table in init, as a worker that has used all of it.
// Task input N: N lookups of the table's keys (`words` of them, bench/shared_data.hpp) in
// a fixed pseudo-random order; output "NANOSECONDS HITS" for the lookups alone.
#include "dictionary.hpp"
#include "shared_data.hpp"

#include <shoal/plugin.hpp>

#include <sys/mman.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

namespace bi = boost::interprocess;

class Bench {
 public:
  explicit Bench(shoal::Init& init) : words_(init.param<uint64_t>("words")) {
    const auto mode = init.param<std::string>("mode");
    if (mode == "shared") {
      table_ = &init.shared<dictionary::Dictionary>("dictionary");
    } else if (mode == "private") {
      size_ = init.param<uint64_t>("segment_mib") << 20;
      // NORESERVE and untouched: only the pages the copy uses count, as with a heap.
      memory_ = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (memory_ == MAP_FAILED) throw std::runtime_error("mmap of the private copy failed");
      segment_.emplace(bi::create_only, memory_, size_);
      auto* d = segment_->construct<dictionary::Dictionary>("dictionary")(segment_->get_segment_manager());
      const auto file = init.param<std::string>("file");
      dictionary::fill(*d, dictionary::read_file(file), false, file);
      table_ = d;
    }
    if (table_ != nullptr && init.param<bool>("touch")) {
      uint64_t sum = 0;
      for (const auto& e : table_->entries) sum += e.key_size + e.value_size;
      for (char c : table_->text) sum += static_cast<unsigned char>(c);
      touched_ = sum;  // kept, so the reads are not optimised away
    }
  }
  ~Bench() {
    segment_.reset();
    if (memory_ != nullptr) ::munmap(memory_, size_);
  }

  void run(shoal::Input in, shoal::Output& out) {
    if (table_ == nullptr) throw std::runtime_error("mode none has no table");
    const uint64_t n = std::stoull(std::string(in.view()));
    std::vector<std::string> keys(n);
    for (uint64_t j = 0; j < n; ++j) bench_shared::key(bench_shared::mix(j) % words_, keys[j]);
    uint64_t hits = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& k : keys)
      if (table_->find(k)) ++hits;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0);
    out.write(std::to_string(ns.count()) + " " + std::to_string(hits));
  }

 private:
  uint64_t words_;
  const dictionary::Dictionary* table_ = nullptr;
  void* memory_ = nullptr;
  size_t size_ = 0;
  std::optional<bi::managed_external_buffer> segment_;
  uint64_t touched_ = 0;
};

}  // namespace

SHOAL_PARAMS(SHOAL_PARAM_ONE_OF("mode", "shared|private|none", SHOAL_REQUIRED, "where the table is")
             SHOAL_PARAM_INT("words", 1, 1000000000, SHOAL_REQUIRED, "entries of the table")
             SHOAL_PARAM_BOOL("touch", SHOAL_DEFAULT("false"), "read all of the table in init")
             SHOAL_PARAM_STRING("file", SHOAL_DEFAULT(""), "private: the word list")
             SHOAL_PARAM_INT("segment_mib", 1, 1048576, SHOAL_DEFAULT("512"), "private: room for the copy"))
SHOAL_PLUGIN(Bench)
