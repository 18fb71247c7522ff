"""Steps per second of the gpt and vit gradients at a few model sizes, against the float32
matmul rate measured in the same run.

Run: .venv/bin/python benchmarks/bench_transformer_sizes.py [--workers 8] [--repeats 3]

One step is one ``grads`` call: the forward and backward passes of N workers' minibatches
with shared parameters, at the bundled studies' batch sizes (gpt: 8 windows of 64 characters
per worker, vit: 32 images of 16 patches and a class token). The optimizer and the simulator
add their own time on top (the studies' wall times in the README include them). Each size's
matmul FLOPs per step become an effective rate, printed as a fraction of a 1024^3 float32
matmul's rate. BLAS threads follow OPENBLAS_NUM_THREADS.
"""

import argparse
import os

import numpy as np

from models.datasets import MissingDataError
from models.gpt import GPT
from models.vit import ViT
from timing import best_seconds, record, write

#: (objective, width, blocks): the bundled size first, then wider and deeper ones
SIZES = (("gpt", 64, 2), ("gpt", 64, 4), ("gpt", 128, 2), ("vit", 64, 2), ("vit", 64, 4),
         ("vit", 128, 2))
BATCH = {"gpt": 8, "vit": 32}


def make(objective: str, width: int, blocks: int):
    """The objective at this size (gpt on the KJV when installed, else on the pydoc text; vit
    on Fashion-MNIST, else on the 5,000 MNIST digits), with a small evaluation set."""
    first, second = (("kjv", "pydoc") if objective == "gpt" else ("fashion_mnist", "mnist5k"))
    cls = GPT if objective == "gpt" else ViT
    try:
        return cls(dataset=first, width=width, blocks=blocks, eval_size=16)
    except MissingDataError:
        return cls(dataset=second, width=width, blocks=blocks, eval_size=16)


def flops_per_sample(obj) -> int:
    """Matmul FLOPs of one sample's forward and backward pass (backward = 2 x forward)."""
    core = obj.core
    d, t = core.width, core.tokens
    per_token = core.blocks * (2 * d * d * (4 + 2 * core.mlp_ratio) + 2 * 2 * t * d)
    if isinstance(obj, GPT):
        forward = t * (per_token + 2 * d * obj.n_classes)
    else:  # the patch embedding on every patch, the head on one pooled vector
        forward = t * per_token + obj.n_patches * 2 * obj.patch ** 2 * d + 2 * d * obj.n_classes
    return 3 * forward


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"N = {args.workers} workers; cpus = {os.cpu_count()}, OPENBLAS_NUM_THREADS = "
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1024, 1024), dtype=np.float32)
    t_mm = best_seconds(lambda: a @ a, 10 * args.repeats)
    peak = 2 * 1024 ** 3 / t_mm
    print(f"reference: float32 matmul 1024^3  {t_mm * 1e3:.2f} ms  {peak / 1e9:.1f} GFLOP/s")
    print(f"{'size':28s} {'params':>8s} {'ms/step':>8s} {'steps/s':>8s} {'of matmul rate':>15s}")
    for objective, width, blocks in SIZES:
        obj = make(objective, width, blocks)
        n, b = args.workers, BATCH[objective]
        x = obj.init(rng)
        seconds = best_seconds(lambda: obj.grads(x, n, b, rng), args.repeats)
        rate = n * b * flops_per_sample(obj) / seconds
        name = f"{objective} width {width}, {blocks} blocks"
        print(f"{name:28s} {obj.dim / 1e3:7.0f}k {seconds * 1e3:8.1f} {1 / seconds:8.1f} "
              f"{rate / peak:15.3f}")
        record(f"{objective}_w{width}_b{blocks}_grads_vs_matmul", rate / peak, None,
               "float32 matmul 1024^3 FLOP rate", steps_per_s=1 / seconds, params=obj.dim)
    write()


if __name__ == "__main__":
    main()
