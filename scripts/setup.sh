#!/usr/bin/env bash
# Installs the Debian packages shoal needs (only the missing ones), then configures and
# builds it into build/. Sourced by demo.sh and test.sh; safe to run again.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${SHOAL_BUILD_DIR:-$root/build}"

packages=(g++ make cmake libboost-dev libyaml-cpp-dev catch2 libssl-dev libsqlite3-dev procps python3
          clang libclang-rt-14-dev pkg-config libhiredis-dev redis-server
          nlohmann-json3-dev bsdutils libseccomp-dev help2man dpkg-dev systemd
          python3-prometheus-client)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

jobs="${SHOAL_JOBS:-2}"
cmake -S "$root" -B "$build" -DSHOAL_WERROR=ON "$@" >&2
cmake --build "$build" -j"$jobs" >&2
