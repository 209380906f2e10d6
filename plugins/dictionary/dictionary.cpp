// dictionary: answers each task (a word) from the pool's shared dictionary, built once
// by dictionary_builder.so under `shared:` and mapped read-only into every worker: the
// word's value, the word itself when its line had no value, an `error` when it is not
// listed. Param `name` (default "dictionary"): the builder's `name`.
#include "dictionary.hpp"

#include <shoal/plugin.hpp>

#include <stdexcept>
#include <string>

namespace {

class Lookup {
 public:
  explicit Lookup(shoal::Init& init)
      : dictionary_(init.shared<dictionary::Dictionary>(init.param<std::string>("name").c_str())) {}

  void run(shoal::Input in, shoal::Output& out) {
    std::string_view word = in.view();
    if (dictionary_.lowercase) {
      lowered_.assign(word);  // in this worker's heap: the segment is read-only
      dictionary::to_lower(lowered_, 0, lowered_.size());
      word = lowered_;
    }
    auto value = dictionary_.find(word);
    if (!value) throw std::runtime_error("not in the dictionary: '" + std::string(in.view()) + "'");
    out.write(value->empty() ? word : *value);
  }

 private:
  const dictionary::Dictionary& dictionary_;
  std::string lowered_;
};

}  // namespace

SHOAL_PARAMS(SHOAL_PARAM_STRING("name", SHOAL_DEFAULT("dictionary"), "the shared dictionary to look words up in"))
SHOAL_PLUGIN(Lookup)
