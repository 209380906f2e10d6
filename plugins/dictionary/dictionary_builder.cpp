// dictionary_builder: loads a word list into a pool's shared segment once, before its
// workers start (a `shared:` entry); dictionary.so looks words up in it. Params: `file`
// (one word a line, optionally WORD<TAB>VALUE; required), `lowercase` (lowercase the
// words, ASCII; default false), `name` (what the plugin asks for; default "dictionary").
// The segment needs the file's size plus 16 bytes a word, and a little more.
#include "dictionary.hpp"

#include <stdexcept>
#include <string>

namespace {

void build(shoal::SharedBuilder& b) {
  const auto file = b.param<std::string>("file");
  auto& d = b.construct<dictionary::Dictionary>(b.param<std::string>("name").c_str(), b.segment());
  const auto filled = dictionary::fill(d, dictionary::read_file(file), b.param<bool>("lowercase"), file);
  if (filled.words == 0) throw std::invalid_argument(file + ": no words (one a line, optionally WORD<TAB>VALUE)");
  const auto used = b.segment()->get_size() - b.segment()->get_free_memory();
  const auto line = std::to_string(filled.words) + " words from " + file + " (" + std::to_string(filled.duplicates) +
                    " listed again, first kept) in " + std::to_string(used) + " bytes of the segment";
  b.log(SHOAL_LOG_INFO, line.c_str());
}

}  // namespace

SHOAL_SHARED_PARAMS(SHOAL_PARAM_STRING("file", SHOAL_REQUIRED, "the word list: one word a line, optionally WORD<TAB>VALUE")
                    SHOAL_PARAM_BOOL("lowercase", SHOAL_DEFAULT("false"), "lowercase the words (ASCII)")
                    SHOAL_PARAM_STRING("name", SHOAL_DEFAULT("dictionary"), "the name the plugin finds it by"))
SHOAL_SHARED_BUILDER(build)
