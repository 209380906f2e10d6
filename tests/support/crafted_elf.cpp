#include "support/crafted_elf.hpp"

#include <elf.h>

#include <cstring>
#include <fstream>
#include <utility>

namespace shoal::test {

namespace {

template <class T>
void append(std::vector<char>& out, const T& value) {
  const auto* p = reinterpret_cast<const char*>(&value);
  out.insert(out.end(), p, p + sizeof value);
}

void align8(std::vector<char>& out) { out.resize((out.size() + 7) & ~size_t{7}); }

}  // namespace

std::vector<char> craft_elf(const CraftedElf& spec) {
  std::vector<char> out(sizeof(Elf64_Ehdr));

  const uint64_t dynsym_at = out.size();
  append(out, Elf64_Sym{});  // the reserved null symbol
  for (const auto& [names, type] : {std::pair{&spec.symbols, STT_FUNC}, std::pair{&spec.objects, STT_OBJECT}}) {
    for (uint32_t name : *names) {
      Elf64_Sym sym{};
      sym.st_name = name;
      sym.st_info = ELF64_ST_INFO(STB_GLOBAL, type);
      sym.st_shndx = 1;  // defined (in .dynsym itself: only "not undefined" matters here)
      append(out, sym);
    }
  }
  const uint64_t dynsym_size = out.size() - dynsym_at;

  const uint64_t dynstr_at = out.size();
  out.insert(out.end(), spec.dynstr.begin(), spec.dynstr.end());
  align8(out);

  const uint64_t dynamic_at = out.size();
  for (uint32_t name : spec.needed) {
    Elf64_Dyn dyn{};
    dyn.d_tag = DT_NEEDED;
    dyn.d_un.d_val = name;
    append(out, dyn);
  }
  append(out, Elf64_Dyn{});  // DT_NULL
  const uint64_t dynamic_size = out.size() - dynamic_at;

  const uint64_t sections_at = out.size();
  append(out, Elf64_Shdr{});
  Elf64_Shdr dynsym{};
  dynsym.sh_type = SHT_DYNSYM;
  dynsym.sh_offset = dynsym_at;
  dynsym.sh_size = dynsym_size;
  dynsym.sh_entsize = sizeof(Elf64_Sym);
  dynsym.sh_link = 2;
  append(out, dynsym);
  Elf64_Shdr dynstr{};
  dynstr.sh_type = SHT_STRTAB;
  dynstr.sh_offset = dynstr_at;
  dynstr.sh_size = spec.dynstr.size();
  append(out, dynstr);
  Elf64_Shdr dynamic{};
  dynamic.sh_type = SHT_DYNAMIC;
  dynamic.sh_offset = dynamic_at;
  dynamic.sh_size = dynamic_size;
  dynamic.sh_entsize = sizeof(Elf64_Dyn);
  dynamic.sh_link = 2;
  append(out, dynamic);

  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_DYN;
  eh.e_machine = spec.machine;
  eh.e_version = EV_CURRENT;
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_shoff = sections_at;
  eh.e_shentsize = sizeof(Elf64_Shdr);
  eh.e_shnum = 4;
  std::memcpy(out.data(), &eh, sizeof eh);
  return out;
}

uint16_t elf_machine(const std::filesystem::path& path) {
  Elf64_Ehdr eh{};
  std::ifstream in(path, std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(&eh), sizeof eh)) return 0;
  return eh.e_machine;
}

std::vector<char> craft_plugin_with_data_run(uint16_t machine) {
  CraftedElf spec;
  spec.machine = machine;
  spec.dynstr = std::string(1, '\0') + "shoal_plugin_abi" + '\0' + "shoal_init" + '\0' + "shoal_fini" + '\0' +
                "shoal_run" + '\0';
  spec.symbols = {1, 18, 29};
  spec.objects = {40};
  return craft_elf(spec);
}

}  // namespace shoal::test
