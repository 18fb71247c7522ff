"""The Lion family: Lion on one worker, Distributed Lion, and global Lion on the mean gradient.

Lion (Chen et al. 2023), in the reference order, for each step:

    c = b1*m + (1-b1)*g              the sign's input uses the OLD momentum
    x = x - lr*(sign(c) + wd*x)      decoupled weight decay on the old x
    m = b2*m + (1-b2)*g              the momentum is updated after the sign was taken

Distributed Lion (Liu et al. 2024): every worker keeps its own momentum m_i and sends
delta_i = sign(c_i) (1 bit per parameter); the server replies sign(sum_i delta_i) (majority
vote, ``aggregate = "mavo"``) or the sum itself, applied as S/N (``"avg"``). Every worker applies
the same reply, so x stays identical everywhere.

Differences from the references (lion-pytorch; the D-Lion paper):
- lion: none (lion-pytorch's order and decoupled decay; sign(0) = 0 as torch.sign).
- dlion: the paper leaves a zero c_i and a tied vote open: both default to a random +-1
  (unbiased, and the wire stays 1-bit); ``zero`` sends a ternary wire instead.
- glion: none (one Lion state on the mean gradient; sign(0) = 0).
"""
from __future__ import annotations

import numpy as np

from sim.methods.base import (
    ALLREDUCE,
    SHARDED,
    SCHEDULE_DEFAULTS,
    Method,
    decode_f32,
    decoupled_step,
    dense_wire,
    differences,
    ema_,
    majority_reply,
    mean_encode,
    register,
    resolve_zeros,
    settle,
    sign_codec,
    sign_wire,
    sum_reply,
)
from sim.kernels import compiled
from sim.methods import robust
from sim.wire.codecs import SumCodec, TernarySumCodec

RULES = {
    "aggregate": {"type": "choice", "choices": ("mavo", "avg"),
                  "doc": "server rule: majority vote or average of the signs"},
}
LION_DEFAULTS = {"lr": 3e-4, "betas": (0.9, 0.99), "weight_decay": 0.1, **SCHEDULE_DEFAULTS}


def lion_direction(m, g, b1):
    """c = b1*m + (1-b1)*g, the interpolation whose sign Lion steps along (old momentum)."""
    c = np.multiply(m, b1, dtype=m.dtype)
    c += np.multiply(g, 1 - b1, dtype=m.dtype)
    return c


# --- Lion on one worker ----------------------------------------------------------------------

def _momentum_init(x, n_workers, hp, shapes):
    return {"m": np.zeros((n_workers, x.size), dtype=x.dtype)}


def _lion_encode(state, grads, hp, rng):
    # One worker, nothing travels: the update direction is kept in the state for `apply`.
    m = state["m"]
    c = lion_direction(m, grads, hp["betas"][0])
    ema_(m, grads, hp["betas"][1])
    signs = resolve_zeros(np.sign(c).astype(np.int8), hp["zero_sign"], rng)
    state["direction"] = signs[0].astype(m.dtype)
    return np.zeros((1, 0), dtype=np.uint8), state


def _lion_apply(x, reply, state, hp, lr):
    return decoupled_step(x, state["direction"], lr, hp["weight_decay"]), state


# --- Distributed Lion --------------------------------------------------------------------------

_BLOCK = 1 << 16  # elements per tile of the numpy worker kernel: its temporaries stay in L2


def _dlion_worker_numpy(m, g, b1, b2):
    """The reference worker kernel: for all workers, c = b1*m + (1-b1)*g, then
    m <- b2*m + (1-b2)*g in place; returns the packed masks of c > 0 and of c == 0 (N, ceil(d/8))
    (the second None when no c is zero).

    It runs over tiles of whole rows, or of one row's columns, so that its temporaries stay in
    cache while m and g stream from memory once (several times faster than whole-array
    ufuncs), and packs each tile's signs at once: same operations, same order, same rounding
    as the whole-array form, and no (N, d) temporary.
    """
    n, d = m.shape
    plus = np.empty((n, (d + 7) // 8), dtype=np.uint8)
    zero = None
    rows = max(1, _BLOCK // d)
    cols = d if rows > 1 else _BLOCK  # a multiple of 8: tiles of a row pack to whole bytes
    c, tmp = np.empty(rows * min(d, cols), m.dtype), np.empty(rows * min(d, cols), m.dtype)
    flags = np.empty(c.size, dtype=bool)
    for r in range(0, n, rows):
        for j in range(0, d, cols):
            mj, gj = m[r:r + rows, j:j + cols], g[r:r + rows, j:j + cols]
            cj, tj, fj = (buf[:mj.size].reshape(mj.shape) for buf in (c, tmp, flags))
            np.multiply(mj, b1, out=cj)
            np.multiply(gj, 1 - b1, out=tj)
            np.add(cj, tj, out=cj)
            np.multiply(mj, b2, out=mj)  # after the sign's input was formed: the reference order
            np.multiply(gj, 1 - b2, out=tj)
            np.add(mj, tj, out=mj)
            span = slice(j // 8, (j + mj.shape[1] + 7) // 8)
            plus[r:r + rows, span] = np.packbits(np.greater(cj, 0, out=fj), axis=-1)
            if np.equal(cj, 0, out=fj).any():
                if zero is None:
                    zero = np.zeros_like(plus)
                zero[r:r + rows, span] = np.packbits(fj, axis=-1)
    return plus, zero


def _dlion_worker(m, g, b1, b2):
    """The worker kernel (see ``_dlion_worker_numpy``): the compiled one when numba is
    installed and the arrays suit it, else the numpy reference."""
    if not m.flags.c_contiguous:  # the momentum is updated in place
        raise ValueError("dlion: the momentum state must be a C-contiguous (N, d) array")
    kernels = compiled()
    if (kernels is None or g.dtype != m.dtype or not g.flags.c_contiguous
            or m.dtype not in (np.float32, np.float64)):
        return _dlion_worker_numpy(m, g, b1, b2)
    t = m.dtype.type
    plus = np.empty((m.shape[0], (m.shape[1] + 7) // 8), dtype=np.uint8)
    zero = np.zeros_like(plus)  # calloc: pages that stay untouched cost nothing
    found = kernels.dlion_worker(m, g, t(b1), t(1 - b1), t(b2), t(1 - b2), plus, zero)
    return plus, (zero if found else None)


def dlion_signs(m, g, b1, b2, rule, rng):
    """Worker side of D-Lion for all workers: the messages (N, nbytes), 1-bit signs with zeros
    resolved by ``rule`` (random/plus/minus), or the ternary wire for ``rule = "zero"``."""
    plus, zero = _dlion_worker(m, g, b1, b2)
    if rule == "zero":  # TernaryCodec's two bit-planes of the level sign + 1: c == 0, c > 0
        return np.concatenate([np.zeros_like(plus) if zero is None else zero, plus], axis=-1)
    if zero is not None:
        settle(plus, zero, m.shape[1], rule, rng)
    return plus


def _dlion_encode(state, grads, hp, rng):
    b1, b2 = hp["betas"]
    return dlion_signs(state["m"], grads, b1, b2, hp["zero_sign"], rng), state


def _avg_codec(n, hp):
    """The Avg reply's wire: a sum of N signs (N+1 levels), or of N ternaries (2N+1 levels)."""
    return SumCodec(n) if hp["zero_sign"] != "zero" else TernarySumCodec(n)


def dlion_aggregate(payloads, d, hp, rng):
    if hp["aggregate"] == "avg":
        return sum_reply(payloads, d, hp)
    return majority_reply(payloads, d, hp, rng)


def vote_direction(reply, n, d, dtype, hp):
    """The direction D-Lion steps along from the server's reply to n sign messages: the vote's
    signs (mavo) or their sum over n (avg), (d,) in ``dtype``."""
    dtype = np.dtype(dtype)
    if hp["aggregate"] == "avg":
        return _avg_codec(n, hp).decode(reply, d).astype(dtype) / dtype.type(n)
    return sign_codec(hp["tie"]).decode(reply, d, dtype=dtype)


def _dlion_apply(x, reply, state, hp, lr, arrived=None):
    # the sum counts the signs that arrived (absent workers abstain): Avg divides by them
    n = state["m"].shape[0] if arrived is None else int(arrived.sum())
    direction = vote_direction(reply, n, x.size, x.dtype, hp)
    return decoupled_step(x, direction, lr, hp["weight_decay"]), state


# --- Global Lion: one Lion state on the mean of the fp32 gradients ---------------------------

def _glion_init(x, n_workers, hp, shapes):
    return {"m": np.zeros(x.size, dtype=x.dtype)}


def _glion_apply(x, reply, state, hp, lr):
    g = decode_f32(reply, x.dtype)
    c = lion_direction(state["m"], g, hp["betas"][0])
    ema_(state["m"], g, hp["betas"][1])
    # sign(0) = 0 here: nothing forces a 1-bit wire on the global method
    return decoupled_step(x, np.sign(c), lr, hp["weight_decay"]), state


register(Method("lion", "Lion on a single worker (no communication)", "0 (one worker)",
                {**LION_DEFAULTS, "zero_sign": "zero"},
                _momentum_init, _lion_encode, lambda p, d, hp, rng: np.zeros(0, np.uint8),
                _lion_apply, collectives=("none",), max_workers=1,
                notes=differences(__doc__, "lion")))
register(Method("dlion", "Distributed Lion: workers send sign(b1*m_i + (1-b1)*g_i); the server "
                "votes (mavo) or averages (avg)",
                "1 bit up; 1 bit down (mavo) or ceil(log2(N+1)) bits down (avg)",
                {**LION_DEFAULTS, "aggregate": "mavo", "zero_sign": "random", "tie": "random"},
                _momentum_init, _dlion_encode, dlion_aggregate, _dlion_apply,
                collectives=SHARDED, arrivals=("apply",), wire_bits=sign_wire, overlaps=True,
                stale=True,
                notes=differences(__doc__, "dlion")), RULES)
register(Method("glion", "Global Lion: one Lion state on the mean of the fp32 gradients",
                "32 bits up, 32 bits down", {**LION_DEFAULTS, **robust.DEFAULTS},
                _glion_init, mean_encode, robust.robust_aggregate, _glion_apply,
                collectives=ALLREDUCE, rules={"aggregate": robust.AGGREGATE_RULE}, overlaps=True,
                stale=True,
                wire_bits=dense_wire,
                notes=differences(__doc__, "glion")), robust.RULES)
