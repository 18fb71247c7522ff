"""PowerSGD (Vogels et al. 2019): rank-r approximations by one step of power iteration.

For every matrix M (n x m) of the error-compensated gradient, with Q (m x r) from the last step:
    P = M Q;          all-reduce P (round 1);   P_hat = orthonormalise(mean P)
    Q = M^T P_hat;    all-reduce Q (round 2)
    G = P_hat Q^T;    e = M - G (error feedback);  keep Q for the next step (warm start)
Tensors of two or more dimensions are matrices (shape[0], rest); the others, and the whole
vector of an objective without tensor shapes, travel densely in round 1 and are never
compressed, as in the paper's code. ``batched = true`` instead compresses the whole flattened
vector as one ceil(sqrt d) x ceil(sqrt d) matrix, zero-padded (torch's batched_powerSGD_hook).
Every worker then steps, after the reduce, with the paper code's momentum:
    g = G + wd*x;  buf = momentum*buf + g;  x = x - lr*(g + buf)   (Nesterov; heavy ball: buf)

Differences from the paper's code (epfml/powersgd, paper-code/gradient_reducers.py, train.py):
- P_hat comes from a Householder QR, not Gram-Schmidt: the same projection P_hat P_hat^T when P
  has full column rank (a rank-deficient P gets an arbitrary completing column instead of 0);
- P is averaged where the paper code sums it: the same after orthonormalisation.
"""
from __future__ import annotations

import math

import numpy as np

from sim.methods.base import (
    F32,
    Method,
    differences,
    keep_unsent,
    mean_aggregate,
    message_bits,
    register,
    two_rounds,
)
from sim.methods.sgd import SGD_DEFAULTS, sgd_state, sgd_step
from sim.wire.memory import compensate, feedback
from sim.wire.tensors import Segments

RULES = {
    "rank": {"type": "int", "min": 1, "doc": "PowerSGD: rank r of the approximation"},
    "warm_start": {"type": "bool", "doc": "PowerSGD: reuse the last Q (else a fresh random Q)"},
    "batched": {"type": "bool",
                "doc": "PowerSGD: compress the whole flattened vector as one square matrix "
                       "(torch's batched hook) instead of each tensor of 2+ dimensions"},
}


def _layout(d, shapes, batched):
    """Matrices (start, size, a, b) to compress and the indices sent densely. Tensors of two or
    more dimensions are (shape[0], rest); without shapes the vector is one 1-D tensor, sent
    densely; ``batched``: the whole vector is one a x a matrix, a = ceil(sqrt d), zero-padded."""
    if batched:
        a = math.isqrt(d - 1) + 1
        return [(0, d, a, a)], np.zeros(0, dtype=np.int64)
    if shapes is None:
        return [], np.arange(d)
    seg = Segments.of(d, shapes)
    mats, dense = [], []
    for (_, shape), start, size in zip(shapes, seg.starts, seg.sizes):
        if len(shape) >= 2:
            mats.append((int(start), int(size), int(shape[0]), int(size) // int(shape[0])))
        else:
            dense.append(np.arange(start, start + size))
    return mats, np.concatenate(dense) if dense else np.zeros(0, dtype=np.int64)


def _matrices(m, mats):
    """Per-worker matrices (n, a, b) of the flat rows of m (n, d)."""
    out = []
    for start, size, a, b in mats:
        block = m[:, start:start + size]
        if a * b > size:
            block = np.pad(block, ((0, 0), (0, a * b - size)))
        out.append(block.reshape(m.shape[0], a, b))
    return out


def _orthonormal(p):
    return np.linalg.qr(p)[0]  # Householder QR: orthonormal columns even when p is rank deficient


def _rows(arrays, n):
    """Per-worker arrays (n, ...) side by side as (n, total); (n, 0) when there are none."""
    return np.concatenate([a.reshape(n, -1) for a in arrays] or [np.zeros((n, 0), np.float32)],
                          axis=1)


def _split(flat, sizes):
    return np.split(flat, np.cumsum(sizes)[:-1], axis=-1)


def _init(x, n_workers, hp, shapes):
    mats, dense = _layout(x.size, shapes, hp["batched"])
    seed = np.random.default_rng(0)  # the seed every worker shares for the first Q
    qs = [seed.standard_normal((b, min(hp["rank"], a, b))).astype(x.dtype) for _, _, a, b in mats]
    return {"mats": mats, "dense": dense, "q": qs,
            "memory": np.zeros((n_workers, x.size), dtype=x.dtype), **sgd_state(x)}


def _encode(state, grads, hp, rng, arrived=None, flipped=None):
    n = grads.shape[0]
    m = compensate(state["memory"], grads) if hp["error_feedback"] else grads
    state["compensated"] = m
    if not hp["warm_start"]:
        state["q"] = [rng.standard_normal(q.shape).astype(q.dtype) for q in state["q"]]
    ms = _matrices(m, state["mats"])
    ps = [mi @ q for mi, q in zip(ms, state["q"])]
    # round 1: all-reduce P (the mean: orthonormalising ignores the 1/N)
    p_honest = _rows(ps, n).astype(np.float32)  # what the float32 wire carries
    # adversaries send the negation of their messages (their memory subtracts the aggregate,
    # which they do not negate, so negating their input would not do it): the mean sees that
    p_sent = p_honest if flipped is None else np.where(flipped[:, None], -p_honest, p_honest)
    # over the workers whose P arrived (all of them, unless the server left some out)
    p_mean = (p_sent if arrived is None else p_sent[arrived]).mean(axis=0, dtype=np.float32)
    p_hat = [_orthonormal(p.reshape(p0.shape[1:]))
             for p, p0 in zip(_split(p_mean, [p0[0].size for p0 in ps]), ps)]
    qs = [np.swapaxes(mi, 1, 2) @ ph for mi, ph in zip(ms, p_hat)]
    # [dense entries | P | Q] per worker, float32; _rounds times P and Q one after the other
    parts = [m[:, state["dense"]].astype(np.float32), p_honest, _rows(qs, n).astype(np.float32)]
    message = np.concatenate(parts, axis=1)
    if flipped is not None:
        message[flipped] *= -1
    return F32.encode(message), state


def _rounds(state, payloads, reply):
    if not state["mats"]:  # nothing to compress: one dense all-reduce
        return [(message_bits(payloads), None if reply is None else 8 * reply.shape[-1])]
    # P (with the dense tensors) is all-reduced first: Q = M^T P_hat needs the reduced P
    p_values = state["dense"].size + sum(a * q.shape[1] for (_, _, a, _), q in
                                         zip(state["mats"], state["q"]))
    return two_rounds(4 * p_values, payloads, reply)


def _apply(x, reply, state, hp, lr, arrived=None):
    mats, dense, qs = state["mats"], state["dense"], state["q"]
    sizes = [dense.size] + [a * q.shape[1] for (_, _, a, _), q in zip(mats, qs)] + [q.size for q in qs]
    parts = _split(F32.decode(reply, reply.size // 4), sizes)
    g = np.zeros(x.size, dtype=np.float32)
    g[dense] = parts[0]
    new_q = []
    for (start, size, a, b), p, q, old in zip(mats, parts[1:1 + len(mats)],
                                               parts[1 + len(mats):], qs):
        q_hat = q.reshape(b, -1)
        g[start:start + size] = (_orthonormal(p.reshape(a, -1)) @ q_hat.T).reshape(-1)[:size]
        new_q.append(q_hat.astype(old.dtype))
    g = g.astype(x.dtype)
    if hp["error_feedback"]:
        # only the workers the reply aggregates: one that did not finish computing changed
        # nothing, one whose message was discarded keeps all of it (``discard``, next)
        took_part = slice(None) if arrived is None else arrived
        memory = feedback(state["compensated"][took_part], g)
        memory[:, dense] = 0  # dense tensors travel exactly: nothing to remember
        state["memory"][took_part] = memory
    if hp["warm_start"]:
        state["q"] = new_q
    # the paper code's Nesterov form: g + buf (PyTorch's is g + momentum*buf)
    return sgd_step(x, g, state, hp, lr, hp["momentum"], lookahead=1.0), state


register(Method("powersgd", "PowerSGD (Vogels et al. 2019): rank-r P Q^T per matrix with warm "
                "start and error feedback, two all-reduces, Nesterov momentum after the reduce",
                "32 r (a+b)/(ab) per a x b matrix (32 for 1-D tensors and vectors without "
                "shapes) up and down",
                {**SGD_DEFAULTS, "nesterov": True, "rank": 2, "warm_start": True,
                 "error_feedback": True, "batched": False},
                _init, _encode, mean_aggregate, _apply,
                collectives=("auto", "ring", "tree", "halving_doubling", "ps"), rounds=_rounds,
                arrivals=("encode", "apply"), discard=keep_unsent("memory"), flips=True,
                notes=differences(__doc__)), RULES)
