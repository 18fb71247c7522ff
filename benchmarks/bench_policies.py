"""What server policies and faults cost in wall time, on a quickstart-like run.

The run: D-Lion on logistic regression, 8 workers on a 1 Gb/s star, messages sized for a
25.6M-parameter model, 100 ms of jittered compute per step. Printed: simulated steps per wall
second with the default policy (``all``, no faults: the path every earlier run took), and the
wall time of the same run under a policy that can leave messages out (``first_k`` of all N:
the same arrivals, but the participation path) and with faults (loss, crashes and recovery),
each as a ratio to the default. The reference for the default is a bare SimPy loop measured
in the same run.
Run: .venv/bin/python benchmarks/bench_policies.py [--steps S] [--repeats R]
"""
import argparse

import simpy
from timing import best_seconds

from experiments.run import execute
from experiments.spec import resolve

BASE = {
    "objective": {"name": "logistic", "features": 63},
    "method": {"name": "dlion", "aggregate": "mavo", "lr": 3e-3},
    "cluster": {"workers": 8, "model_params": 25_600_000},
    "network": {"bandwidth": "1Gbps", "latency": "50us"},
    "compute": {"step_time": "100ms", "jitter": 0.2},
}
VARIANTS = {
    "first_k = N": {"server": {"policy": "first_k", "k": 8}},
    "deadline + faults": {"server": {"policy": "deadline", "deadline": "300ms"},
                          "faults": {"loss": 0.02, "on_loss": "drop", "crash_rate": 0.01,
                                     "recover_after": "5s"}},
}


def _bare_events(n):
    env = simpy.Environment()

    def loop():
        for _ in range(n):
            yield env.timeout(1e-6)

    env.process(loop())
    env.run()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    def spec(extra):
        return resolve({**BASE, **extra, "run": {"steps": args.steps, "eval_every": 0}})

    default = spec({})
    base_s = best_seconds(lambda: execute(default), args.repeats)
    bare_s = best_seconds(lambda: _bare_events(20 * args.steps), args.repeats)
    print(f"policy all, no faults: {args.steps / base_s:,.0f} simulated steps per wall second "
          f"({base_s / args.steps * 1e6:.0f} us per step; a bare SimPy loop of 20 timeouts "
          f"per step: {bare_s / args.steps * 1e6:.0f} us, ratio {base_s / bare_s:.1f}x)")
    for name, extra in VARIANTS.items():
        variant = spec(extra)
        seconds = best_seconds(lambda: execute(variant), args.repeats)
        print(f"{name}: {args.steps / seconds:,.0f} steps per wall second, "
              f"{seconds / base_s:.2f}x the default's wall time")


if __name__ == "__main__":
    main()
