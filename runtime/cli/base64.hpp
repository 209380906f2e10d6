// Base64 (RFC 4648, with padding) for the CLI's binary-safe forms: `submit
// --input-format base64` and `collect --output-encoding base64`. libcrypto's block
// coder; only its padding quirk is handled here.
#ifndef SHOAL_CLI_BASE64_HPP
#define SHOAL_CLI_BASE64_HPP

#include <openssl/evp.h>

#include <optional>
#include <string>
#include <string_view>

namespace shoal::cli {

inline std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

/// nullopt when `text` is not base64 (a length not a multiple of 4, a foreign byte).
inline std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out(3 * (text.size() / 4), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock decodes the padding as zero bytes: they are not data.
  size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

}  // namespace shoal::cli

#endif  // SHOAL_CLI_BASE64_HPP
