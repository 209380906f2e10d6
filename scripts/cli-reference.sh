#!/usr/bin/env bash
# Writes docs/cli.md from the built `shoal`'s --help texts, so the reference cannot drift
# from the program: the test "docs: docs/cli.md is every command's --help" fails until
# this is run again after a help text changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shoal="${1:-$root/build/bin/shoal}"
{
  echo "# shoal command-line reference"
  echo
  echo "Each section is the output of \`shoal [COMMAND] --help\` (regenerate with"
  echo "\`scripts/cli-reference.sh\` after changing one). The config file is described in"
  echo "[config/reference.md](../config/reference.md)."
  for cmd in "" run check inspect serve submit collect dead; do
    echo
    echo "## shoal${cmd:+ $cmd}"
    echo
    echo '```text'
    # shellcheck disable=SC2086
    "$shoal" $cmd --help
    echo '```'
  done
  echo
  echo "## shoal-worker"
  echo
  echo '```text'
  "$(dirname "$shoal")/shoal-worker" --help
  echo '```'
} > "$root/docs/cli.md"
