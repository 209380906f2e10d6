#!/usr/bin/env python3
"""shoal_bench_shared's Python peer (bench/shared.cpp): the same table as a dict in the
parent, shared with a fork Pool's workers through copy-on-write. Each worker reads all of
it in its initializer (as shoal's workers do in init), then the sum of the workers' Pss
(/proc/PID/smaps_rollup) is taken while they are alive. Reading touches every key's and
value's reference count, so the pages holding them are copied into each worker.
Usage: shared_peer.py TABLE.txt WORKERS; prints "name value" lines."""
import multiprocessing as mp
import os
import sys
import time

table = {}


def pss_mib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no Pss for {pid}")


def read_all(ready):
    n = 0
    for k, v in table.items():
        n += len(k) + len(v)
    ready.put((os.getpid(), n))


def main():
    path, workers = sys.argv[1], int(sys.argv[2])
    t0 = time.monotonic()
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            table[k] = v
    print("py_build_ms", (time.monotonic() - t0) * 1000)
    ctx = mp.get_context("fork")
    ready = ctx.Queue()
    t0 = time.monotonic()
    with ctx.Pool(workers, initializer=read_all, initargs=(ready,)) as pool:
        done = [ready.get(timeout=600) for _ in range(workers)]
        print("py_start_read_ms", (time.monotonic() - t0) * 1000)
        pids = {pid for pid, _ in done}
        assert len(pids) == workers, "a worker read the table twice"
        print("py_pss_workers_mib", sum(pss_mib(p) for p in pids))
        print("py_pss_parent_mib", pss_mib(os.getpid()))
        pool.terminate()


if __name__ == "__main__":
    main()
