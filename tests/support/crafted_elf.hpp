// Shared objects written byte by byte, for the tests of the ELF reader: an ELF header,
// .dynsym, .dynstr and .dynamic, and the section headers that name them. Nothing a
// loader could run, but everything `shoal check` and `shoal inspect` read, with each
// number chosen by the test (many entries naming one long string, say).
#ifndef SHOAL_TESTS_CRAFTED_ELF_HPP
#define SHOAL_TESTS_CRAFTED_ELF_HPP

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace shoal::test {

struct CraftedElf {
  uint16_t machine = 0;                     ///< e_machine; the test copies a real plugin's
  std::string dynstr;                       ///< .dynstr bytes, written as they are
  std::vector<uint32_t> symbols;            ///< .dynstr offset of each exported function
  std::vector<uint32_t> objects;            ///< .dynstr offset of each exported data object (STT_OBJECT)
  std::vector<uint32_t> needed;             ///< .dynstr offset of each DT_NEEDED entry
};

/// The file's bytes.
std::vector<char> craft_elf(const CraftedElf& spec);

/// A task plugin for `machine` whose `shoal_run` is a data object (`int shoal_run;`): it
/// has every required name, and a loader that only resolves names would call into data.
std::vector<char> craft_plugin_with_data_run(uint16_t machine);

/// The e_machine of an existing ELF file (0 when it cannot be read).
uint16_t elf_machine(const std::filesystem::path& path);

}  // namespace shoal::test

#endif
