"""Deep Gradient Compression (Lin et al. 2018): sparse updates that still converge like SGD.

Each step, on every worker, per tensor (as the reference's per-tensor memory):
    g = g * min(1, (clip_norm / sqrt(N)) / ||g||)     local gradient clipping (optional)
    u = momentum*u + g;  v = v + u                    momentum correction: the velocity is
                                                      accumulated, not the gradient
    (Nesterov: u = momentum*(u + g);  v = v + u + g)
    sent = v on its top ceil(density*size) entries    sampled threshold (``sampled_mask``);
                                                      the density warms up 0.25 -> ... -> density
    v = v - sent;  u = 0 where sent                   error feedback; momentum factor masking
Only tensors of two or more dimensions are sparsified: the others (biases) are sent whole every
step and keep their momentum (the reference all-reduces them densely and applies the momentum
after the reduce: the same sum, since momentum is linear). The server averages the messages;
every worker then steps
    x = x - lr*(mean + decay),  decay = buf (or wd*x + momentum*buf with Nesterov),
    buf = momentum*buf + wd*x       (DGCSGD: only the weight decay goes through a momentum)
An objective without tensor shapes is one tensor, selected as a whole.

Differences from the reference (synxlin/deep-gradient-compression):
- the threshold sample is uniform (the reference's ``strided_sample = False``), not strided;
- biases are clipped on each worker before they are sent, like the other tensors; the reference
  clips them (by the same per-tensor rule) once their mean has been all-reduced;
- biases travel as (value, index) pairs inside the sparse message (32 index bits each more than
  the reference's dense all-reduce), so a step stays one message per worker;
- the sparsity warm-up is counted in steps (``sparsity_warmup``, four equal stages, the paper's
  75%, 93.75%, 98.4%, 99.6%), where the reference counts epochs.
"""
from __future__ import annotations

import math

import numpy as np

from sim.methods.base import Method, differences, keep_unsent, register
from sim.methods.sgd import SGD_DEFAULTS
from sim.methods.sparsifiers import (
    RULES as SPARSE_RULES,
    SPARSE_DEFAULTS,
    sparse_aggregate,
    sparse_mean,
    sparse_send,
)
from sim.wire.compressors import keep_count, sampled_mask, topk_mask
from sim.wire.tensors import Segments

RULES = {
    "sparsity_warmup": {"type": "int", "min": 0,
                        "doc": "DGC: steps over which the density falls 0.25, 0.25^2, ... to "
                               "density (4 stages)"},
    "clip_norm": {"type": "float", "min": 0.0,
                  "doc": "DGC local clipping: the L2 norm of each tensor of each worker's "
                         "gradient is clipped at clip_norm / sqrt(N) (0 = off)"},
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
    seg = Segments.of(x.size, shapes)
    matrix = np.ones(seg.sizes.size, dtype=bool) if shapes is None else \
        np.array([len(shape) >= 2 for _, shape in shapes])
    dense = np.repeat(~matrix, seg.sizes)  # (d,): the entries of the tensors sent whole
    zeros = np.zeros((n_workers, x.size), dtype=x.dtype)
    return {"u": zeros, "v": zeros.copy(), "step": 0, "dense": dense, "segments": seg,
            "tensors": list(zip(seg.starts[matrix].tolist(), seg.sizes[matrix].tolist())),
            "decay": np.zeros(x.size, dtype=x.dtype)}


def _encode(state, grads, hp, rng):
    n, d = grads.shape
    g = grads
    if hp["clip_norm"] > 0:
        # local clipping, tensor by tensor: the threshold shrinks by sqrt(N) because N workers'
        # gradients add up
        seg = state["segments"]
        norm = np.sqrt(seg.sum(g * g))  # (n, tensors)
        limit = hp["clip_norm"] / math.sqrt(n)
        scale = np.minimum(1.0, limit / np.maximum(norm, np.finfo(g.dtype).tiny))
        g = g * seg.expand(scale).astype(g.dtype)
    u, v, mu = state["u"], state["v"], hp["momentum"]
    # momentum correction: the velocity is accumulated, not the gradient
    if hp["nesterov"]:
        u += g
        u *= mu
        v += u
        v += g
    else:
        u *= mu
        u += g
        v += u
    density = density_at(state["step"], hp)
    mask = np.zeros((n, d), dtype=bool)
    mask[:, state["dense"]] = True
    for start, size in state["tensors"]:  # per tensor, as the reference selects
        block = v[:, start:start + size]
        mask[:, start:start + size] = (
            topk_mask(block, keep_count(density, size, round_up=True))
            if hp["selection"] == "exact" else sampled_mask(block, density, hp["sample_ratio"], rng))
    payloads = sparse_send(state, "v", v, mask, hp)
    state["unmasked"] = u  # the momentum as it was before sending, for a discarded message
    if hp["momentum_masking"]:
        # stale momentum would keep pushing an entry already applied; dense tensors keep theirs
        state["u"] = np.where(mask & ~state["dense"], u.dtype.type(0), u)
    state["step"] += 1
    return payloads, state


def _discard(state, rows):
    """A discarded message was not sent: its workers keep their whole velocity and the
    momentum that masking zeroed where they selected entries."""
    state = keep_unsent("v")(state, rows)
    state["u"][rows] = state["unmasked"][rows]
    return state


def _apply(x, reply, state, hp, lr):
    # the gradient's momentum was applied on the workers (momentum correction); only the weight
    # decay goes through a momentum buffer here (the reference's DGCSGD)
    step = sparse_mean(reply, x.size, hp, x.dtype)
    if hp["weight_decay"]:
        wd, buf = hp["weight_decay"], state["decay"]
        buf *= hp["momentum"]
        buf += wd * x
        step = step + (wd * x + hp["momentum"] * buf if hp["nesterov"] else buf)
    return x - x.dtype.type(lr) * step, state


_DEFAULTS = {**SGD_DEFAULTS, **SPARSE_DEFAULTS, "density": 0.001, "sparsity_warmup": 100,
             "clip_norm": 0.0, "momentum_masking": True, "selection": "sampled",
             "sample_ratio": 0.01}

register(Method("dgc", "Deep Gradient Compression (Lin et al. 2018): momentum correction, local "
                "clipping, momentum masking, sparsity warm-up, sampled top-k per tensor",
                "density*(32 + index bits) up; all-gather or the union of supports down",
                _DEFAULTS, _init, _encode, sparse_aggregate, _apply,
                collectives=("auto", "allgather", "ps"), steady_from=lambda hp: hp["sparsity_warmup"],
                discard=_discard,
                notes=differences(__doc__)),
         {k: {**SPARSE_RULES, **RULES}[k] for k in _DEFAULTS if k in {**SPARSE_RULES, **RULES}})
