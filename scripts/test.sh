#!/usr/bin/env bash
# Set-up (packages, build with warnings as errors), then every test through ctest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
build="${SHOAL_BUILD_DIR:-$root/build}"
cd "$build"
ctest --output-on-failure -j"${SHOAL_JOBS:-2}" --timeout 300
