"""What gradient buckets cost the simulator: the wall time of a step overlapped in DDP's
buckets against the same step sent whole (the reference, measured in the same run).

The run: 8 workers on a 10 Gb/s star, messages sized for GPT-2 small (13 buckets of its
75 layers at DDP's 25 MiB / 1 MiB caps), its 0.576 s step, on the TCP transport; G-AdamW on
its ring all-reduce and D-Lion on its sharded vote (the shard owners' push, bucket by bucket).
The figure is the wall time per simulated step with overlap over the same without it
(target: at most about 2x, issue 24), from runs of S and s steps so that a run's fixed costs
drop out.
Run: .venv/bin/python benchmarks/bench_overlap.py [--steps S] [--repeats R]
"""
import argparse

from timing import best_seconds, record, write

from experiments.run import execute
from experiments.spec import resolve

TARGET = "<= 2"
BASE = {
    "objective": {"name": "logistic", "features": 63},
    "cluster": {"workers": 8, "model": "gpt2-small"},
    "network": {"bandwidth": "10Gbps", "latency": "5us"},
}
METHODS = {"G-AdamW, ring": {"name": "gadamw"}, "D-Lion, alltoall": {"name": "dlion"}}


def per_step(method: dict, overlap: bool, steps: int, repeats: int) -> float:
    """Wall seconds per simulated step (runs of ``steps`` and ``steps // 5`` steps)."""
    def run(n):
        spec = resolve({**BASE, "method": method, "compute": {"overlap": overlap},
                        "run": {"steps": n, "eval_every": 0}})
        return lambda: execute(spec)
    short = steps // 5
    return (best_seconds(run(steps), repeats) - best_seconds(run(short), repeats)) / (steps - short)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for label, method in METHODS.items():
        whole = per_step(method, False, args.steps, args.repeats)
        buckets = per_step(method, True, args.steps, args.repeats)
        ratio = buckets / whole
        print(f"{label:18} whole {whole * 1e3:7.2f} ms/step, in buckets {buckets * 1e3:7.2f} "
              f"ms/step: {ratio:5.2f}x (target {TARGET})")
        record(f"overlap wall time ratio, {label}", ratio, TARGET,
               "the same step sent whole, same run", whole_s=whole, buckets_s=buckets)
    write()


if __name__ == "__main__":
    main()
