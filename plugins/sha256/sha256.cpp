// sha256: each task is a file path; the output is the file's SHA-256 as 64 hex digits,
// the same text `sha256sum` prints. Param `algorithm` may name another digest of the
// declared list (sha256 by default): `shoal check` refuses any other name, or a typo of
// the param's own name, before a worker starts.
#include <shoal/plugin.hpp>

#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>
#include <unistd.h>

namespace {

struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

class Digest {
 public:
  explicit Digest(shoal::Init& init) : buffer_(1 << 16) {
    const auto name = init.param<std::string>("algorithm");
    md_ = EVP_get_digestbyname(name.c_str());
    if (md_ == nullptr) throw std::runtime_error("unknown digest algorithm '" + name + "'");
    ctx_.reset(EVP_MD_CTX_new());
    if (!ctx_) throw std::bad_alloc();
  }

  void run(shoal::Input in, shoal::Output& out) {
    std::string path(in.view());
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error(path + ": " + std::strerror(errno));
    FdCloser closer{fd};
    if (EVP_DigestInit_ex(ctx_.get(), md_, nullptr) != 1) throw std::runtime_error("digest init failed");
    for (;;) {
      ssize_t n = ::read(fd, buffer_.data(), buffer_.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw std::runtime_error(path + ": " + std::strerror(errno));
      if (n == 0) break;
      EVP_DigestUpdate(ctx_.get(), buffer_.data(), static_cast<size_t>(n));
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_.get(), md, &len);
    static const char hex[] = "0123456789abcdef";
    char* p = out.reserve(size_t{len} * 2);
    for (unsigned i = 0; i < len; ++i) {
      p[2 * i] = hex[md[i] >> 4];
      p[2 * i + 1] = hex[md[i] & 15];
    }
  }

 private:
  struct CtxFree {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  const EVP_MD* md_ = nullptr;
  std::unique_ptr<EVP_MD_CTX, CtxFree> ctx_;
  std::vector<char> buffer_;
};

}  // namespace

SHOAL_PARAMS(SHOAL_PARAM_ONE_OF("algorithm", "sha256|sha224|sha384|sha512|sha512-256|sha3-256|sha3-512|sha1|md5",
                                SHOAL_DEFAULT("sha256"), "the digest each task computes"))
SHOAL_PLUGIN(Digest)
