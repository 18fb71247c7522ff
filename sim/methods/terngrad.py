"""TernGrad (Wen et al. 2017): stochastic ternary gradients with a shared per-tensor scale.

Each step, per tensor:
    clip g at clip_factor * std(g)                 (optional; reduces the scale's variance)
    s = max over workers of max|g|                 round 1: the scales are max-reduced
    t_i = sign(g_i) * Bernoulli(|g_i| / s)         unbiased: E[s * t_i] = g_i
the server sums the ternaries (2N+1 levels) and every worker applies SGD on s * sum_i t_i / N.

Differences from the authors' code (wenwei202/terngrad):
- the scale is max|g| after clipping at clip_factor*std (the paper's rule); the code takes
  clip_factor*std itself, which differs only when no entry reaches it;
- every tensor is ternarised, the last (logits) layer too (the code keeps it in floats unless
  --quantize_logits), and there are no full-precision epochs.
"""
from __future__ import annotations

import numpy as np

from sim.methods.base import F32, Method, differences, register, two_rounds
from sim.methods.sgd import SGD_DEFAULTS, sgd_state, sgd_step
from sim.wire.codecs import LevelCodec, TernaryCodec, TernarySumCodec
from sim.wire.tensors import Segments

RULES = {
    "clip_factor": {"type": "float", "min": 0.0,
                    "doc": "TernGrad: clip |g| at clip_factor * std(g) per tensor (0 = off)"},
}


def _init(x, n_workers, hp, shapes):
    return {"segments": Segments.of(x.size, shapes), "n": n_workers, **sgd_state(x)}


def _encode(state, grads, hp, rng, arrived=None):
    seg = state["segments"]
    g = grads
    if hp["clip_factor"] > 0:
        mean = seg.sum(g) / seg.sizes
        std = np.sqrt(np.maximum(seg.sum(g * g) / seg.sizes - mean * mean, 0.0))
        limit = seg.expand(hp["clip_factor"] * std).astype(g.dtype)
        g = np.clip(g, -limit, limit)
    local = F32.encode(seg.max(np.abs(g)))  # round 1: every worker's scales (n, 4T)
    scales = F32.decode(local, seg.sizes.size)
    # ... max-reduced over the workers taking part: one per tensor
    shared = (scales if arrived is None else scales[arrived]).max(axis=0)
    s = seg.expand(shared[None].astype(np.float64))
    prob = np.divide(np.abs(g), s, out=np.zeros(g.shape), where=s > 0)
    ternary = np.sign(g).astype(np.int8) * (rng.random(g.shape) < prob)
    return np.concatenate([local, TernaryCodec().encode(ternary)], axis=1), state


def _aggregate(payloads, d, hp, rng):
    n = payloads.shape[0]
    ternary_bytes = TernaryCodec().size_bits(d) // 8
    scales = payloads[:, :payloads.shape[1] - ternary_bytes]
    shared = F32.decode(scales, scales.shape[1] // 4).max(axis=0)
    total = TernaryCodec().decode(payloads[:, -ternary_bytes:], d, dtype="float64").sum(axis=0)
    return np.concatenate([F32.encode(shared), TernarySumCodec(n).encode(total)])


def _wire(length, n, hp):
    """``wire_bits`` of the ternaries (round 2): 2 bits each, their sum at 2n+1 levels."""
    total = LevelCodec(2 * n + 1).size_bits(length)
    return TernaryCodec().size_bits(length), total, total


def _rounds(state, payloads, reply):
    # the scales are max-reduced first: every worker needs the shared scale to ternarise
    return two_rounds(4 * state["segments"].sizes.size, payloads, reply)


def _apply(x, reply, state, hp, lr, arrived=None):
    seg = state["segments"]
    n = state["n"] if arrived is None else int(arrived.sum())  # the sum is over those
    t = seg.sizes.size
    shared = F32.decode(reply[:4 * t], t).astype(np.float64)
    total = TernarySumCodec(n).decode(reply[4 * t:], x.size)
    mean = (seg.expand(shared[None])[0] * total / n).astype(x.dtype)
    return sgd_step(x, mean, state, hp, lr, hp["momentum"]), state


register(Method("terngrad", "TernGrad (Wen et al. 2017): stochastic ternary gradients with a "
                "shared per-tensor scale, clipped at clip_factor*std",
                "2 bits (log2 3 ideal) + 32 per tensor up; ceil(log2(2N+1)) + 32 per tensor down",
                {**SGD_DEFAULTS, "clip_factor": 2.5},
                _init, _encode, _aggregate, _apply,
                collectives=("auto", "ps", "alltoall", "allgather"), rounds=_rounds,
                arrivals=("encode", "apply"), wire_bits=_wire,
                notes=differences(__doc__)), RULES)
