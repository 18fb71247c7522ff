"""Optimizer numerics, vectorised over workers: what each worker sends, what the server replies.

A method is four small pure functions over arrays (optax-style), bundled in a ``Method``:

``init(x, n_workers, hp, shapes) -> state``
    per-worker state arrays are shaped (n_workers, d); global state is shaped (d,). ``shapes``
    is the objective's list of (name, tensor shape) covering x in order, or None.
``encode(state, grads, hp, rng) -> (payloads, state)``
    worker side: grads (n_workers, d) -> the packed uint8 messages: an array (n_workers, nbytes)
    when all have one size, else a list of n_workers 1-D uint8 arrays.
``aggregate(payloads, d, hp, rng) -> reply``
    server side: the received messages -> one packed uint8 reply (nbytes,) for every worker.
``apply(x, reply, state, hp, lr) -> (x, state)``
    every worker applies the same reply, so x stays identical across workers and is kept once.

Messages only ever travel as codec payloads, so the bits the network charges are the bytes
really produced. ``hp`` is the resolved hyperparameter dict (see ``HYPERPARAMETERS``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from sim.codecs import DenseCodec, LevelCodec, SignCodec, SumCodec, TernaryCodec
from sim.schedules import SCHEDULES

SIGN_RULES = ("random", "plus", "minus", "zero")

#: Validation rules for every hyperparameter any method accepts (used by the spec layer).
HYPERPARAMETERS: dict[str, dict] = {
    "lr": {"type": "float", "min": 0.0, "min_open": True, "doc": "learning rate"},
    "betas": {"type": "pair", "min": 0.0, "max": 1.0, "max_open": True,
              "doc": "momentum interpolation b1 and momentum/second-moment decay b2"},
    "weight_decay": {"type": "float", "min": 0.0, "doc": "decoupled weight decay (times lr)"},
    "momentum": {"type": "float", "min": 0.0, "max": 1.0, "max_open": True,
                 "doc": "heavy-ball momentum"},
    "nesterov": {"type": "bool", "doc": "Nesterov momentum"},
    "eps": {"type": "float", "min": 0.0, "min_open": True, "doc": "AdamW denominator epsilon"},
    "schedule": {"type": "choice", "choices": tuple(SCHEDULES), "doc": "learning-rate schedule"},
    "warmup_steps": {"type": "int", "min": 0, "doc": "linear warm-up length in steps"},
    "min_lr_ratio": {"type": "float", "min": 0.0, "max": 1.0,
                     "doc": "final lr of the cosine schedule, as a fraction of lr"},
    "aggregate": {"type": "choice", "choices": ("mavo", "avg"),
                  "doc": "server rule: majority vote or average of the signs"},
    "zero_sign": {"type": "choice", "choices": SIGN_RULES,
                  "doc": "what a worker sends for sign(0): random ±1, +1, -1 or 0 (ternary wire)"},
    "tie": {"type": "choice", "choices": SIGN_RULES,
            "doc": "MaVo reply on a tied vote: random ±1, +1, -1 or 0 (ternary wire)"},
}

_SCHEDULE_DEFAULTS = {"schedule": "constant", "warmup_steps": 0, "min_lr_ratio": 0.0}


@dataclass(frozen=True)
class Method:
    """One optimizer: its numerics, its hyperparameters and how its messages travel."""

    name: str
    description: str
    wire: str                      # wire cost per parameter per step, for `dlion-sim list`
    defaults: dict                 # hyperparameter -> default value
    init: Callable
    encode: Callable
    aggregate: Callable
    apply: Callable
    collectives: tuple = ("ps",)   # collectives it can use; the first is the default
    max_workers: int | None = None
    # (state, up payloads, reply) -> [(up bits (N,), down bits), ...]: the message split into
    # rounds that travel one after the other (None: one round, the whole message)
    rounds: Callable | None = None
    options: dict = field(default_factory=dict)


# --- shared pieces -------------------------------------------------------------------------

def _lion_direction(m, g, b1):
    """c = b1*m + (1-b1)*g, the interpolation whose sign Lion steps along (old momentum)."""
    c = np.multiply(m, b1, dtype=m.dtype)
    c += np.multiply(g, 1 - b1, dtype=m.dtype)
    return c


def _ema_(m, g, b2):
    """m <- b2*m + (1-b2)*g in place (the momentum update, done after the sign is taken)."""
    m *= b2
    m += np.multiply(g, 1 - b2, dtype=m.dtype)


def _apply_step(x, direction, lr, wd):
    """x - lr*(direction + wd*x): decoupled weight decay on the old x, scaled by lr."""
    step = np.multiply(x, wd, dtype=x.dtype)
    step += direction
    step *= x.dtype.type(lr)
    return x - step


def _resolve_zeros(signs, rule, rng):
    """Replace the zeros of an int8 sign array in place by the ``rule`` (random/plus/minus)."""
    zeros = signs == 0
    count = np.count_nonzero(zeros)
    if count == 0 or rule == "zero":
        return signs
    if rule == "random":
        # draws only where needed, from the run's seeded generator: unbiased and reproducible
        signs[zeros] = np.where(rng.random(count) < 0.5, 1, -1)
    else:
        signs[zeros] = 1 if rule == "plus" else -1
    return signs


def _sign_codec(rule):
    return TernaryCodec() if rule == "zero" else SignCodec()


def _float_payload(values):
    return DenseCodec("float32").encode(values)


def _float_decode(payload, d, dtype):
    return DenseCodec("float32").decode(payload, d).astype(dtype, copy=False)


# --- Lion on one worker ---------------------------------------------------------------------

def _lion_init(x, n_workers, hp, shapes):
    return {"m": np.zeros((n_workers, x.size), dtype=x.dtype)}


def _lion_encode(state, grads, hp, rng):
    # One worker, nothing travels: the update direction is kept in the state for `apply`.
    m = state["m"]
    c = _lion_direction(m, grads, hp["betas"][0])
    _ema_(m, grads, hp["betas"][1])
    signs = _resolve_zeros(np.sign(c).astype(np.int8), hp["zero_sign"], rng)
    state["direction"] = signs[0].astype(m.dtype)
    return np.zeros((1, 0), dtype=np.uint8), state


def _lion_apply(x, reply, state, hp, lr):
    return _apply_step(x, state["direction"], lr, hp["weight_decay"]), state


# --- Distributed Lion ---------------------------------------------------------------------

def _dlion_init(x, n_workers, hp, shapes):
    return {"m": np.zeros((n_workers, x.size), dtype=x.dtype)}


_BLOCK = 1 << 16  # elements per block of the worker kernel: its temporaries stay in L2 cache


def _dlion_signs_1bit(m, g, b1, b2, rule, rng):
    """Worker side of D-Lion on a 1-bit wire, for all workers: the packed signs (N, ceil(d/8)).

    Computes c = b1*m + (1-b1)*g, then m <- b2*m + (1-b2)*g, over contiguous blocks of the
    flattened arrays so that the temporaries stay in cache and m and g stream from memory once
    (several times faster than whole-array ufuncs). Same operations, same order, same rounding
    as the whole-array form.
    """
    n, d = m.shape
    if not m.flags.c_contiguous:  # the momentum is updated in place through a flat view
        raise ValueError("dlion: the momentum state must be a C-contiguous (N, d) array")
    flat_m, flat_g = m.reshape(-1), g.reshape(-1)
    plus = np.empty(n * d, dtype=bool)
    c, tmp, zero = (np.empty(_BLOCK, m.dtype), np.empty(_BLOCK, m.dtype),
                    np.empty(_BLOCK, bool))
    for j in range(0, n * d, _BLOCK):
        w = min(_BLOCK, n * d - j)
        mj, gj, cj, tj = flat_m[j:j + w], flat_g[j:j + w], c[:w], tmp[:w]
        np.multiply(mj, b1, out=cj)
        np.multiply(gj, 1 - b1, out=tj)
        np.add(cj, tj, out=cj)
        np.multiply(mj, b2, out=mj)  # after the sign's input was formed: the reference order
        np.multiply(gj, 1 - b2, out=tj)
        np.add(mj, tj, out=mj)
        pj = np.greater(cj, 0, out=plus[j:j + w])
        zj = np.equal(cj, 0, out=zero[:w])
        if rule != "minus" and zj.any():  # (minus: c > 0 already sends -1 for a zero)
            if rule == "random":
                pj[zj] = rng.random(np.count_nonzero(zj)) < 0.5
            elif rule == "plus":
                pj |= zj
    return SignCodec.pack(plus.reshape(n, d))


def _dlion_encode(state, grads, hp, rng):
    m = state["m"]
    b1, b2 = hp["betas"]
    if hp["zero_sign"] != "zero":
        return _dlion_signs_1bit(m, grads, b1, b2, hp["zero_sign"], rng), state
    c = _lion_direction(m, grads, b1)
    _ema_(m, grads, b2)
    return TernaryCodec().encode(np.sign(c).astype(np.int8)), state


def _vote_sum(payloads, d, hp):
    """Integer vote sum S = sum_i delta_i (d,) from the received sign messages."""
    if hp["zero_sign"] == "zero":
        return TernaryCodec().decode(payloads, d).sum(axis=0, dtype=np.int32)
    return SignCodec().sum(payloads, d)


def _avg_codec(n, hp):
    """The Avg reply's wire: a sum of N signs (N+1 levels), or of N ternaries (2N+1 levels)."""
    return SumCodec(n) if hp["zero_sign"] != "zero" else _TernarySum(n)


@dataclass(frozen=True)
class _TernarySum:
    """A sum S of N values in {-1, 0, +1}, sent as the level S + N at ceil(log2(2N+1)) bits."""

    n: int

    def encode(self, total):
        return LevelCodec(2 * self.n + 1).encode(np.asarray(total, dtype=np.int64) + self.n)

    def decode(self, payload, d):
        return LevelCodec(2 * self.n + 1).decode(payload, d) - self.n


def _dlion_aggregate(payloads, d, hp, rng):
    total = _vote_sum(payloads, d, hp)
    if hp["aggregate"] == "avg":
        return _avg_codec(len(payloads), hp).encode(total)
    vote = np.sign(total).astype(np.int8)
    _resolve_zeros(vote, hp["tie"], rng)
    return _sign_codec(hp["tie"]).encode(vote)


def _dlion_apply(x, reply, state, hp, lr):
    n = state["m"].shape[0]
    if hp["aggregate"] == "avg":
        direction = _avg_codec(n, hp).decode(reply, x.size).astype(x.dtype) / x.dtype.type(n)
    else:
        direction = _sign_codec(hp["tie"]).decode(reply, x.size, dtype=x.dtype)
    return _apply_step(x, direction, lr, hp["weight_decay"]), state


# --- Global methods: one optimizer on the mean of the fp32 gradients --------------------------

def _mean_encode(state, grads, hp, rng):
    return _float_payload(grads), state


def _mean_aggregate(payloads, d, hp, rng):
    mean = DenseCodec("float32").decode(payloads, d).mean(axis=0, dtype=np.float32)
    return _float_payload(mean)


def _glion_init(x, n_workers, hp, shapes):
    return {"m": np.zeros(x.size, dtype=x.dtype)}


def _glion_apply(x, reply, state, hp, lr):
    g = _float_decode(reply, x.size, x.dtype)
    c = _lion_direction(state["m"], g, hp["betas"][0])
    _ema_(state["m"], g, hp["betas"][1])
    # sign(0) = 0 here: nothing forces a 1-bit wire on the global method
    return _apply_step(x, np.sign(c), lr, hp["weight_decay"]), state


def _adamw_init(x, n_workers, hp, shapes):
    return {"m": np.zeros(x.size, dtype=x.dtype), "v": np.zeros(x.size, dtype=x.dtype), "t": 0}


def _adamw_apply(x, reply, state, hp, lr):
    g = _float_decode(reply, x.size, x.dtype)
    b1, b2 = hp["betas"]
    state["t"] += 1
    t = state["t"]
    _ema_(state["m"], g, b1)
    _ema_(state["v"], g * g, b2)
    m_hat = state["m"] / (1 - b1**t)
    v_hat = state["v"] / (1 - b2**t)
    return _apply_step(x, m_hat / (np.sqrt(v_hat) + hp["eps"]), lr, hp["weight_decay"]), state


def _sgd_init(x, n_workers, hp, shapes):
    return {"buf": np.zeros(x.size, dtype=x.dtype)}


def _sgd_apply(x, reply, state, hp, lr):
    # PyTorch convention: coupled L2 (added to the gradient), buf = mu*buf + g
    g = _float_decode(reply, x.size, x.dtype) + hp["weight_decay"] * x
    buf = state["buf"]
    buf *= hp["momentum"]
    buf += g
    update = g + hp["momentum"] * buf if hp["nesterov"] else buf
    return x - x.dtype.type(lr) * update, state


_ALLREDUCE = ("ps", "ring", "halving_doubling")
_LION_HP = {"lr": 3e-4, "betas": (0.9, 0.99), "weight_decay": 0.1, **_SCHEDULE_DEFAULTS}

METHODS: dict[str, Method] = {m.name: m for m in [
    Method("lion", "Lion on a single worker (no communication)", "0 (one worker)",
           {**_LION_HP, "zero_sign": "zero"},
           _lion_init, _lion_encode, lambda p, d, hp, rng: np.zeros(0, np.uint8), _lion_apply,
           collectives=("none",), max_workers=1),
    Method("dlion", "Distributed Lion: workers send sign(b1*m_i + (1-b1)*g_i); the server "
           "votes (mavo) or averages (avg)",
           "1 bit up; 1 bit down (mavo) or ceil(log2(N+1)) bits down (avg)",
           {**_LION_HP, "aggregate": "mavo", "zero_sign": "random", "tie": "random"},
           _dlion_init, _dlion_encode, _dlion_aggregate, _dlion_apply,
           collectives=("ps", "allgather")),
    Method("glion", "Global Lion: one Lion state on the mean of the fp32 gradients",
           "32 bits up, 32 bits down", dict(_LION_HP),
           _glion_init, _mean_encode, _mean_aggregate, _glion_apply,
           collectives=_ALLREDUCE),
    Method("gadamw", "Global AdamW (bias-corrected, decoupled weight decay) on the mean gradient",
           "32 bits up, 32 bits down",
           {"lr": 1e-3, "betas": (0.9, 0.999), "weight_decay": 0.01, "eps": 1e-8,
            **_SCHEDULE_DEFAULTS},
           _adamw_init, _mean_encode, _mean_aggregate, _adamw_apply,
           collectives=_ALLREDUCE),
    Method("gsgd", "Global SGD with momentum (optionally Nesterov) on the mean gradient",
           "32 bits up, 32 bits down",
           {"lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0,
            **_SCHEDULE_DEFAULTS},
           _sgd_init, _mean_encode, _mean_aggregate, _sgd_apply,
           collectives=_ALLREDUCE),
]}


def register(method: Method, hyperparameters: dict | None = None) -> Method:
    """Add ``method`` (and validation rules for its new hyperparameters) to the registry."""
    for key, rule in (hyperparameters or {}).items():
        if key in HYPERPARAMETERS and HYPERPARAMETERS[key] != rule:
            raise ValueError(f"hyperparameter {key!r} already has a different rule")
        HYPERPARAMETERS[key] = rule
    missing = set(method.defaults) - set(HYPERPARAMETERS)
    if missing:
        raise ValueError(f"method {method.name!r}: no validation rule for {sorted(missing)}")
    METHODS[method.name] = method
    return method


def message_bits(payloads) -> np.ndarray:
    """Bits of each worker's message: int64 (n_workers,), from the bytes really produced."""
    if isinstance(payloads, np.ndarray):
        return np.full(payloads.shape[0], 8 * payloads.shape[-1], dtype=np.int64)
    return np.array([8 * p.size for p in payloads], dtype=np.int64)


def message_rounds(method: Method, state, payloads, reply) -> list[tuple[np.ndarray, int]]:
    """The step's messages as rounds of (up bits per worker, down bits), from the real bytes."""
    if method.rounds is not None:
        return method.rounds(state, payloads, reply)
    return [(message_bits(payloads), 8 * reply.shape[-1])]


def get(name: str) -> Method:
    """The built-in method ``name``; ``ValueError`` listing the valid names otherwise."""
    if name not in METHODS:
        raise ValueError(f"method.name = {name!r} is not a method; choose one of "
                         f"{', '.join(METHODS)}")
    return METHODS[name]


from sim import baselines  # noqa: E402,F401  (registers the compressed-communication baselines)
