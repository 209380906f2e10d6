// Declared params: the text a plugin or resource module exports as shoal_plugin_params /
// shoal_resource_params (SHOAL_PARAMS in shoal/plugin.h; sdk/docs/plugin-params.md is the
// format), parsed and checked against a pool's `params:`. One implementation for `shoal
// check` (text read from the file), the worker (before init and open) and `shoal inspect`.
// The text comes from a file nobody vetted: every field is bounded and checked here.
#ifndef SHOAL_PLUGIN_PARAMS_HPP
#define SHOAL_PLUGIN_PARAMS_HPP

#include <shoal/result.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace shoal::detail {

/// The largest declaration read from a file; the ELF reader refuses a larger symbol.
inline constexpr size_t kMaxParamsText = size_t{64} << 10;
/// More params than any plugin takes; a declaration with more is malformed.
inline constexpr size_t kMaxDeclaredParams = 256;

enum class ParamType { string, integer, size, duration, boolean, one_of };
enum class Presence { required, optional, defaulted };

struct ParamDecl {
  std::string name;
  ParamType type = ParamType::string;
  int64_t min = 0, max = 0;          ///< integer only, inclusive
  std::vector<std::string> choices;  ///< one_of only, in declared order
  Presence presence = Presence::optional;
  std::string default_value;         ///< canonical (as host->param returns it); defaulted only
  std::string doc;
};

struct ParamDecls {
  std::vector<ParamDecl> params;  ///< in declared order; names unique
  const ParamDecl* find(std::string_view name) const;
};

/// Parses a declaration (without its trailing NUL). Errors read "line N: why", N counted
/// from 1 at the "shoal-params 1" line.
Result<ParamDecls> parse_param_decls(std::string_view text);

/// "string", "int 1..1000", "size", "duration", "bool", "one of sha256|sha512".
std::string type_text(const ParamDecl& decl);

/// "required", "optional" or the default as declared ("default sha256").
std::string presence_text(const ParamDecl& decl);

/// `value` of `decl` in canonical form (see shoal/plugin.h), or an error "param 'NAME':
/// expected ..., found 'VALUE'".
Result<std::string> canonical_value(const ParamDecl& decl, std::string_view value);

/// One mismatch between `params:` and a declaration. `name` is the configured name it is
/// about (empty for a missing required param: there is nothing configured to point at).
struct ParamProblem {
  enum class At { key, value, missing };
  At at = At::key;
  std::string name;
  std::string message;  ///< "unknown param 'algoritm' (did you mean 'algorithm'?)", ...
};

/// Every mismatch of `given` against `decls`, configured names in map order, then missing
/// required params in declared order. On none, `canonical` (when given) gets what the
/// worker hands the module: every configured value canonical, every default filled in.
std::vector<ParamProblem> check_params(const ParamDecls& decls, const std::map<std::string, std::string>& given,
                                       std::map<std::string, std::string>* canonical = nullptr);

/// The error of a module reading a param it does not declare ("host->param('x'): ...").
std::string undeclared_param_message(const ParamDecls& decls, std::string_view name);

}  // namespace shoal::detail

#endif
