#!/usr/bin/env python3
"""Medians of bench/run's repetitions, the ratios against the peers and the floor, as
Markdown (bench/RESULTS.md). Usage: report.py DIR REPS COMMAND."""
import os
import platform
import statistics
import subprocess
import sys

out_dir, reps, command = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def load(prefix):
    runs = {}
    for i in range(1, reps + 1):
        with open(os.path.join(out_dir, f"{prefix}.{i}")) as f:
            for line in f:
                name, value, unit = line.split()
                runs.setdefault(name, ([], unit))[0].append(float(value))
    return {k: (statistics.median(v), u) for k, (v, u) in runs.items()}


fig = load("shoal")
fig.update(load("peers"))


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
for title, table in (("Issue 19's targets", issue19), ("Other ratios against their targets", rows)):
    print(f"## {title}\n")
    print("| figure | ratio | target | |\n| --- | ---: | --- | --- |")
    for r in table:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |")
    print()
print("## Every figure (median)\n")
print("| name | value | unit |\n| --- | ---: | --- |")
for name in sorted(fig):
    value, unit = fig[name]
    print(f"| {name} | {value:.4g} | {unit} |")
notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "NOTES.md")
if os.path.exists(notes):
    print()
    print(open(notes).read())
