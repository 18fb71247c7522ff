"""Peak memory of the D-Lion step for N = 256 workers and d = 2**20 float32 parameters, over the
size of its momentum state (N x d x 4 bytes = 1 GiB), measured with tracemalloc (numpy reports
its allocations to it).

The state and the workers' gradients are allocated before tracing starts: they are the step's
inputs (the gradients come from the objective, which owns them). The figure is
(momentum + the largest extra memory held at once during encode, vote and apply) / momentum:
1.0 would be a step that allocates nothing; a step with one (N, d) float32 temporary would show
2.0. Both aggregations, with the numpy kernels and with the compiled ones when installed.
Run: .venv/bin/python benchmarks/bench_memory.py [--workers N] [--log2d L]
"""
import argparse
import contextlib
import tracemalloc

import numpy as np

from sim import methods
from sim.kernels import compiled, numpy_only
from timing import record, write

TARGET = "<= 1.3"


def peak_over_momentum(n, d, aggregate, rng):
    method = methods.get("dlion")
    hp = {**method.defaults, "aggregate": aggregate}
    x = rng.standard_normal(d).astype(np.float32)
    grads = rng.standard_normal((n, d)).astype(np.float32)
    state = method.init(x, n, hp, None)
    momentum = state["m"].nbytes
    tracemalloc.start()
    try:
        for _ in range(2):  # the second step holds the first one's results while it runs
            payloads, state = method.encode(state, grads, hp, rng)
            reply = method.aggregate(payloads, d, hp, rng)
            x, state = method.apply(x, reply, state, hp, 1e-4)
            del payloads, reply
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (momentum + peak) / momentum, peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=256)
    parser.add_argument("--log2d", type=int, default=20)
    args = parser.parse_args()
    n, d, rng = args.workers, 1 << args.log2d, np.random.default_rng(0)
    kernels = {"numpy": numpy_only}
    if compiled() is not None:
        kernels["compiled"] = contextlib.nullcontext
    else:
        print("compiled kernels: not measured (numba is not installed: pip install '.[fast]')")
    print(f"N={n}, d=2^{args.log2d}: momentum {n * d * 4 / 2**30:.2f} GiB")
    for aggregate in ("mavo", "avg"):
        for name, context in kernels.items():
            with context():
                ratio, extra = peak_over_momentum(n, d, aggregate, rng)
            print(f"D-Lion {aggregate:4s} step, {name:8s} kernels: peak extra memory "
                  f"{extra / 2**20:7.1f} MiB; (momentum + extra) / momentum = {ratio:.3f} "
                  f"(target {TARGET})")
            record(f"dlion_{aggregate}_peak_memory_{name}_over_momentum", ratio, TARGET,
                   "the momentum state's size (N x d x 4 bytes)", extra_mib=extra / 2**20)
    write()


if __name__ == "__main__":
    main()
