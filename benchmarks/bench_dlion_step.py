"""D-Lion step throughput against numpy copy bandwidth, measured in the same run.

One step for N = 32 workers and d = 2**20 float32 parameters: worker encode (momentum
interpolation, sign, momentum update, bit packing), server majority vote (or Avg sum), and the
parameter update. The bytes the step must move at minimum are: read g, read and write m
(3 x N x d x 4), read and write x (2 x d x 4), plus the packed messages (N x d / 8 written and
read, d / 8 reply). Printed: that traffic divided by the step time, as a fraction of copy
bandwidth (bytes read + written per second by np.copyto), with the numpy kernels only and with
the compiled ones (numba, the `fast` extra) when installed.
Run: .venv/bin/python benchmarks/bench_dlion_step.py [--repeats R]
"""
import argparse
import contextlib

import numpy as np

from sim import methods
from sim.kernels import compiled, numpy_only
from timing import best_seconds, record, write

N, D = 32, 2**20
TARGETS = {"numpy": ">= 0.6", "compiled": ">= 0.9"}


def step_seconds(aggregate, repeats, rng):
    method = methods.get("dlion")
    hp = {**method.defaults, "aggregate": aggregate}
    x = rng.standard_normal(D).astype(np.float32)
    grads = rng.standard_normal((N, D)).astype(np.float32)
    state = method.init(x, N, hp, None)

    def step():
        nonlocal x, state
        payloads, state = method.encode(state, grads, hp, rng)
        reply = method.aggregate(payloads, D, hp, rng)
        x, state = method.apply(x, reply, state, hp, 1e-4)

    return best_seconds(step, repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    src = rng.standard_normal(N * D).astype(np.float32)
    dst = np.empty_like(src)
    traffic = 3 * N * D * 4 + 2 * D * 4 + 2 * N * D // 8 + D // 8
    kernels = {"numpy": numpy_only}
    if compiled() is not None:
        kernels["compiled"] = contextlib.nullcontext
    else:
        print("compiled kernels: not measured (numba is not installed: pip install '.[fast]')")
    for aggregate in ("mavo", "avg"):
        for name, context in kernels.items():
            # the copy reference right before each measurement: the machine's load drifts
            copy_rate = 2 * src.nbytes / best_seconds(lambda: np.copyto(dst, src), args.repeats)
            with context():
                seconds = step_seconds(aggregate, args.repeats, rng)
            ratio = traffic / seconds / copy_rate
            print(f"D-Lion {aggregate:4s} step, N={N}, d=2^20, {name:8s} kernels: "
                  f"{seconds * 1e3:6.1f} ms; {traffic / seconds / 1e9:5.1f} GB/s of minimal "
                  f"traffic; copy {copy_rate / 1e9:5.1f} GB/s; ratio {ratio:.2f} "
                  f"(target {TARGETS[name]})")
            record(f"dlion_{aggregate}_step_{name}_vs_copy", ratio, TARGETS[name],
                   "np.copyto bandwidth (read + write)", step_ms=seconds * 1e3,
                   copy_gbps=copy_rate / 1e9)
    write()


if __name__ == "__main__":
    main()
