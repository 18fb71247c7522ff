"""Sweep throughput on 2 processes against 1, for SimPy-bound runs.

Each point is G-AdamW on a 100-parameter quadratic with many workers, so nearly all of a run's
wall time is the SimPy network (one flow per worker per message) and not numpy. The same sweep
runs with ``--jobs 1`` (in this process, after a warm-up) and ``--jobs 2`` (spawned processes,
their start-up included), each into a fresh directory; the ratio of runs per second is the
speed-up (target >= 1.9x on a quiet 2-core machine). The load average is printed with it,
because other work on the machine takes cores away from the second process. The start-up of
two spawned processes (interpreter and imports, about half a second, which the in-process
``--jobs 1`` run does not pay) is measured too, and the speed-up net of it printed beside.
Run: .venv/bin/python benchmarks/bench_sweep.py [--points P] [--workers N] [--steps S]
"""

import argparse
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

import experiments
from experiments.sweep import run_sweep
from timing import loadavg, record, write

TARGET = ">= 1.9"


def _timed(raw, out, jobs):
    start = time.perf_counter()
    records = run_sweep(raw, out, jobs=jobs)
    elapsed = time.perf_counter() - start
    assert all(r["status"] == "completed" for r in records), [r["status"] for r in records]
    return elapsed, records


_HOLD_S = 0.2  # each start-up probe holds its process, so that the two probes need two


def _hold() -> None:
    time.sleep(_HOLD_S)


def _startup_seconds() -> float:
    """Wall time for two spawned processes to be up with this script's imports (as a sweep's
    workers are), net of the probes' hold."""
    start = time.perf_counter()
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        for future in [pool.submit(_hold) for _ in range(2)]:
            future.result()
    return time.perf_counter() - start - _HOLD_S


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--workers", type=int, default=128)
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args()
    base = {"objective": {"name": "quadratic"}, "method": {"name": "gadamw", "lr": 0.01},
            "cluster": {"workers": args.workers, "batch_size": 4},
            "run": {"steps": args.steps, "eval_every": 0}}
    raw = {**base, "sweep": {"run.seed": list(range(args.points))}}
    experiments.simulate({**base, "run": {"steps": 5}})  # imports and first-call costs

    print(f"load average before: {loadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        one, serial = _timed(raw, Path(tmp) / "one", 1)
        two, parallel = _timed(raw, Path(tmp) / "two", 2)
        for a, b in zip(serial, parallel):
            assert np.array_equal(experiments.load(a["dir"]).params,
                                  experiments.load(b["dir"]).params)
    print(f"load average after:  {loadavg()}")
    print(f"{args.points} runs of G-AdamW, {args.workers} workers, {args.steps} steps each")
    print(f"  --jobs 1: {one:7.2f} s  {args.points / one:6.2f} runs/s")
    print(f"  --jobs 2: {two:7.2f} s  {args.points / two:6.2f} runs/s")
    startup = _startup_seconds()
    print(f"  speed-up: x{one / two:.2f} (target {TARGET} on a quiet 2-core machine); start-up "
          f"of two spawned processes {startup:.2f} s, speed-up net of it x{one / (two - startup):.2f}")
    record("sweep_2_jobs_over_1", one / two, TARGET, "the same sweep with --jobs 1",
           jobs1_s=one, jobs2_s=two, startup_s=startup, net_of_startup=one / (two - startup))
    write()


if __name__ == "__main__":
    main()
