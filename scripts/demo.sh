#!/usr/bin/env bash
# The main job on the shipped example: hash 200 real files through a pool of two workers
# with config/examples/digest.yaml, print the JSON lines, then check every digest
# against sha256sum.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
build="${SHOAL_BUILD_DIR:-$root/build}"

list="$build/demo-files.txt"
# awk reads to the end (head would close the pipe and fail the pipeline under pipefail).
find /usr/include -type f -size -2M 2>/dev/null | sort | awk "NR <= 200" > "$list"
out="$build/demo-digests.jsonl"
"$build/bin/shoal" run "$root/config/examples/digest.yaml" --input "$list" | tee "$out"

python3 - "$list" "$out" <<'PY'
import json, subprocess, sys
paths = open(sys.argv[1]).read().splitlines()
rows = [json.loads(l) for l in open(sys.argv[2])]
want = subprocess.run(["sha256sum", "--", *paths], capture_output=True, text=True, check=True).stdout.splitlines()
want = [w.split()[0] for w in want]
assert [r["seq"] for r in rows] == list(range(len(paths))), "rows out of order"
bad = [r["seq"] for r, w in zip(rows, want) if r["status"] != "ok" or r["output"] != w]
if bad or len(rows) != len(paths):
    sys.exit(f"demo: {len(bad)} digests differ from sha256sum (seq {bad[:5]}), {len(rows)} rows for {len(paths)} files")
print(f"demo: all {len(rows)} digests equal sha256sum's, in input order", file=sys.stderr)
PY
