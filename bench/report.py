#!/usr/bin/env python3
"""Medians of bench/run's repetitions, the ratios against the peers and the floors, as
Markdown (bench/RESULTS.md).

Usage: report.py DIR REPS COMMAND
       report.py --redis-section DIR COMMAND [NOTE]   (the scale-out section alone, from
                                   DIR/redis.1: a shoal_bench_redis run on its own)"""
import os
import platform
import re
import statistics
import subprocess
import sys


def load(out_dir, prefix, reps, required=True):
    runs = {}
    for i in range(1, reps + 1):
        path = os.path.join(out_dir, f"{prefix}.{i}")
        if not required and not os.path.exists(path):
            continue
        with open(path) as f:
            for line in f:
                name, value, unit = line.split()
                runs.setdefault(name, ([], unit))[0].append(float(value))
    return {k: (statistics.median(v), u) for k, (v, u) in runs.items()}


# Issue 20's scale-out figures (shoal_bench_redis): redis_floor_hK and redis_shoal_hK in
# tasks/s, redis_ratio_hK (shoal ÷ floor, the median of each repetition's ratio), and
# redis_MODE_hK_WHAT for the CPU and per-task counts.
REDIS_ROWS = [  # (WHAT, label), in the order of the table
    ("redis_cpu", "Redis server CPU (cpus)"),
    ("hosts_cpu", "consumer processes' CPU: floor clients / shoal hosts (cpus)"),
    ("workers_cpu", "shoal workers' CPU (cpus)"),
    ("driver_cpu", "the bench's own CPU: fill and collector (cpus)"),
    ("redis_cpu_us", "Redis CPU per task (µs)"),
    ("redis_cmd_us", "Redis time inside commands per task (µs, commandstats usec)"),
    ("reads_per_task", "Redis read events per task (≈ round trips; fill and polling included)"),
    ("commands_per_task", "commands per task (all but the fill, XLEN, XREAD, INFO)"),
    ("xreadgroup_per_task", "XREADGROUP per task"),
    ("exec_per_task", "EXEC per task"),
    ("xadd_per_task", "result XADD per task"),
    ("xack_per_task", "XACK per task"),
    ("xdel_per_task", "XDEL per task"),
    ("xclaim_per_task", "XCLAIM per task"),
    ("xautoclaim_per_task", "XAUTOCLAIM per task"),
    ("xpending_per_task", "XPENDING per task"),
    ("client_unblock_per_task", "CLIENT UNBLOCK per task"),
    ("tasks_per_xreadgroup", "tasks per XREADGROUP (batch read)"),
    ("results_per_exec", "results per EXEC (batch written)"),
]


def redis_hosts(fig):
    return sorted(int(m.group(1)) for n in fig if (m := re.fullmatch(r"redis_floor_h(\d+)", n)))


def redis_targets(fig):
    """(label, ratio, target, met) rows: shoal ÷ floor ≥ 0.5 for each number of hosts."""
    rows = []
    for k in redis_hosts(fig):
        if f"redis_ratio_h{k}" in fig:
            r = fig[f"redis_ratio_h{k}"][0]
            rows.append((f"`shoal serve` ÷ broker floor, {k} host{'s' if k > 1 else ''} (same Redis, same batching, "
                         "same run)", f"{r:.2f}", "≥ 0.5", "met" if r >= 0.5 else "missed"))
    return rows


def redis_section(fig, provenance):
    hosts = redis_hosts(fig)
    if not hosts:
        return
    v = lambda name: fig[name][0] if name in fig else float("nan")
    print("## Scale-out against the broker's floor (issue 20)\n")
    print(f"{provenance} Floor: K forked minimal clients doing `shoal serve`'s cycle (XREADGROUP COUNT 4 BLOCK → "
          "echo → MULTI {XADD result ×k, XACK, XDEL, PEXPIRE ×2} EXEC); shoal: K `shoal serve` hosts, echo plugin, 2 workers "
          f"each; both on one redis-server (append-only file, fsync every second) on the same {os.cpu_count()} "
          "CPUs, timed from the first XADD of the tasks to the last result. bench/NOTES.md explains the figures.\n")
    print("| hosts | floor tasks/s | shoal tasks/s | shoal ÷ floor | floor ÷ floor at 1 host "
          "| shoal ÷ shoal at 1 host | Redis CPU floor / shoal | clients' / hosts' + workers' CPU |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for k in hosts:
        f, s = v(f"redis_floor_h{k}"), v(f"redis_shoal_h{k}")
        print(f"| {k} | {f:,.0f} | {s:,.0f} | {v(f'redis_ratio_h{k}'):.2f} | "
              f"{f / v(f'redis_floor_h{hosts[0]}'):.2f} | {s / v(f'redis_shoal_h{hosts[0]}'):.2f} | "
              f"{v(f'redis_floor_h{k}_redis_cpu'):.2f} / {v(f'redis_shoal_h{k}_redis_cpu'):.2f} | "
              f"{v(f'redis_floor_h{k}_hosts_cpu'):.2f} / {v(f'redis_shoal_h{k}_hosts_cpu'):.2f} + "
              f"{v(f'redis_shoal_h{k}_workers_cpu'):.2f} |")
    print("\n(Linear scale-out would make the two \"÷ … at 1 host\" columns equal K, up to the floor.)\n")
    print("Per task and CPU, by number of hosts (medians):\n")
    cols = [(m, k) for k in hosts for m in ("floor", "shoal")]
    print("| | " + " | ".join(f"{m} {k}" for m, k in cols) + " |")
    print("| --- |" + " ---: |" * len(cols))
    for what, label in REDIS_ROWS:
        cells = [fig.get(f"redis_{m}_h{k}_{what}") for m, k in cols]
        if all(c is None for c in cells):
            continue
        print(f"| {label} | " + " | ".join("" if c is None else f"{c[0]:.3g}" for c in cells) + " |")
    print()


if len(sys.argv) > 1 and sys.argv[1] == "--redis-section":
    redis_dir, redis_command = sys.argv[2], sys.argv[3]
    note = f" ({sys.argv[4]})" if len(sys.argv) > 4 else ""
    rfig = load(redis_dir, "redis", 1)
    print("## Issue 20's targets\n")
    print("| figure | ratio | target | |\n| --- | ---: | --- | --- |")
    for r in redis_targets(rfig):
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |")
    print()
    redis_section(rfig, f"Command: `{redis_command}`{note}.")
    sys.exit(0)

out_dir, reps, command = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fig = load(out_dir, "shoal", reps)
fig.update(load(out_dir, "peers", reps))
fig.update(load(out_dir, "redis", reps, required=False))


def v(name):
    return fig[name][0]


# (figure, ratio, target, met?): issue 19's targets first (bench/NOTES.md), then the rest,
# whose met targets must stay met.
issue19, rows = [], []


def ratio(label, num, den, target, higher_is_better=True, issue=False):
    r = num / den
    met = r >= target if higher_is_better else r <= target
    (issue19 if issue else rows).append(
        (label, f"{r:.2f}", f"{'≥' if higher_is_better else '≤'} {target:g}", "met" if met else "missed"))


ratio("(a) map tiny (median of 3 maps): shoal ÷ Pool.map default chunksize", v("a_map_tiny"), v("py_pool_map_default"), 3,
      issue=True)
ratio("(a) map tiny: shoal ÷ bare two-process ring stream, same run", v("a_map_tiny"), v("floor_ring_stream"), 0.25,
      issue=True)
ratio("(d) busy round trip (apply) p50 ÷ bare spinning round trip p50, same run", v("d_rtt_busy_p50"), v("d_floor_spin_p50"), 3,
      higher_is_better=False, issue=True)
ratio("(d) busy round trip (apply) p99 ÷ bare spinning round trip p99, same run", v("d_rtt_busy_p99"), v("d_floor_spin_p99"), 10,
      higher_is_better=False, issue=True)
ratio("(d) idle round trip (apply) p50 ÷ bare futex round trip p50, same run", v("d_rtt_idle_p50"), v("d_floor_futex_p50"), 1.5,
      higher_is_better=False, issue=True)
ratio("(c) 100 µs CPU tasks: shoal ÷ two in-process loops at once", v("c_cpu_map"), v("c_cpu_parallel"), 0.98, issue=True)
ratio("(e) 1 MiB echo (map_views, inputs copied in) ÷ memcpy", v("e_echo_1m"), v("e_memcpy_1m"), 0.5, issue=True)
ratio("(e) 1 MiB echo (map_views, inputs written in place by an InputWriter) ÷ memcpy", v("e_echo_written_1m"),
      v("e_memcpy_1m"), 0.5, issue=True)
ratio("(h) `shoal run` lines: shoal ÷ Pool.imap chunksize 1024 with json.dumps rows", v("h_run_lines"),
      v("py_pool_imap_json"), 10, issue=True)
ratio("(a) map_views tiny (no Outcome per task): shoal ÷ Pool.map default chunksize", v("a_map_views_tiny"),
      v("py_pool_map_default"), 3)
ratio("(a) first map of each process (fresh memory): shoal ÷ Pool.map's first", v("a_map_tiny_first"),
      v("py_pool_map_default_first"), 0)
ratio("(a) map tiny: shoal ÷ 10 M tasks/s", v("a_map_tiny"), 10e6, 1)
ratio("(a) map tiny: shoal ÷ ProcessPoolExecutor.map chunksize", v("a_map_tiny"), v("py_ppe_map_chunksize"), 1)
ratio("(a) map tiny: shoal ÷ Pool.map chunksize=1", v("a_map_tiny"), v("py_pool_map_chunksize1"), 1)
ratio("(a) map tiny: shoal ÷ floor (in-process)", v("a_map_tiny"), v("floor_tiny"), 0)
ratio("(b) submit one by one: shoal ÷ Pool.apply_async", v("b_submit_tiny"), v("py_pool_apply_async"), 50)
ratio("(b) submit one by one: shoal ÷ ProcessPoolExecutor.submit", v("b_submit_tiny"), v("py_ppe_submit"), 1)
ratio("(b) unordered: shoal ÷ Pool.imap_unordered", v("b_unordered_tiny"), v("py_pool_imap_unordered"), 1)
ratio("(c) 100 µs CPU tasks: shoal ÷ ideal (2 × in-process)", v("c_cpu_map"), v("c_cpu_ideal"), 0.98)
ratio("(c) Python Pool.map ÷ its ideal (for reference)", v("py_cpu_pool_map"), 2 / (v("py_cpu_task_us") * 1e-6), 0)
ratio("(d) busy round trip, the 10,000 trips right after 100 ms idle, p99 ÷ bare spinning p99 (the vCPU "
      "co-location spell: NOTES.md)", v("d_rtt_busy_after_idle_p99"), v("d_floor_spin_p99"), 0)
ratio("(d) Pool.apply p50 ÷ shoal apply busy p50", v("py_pool_apply_rtt_p50"), v("d_rtt_busy_p50"), 1)
ratio("(d) busy round trip through a future's get() p50 ÷ bare spinning p50", v("d_rtt_future_busy_p50"),
      v("d_floor_spin_p50"), 0)
ratio("(e) 64 KiB echo ÷ memcpy", v("e_echo_64k"), v("e_memcpy_64k"), 0)
ratio("(e) 1 MiB echo through map (copied into Outcomes) ÷ memcpy", v("e_echo_map_1m"), v("e_memcpy_1m"), 0)
ratio("(f) start 2 workers: shoal ÷ Python fork", v("f_start_2"), v("py_start_fork_2"), 1, higher_is_better=False)
ratio("(f) start 2 workers: Python spawn ÷ shoal", v("py_start_spawn_2"), v("f_start_2"), 10)
ratio("(f) start 16 workers: Python spawn ÷ shoal", v("py_start_spawn_16"), v("f_start_16"), 10)
ratio("(f) close+join 16: shoal ÷ Python fork", v("f_stop_16"), v("py_stop_fork_16"), 1, higher_is_better=False)
ratio("(g) host RSS growth over the run, MiB", v("g_host_rss_growth") / 1024, 1, 1, higher_is_better=False)
ratio("(h) `shoal run` lines: shoal ÷ the same job in one Python process", v("h_run_lines"),
      v("py_lines_json_inprocess"), 0)
ratio("(a) bare two-process ring stream ÷ floor (in-process)", v("floor_ring_stream"), v("floor_tiny"), 0)

cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True,
                     text=True).stdout.strip()
print("# Benchmark results\n")
print(f"Command: `{command}` — medians of {reps} repetitions, shoal and the Python peers run "
      "side by side in each repetition (same machine, same minute).\n")
print(f"Machine: {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, Python {platform.python_version()}.\n")
for title, table in (("Issue 19's targets", issue19), ("Issue 20's targets", redis_targets(fig)),
                     ("Other ratios against their targets", rows)):
    if not table:
        continue
    print(f"## {title}\n")
    print("| figure | ratio | target | |\n| --- | ---: | --- | --- |")
    for r in table:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |")
    print()
redis_section(fig, f"`shoal_bench_redis --reps 1` in each of the {reps} repetitions; medians.")
print("## Every figure (median)\n")
print("| name | value | unit |\n| --- | ---: | --- |")
for name in sorted(n for n in fig if not n.startswith("redis_")):  # those are in the scale-out tables
    value, unit = fig[name]
    print(f"| {name} | {value:.4g} | {unit} |")
notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "NOTES.md")
if os.path.exists(notes):
    print()
    print(open(notes).read())
