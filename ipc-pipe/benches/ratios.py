#!/usr/bin/env python3
"""Run the ipc-pipe criterion benches N times and print the same-run ratios, per run and as
medians. Usage (from the workspace root): python3 ipc-pipe/benches/ratios.py [runs] [extra
criterion args...]. Set IPC_BENCH_PLACEMENT=S|X|U to override the placements.
"""
import json
import os
import statistics
import subprocess
import sys

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
extra = sys.argv[2:]
root = os.environ.get("CARGO_TARGET_DIR", "target")
SIZES = [8, 64, 256, 1024]


def median_ns(path):
    with open(os.path.join(root, "criterion", path, "new", "estimates.json")) as f:
        return json.load(f)["median"]["point_estimate"]


table = []
for r in range(runs):
    subprocess.run(
        ["cargo", "bench", "-q", "-p", "ipc-pipe", "--bench", "pipe", "--", "--noplot", *extra],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    row = {}
    for n in SIZES:
        raw = median_ns(f"rtt/{n}/raw")
        ours = median_ns(f"rtt/{n}/ipc-pipe")
        row[f"rtt {n} B: us ours/raw"] = (ours / 1000, raw / 1000)
        row[f"rtt {n} B ours/raw"] = ours / raw
        row[f"rtt {n} B ours/interprocess"] = ours / median_ns(f"rtt/{n}/interprocess")
        row[f"rtt {n} B ours/ipc-channel"] = ours / median_ns(f"rtt/{n}/ipc-channel")
    raw = median_ns("throughput/1MiB/raw")
    row["1 MiB throughput ours/raw"] = raw / median_ns("throughput/1MiB/ipc-pipe")
    row["1 MiB throughput simplex/raw-pipe"] = (
        median_ns("throughput/1MiB/raw-pipe") / median_ns("throughput/1MiB/ipc-pipe-simplex"))
    row["1 MiB raw GiB/s"] = (1 << 20) / raw / 1.073741824
    table.append(row)
    print(f"run {r + 1}: " + ", ".join(
        f"{k} {v[0]:.2f}/{v[1]:.2f}" if isinstance(v, tuple) else f"{k} {v:.3f}"
        for k, v in row.items()), flush=True)

print("\nmedian of", runs, "runs (min..max):")
for k in table[0]:
    if isinstance(table[0][k], tuple):
        continue
    vals = [row[k] for row in table]
    print(f"  {k:34} {statistics.median(vals):.3f}  ({min(vals):.3f}..{max(vals):.3f})")
