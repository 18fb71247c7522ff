"""Deep Gradient Compression (Lin et al. 2018): sparse updates that still converge like SGD.

Each step, on every worker:
    g = g * min(1, (clip_norm / sqrt(N)) / ||g||)     local gradient clipping (optional)
    u = momentum*u + g                                momentum correction: accumulate the
    v = v + u                                         velocity, not the gradient
    sent = v on the top entries (sampled threshold)   density warms up 0.25 -> ... -> density
    v = v - sent; u = 0 where sent                    error feedback; momentum factor masking
and the server averages the sparse messages; workers apply plain SGD on that mean (the
momentum already happened on the workers).
"""
from __future__ import annotations

import math

import numpy as np

from sim.methods.base import Method, register
from sim.methods.sgd import SGD_DEFAULTS, sgd_step
from sim.methods.sparsifiers import (
    RULES as SPARSE_RULES,
    SPARSE_DEFAULTS,
    sparse_aggregate,
    sparse_mean,
    sparse_send,
)
from sim.wire.compressors import keep_count, sampled_mask, topk_mask

RULES = {
    "sparsity_warmup": {"type": "int", "min": 0,
                        "doc": "DGC: steps over which the density falls 0.25, 0.25^2, ... to "
                               "density (4 stages)"},
    "clip_norm": {"type": "float", "min": 0.0,
                  "doc": "DGC local clipping: each worker's gradient L2 norm is clipped at "
                         "clip_norm / sqrt(N) (0 = off)"},
    "momentum_masking": {"type": "bool",
                         "doc": "DGC: zero the momentum where entries were sent"},
}


def density_at(step, hp):
    """DGC's exponential sparsity warm-up: density 0.25, 0.25^2, 0.25^3, 0.25^4 over four equal
    stages of ``sparsity_warmup`` steps (75% ... 99.6% sparse), then ``density``."""
    warmup = hp["sparsity_warmup"]
    if step >= warmup:
        return hp["density"]
    return max(hp["density"], 0.25 ** (1 + 4 * step // warmup))


def _init(x, n_workers, hp, shapes):
    zeros = np.zeros((n_workers, x.size), dtype=x.dtype)
    return {"u": zeros, "v": zeros.copy(), "step": 0}


def _encode(state, grads, hp, rng):
    n, d = grads.shape
    g = grads
    if hp["clip_norm"] > 0:
        # local clipping: the threshold shrinks by sqrt(N) because N workers' gradients add up
        norm = np.sqrt(np.einsum("ij,ij->i", g, g))[:, None]
        limit = hp["clip_norm"] / math.sqrt(n)
        g = g * np.minimum(1.0, limit / np.maximum(norm, np.finfo(g.dtype).tiny)).astype(g.dtype)
    u, v = state["u"], state["v"]
    u *= hp["momentum"]  # momentum correction: the velocity is accumulated, not the gradient
    u += g
    v += u
    density = density_at(state["step"], hp)
    if hp["selection"] == "exact":
        mask = topk_mask(v, keep_count(density, d))
    else:
        mask = sampled_mask(v, density, hp["sample_ratio"], rng)
    payloads = sparse_send(state, "v", v, mask, hp)
    if hp["momentum_masking"]:
        state["u"][mask] = 0  # stale momentum would keep pushing an entry already applied
    state["step"] += 1
    return payloads, state


def _apply(x, reply, state, hp, lr):
    # the momentum was applied on the workers (momentum correction): plain SGD here
    return sgd_step(x, sparse_mean(reply, x.size, hp, x.dtype), state, hp, lr, 0.0), state


_DEFAULTS = {**SGD_DEFAULTS, **SPARSE_DEFAULTS, "density": 0.001, "sparsity_warmup": 100,
             "clip_norm": 0.0, "momentum_masking": True, "selection": "sampled",
             "sample_ratio": 0.01}

register(Method("dgc", "Deep Gradient Compression (Lin et al. 2018): momentum correction, local "
                "clipping, momentum masking, sparsity warm-up, sampled top-k",
                "density*(32 + index bits) up; all-gather or the union of supports down",
                _DEFAULTS, _init, _encode, sparse_aggregate, _apply,
                collectives=("allgather", "ps")),
         {k: {**SPARSE_RULES, **RULES}[k] for k in _DEFAULTS if k in {**SPARSE_RULES, **RULES}})
