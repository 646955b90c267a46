# Python's process start and pool costs, for ipc-bench's "process" groups.
# argv: case budget_ms quick(0/1). Prints one JSON list: the timed trials in ns (per task
# for the pool cases). Only builtins cross to children, so no __main__ import is needed.
import json
import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def trials(run, budget_s, max_trials, min_trials=5):
    run()  # warm-up
    out = []
    end = time.perf_counter() + budget_s
    while len(out) < max_trials and (len(out) < min_trials or time.perf_counter() < end):
        out.append(run())
    return out


def start_join(method):
    ctx = mp.get_context(method)

    def run():
        t = time.perf_counter_ns()
        p = ctx.Process(target=int)
        p.start()
        p.join()
        return time.perf_counter_ns() - t

    return run


def pool_map(n):
    pool = mp.get_context("fork").Pool(2)
    pool.map(abs, range(100))

    def run():
        t = time.perf_counter_ns()
        r = pool.map(abs, range(n))
        d = time.perf_counter_ns() - t
        assert len(r) == n
        return d / n

    return run, pool


def executor_map(n):
    ex = ProcessPoolExecutor(2, mp_context=mp.get_context("fork"))
    list(ex.map(abs, range(100)))

    def run():
        t = time.perf_counter_ns()
        r = list(ex.map(abs, range(n)))
        d = time.perf_counter_ns() - t
        assert len(r) == n
        return d / n

    return run, ex


def main():
    case, budget_ms, quick = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
    budget = budget_ms / 1000.0
    if case in ("fork", "forkserver", "spawn"):
        out = trials(start_join(case), budget, 50 if quick else 400)
    elif case == "pool_map":
        run, pool = pool_map(10_000 if quick else 100_000)
        out = trials(run, budget, 200, 3)
        pool.terminate()
    elif case == "executor_map":
        # Default chunksize 1: one task per message; 10^4 tasks keep a trial near a second.
        run, ex = executor_map(1_000 if quick else 10_000)
        out = trials(run, budget, 50, 3)
        ex.shutdown()
    else:
        raise SystemExit("unknown case " + case)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
