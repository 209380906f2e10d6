#!/bin/sh
# check_exports.sh LIBRARY LIST: fails unless LIBRARY exports exactly the symbols in LIST
# (demangled, one a line with its version: NAME@@SHOAL_1.x the default a new link binds,
# NAME@SHOAL_1.x an older one kept for hosts linked before; sorted), each under a
# SHOAL_1.x node, and none of Pool::Impl, shoal::detail, the standard library, yaml-cpp
# or Boost.
# What a host application links against is what SOVERSION 1 promises: an export that
# nobody reviewed becomes a promise all the same.
lib=$1
list=$2
if [ ! -r "$lib" ] || [ ! -r "$list" ]; then
  echo "usage: check_exports.sh LIBRARY LIST (cannot read '$lib' or '$list')"
  exit 2
fi
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
# "ADDRESS TYPE NAME@@VERSION" (NAME@VERSION: not the default); each node itself is an
# absolute symbol (A) of its own name.
nm -D --defined-only "$lib" > "$tmp/raw" || exit 2
nm -DC --defined-only "$lib" > "$tmp/demangled" || exit 2
status=0

awk '$2 != "A"' "$tmp/raw" | cut -d' ' -f3- > "$tmp/versioned"
if grep -Ev '@@?SHOAL_1\.[0-9]+$' "$tmp/versioned" > "$tmp/unversioned"; then
  while IFS= read -r sym; do
    echo "FAIL: $lib exports $sym without the version SHOAL_1.0 or a later SHOAL_1.x:" \
      "give it its version through runtime/libshoal.map"
  done < "$tmp/unversioned"
  status=1
fi

awk '$2 != "A"' "$tmp/demangled" | cut -d' ' -f3- | LC_ALL=C sort -u > "$tmp/exported"
grep -v '^#' "$list" | grep -v '^$' | LC_ALL=C sort -u > "$tmp/expected"

LC_ALL=C comm -23 "$tmp/exported" "$tmp/expected" > "$tmp/extra"
while IFS= read -r sym; do
  echo "FAIL: $lib exports '$sym', which is not in $list:" \
    "if it is API, mark its declaration SHOAL_API and add this line to the list" \
    "(an older version of a name: runtime/src/compat keeps it for hosts linked before);" \
    "if not, hide it (no SHOAL_API; hidden visibility is the default)"
  status=1
done < "$tmp/extra"

LC_ALL=C comm -13 "$tmp/exported" "$tmp/expected" > "$tmp/missing"
while IFS= read -r sym; do
  echo "FAIL: $list lists '$sym', which $lib no longer exports:" \
    "a host linked against SOVERSION 1 may call it at that version; restore it (SHOAL_API," \
    "or the symver of its runtime/src/compat entry), or remove it only with a new SOVERSION"
  status=1
done < "$tmp/missing"

# What must never be exported, whatever the list says.
sed 's/@@*[A-Za-z0-9_.]*$//' "$tmp/exported" | LC_ALL=C sort -u > "$tmp/names"
if grep -E '^(std::|YAML::|boost::|__gnu_cxx::|typeinfo|vtable|VTT)|Pool::Impl|shoal::detail::|shoal_v' "$tmp/names" > "$tmp/forbidden"; then
  while IFS= read -r sym; do
    echo "FAIL: $lib exports '$sym': internals and other libraries' symbols must stay hidden"
  done < "$tmp/forbidden"
  status=1
fi

if [ $status -eq 0 ]; then
  echo "$lib: $(wc -l < "$tmp/exported") symbol versions, each in $list and under a SHOAL_1.x node"
fi
exit $status
