#!/usr/bin/env bash
# Set-up (packages, build with warnings as errors), then every test through ctest:
#   1. the suite, built with g++ (build/);
#   2. the suite under AddressSanitizer + UBSan (build-asan/);
#   3. the suite under ThreadSanitizer (build-tsan/);
#   4. the libFuzzer targets for a bounded time each, built with clang (build-fuzz/).
# SHOAL_SANITIZERS=0 runs only the first stage.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="${SHOAL_JOBS:-2}"
passed=0
failed=0
status=0

# Runs ctest in $1 with the rest as arguments; adds its counts to the totals.
run_ctest() {
  local dir="$1"
  shift
  local log
  log="$(mktemp)"
  (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 600 "$@") 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local line
  line="$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)"
  rm -f "$log"
  if [ -n "$line" ]; then
    local total fail
    total="$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")"
    fail="$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")"
    passed=$((passed + total - fail))
    failed=$((failed + fail))
  else
    failed=$((failed + 1))
  fi
  [ "$rc" -eq 0 ] || status=1
}

stage() { printf '\n=== %s ===\n' "$*"; }

stage "build and test (g++)"
"$root/scripts/setup.sh" || exit 1
run_ctest "${SHOAL_BUILD_DIR:-$root/build}"

if [ "${SHOAL_SANITIZERS:-1}" != 0 ]; then
  stage "AddressSanitizer + UndefinedBehaviorSanitizer"
  if SHOAL_BUILD_DIR="$root/build-asan" "$root/scripts/setup.sh" -DSHOAL_SANITIZER=address,undefined; then
    run_ctest "$root/build-asan"
  else
    status=1
  fi
  stage "ThreadSanitizer"
  if SHOAL_BUILD_DIR="$root/build-tsan" "$root/scripts/setup.sh" -DSHOAL_SANITIZER=thread; then
    run_ctest "$root/build-tsan"
  else
    status=1
  fi
  stage "fuzzing (clang, libFuzzer)"
  if CC=clang CXX=clang++ SHOAL_BUILD_DIR="$root/build-fuzz" "$root/scripts/setup.sh" -DSHOAL_FUZZ=ON \
      -DSHOAL_SANITIZER=address,undefined -DSHOAL_WERROR=OFF; then
    run_ctest "$root/build-fuzz" -L fuzz
  else
    status=1
  fi
fi

echo
echo "ctest: $passed passed, $failed failed"
exit $status
