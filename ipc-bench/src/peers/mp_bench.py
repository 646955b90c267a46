"""Python multiprocessing peers for ipc-bench, measured with the bench's method.

Usage: python3 mp_bench.py CASE PLACEMENT SIZE BUDGET_MS
Prints one JSON object: the same fields as ipc-bench's Measurement (ns per operation).
Placement X pins the measuring process to cpu0 and its peer to cpu1, S both to cpu0,
U leaves both unpinned. Warm-up is 10% of the budget; operations under 2 us are timed in
batches. The peer process is started with the fork method, like Python's default on Linux.
"""
import json
import math
import os
import sys
import time
import multiprocessing as mp
from multiprocessing import shared_memory

ctx = mp.get_context("fork")
now = time.perf_counter_ns


def cpus(placement):
    return {"X": (0, 1), "S": (0, 0), "U": (None, None)}[placement]


def pin(cpu):
    if cpu is None:
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    else:
        os.sched_setaffinity(0, {cpu})


def pct(s, q):
    n = len(s)
    if n == 0:
        return 0.0
    k = min(max(1, math.ceil(q * n)), n)
    return s[k - 1]


def summarize(samples, wall_ns, ops, batch, bytes_per_op):
    samples.sort()
    return {
        "mean_ns": wall_ns / ops if ops else 0.0,
        "p50_ns": pct(samples, 0.5),
        "p90_ns": pct(samples, 0.9),
        "p99_ns": pct(samples, 0.99),
        "p999_ns": pct(samples, 0.999),
        "max_ns": samples[-1] if samples else 0.0,
        "ops": ops,
        "samples": len(samples),
        "batch": batch,
        "bytes_per_op": bytes_per_op,
    }


def time_ops(op, budget_s, bytes_per_op=0):
    budget = budget_s * 1e9
    start = now()
    n = 0
    while True:
        op()
        n += 1
        el = now() - start
        if (el >= budget / 10 and n >= 2) or el >= budget / 2:
            break
    est = el / n
    batch = 1 if est >= 2000 else int(min(1000, math.ceil(2000 / est)))
    samples = []
    ops = 0
    begin = now()
    soft = begin + budget
    hard = begin + 4 * budget + 2e8
    rng = range(batch)
    while True:
        t0 = now()
        for _ in rng:
            op()
        t1 = now()
        samples.append((t1 - t0) / batch)
        ops += batch
        if (t1 >= soft and len(samples) >= 10) or t1 >= hard:
            break
    return summarize(samples, now() - begin, ops, batch, bytes_per_op)


def pipe_echo(conn, cpu):
    pin(cpu)
    while True:
        m = conn.recv_bytes()
        if m[:1] == b"\x01":
            return
        conn.send_bytes(m)


def pipe_rtt(placement, size, budget):
    me, peer = cpus(placement)
    a, b = ctx.Pipe()
    p = ctx.Process(target=pipe_echo, args=(b, peer))
    p.start()
    pin(me)
    msg = bytes(max(size, 1))

    def op():
        a.send_bytes(msg)
        a.recv_bytes()

    r = time_ops(op, budget)
    a.send_bytes(b"\x01" + msg[1:])
    p.join(10)
    return r


def queue_echo(q1, q2, cpu):
    pin(cpu)
    while True:
        m = q1.get()
        if m is None:
            return
        q2.put(m)


def queue_rtt_with(make, placement, size, budget):
    me, peer = cpus(placement)
    q1, q2 = make(), make()
    p = ctx.Process(target=queue_echo, args=(q1, q2, peer))
    p.start()
    pin(me)
    msg = bytes(max(size, 1))

    def op():
        q1.put(msg)
        q2.get()

    r = time_ops(op, budget)
    q1.put(None)
    p.join(10)
    return r


def queue_rtt(placement, size, budget):
    return queue_rtt_with(ctx.Queue, placement, size, budget)


def simplequeue_rtt(placement, size, budget):
    return queue_rtt_with(ctx.SimpleQueue, placement, size, budget)


def lock_op(placement, size, budget):
    pin(0)
    lock = ctx.Lock()
    acq, rel = lock.acquire, lock.release

    def op():
        acq()
        rel()

    return time_ops(op, budget)


def sem_op(placement, size, budget):
    pin(0)
    sem = ctx.Semaphore(1)
    acq, rel = sem.acquire, sem.release

    def op():
        acq()
        rel()

    return time_ops(op, budget)


def contend(lock, value, n, go, done, cpu):
    pin(cpu)
    while True:
        k = go.get()
        if k is None:
            return
        for _ in range(n):
            with lock:
                value.value += 1
        done.put(k)


def lock_contended(placement, size, budget_s):
    me, peer = cpus(placement)
    pin(me)
    lock = ctx.Lock()
    value = ctx.RawValue("q", 0)
    # Calibrate: a block should last about 1/20 of the budget.
    t = now()
    for _ in range(2000):
        with lock:
            value.value += 1
    est = (now() - t) / 2000
    n = int(max(500, budget_s * 1e9 / 20 / (est * 4)))
    go, done = ctx.SimpleQueue(), ctx.SimpleQueue()
    p = ctx.Process(target=contend, args=(lock, value, n, go, done, peer))
    p.start()
    samples, wall = [], 0
    begin = now()
    k = 0
    while True:
        k += 1
        t0 = now()
        go.put(k)
        for _ in range(n):
            with lock:
                value.value += 1
        done.get()
        t = now() - t0
        if k > 1:
            wall += t
            samples.append(t / (2 * n))
        if (now() - begin >= budget_s * 1e9 and len(samples) >= 5) or len(samples) >= 1000:
            break
    go.put(None)
    p.join(10)
    return summarize(samples, wall, len(samples) * 2 * n, 2 * n, 0)


def shm_create(placement, size, budget):
    pin(0)
    size = size or (1 << 20)

    def op():
        s = shared_memory.SharedMemory(create=True, size=size)
        s.close()
        s.unlink()

    return time_ops(op, budget)


def pump(conn, size, cpu):
    pin(cpu)
    chunk = bytes(size)
    try:
        while True:
            conn.send_bytes(chunk)
    except (BrokenPipeError, ConnectionResetError, OSError):
        return


def pipe_tput(placement, size, budget):
    me, peer = cpus(placement)
    size = size or (1 << 20)
    a, b = ctx.Pipe(duplex=False)
    p = ctx.Process(target=pump, args=(b, size, peer))
    p.start()
    b.close()
    pin(me)
    r = time_ops(a.recv_bytes, budget, size)
    a.close()
    p.terminate()
    p.join(10)
    return r


CASES = {
    "pipe_rtt": pipe_rtt,
    "queue_rtt": queue_rtt,
    "simplequeue_rtt": simplequeue_rtt,
    "lock_op": lock_op,
    "sem_op": sem_op,
    "lock_contended": lock_contended,
    "shm_create": shm_create,
    "pipe_tput": pipe_tput,
}


def main():
    case, placement, size, budget_ms = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    out = CASES[case](placement, size, budget_ms / 1000.0)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
