"""GPT gradient throughput (tokens/s) against the float32 matmul rate measured in the same run.

Run: .venv/bin/python benchmarks/bench_gpt.py [--workers 8] [--batch 8] [--repeats 5]

One call of ``GPT.grads`` (the default size) computes the forward and backward passes of all
workers' minibatches: N workers x B windows x T characters. Its cost becomes an effective FLOP
rate, counting the matmuls a transformer must do (6 x weights per token for the linear layers
and the head, plus the attention scores and mixing, 12 x T x width per token per block), and
is divided by the rate of a 1024^3 float32 matmul. The printed ratio is the fraction of the
machine's matmul throughput that the batched gradient reaches; the rest goes to layer norms,
softmax, GELU and data movement. Uses the KJV text when installed, else the pydoc text (the
vocabulary size changes the head slightly). BLAS threads follow OPENBLAS_NUM_THREADS.
"""

import argparse
import os

import numpy as np

from models.datasets import MissingDataError
from models.gpt import GPT
from timing import best_seconds, record, write


def flops_per_token(obj: GPT) -> int:
    """Matmul FLOPs per token of one forward + backward pass (backward = 2 x forward)."""
    core = obj.core
    d, t = core.width, core.tokens
    linear = 2 * d * d * (4 + 2 * core.mlp_ratio)      # qkv, output, and the two MLP layers
    attention = 2 * 2 * t * d                           # scores and mixing, every position
    forward = core.blocks * (linear + attention) + 2 * d * obj.n_classes
    return 3 * forward


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8, help="windows per worker")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    try:
        obj = GPT()
    except MissingDataError:
        obj = GPT(dataset="pydoc")
    n, b, t = args.workers, args.batch, obj.context
    print(f"gpt (defaults) on {obj.dataset}: {obj.dim} parameters, context {t}, width "
          f"{obj.core.width}, {obj.core.blocks} blocks, {obj.core.heads} heads; N = {n} "
          f"workers x B = {b} windows = {n * b * t} tokens; cpus = {os.cpu_count()}, "
          f"OPENBLAS_NUM_THREADS = {os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")

    rng = np.random.default_rng(0)
    a = rng.standard_normal((1024, 1024), dtype=np.float32)
    t_mm = best_seconds(lambda: a @ a, 10 * args.repeats)
    peak = 2 * 1024 ** 3 / t_mm
    print(f"reference: float32 matmul 1024^3  {t_mm * 1e3:8.2f} ms  {peak / 1e9:7.1f} GFLOP/s")

    flops = flops_per_token(obj)
    x = obj.init(rng)
    for label, params in (("shared x (dim,)", x), ("per-worker x (N, dim)", np.tile(x, (n, 1)))):
        seconds = best_seconds(lambda: obj.grads(params, n, b, rng), args.repeats)
        rate = n * b * t / seconds
        print(f"grads, {label:22s} {seconds * 1e3:8.1f} ms  {rate:9.0f} tokens/s  "
              f"{rate * flops / 1e9:6.1f} GFLOP/s  = {rate * flops / peak:5.3f} of matmul rate")
        record(f"gpt_grads_{'shared' if params is x else 'per_worker'}_vs_matmul",
               rate * flops / peak, None, "float32 matmul 1024^3 FLOP rate",
               tokens_per_s=rate, ms=seconds * 1e3)
    write()


if __name__ == "__main__":
    main()
