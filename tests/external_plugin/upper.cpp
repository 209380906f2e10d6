// upper: each task's input in upper case, after the pool parameter `prefix`. Built out of
// tree against the installed SDK by the install test.
#include <shoal/plugin.hpp>

#include <cctype>
#include <string>

class Upper {
 public:
  explicit Upper(shoal::Init& init) : prefix_(init.param<std::string>("prefix")) {}
  void run(shoal::Input in, shoal::Output& out) {
    char* p = out.reserve(prefix_.size() + in.size());
    prefix_.copy(p, prefix_.size());
    for (size_t i = 0; i < in.size(); ++i)
      p[prefix_.size() + i] = static_cast<char>(std::toupper(static_cast<unsigned char>(in.data()[i])));
  }

 private:
  std::string prefix_;
};

SHOAL_PARAMS(SHOAL_PARAM_STRING("prefix", SHOAL_DEFAULT(""), "put before each output"))
SHOAL_PLUGIN(Upper)
