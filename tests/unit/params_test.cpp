// The declared-params reader (plugin/params.hpp): the format of sdk/docs/plugin-params.md
// as the SDK's macros write it, each malformed declaration refused with its line, and the
// check of configured values against it.
#include "fixture_paths.hpp"
#include "plugin/elf.hpp"
#include "plugin/params.hpp"
#include "support/crafted_elf.hpp"
#include "support/test_env.hpp"

#include <shoal/plugin.h>

#include <catch2/catch.hpp>

#include <map>
#include <string>

using namespace shoal::detail;

namespace {

// What SHOAL_PARAMS(...) stores: the macros themselves, so the test follows the SDK.
constexpr char kDeclared[] = SHOAL_PARAMS_FORMAT
    SHOAL_PARAM_ONE_OF("algorithm", "sha256|sha512", SHOAL_DEFAULT("sha256"), "digest to compute")
    SHOAL_PARAM_INT("rounds", -5, 1000, SHOAL_REQUIRED, "how often")
    SHOAL_PARAM_SIZE("buffer", SHOAL_DEFAULT("64KiB"), "read size")
    SHOAL_PARAM_DURATION("wait", SHOAL_DEFAULT("1.5s"), "pause")
    SHOAL_PARAM_BOOL("verbose", SHOAL_DEFAULT("false"), "log more")
    SHOAL_PARAM_STRING("label", SHOAL_OPTIONAL, "a prefix");

ParamDecls declared() {
  auto d = parse_param_decls(kDeclared);
  INFO((d ? std::string() : d.error().message));
  REQUIRE(d.ok());
  return *d;
}

std::string malformed(const std::string& text) {
  auto d = parse_param_decls(text);
  return d ? std::string("<accepted>") : d.error().message;
}

std::vector<std::string> messages(const std::vector<ParamProblem>& problems) {
  std::vector<std::string> out;
  for (const auto& p : problems) out.push_back(p.message);
  return out;
}

}  // namespace

TEST_CASE("params: the macros' text parses into each type with its default", "[unit][params]") {
  const ParamDecls d = declared();
  REQUIRE(d.params.size() == 6);
  const ParamDecl* algorithm = d.find("algorithm");
  REQUIRE(algorithm != nullptr);
  CHECK(algorithm->type == ParamType::one_of);
  CHECK(algorithm->choices == std::vector<std::string>{"sha256", "sha512"});
  CHECK(algorithm->presence == Presence::defaulted);
  CHECK(algorithm->default_value == "sha256");
  CHECK(algorithm->doc == "digest to compute");
  CHECK(type_text(*d.find("rounds")) == "int -5..1000");
  CHECK(presence_text(*d.find("rounds")) == "required");
  // Defaults are held canonical: what host->param returns.
  CHECK(d.find("buffer")->default_value == "65536");
  CHECK(d.find("wait")->default_value == "1500000000");
  CHECK(presence_text(*d.find("label")) == "optional");
  CHECK(d.find("algoritm") == nullptr);
  // An empty declaration is a plugin that takes no params.
  auto none = parse_param_decls(SHOAL_PARAMS_FORMAT);
  REQUIRE(none.ok());
  CHECK(none->params.empty());
}

TEST_CASE("params: each malformed declaration is refused with its line", "[unit][params]") {
  const std::string head = "shoal-params 1\n";
  CHECK(malformed("") == "line 1: does not start with \"shoal-params 1\"");
  CHECK(malformed("shoal-params 2\n") == "line 1: format version 2 (this runtime reads 1)");
  CHECK(malformed("shoal-params x\n") == "line 1: format version 'x' is not a number");
  CHECK(malformed(head + "a\tstring\t\t?\tdoc") == "line 2: does not end with a new line");
  CHECK(malformed(head + "a\tstring\t\t?\n") == "line 2: expected NAME TYPE SPEC PRESENCE DOC separated by tabs");
  CHECK(malformed(head + "a b\tstring\t\t?\t\n") ==
        "line 2: param name 'a b' is not letters, digits, '_', '.' or '-'");
  CHECK(malformed(head + "a\tfloat\t\t?\t\n") == "line 2: param 'a': unknown type 'float'");
  CHECK(malformed(head + "a\tint\t5..1\t?\t\n") == "line 2: param 'a': int range '5..1' is not MIN..MAX with MIN <= MAX");
  CHECK(malformed(head + "a\tint\t1..x\t?\t\n") == "line 2: param 'a': int range '1..x' is not MIN..MAX with MIN <= MAX");
  CHECK(malformed(head + "a\tone_of\tx||y\t?\t\n") == "line 2: param 'a': one_of list 'x||y' has an empty word");
  CHECK(malformed(head + "a\tone_of\tx|x\t?\t\n") == "line 2: param 'a': one_of list repeats 'x'");
  CHECK(malformed(head + "a\tsize\t1..2\t?\t\n") == "line 2: param 'a': type size takes no spec, found '1..2'");
  CHECK(malformed(head + "a\tbool\t\tmaybe\t\n") == "line 2: param 'a': presence 'maybe' is not !, ? or =DEFAULT");
  CHECK(malformed(head + "n\tint\t1..64\t=99\t\n") ==
        "line 2: default of param 'n': expected an integer from 1 to 64, found '99'");
  CHECK(malformed(head + "a\tstring\t\t?\t\n" + "a\tbool\t\t?\t\n") == "line 3: param 'a' declared twice");
  CHECK(malformed(head + "a\tstring\t\t?\tdoc\x1b[31m\n") == "line 2: holds a control character");
  CHECK(malformed(head + "a\tstring\t\t?\tdoc" + std::string(1, '\0') + "\n") == "line 2: holds a control character");
  CHECK(malformed(head + "a\tstring\t\t?\t" + std::string(513, 'd') + "\n") == "line 2: param 'a': doc longer than 512 bytes");
  std::string many = head;
  for (int i = 0; i <= 256; ++i) many += "p" + std::to_string(i) + "\tbool\t\t?\t\n";
  CHECK(malformed(many) == "line 258: more than 256 params");
  CHECK(malformed(head + std::string(kMaxParamsText, 'x')) == "line 1: longer than 65536 bytes");
  // Fields after the fifth are for later versions of format 1: accepted.
  CHECK(malformed(head + "a\tstring\t\t?\tdoc\tfuture field\n") == "<accepted>");
}

TEST_CASE("params: configured values are checked and made canonical", "[unit][params]") {
  const ParamDecls d = declared();
  std::map<std::string, std::string> canonical;
  auto problems = check_params(d, {{"rounds", "+12"}, {"buffer", "1MiB"}, {"verbose", "true"}}, &canonical);
  CHECK(problems.empty());
  const std::map<std::string, std::string> expected = {{"algorithm", "sha256"}, {"rounds", "12"},
                                                       {"buffer", "1048576"},   {"wait", "1500000000"},
                                                       {"verbose", "true"}};
  CHECK(canonical == expected);  // `label` is optional without a default: absent

  problems = check_params(d, {{"algoritm", "sha512"},
                              {"rounds", "1001"},
                              {"buffer", "lots"},
                              {"wait", "soon"},
                              {"verbose", "yes"},
                              {"zzz", "1"}});
  CHECK(messages(problems) ==
        std::vector<std::string>{"unknown param 'algoritm' (did you mean 'algorithm'?)",
                                 "param 'buffer': expected a size such as 4MiB or 4096, found 'lots'",
                                 "param 'rounds': expected an integer from -5 to 1000, found '1001'",
                                 "param 'verbose': expected true or false, found 'yes'",
                                 "param 'wait': expected a duration such as 250ms or 30s, found 'soon'",
                                 "unknown param 'zzz' (it takes algorithm, rounds, buffer, wait, verbose, label)"});
  CHECK(problems[0].at == ParamProblem::At::key);
  CHECK(problems[1].at == ParamProblem::At::value);
  CHECK(problems[0].name == "algoritm");

  problems = check_params(d, {{"algorithm", "sha521"}});
  CHECK(messages(problems) ==
        std::vector<std::string>{"param 'algorithm': expected one of sha256, sha512, found 'sha521' (did you mean 'sha512'?)",
                                 "missing required param 'rounds' (how often)"});
  CHECK(problems[1].at == ParamProblem::At::missing);
  CHECK(undeclared_param_message(d, "rounds2") ==
        "host->param('rounds2'): not a declared param (did you mean 'rounds'?); declare it in SHOAL_PARAMS");
  auto empty = parse_param_decls(SHOAL_PARAMS_FORMAT);
  REQUIRE(empty.ok());
  CHECK(messages(check_params(*empty, {{"x", "1"}})) ==
        std::vector<std::string>{"unknown param 'x' (it declares no params)"});
}

TEST_CASE("params: the declaration is read from the file, and a bad symbol is refused", "[unit][params][elf]") {
  auto elf = read_elf_exports(SHOAL_PLUGIN_ECHO, "plugin");
  REQUIRE(elf.ok());
  REQUIRE(declared_params(*elf, ModuleKind::task_plugin).has_value());
  CHECK(*declared_params(*elf, ModuleKind::task_plugin) == SHOAL_PARAMS_FORMAT);  // echo takes no params
  CHECK_FALSE(declared_params(*elf, ModuleKind::resource_module).has_value());
  CHECK_FALSE(declared_params(*elf, ModuleKind::shared_builder).has_value());

  // A data symbol of that name that is not a NUL-terminated array (size 0 here).
  shoal::test::TempDir dir;
  shoal::test::CraftedElf spec;
  spec.machine = shoal::test::elf_machine(SHOAL_PLUGIN_ECHO);
  spec.dynstr = std::string("\0shoal_plugin_params\0", 21);
  spec.objects = {1};
  const auto bytes = shoal::test::craft_elf(spec);
  const auto path = dir.write("crafted.so", std::string(bytes.begin(), bytes.end()));
  auto bad = read_elf_exports(path, "plugin");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message == "plugin " + path.string() +
                                   ": shoal_plugin_params is not a NUL-terminated char array of at most 65536 bytes "
                                   "(define it with SHOAL_PARAMS)");
}
