#!/usr/bin/env python3
"""The Python side of bench/run: the same workloads through multiprocessing.Pool and
concurrent.futures.ProcessPoolExecutor, 2 workers. Prints "name value unit" lines.

  peers.py [--quick] [--cpu-iterations N]

Tiny tasks echo an 8-byte payload. The CPU task runs the same arithmetic loop as
bench/cpu_plugin.cpp, with its iteration count calibrated here to ~100 us in-process.
Slow methods run fewer tasks (their rate is what is compared, not the total time).
run_lines is `shoal run`'s job (bench.cpp's h_run_lines) done with Pool.imap and json.dumps.
"""
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time

QUICK = "--quick" in sys.argv
MASK = (1 << 64) - 1


def echo(x):
    return x


def cpu_task(n):
    x = 1
    for _ in range(n):
        x = ((x * 6364136223846793005 + 1442695040888963407) & MASK) ^ (x >> 29)
    return x & 0xFFFF


def ready(_=None):
    return None


def figure(name, value, unit):
    print(f"{name} {value:.6g} {unit}", flush=True)


def rate(n, fn):
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def calibrate():
    n = 1000
    t0 = time.perf_counter()
    for _ in range(50):
        cpu_task(n)
    per_task = (time.perf_counter() - t0) / 50
    return max(1, int(n * 100e-6 / per_task))


def tiny(ctx):
    big = 200_000 if QUICK else 1_000_000
    small = 20_000 if QUICK else 100_000
    # Distinct payloads: a list of one repeated object would pickle as memo references.
    data = [i.to_bytes(8, "little") for i in range(big)]
    with ctx.Pool(2) as pool:
        pool.map(echo, data[:10_000])
        # Three maps, their median: the first of a process gets fresh pages, which on a VM
        # whose freed memory goes back to the hypervisor can cost more than the tasks.
        rates = [rate(big, lambda: pool.map(echo, data)) for _ in range(3)]
        figure("py_pool_map_default_first", rates[0], "tasks/s")
        figure("py_pool_map_default", statistics.median(rates), "tasks/s")
        figure("py_pool_map_chunksize1", rate(small, lambda: pool.map(echo, data[:small], chunksize=1)), "tasks/s")
        figure("py_pool_imap_unordered", rate(small, lambda: list(pool.imap_unordered(echo, data[:small]))), "tasks/s")

        def one_by_one():
            rs = [pool.apply_async(echo, (d,)) for d in data[:small]]
            for r in rs:
                r.get()

        figure("py_pool_apply_async", rate(small, one_by_one), "tasks/s")
        lat = []
        for _ in range(2_000 if QUICK else 10_000):
            t0 = time.perf_counter()
            pool.apply(echo, (b"x",))
            lat.append((time.perf_counter() - t0) * 1e6)
        lat.sort()
        figure("py_pool_apply_rtt_p50", lat[len(lat) // 2], "us")
        figure("py_pool_apply_rtt_p99", lat[int(len(lat) * 0.99)], "us")
    with cf.ProcessPoolExecutor(2, mp_context=ctx) as ex:
        list(ex.map(echo, data[:1000]))

        def submit_each():
            fs = [ex.submit(echo, d) for d in data[: small // 2]]
            for f in fs:
                f.result()

        figure("py_ppe_submit", rate(small // 2, submit_each), "tasks/s")
        figure("py_ppe_map_chunksize", rate(big, lambda: list(ex.map(echo, data, chunksize=1000))), "tasks/s")


WORKER = 0


def set_worker():
    global WORKER
    WORKER = mp.current_process()._identity[0]


def echo_line(line):
    # What a shoal worker reports beside the output: which worker, and the time in the call.
    t0 = time.perf_counter()
    out = line
    return out, WORKER, (time.perf_counter() - t0) * 1e3


def lines_to_rows(lines, out, results):
    for seq, (output, worker, ms) in enumerate(results):
        out.write(json.dumps({"seq": seq, "status": "ok", "output": output, "error": None, "worker": worker,
                              "attempts": 1, "ms": round(ms, 3), "reason": None}))
        out.write("\n")


def run_lines(ctx):
    """bench.cpp's h_run_lines in Python: the same lines, each through Pool(2).imap (chunksize
    1024) and written as one json.dumps row with shoal run's fields, to /dev/null; pool start
    and stop included, as the whole `shoal run` process is timed."""
    n = 200_000 if QUICK else 1_000_000
    with tempfile.TemporaryDirectory(prefix="shoal-bench-peers-") as d:
        path = os.path.join(d, "lines.txt")
        with open(path, "w") as f:
            f.writelines(f"{i:08d}\n" for i in range(n))

        def read():
            with open(path) as f:
                return [line.rstrip("\r\n") for line in f]

        def pooled():
            with open(os.devnull, "w") as out, ctx.Pool(2, initializer=set_worker) as pool:
                lines = read()
                lines_to_rows(lines, out, pool.imap(echo_line, lines, chunksize=1024))

        def in_process():
            with open(os.devnull, "w") as out:
                lines = read()
                lines_to_rows(lines, out, map(echo_line, lines))

        figure("py_pool_imap_json", statistics.median(rate(n, pooled) for _ in range(3)), "lines/s")
        # Context: the same job in this one process, no pool (its floor in Python).
        figure("py_lines_json_inprocess", statistics.median(rate(n, in_process) for _ in range(3)), "lines/s")


def cpu(ctx, iterations):
    n = 4_000 if QUICK else 20_000
    t0 = time.perf_counter()
    for _ in range(500):
        cpu_task(iterations)
    inproc = 500 / (time.perf_counter() - t0)
    figure("py_cpu_task_us", 1e6 / inproc, "us")
    tasks = [iterations] * n
    with ctx.Pool(2) as pool:
        r = rate(n, lambda: pool.map(cpu_task, tasks))
    figure("py_cpu_pool_map", r, "tasks/s")
    figure("py_cpu_efficiency", r / (2 * inproc), "ratio")


def start_stop(method, workers):
    ctx = mp.get_context(method)
    starts, stops = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        pool = ctx.Pool(workers)
        # Until every worker has started and answered once.
        pool.map(ready, range(workers), chunksize=1)
        starts.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        pool.close()
        pool.join()
        stops.append((time.perf_counter() - t0) * 1e3)
    figure(f"py_start_{method}_{workers}", statistics.median(starts), "ms")
    figure(f"py_stop_{method}_{workers}", statistics.median(stops), "ms")


def main():
    iterations = None
    if "--cpu-iterations" in sys.argv:
        iterations = int(sys.argv[sys.argv.index("--cpu-iterations") + 1])
    ctx = mp.get_context("fork")
    tiny(ctx)
    run_lines(ctx)
    cpu(ctx, iterations or calibrate())
    for method in ("fork", "forkserver", "spawn"):
        for workers in (2, 16):
            start_stop(method, workers)


if __name__ == "__main__":
    main()
