#!/usr/bin/env python3
"""Ratios of the ipc-queue benches to their references, per run and the median over runs.

Usage: for i in 1 2 3 4 5; do cargo bench -p ipc-queue --bench queue > run$i.log; done
       python3 ipc-queue/benches/ratios.py run*.log
Each run's figures come from the same process invocation, so each ratio is "same run".
"""
import re
import statistics
import sys

UNIT = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}

# (label, ours, reference, goal, "<=" if lower is better for the ratio)
RATIOS = [
    ("SPSC polling RTT 8 B / spin floor", "rtt-x/8B/ipc-queue spsc", "rtt-x/floor/spin ping-pong 2 lines", 1.25, "<="),
    ("SPSC polling RTT 64 B / spin floor", "rtt-x/64B/ipc-queue spsc", "rtt-x/floor/spin ping-pong 2 lines", 1.25, "<="),
    ("MPMC RTT 64 B (processes) / crossbeam ArrayQueue (threads)", "rtt-x/64B/ipc-queue mpmc", "rtt-x/64B/crossbeam ArrayQueue threads", 1.0, "<="),
    ("MPMC RTT 8 B / spin floor (info)", "rtt-x/8B/ipc-queue mpmc", "rtt-x/floor/spin ping-pong 2 lines", None, "<="),
    ("64 B throughput: reference ring time / ours (= our msg/s / ring msg/s)", "tput-64B/reference spsc ring", "tput-64B/ipc-queue spsc", 0.9, ">="),
    ("64 KiB zero-copy throughput / memcpy", "tput-64KiB/memcpy into a 1 MiB shm ring", "tput-64KiB/ipc-queue spsc zero-copy", 0.9, ">="),
    ("64 KiB zero-copy throughput / plain ring between the same processes (info)", "tput-64KiB/reference ring between processes", "tput-64KiB/ipc-queue spsc zero-copy", None, ">="),
    ("blocking RTT, peer asleep / raw futex", "asleep-x/ipc-queue spsc blocking", "asleep-x/raw futex ping-pong", 1.05, "<="),
    ("blocking RTT, same core / pipe", "same-core/ipc-queue spsc blocking", "same-core/pipe ping-pong", 0.9, "<="),
]


def parse(path):
    text = open(path, encoding="utf-8").read()
    out = {}
    for m in re.finditer(r"^([^\s][^\n]*?)\s*\n?\s*time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", text, re.M):
        name, val, unit = m.group(1).strip(), float(m.group(2)), m.group(3)
        out[name] = val * UNIT[unit]
    return out


def main():
    runs = [parse(p) for p in sys.argv[1:]]
    for label, ours, ref, goal, sense in RATIOS:
        vals = [r[ours] / r[ref] for r in runs if ours in r and ref in r]
        if not vals:
            print(f"{label}: no data")
            continue
        med = statistics.median(vals)
        verdict = "" if goal is None else (" (goal %s %.2f: %s)" % (sense, goal, "met" if (med <= goal if sense == "<=" else med >= goal) else "NOT met"))
        print(f"{label}: median {med:.2f} over {len(vals)} runs {['%.2f' % v for v in vals]}{verdict}")
    for name in sorted({n for r in runs for n in r}):
        xs = [r[name] for r in runs if name in r]
        print(f"  {name}: median {statistics.median(xs):.1f} ns (runs {['%.0f' % x for x in xs]})")


if __name__ == "__main__":
    main()
