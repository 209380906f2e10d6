#!/bin/sh
# check_host_1_2.sh HOST: the 1.2 host (host_1_2.cpp) needs libshoal.so.1 and binds each
# libshoal call it makes at SHOAL_1.0, as a host linked against libshoal 1.2 did; were a
# call bound at a later version, its run would test today's layouts, not the promise.
host=$1
if [ ! -r "$host" ]; then
  echo "usage: check_host_1_2.sh HOST (cannot read '$host')"
  exit 2
fi
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
status=0
if ! readelf -d "$host" | grep -q 'Shared library: \[libshoal\.so\.1\]'; then
  echo "FAIL: $host does not need libshoal.so.1"
  status=1
fi
nm -D --undefined-only "$host" | awk '{print $2}' | grep '^_ZN[K]*5shoal' > "$tmp/calls"
if [ ! -s "$tmp/calls" ]; then
  echo "FAIL: $host calls nothing in libshoal"
  status=1
fi
if grep -v '@SHOAL_1\.0$' "$tmp/calls" > "$tmp/other"; then
  while IFS= read -r sym; do
    echo "FAIL: $host binds $sym, not at SHOAL_1.0"
  done < "$tmp/other"
  status=1
fi
for call in _ZN5shoal4Pool5start _ZNK5shoal4Pool5statsEv _ZNK5shoal4Pool6configEv _ZN5shoal4Pool6reload \
            _ZN5shoal18load_config_string _ZNK5shoal7Runtime6configEv; do
  if ! grep -q "^$call" "$tmp/calls"; then
    echo "FAIL: $host does not call $call: the run would not cover it"
    status=1
  fi
done
[ $status -eq 0 ] && echo "$host: $(wc -l < "$tmp/calls") libshoal calls, each at SHOAL_1.0"
exit $status
