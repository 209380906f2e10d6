#!/bin/sh
# check_exports_selftest.sh CHECK LIBSHOAL LIST LEAKY: the export check must fail, with the
# message that says what to do, on (1) a symbol the list lacks and (2) a library that
# exports internals and std instances without a version (LEAKY, built from leaky.cpp).
check=$1 lib=$2 list=$3 leaky=$4
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
status=0
expect() {  # expect WHAT OUTPUT_FILE EXIT_CODE PATTERN
  if [ "$3" -ne 1 ]; then echo "FAIL: $1: the check exited $3, not 1"; status=1; fi
  if ! grep -q -- "$4" "$2"; then echo "FAIL: $1: no line matching '$4' in:"; cat "$2"; status=1; fi
}

# (1) The list without its first symbol: that symbol is an export nobody reviewed.
grep -v '^#' "$list" | grep -v '^$' | sed 1d > "$tmp/short.txt"
dropped=$(grep -v '^#' "$list" | grep -v '^$' | head -n 1)
sh "$check" "$lib" "$tmp/short.txt" > "$tmp/out1"
expect "a symbol missing from the list" "$tmp/out1" $? "exports '$dropped', which is not in .*mark its declaration SHOAL_API and add this line"

# (2) Internals, a std instance, no version.
sh "$check" "$leaky" "$list" > "$tmp/out2"
rc=$?
expect "Pool::Impl exported" "$tmp/out2" $rc "exports 'shoal::Pool::Impl::drain()': internals .* must stay hidden"
expect "a std instance exported" "$tmp/out2" $rc "exports 'std::vector<long.*must stay hidden"
expect "an unversioned export" "$tmp/out2" $rc "without the version SHOAL_1.0"
expect "a listed symbol gone" "$tmp/out2" $rc "no longer exports"

[ $status -eq 0 ] && echo "the export check failed, saying what to do, in each case"
exit $status
