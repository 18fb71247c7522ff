"""MLP gradient throughput (samples/s) against the float32 matmul rate measured in the same run.

Run: .venv/bin/python benchmarks/bench_mlp.py [--workers 16] [--batch 32] [--hidden 256]
     [--repeats 20]

One call of ``MLP.grads`` computes the minibatch gradients of all workers (N workers x B
samples) on Fashion-MNIST. Its cost is turned into an effective FLOP rate (counted as the
matmuls the forward and backward passes must do) and divided by the rate of a 1024^3 float32
matmul, so the printed ratio is the fraction of the machine's matmul throughput that the
batched gradient reaches. Both parameter layouts are timed: shared x (dim,), as in every
synchronous method, and per-worker x (N, dim). BLAS threads follow OPENBLAS_NUM_THREADS.
"""

import argparse
import os
import sys

import numpy as np

from models.datasets import MissingDataError
from models.mlp import MLP
from timing import best_seconds, record, write


def flops_per_sample(sizes) -> int:
    """Matmul FLOPs per sample of one forward + backward pass (no input gradient)."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    forward = sum(2 * a * b for a, b in pairs)
    weight_grads = forward
    input_grads = sum(2 * a * b for a, b in pairs[1:])  # the first layer's is skipped
    return forward + weight_grads + input_grads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--batch", type=int, default=32, help="samples per worker")
    ap.add_argument("--hidden", type=int, nargs="*", default=[256])
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    try:
        obj = MLP(hidden=tuple(args.hidden))
    except MissingDataError as err:
        sys.exit(str(err))
    n, b = args.workers, args.batch
    print(f"MLP {'-'.join(map(str, obj.sizes))} on Fashion-MNIST, {obj.dim} parameters; "
          f"N = {n} workers x B = {b}; cpus = {os.cpu_count()}, "
          f"OPENBLAS_NUM_THREADS = {os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")

    rng = np.random.default_rng(0)
    a = rng.standard_normal((1024, 1024), dtype=np.float32)
    t_mm = best_seconds(lambda: a @ a, args.repeats)
    peak = 2 * 1024 ** 3 / t_mm
    print(f"reference: float32 matmul 1024^3  {t_mm * 1e3:8.2f} ms  {peak / 1e9:7.1f} GFLOP/s")

    flops = flops_per_sample(obj.sizes)
    x = obj.init(rng)
    for label, params in (("shared x (dim,)", x), ("per-worker x (N, dim)", np.tile(x, (n, 1)))):
        t = best_seconds(lambda: obj.grads(params, n, b, rng), args.repeats)
        rate = n * b / t
        print(f"grads, {label:22s} {t * 1e3:8.2f} ms  {rate:10.0f} samples/s  "
              f"{rate * flops / 1e9:7.1f} GFLOP/s  = {rate * flops / peak:5.3f} of matmul rate")
        record(f"mlp_grads_{'shared' if params is x else 'per_worker'}_vs_matmul",
               rate * flops / peak, None, "float32 matmul 1024^3 FLOP rate",
               samples_per_s=rate, ms=t * 1e3)
    write()


if __name__ == "__main__":
    main()
