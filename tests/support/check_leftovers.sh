#!/bin/sh
# Fails when the test suite left a shoal-worker process or a shoal entry in /dev/shm.
status=0
if pgrep -x shoal-worker >/dev/null 2>&1; then
  echo "leftover shoal-worker processes:"; pgrep -a -x shoal-worker
  status=1
fi
if ls /dev/shm 2>/dev/null | grep -i shoal; then
  echo "leftover /dev/shm entries (above)"
  status=1
fi
[ $status -eq 0 ] && echo "no shoal-worker process and no /dev/shm entry left"
exit $status
