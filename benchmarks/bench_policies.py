"""Simulated steps per wall second of a quickstart-like run, and what server policies and
faults cost on it.

The run: D-Lion on logistic regression, 8 workers on a 1 Gb/s star, messages sized for a
25.6M-parameter model, 100 ms of compute per step, as in experiments/quickstart.toml. The
figure is the rate of the training loop: (S - s) steps over the wall-time difference of a run
of S and one of s steps, so the fixed costs of a run (building the objective, computing its
optimum for the final evaluation) are left out; the whole run's rate is printed beside it. It
is measured with the TCP transport (the default; the target applies to it) and the fluid one.
The reference measured in the same run is a bare SimPy loop of 20 timeouts per step.
Then, with 20% compute jitter (every message starts at its own instant: 4.5 times the rate
recomputations), the same run under a policy that can leave messages out (``first_k`` of all
N: the same arrivals, but the participation path) and with faults (loss, crashes and recovery),
each as a ratio to the jittered default's wall time.
Run: .venv/bin/python benchmarks/bench_policies.py [--steps S] [--repeats R]
"""
import argparse

import simpy
from timing import best_seconds, record, write

from experiments.run import execute
from experiments.spec import resolve

TARGET = ">= 3000"
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
    short = args.steps // 6

    def spec(extra, steps=args.steps):
        return resolve({**BASE, **extra, "run": {"steps": steps, "eval_every": 0}})

    bare = best_seconds(lambda: _bare_events(20 * args.steps), args.repeats) / args.steps
    for transport in ("tcp", "fluid"):
        steady = {"compute": {"step_time": "100ms"},
                  "network": {**BASE["network"], "transport": transport}}
        whole = best_seconds(lambda: execute(spec(steady)), args.repeats)
        first = best_seconds(lambda: execute(spec(steady, short)), args.repeats)
        loop = (whole - first) / (args.steps - short)
        print(f"quickstart-like, {transport:5s}: {1 / loop:,.0f} simulated steps per wall second "
              f"in the loop (target {TARGET if transport == 'tcp' else 'none'}), "
              f"{loop * 1e6:.0f} us per step, {loop / bare:.1f}x a bare SimPy loop of 20 "
              f"timeouts per step; the whole run of {args.steps}: {args.steps / whole:,.0f} "
              "steps/s")
        record(f"quickstart_{transport}_steps_per_s", 1 / loop,
               TARGET if transport == "tcp" else None,
               "simulated steps per wall second (absolute); ratio: a bare SimPy loop of 20 "
               "timeouts", us_per_step=loop * 1e6, ratio_to_bare=loop / bare,
               whole_run_steps_per_s=args.steps / whole)
    whole = best_seconds(lambda: execute(spec({})), args.repeats)
    print(f"with 20% jitter, policy all, no faults: {args.steps / whole:,.0f} steps per wall "
          "second (whole run)")
    for name, extra in VARIANTS.items():
        variant = spec(extra)
        seconds = best_seconds(lambda: execute(variant), args.repeats)
        print(f"{name}: {args.steps / seconds:,.0f} steps per wall second (whole run), "
              f"{seconds / whole:.2f}x the default's wall time")
        record(f"quickstart_{name.split()[0]}_vs_default", seconds / whole, None,
               "wall time of the jittered default run (policy all, no faults)")
    write()


if __name__ == "__main__":
    main()
