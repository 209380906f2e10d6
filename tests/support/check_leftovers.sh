#!/bin/sh
# Fails when this test run left a shoal-worker process or a shoal entry in /dev/shm.
# Only workers of this build count (their executable is this build's shoal-worker), so a
# second shoal run elsewhere on the machine (another CI job, a deployment) is not blamed.
# ctest runs this from <build>/tests.
worker="$(cd .. && pwd)/bin/shoal-worker"
status=0
for exe in /proc/[0-9]*/exe; do
  if [ "$(readlink "$exe" 2>/dev/null)" = "$worker" ]; then
    pid="${exe#/proc/}"; pid="${pid%/exe}"
    echo "leftover shoal-worker process $pid: $(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)"
    status=1
  fi
done
if ls /dev/shm 2>/dev/null | grep -i shoal; then
  echo "leftover /dev/shm entries (above)"
  status=1
fi
[ $status -eq 0 ] && echo "no shoal-worker process of $worker and no /dev/shm entry left"
exit $status
