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
# A test's redis-server runs in the test's temporary folder (its --dir, and so its cwd).
# One whose test process is gone (its parent is no test binary any more) was left behind;
# one still under a test belongs to a run in progress, perhaps of another build.
for pid in $(pgrep -x redis-server 2>/dev/null); do
  readlink "/proc/$pid/cwd" 2>/dev/null | grep -q shoal-test- || continue
  ppid="$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null)"
  case "$(readlink "/proc/$ppid/exe" 2>/dev/null)" in
    */shoal_integration_tests) ;;
    *) echo "leftover redis-server $pid of a test: $(readlink "/proc/$pid/cwd")"; status=1 ;;
  esac
done
if ls /dev/shm 2>/dev/null | grep -i shoal; then
  echo "leftover /dev/shm entries (above)"
  status=1
fi
[ $status -eq 0 ] && echo "no shoal-worker process of $worker and no /dev/shm entry left"
exit $status
